"""One EMC trial: train a fresh model on n samples and say whether it fits them (100% training accuracy).

The training procedure is the preset's model and optimizer (the product's step through a plain loop, no Lightning:
a search runs ~10 trials), batches of `batch_size` drawn from a seeded permutation per epoch (the short last batch
kept), or the whole set every step (full-batch GD). The budget is `max_steps` optimizer steps, the same for every n,
at the optimizer's lr (`constant`) or with the lr decayed to 0 by a half cosine over the budget (`cosine`);
the fit is checked every `check_every` steps on all n samples in eval mode, and training stops at the first check
that finds 100%. A non-finite loss ends the trial as not fitted.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from optrepro.optim.backend import LocalBackend, StepStrategy


@dataclass(frozen=True)
class Trial:
    n: int
    fitted: bool
    train_acc: float
    train_loss: float
    steps: int


@torch.no_grad()
def full_fit(model: nn.Module, x: Tensor, y: Tensor, chunk: int = 4096) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) on all of (x, y), in eval mode."""
    was_training = model.training
    model.eval()
    correct, loss = 0, 0.0
    for start in range(0, len(y), chunk):
        logits = model(x[start : start + chunk]).float()
        correct += int((logits.argmax(-1) == y[start : start + chunk]).sum())
        loss += float(F.cross_entropy(logits, y[start : start + chunk], reduction="sum"))
    model.train(was_training)
    return correct / len(y), loss / len(y)


def batches(n: int, batch_size: int | None, generator: torch.Generator):
    """Index batches forever: the whole set (batch_size None) or a fresh permutation per epoch."""
    while True:
        if batch_size is None or batch_size >= n:
            yield torch.arange(n)
            continue
        yield from torch.randperm(n, generator=generator).split(batch_size)


def run_trial(
    build: Callable[[int], tuple[nn.Module, Optimizer, StepStrategy]],
    x: Tensor,
    y: Tensor,
    *,
    batch_size: int | None,
    max_steps: int,
    check_every: int,
    seed: int,
    schedule: str = "constant",
) -> Trial:
    n = len(y)
    model, optimizer, strategy = build(n)
    cosine = schedule == "cosine"
    decay = LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / max_steps)) if cosine else 1.0)
    backend = LocalBackend(model)
    generator = torch.Generator().manual_seed(seed)
    acc, loss = 0.0, math.inf
    for step, idx in enumerate(batches(n, batch_size, generator), start=1):
        out = strategy.training_step(backend, (x[idx], y[idx], idx), epoch=0)
        decay.step()
        if not math.isfinite(float(out.loss)):
            return Trial(n, False, *full_fit(model, x, y), step)
        if step % check_every == 0 or step == max_steps:
            acc, loss = full_fit(model, x, y)
            if acc == 1.0 or step == max_steps:
                return Trial(n, acc == 1.0, acc, loss, step)
    raise AssertionError("unreachable: the batch stream is endless")
