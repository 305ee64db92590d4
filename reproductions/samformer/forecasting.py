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

import torch
from omegaconf import DictConfig
from torch import Tensor

from optrepro import builders
from optrepro.errors import ConfigError, InvalidConfigError
from optrepro.lit.module import ClassifierModule
from optrepro.train import ClassificationTask
from reproductions.samformer.model import ATTENTION_KINDS, attention_entropy
from reproductions.samformer.series import SPLITS

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


def _positive_int(key: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidConfigError(key, f"{value!r} is not a positive integer", f"set {key} to an integer >= 1")


def validate_model(model: DictConfig) -> None:
    _positive_int("model.d_model", model.get("d_model"))
    if model.get("attention") not in ATTENTION_KINDS:
        raise InvalidConfigError(
            "model.attention",
            f"{model.get('attention')!r} is not one of {', '.join(ATTENTION_KINDS)}",
            "channel (SAMformer) or none (the linear model)",
        )
    if model.get("value_dim") is not None:
        _positive_int("model.value_dim", model.get("value_dim"))
    if not isinstance(model.get("revin"), bool):
        raise InvalidConfigError(
            "model.revin",
            f"{model.get('revin')!r} is not true or false",
            "true (the paper's real datasets) or false (its toy problem)",
        )


def validate_dataset(dataset: DictConfig) -> None:
    for key in ("length", "horizon"):
        _positive_int(f"dataset.{key}", dataset.get(key))
    if "split" in dataset:  # a CSV of series.py
        if dataset.split not in SPLITS:
            raise InvalidConfigError(
                "dataset.split",
                f"{dataset.split!r} is not one of {', '.join(SPLITS)}",
                "ett_hour (ETTh*), ett_minute (ETTm*) or ratio (70/10/20 %)",
            )
        return
    if dataset.get("path"):
        raise InvalidConfigError(
            "dataset.path", f"{dataset.name} generates its data, so the path would be ignored", "remove dataset.path"
        )
    for key in ("channels", "n_train", "n_test"):
        _positive_int(f"dataset.{key}", dataset.get(key))
    noise = dataset.get("noise_std")
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0 <= noise < math.inf:
        raise InvalidConfigError(
            "dataset.noise_std", f"{noise!r} is not a finite number >= 0", "set it to 1.0 (the paper's noise)"
        )


class ForecastTask(ClassificationTask):
    """The product's task with ForecastModule (its training loss comes from the `loss` node)."""

    @staticmethod
    def validate(cfg: DictConfig) -> None:
        validate_model(cfg.model)
        validate_dataset(cfg.dataset)

    def build_module(self, cfg, net, data) -> ForecastModule:
        return builders.build_module(cfg, net, data, module_class=ForecastModule)
