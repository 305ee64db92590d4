"""DirectionalSharpnessCallback: directional sharpness of update directions, measured along any run.

Node: ``callbacks.directional_sharpness: {_target_: reproductions.directional_sharpness.callback.
DirectionalSharpnessCallback, every_n_steps: 20, batch_size: 32, start_step: 0, sgd_clip: 0.1, adam_clip: 0.5}``.
After every optimizer step the pseudo-optimizer states (directions.py) take the step's gradient; every
``every_n_steps`` steps (from ``start_step`` on) the directional sharpness v^T H v / ||v||^2 (sharpness.py) of each
pseudo direction and of the run's own update (weights after the step minus before) is measured at the new weights,
on one fixed batch of ``batch_size`` training samples (the first of the run), with the model in eval mode. The
gradient is read from ``.grad`` after the step: the run's optimizer must leave the loss's gradient there (torch's
SGD and Adam do; the clipped step, step.py, puts the unclipped gradient back).

History keys (each epoch's row): ``ds/<direction>``, the mean over the epoch's measurements, and
``ds/<a>_over_<b>`` = mean DS(a) / mean DS(b) over every measurement of the run so far (the last row: the run).
"""

from __future__ import annotations

import math

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from pydantic import Field

from optrepro.config_schema import Fraction, NonNegInt, PosInt, Section, Text, check_callback
from optrepro.lit.last_row import LastRowCallback
from reproductions.directional_sharpness.directions import PseudoDirections
from reproductions.directional_sharpness.sharpness import directional_sharpness

RATIOS = (("adam", "sgd"), ("sgd_clip", "sgd"), ("adam_clip", "adam"), ("adam_clip", "sgd"))


class DSKnobs(Section):
    """``callbacks.directional_sharpness``: the defaults are here, for any preset that adds the callback by its
    ``_target_`` alone; configs/setting/ds_lm.yaml gives every value of its runs."""

    target: Text | None = Field(None, alias="_target_")
    every_n_steps: PosInt = 20
    batch_size: PosInt = 32  # samples of the fixed measurement batch
    start_step: NonNegInt = 0
    sgd_clip: Fraction = 0.1  # the pseudo clipped SGD's and Adam's clipped share of coordinates (official code)
    adam_clip: Fraction = 0.5


class DirectionalSharpnessCallback(LastRowCallback):
    def __init__(self, **knobs) -> None:
        """Knobs: DSKnobs (its defaults for those not given); a config's are checked by validate before any work."""
        typed = DSKnobs.model_validate(knobs)
        self.every, self.batch_size, self.start = typed.every_n_steps, typed.batch_size, typed.start_step
        self.clips = {"sgd_clip": typed.sgd_clip, "adam_clip": typed.adam_clip}
        self.pseudo: PseudoDirections | None = None
        self._restored_pseudo: dict | None = None
        self.fixed: tuple[torch.Tensor, torch.Tensor] | None = None
        self.before: list[torch.Tensor] | None = None
        self.epoch_values: dict[str, list[float]] = {}
        self.run_values: dict[str, list[float]] = {}

    @staticmethod
    def validate(entry: DictConfig) -> None:
        """Called by the config check with the callback's node: its knobs stop a bad run before any work."""
        check_callback(entry, DSKnobs)

    def state_dict(self) -> dict:
        """In the checkpoint: a requeued run resumes the pseudo-optimizer states and the run's measurements."""
        return {
            "pseudo": self.pseudo.state_dict() if self.pseudo is not None else None,
            "fixed": self.fixed,
            "run_values": self.run_values,
        }

    def load_state_dict(self, state_dict: dict) -> None:
        self._restored_pseudo = state_dict.get("pseudo")
        self.fixed = state_dict.get("fixed")
        self.run_values = state_dict.get("run_values", {})

    def _params(self, pl_module: pl.LightningModule) -> list[torch.Tensor]:
        return [p for p in pl_module.parameters() if p.requires_grad]

    def _measure_now(self, trainer: pl.Trainer) -> bool:
        step = trainer.global_step + 1  # the step about to finish
        return step >= self.start and step % self.every == 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.fixed is None:
            inputs, targets = batch[0], batch[1]
            self.fixed = (inputs[: self.batch_size].detach().clone(), targets[: self.batch_size].detach().clone())
        self.before = [p.detach().clone() for p in self._params(pl_module)] if self._measure_now(trainer) else None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        params = self._params(pl_module)
        if self.pseudo is None:
            self.pseudo = PseudoDirections(params, **self.clips)
            if self._restored_pseudo is not None:
                self.pseudo.load_state_dict(self._restored_pseudo)
        self.pseudo.update([p.grad if p.grad is not None else torch.zeros_like(p) for p in params])
        if self.before is None:
            return
        directions = self.pseudo.directions()
        directions["update"] = [p.detach() - b for p, b in zip(params, self.before)]
        self.before = None
        inputs, targets = (t.to(pl_module.device) for t in self.fixed)  # a restored batch may be on the CPU
        was_training = pl_module.training
        pl_module.eval()
        for name, direction in directions.items():
            value = directional_sharpness(
                lambda: F.cross_entropy(pl_module(inputs).float(), targets), params, direction
            )
            self.epoch_values.setdefault(name, []).append(value)
            self.run_values.setdefault(name, []).append(value)
        pl_module.train(was_training)

    def complete_last_row(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.epoch_values or not pl_module.history:
            return
        values = {f"ds/{name}": finite_mean(v) for name, v in self.epoch_values.items()}
        for a, b in RATIOS:
            values[f"ds/{a}_over_{b}"] = finite_mean(self.run_values[a]) / finite_mean(self.run_values[b])
        values["ds/measurements"] = float(len(self.run_values["sgd"]))
        self.epoch_values = {}
        pl_module.add_to_last_history_row(values)


def finite_mean(values: list[float]) -> float:
    """Mean of the finite values (a zero direction gives nan); nan when there are none."""
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else float("nan")
