"""`RunIf`: skip a test, with the reason, when the machine lacks what it needs (a GPU, bf16 on CUDA, ...).

A test that needs a GPU also carries the `gpu` marker, so `pytest -m gpu` (benchmarks/gpu_check.sh) selects it."""

import pytest
import torch


def RunIf(*, min_gpus: int = 0, bf16_cuda: bool = False):
    reasons = []
    if torch.cuda.device_count() < min_gpus:
        reasons.append(f"needs {min_gpus} CUDA GPU(s), found {torch.cuda.device_count()}")
    if bf16_cuda and not (torch.cuda.is_available() and torch.cuda.is_bf16_supported()):
        reasons.append("needs a CUDA GPU with bf16")
    skip = pytest.mark.skipif(bool(reasons), reason="; ".join(reasons))
    if not (min_gpus or bf16_cuda):
        return skip
    return lambda test: pytest.mark.gpu(skip(test))
