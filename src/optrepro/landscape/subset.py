"""The fixed evaluation subset every landscape figure of a run is measured on, and its mean loss/accuracy.

The paper plots the training loss; we use the first `samples` training samples (no augmentation), so two
runs of one setting are measured on the same points. The network is evaluated in eval mode: BatchNorm
uses its running statistics, which makes the loss a deterministic function of the weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class EvalSubset:
    """Model-ready inputs and labels, split into batches of at most `batch_size` for memory."""

    x: Tensor
    y: Tensor
    batch_size: int = 500

    def __post_init__(self) -> None:
        if len(self.x) == 0 or len(self.x) != len(self.y):
            raise ValueError(
                f"an evaluation subset needs as many labels as inputs (got {len(self.x)} and {len(self.y)}), "
                "and at least one"
            )

    def __len__(self) -> int:
        return len(self.y)

    def batches(self):
        """(x, y, weight) with weight = the batch's share of the subset, so weighted sums are subset means."""
        for start in range(0, len(self), self.batch_size):
            x, y = self.x[start : start + self.batch_size], self.y[start : start + self.batch_size]
            yield x, y, len(y) / len(self)


def subset_loss(model: nn.Module, subset: EvalSubset) -> Tensor:
    """Mean cross-entropy over the subset, differentiable in the model's parameters."""
    return sum(F.cross_entropy(model(x), y) * weight for x, y, weight in subset.batches())


@torch.no_grad()
def loss_and_accuracy(model: nn.Module, subset: EvalSubset) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over the subset."""
    loss, correct = 0.0, 0
    for x, y, weight in subset.batches():
        logits = model(x)
        loss += float(F.cross_entropy(logits, y)) * weight
        correct += int((logits.argmax(dim=1) == y).sum())
    return loss, correct / len(subset)
