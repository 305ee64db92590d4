"""The training loss of a run: the `loss` node (`_target_`, called with `label_smoothing=train.label_smoothing`),
its logits cast to `train.loss_dtype` first when that is set (the grokking paper's float64 fix is such a cast).

A loss is any callable loss(logits, targets) -> scalar tensor. One that needs the optimizer step (a schedule inside
the loss) defines `bind_step(step_source)`; the builder binds it once the training loop exists. Papers bring their
own losses in their folder (reproductions/grokking/losses.py: StableMax; reproductions/gradient_starvation/
losses.py: Spectral Decoupling).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from optrepro.errors import UnknownChoiceError

LOSS_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32, "float64": torch.float64}

LossFn = Callable[[Tensor, Tensor], Tensor]


class CrossEntropy:
    """Softmax cross-entropy with label smoothing: the product's default loss."""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        self.label_smoothing = float(label_smoothing)

    def __call__(self, logits: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(logits, targets, label_smoothing=self.label_smoothing)


class CastLogits:
    """`loss` on logits cast to `dtype` (the precision of the loss computation alone)."""

    def __init__(self, loss: LossFn, dtype: str) -> None:
        if dtype not in LOSS_DTYPES:
            raise UnknownChoiceError("train.loss_dtype", dtype, tuple(LOSS_DTYPES))
        self.loss, self.dtype = loss, LOSS_DTYPES[dtype]
        if hasattr(loss, "bind_step"):
            self.bind_step = loss.bind_step

    def __call__(self, logits: Tensor, targets: Tensor) -> Tensor:
        return self.loss(logits.to(self.dtype), targets)
