"""The forecasting task: MSE training loss, test MSE / MAE over every forecast entry, and the channel attention's
entropy on the test windows (the paper's entropy-collapse diagnosis). `task=forecasting`, `loss=mse`.

* ``MeanSquaredError``: the mean over batch, channels and horizon of the squared error (official nn.MSELoss).
* ``ForecastModule``: the product's ClassifierModule with regression metrics: ``test/mse`` (= ``test/loss``),
  ``test/mae`` and ``test/attention_entropy`` (mean over test windows and attention rows, nats; log D is uniform;
  NaN without attention). There is no accuracy: ``train/acc`` is left out of the history rows.
* ``ForecastTask``: the product's ClassificationTask with that module; its ``validate`` checks the model's and the
  dataset's knobs before any run folder or data load (one line, exit 2).
"""

from __future__ import annotations

import math
from typing import Annotated

import torch
from omegaconf import DictConfig
from torch import Tensor

from optrepro import builders
from optrepro.config_schema import NonNegFloat, OpenSection, PosInt, check_section, choice
from optrepro.errors import ConfigError, InvalidConfigError
from optrepro.lit.module import ClassifierModule
from optrepro.train import ClassificationTask
from reproductions.samformer.model import SAMformer, attention_entropy

ENTROPY_KEY = "test/attention_entropy"


class MeanSquaredError:
    """Mean squared error over every forecast entry; label smoothing must be 0."""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        if label_smoothing:
            raise ConfigError(f"train.label_smoothing={label_smoothing}: a forecast has no labels to smooth; set 0")

    def __call__(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return (outputs.float() - targets.float()).pow(2).mean()


class ForecastModule(ClassifierModule):
    """ClassifierModule with the forecast metrics of the module docstring."""

    progress_metrics = ("mse", "mae")  # what each epoch's log line shows after the test loss (no accuracy, no error)

    def progress_bar_values(self) -> dict[str, float]:
        """The terminal bar's running train loss, and the last test MSE (the classifier's accuracy is always 0 here)."""
        values = {key: value for key, value in super().progress_bar_values().items() if key == "loss"}
        last_test = self._last_eval or (self.history[-1] if self.history else {})
        if "test/mse" in last_test:
            values["test_mse"] = last_test["test/mse"]
        return values

    def training_step(self, batch: tuple[Tensor, Tensor, Tensor], batch_idx: int) -> None:
        output = self.strategy.training_step(self.backend, batch, epoch=self.current_epoch)
        self.lr_schedulers().step()
        n = float(len(batch[1]))
        self._train_sums += torch.stack(
            [output.loss.float() * n, torch.zeros((), device=self.device), torch.tensor(n, device=self.device)]
        )

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        if self.history:
            self.history[-1].pop("train/acc", None)

    def on_validation_epoch_start(self) -> None:
        self._stop_epoch_clock()
        self._eval_sums = torch.zeros(5, device=self.device)  # squared, absolute, entries, entropy, windows

    def validation_step(self, batch: tuple[Tensor, Tensor, Tensor], batch_idx: int) -> None:
        inputs, targets, _ = batch
        errors = self(inputs).float() - targets.float()
        attention = getattr(self.net, "attention_of_inputs", lambda x: None)(inputs)
        entropy = attention_entropy(attention.float()).mean(dim=-1).sum() if attention is not None else math.nan
        self._eval_sums += torch.stack(
            [
                errors.pow(2).sum(),
                errors.abs().sum(),
                torch.tensor(float(errors.numel()), device=self.device),
                torch.as_tensor(entropy, dtype=torch.float32, device=self.device),
                torch.tensor(float(len(inputs)), device=self.device),
            ]
        )

    def on_validation_epoch_end(self) -> None:
        squared, absolute, entries, entropy, count = self.trainer.strategy.reduce(
            self._eval_sums, reduce_op="sum"
        ).tolist()
        mse = squared / max(entries, 1)
        self._last_eval = {
            "test/loss": mse,
            "test/mse": mse,
            "test/mae": absolute / max(entries, 1),
            ENTROPY_KEY: entropy / max(count, 1),
        }
        if self.trainer.state.fn == "validate" and self.history:
            self.history[-1].update(self._last_eval)
        self.log_dict(self._last_eval, rank_zero_only=True)


class WindowKnobs(OpenSection):
    """The dataset keys of every forecasting dataset: look-back and horizon."""

    length: PosInt
    horizon: PosInt


class SeriesKnobs(WindowKnobs):
    """A CSV of series.py (configs/dataset/ltsf_csv.yaml)."""

    split: Annotated[str, choice("reproductions.samformer.series:SPLITS")]


class ToyKnobs(WindowKnobs):
    """The generated toy problem (configs/dataset/samformer_toy.yaml)."""

    channels: PosInt
    n_train: PosInt
    n_test: PosInt
    noise_std: NonNegFloat


def validate_model(cfg: DictConfig) -> None:
    """The task runs SAMformer (attention none: the linear model), whose node its class checks."""
    if cfg.model.get("_target_") != f"{SAMformer.__module__}.{SAMformer.__qualname__}":
        raise InvalidConfigError(
            "model",
            f"{cfg.model.get('name')!r}: the forecasting task maps B x D x L windows to B x D x H",
            "use model=samformer (model.attention=none for the linear model)",
        )


def validate_dataset(cfg: DictConfig) -> None:
    dataset = cfg.dataset
    if "split" in dataset:  # a CSV of series.py
        check_section(cfg, "dataset", SeriesKnobs)
        return
    check_section(cfg, "dataset", ToyKnobs)
    if dataset.get("path"):
        raise InvalidConfigError(
            "dataset.path", f"{dataset.name} generates its data, so the path would be ignored", "remove dataset.path"
        )


class ForecastTask(ClassificationTask):
    """The product's task with ForecastModule (its training loss comes from the `loss` node)."""

    @staticmethod
    def validate(cfg: DictConfig) -> None:
        validate_model(cfg)
        validate_dataset(cfg)

    def build_module(self, cfg, net, data) -> ForecastModule:
        return builders.build_module(cfg, net, data, module_class=ForecastModule)
