"""ClassifierModule: a LightningModule whose training step is delegated to a StepStrategy.

Manual optimization keeps every optimizer (SGD, SAM's two passes, SAF's trajectory loss) on one
code path, so methods differ only in their strategy. Metrics are summed on the device and reduced once
per epoch: no host-device synchronisation inside the step.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from optrepro.lit.backend import LightningBackend
from optrepro.lit.last_row import LastRowCallback
from optrepro.optim.backend import StepStrategy

log = logging.getLogger("optrepro")
COMPILE_PREFIX = "_orig_mod."  # what torch.compile(module) puts before every state_dict key

OptimizerBuilder = Callable[[nn.Module], tuple[torch.optim.Optimizer, StepStrategy]]
SchedulerBuilder = Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler]


class ClassifierModule(pl.LightningModule):
    def __init__(
        self,
        net: nn.Module,
        build_optimizer: OptimizerBuilder,
        build_scheduler: SchedulerBuilder,
        *,
        label_smoothing: float = 0.0,
        channels_last: bool = False,
        loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.net = net
        self._build_optimizer = build_optimizer
        self._build_scheduler = build_scheduler
        self._channels_last = channels_last
        self.backend = LightningBackend(self, label_smoothing=label_smoothing, loss_fn=loss_fn)
        self.strategy: StepStrategy | None = None
        self._restored_strategy_state: dict | None = None
        self.history: list[dict[str, float]] = []
        self.diverged = False
        self.train_time_s = 0.0
        self.train_cpu_time_s = 0.0  # this process's CPU time: on a shared CPU machine it ignores other jobs
        self._train_sums = torch.zeros(3)  # loss * n, correct, n
        self._eval_sums = torch.zeros(3)
        self._last_eval: dict[str, float] = {}
        self.eval_split = "test"  # or "val" when the data holds out a validation split (data.validation)
        self._epoch_clock: tuple[float, float] | None = None  # (wall, process CPU) when the epoch started
        self.resumed_after_epoch: int | None = None  # the last epoch the checkpoint this attempt resumed from holds

    def forward(self, x: Tensor) -> Tensor:
        if self._channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer, self.strategy = self._build_optimizer(self.net)
        if self._restored_strategy_state is not None:
            self.strategy.load_state_dict(self._restored_strategy_state)
        scheduler = self._build_scheduler(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ---- training -------------------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        self._train_sums = torch.zeros(3, device=self.device)
        self._last_eval = {}
        self._synchronize()
        self._epoch_clock = (time.perf_counter(), time.process_time())

    def training_step(self, batch: tuple[Tensor, Tensor, Tensor], batch_idx: int) -> None:
        output = self.strategy.training_step(self.backend, batch, epoch=self.current_epoch)
        self.lr_schedulers().step()
        targets = batch[1]
        n = targets.numel()
        correct = (output.logits.argmax(dim=-1) == targets).sum()
        self._train_sums += torch.stack(
            [output.loss.float() * n, correct.float(), torch.tensor(float(n), device=self.device)]
        )

    def progress_bar_values(self) -> dict[str, float]:
        """The epoch's running train loss and accuracy, and the last test error, for a terminal progress bar
        (reads the device sums: one synchronisation per bar refresh, only when a bar is shown)."""
        loss_sum, correct, count = self._train_sums.tolist()
        values = {"loss": loss_sum / count, "acc": correct / count} if count else {}
        last_test = self._last_eval or (self.history[-1] if self.history else {})
        if f"{self.eval_split}/error" in last_test:
            values[f"{self.eval_split}_err"] = last_test[f"{self.eval_split}/error"]
        return values

    def _stop_epoch_clock(self) -> None:
        """Training time excludes evaluation: the clock stops when validation starts or the epoch ends."""
        if self._epoch_clock is not None:
            self._synchronize()
            wall, cpu = self._epoch_clock
            self.train_time_s += time.perf_counter() - wall
            self.train_cpu_time_s += time.process_time() - cpu
            self._epoch_clock = None

    def on_train_epoch_end(self) -> None:
        """The epoch's history row, completed by every LastRowCallback, before the epoch checkpoint is written
        (Lightning calls checkpoint callbacks after this hook): a resumed run restores whole rows."""
        self._stop_epoch_clock()
        loss_sum, correct, count = self.trainer.strategy.reduce(self._train_sums, reduce_op="sum").tolist()
        if not count:
            return  # no training batch ran (an epoch end replayed on resume): not an epoch of its own
        row = {
            "epoch": self.current_epoch,
            "step": self.global_step,
            "train/loss": loss_sum / max(count, 1),
            "train/acc": correct / max(count, 1),
            "lr": self.lr_schedulers().get_last_lr()[0],
            "time/train_s": self.train_time_s,
            "time/train_cpu_s": self.train_cpu_time_s,
            **self._last_eval,
        }
        self.history.append(row)
        self.log_dict({k: v for k, v in row.items() if k not in ("epoch", "step")}, rank_zero_only=True)
        if not math.isfinite(row["train/loss"]):
            self.diverged = True
            self.trainer.should_stop = True
        for callback in self.trainer.callbacks:
            if isinstance(callback, LastRowCallback):
                callback.complete_last_row(self.trainer, self)

    def add_to_last_history_row(self, metrics: dict[str, float]) -> None:
        """Values a callback measured after the epoch's row was written (weight bound, input margin): into the
        row, so they reach the record, and to the loggers at the row's step."""
        row = self.history[-1]
        row.update(metrics)
        if self.trainer.is_global_zero:
            for logger in self.trainer.loggers:
                logger.log_metrics(metrics, step=int(row["step"]))

    # ---- evaluation on the test split (or the validation split held out of training) ----------------------------
    def on_validation_epoch_start(self) -> None:
        self._stop_epoch_clock()
        self._eval_sums = torch.zeros(3, device=self.device)

    def validation_step(self, batch: tuple[Tensor, Tensor, Tensor], batch_idx: int) -> None:
        inputs, targets, _ = batch
        logits = self(inputs)
        loss_sum = F.cross_entropy(logits.float(), targets, reduction="sum")
        correct = (logits.argmax(dim=-1) == targets).sum()
        self._eval_sums += torch.stack(
            [loss_sum, correct.float(), torch.tensor(float(targets.numel()), device=self.device)]
        )

    def on_validation_epoch_end(self) -> None:
        loss_sum, correct, count = self.trainer.strategy.reduce(self._eval_sums, reduce_op="sum").tolist()
        acc = correct / max(count, 1)
        split = self.eval_split
        self._last_eval = {
            f"{split}/loss": loss_sum / max(count, 1),
            f"{split}/acc": acc,
            f"{split}/error": 100.0 * (1.0 - acc),
        }
        if self.trainer.state.fn == "validate" and self.history:
            self.history[-1].update(self._last_eval)  # a final evaluation after fit completes the last row
        self.log_dict(self._last_eval, rank_zero_only=True)

    # ---- checkpoints ----------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["optrepro"] = {
            "strategy": self.strategy.state_dict() if self.strategy else {},
            "history": self.history,
            "train_time_s": self.train_time_s,
            "train_cpu_time_s": self.train_cpu_time_s,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["state_dict"] = {  # weights saved from a torch.compile(...) wrapper load into the plain model
            key.replace(COMPILE_PREFIX, ""): value for key, value in checkpoint.get("state_dict", {}).items()
        }
        state = checkpoint.get("optrepro", {})
        self._restored_strategy_state = state.get("strategy")
        self.history = list(state.get("history", []))
        self.resumed_after_epoch = int(self.history[-1]["epoch"]) if self.history else None
        log.info(
            "resuming from a checkpoint that holds epochs 0..%s: training continues at epoch %s",
            self.resumed_after_epoch,
            None if self.resumed_after_epoch is None else self.resumed_after_epoch + 1,
        )
        self.train_time_s = float(state.get("train_time_s", 0.0))
        self.train_cpu_time_s = float(state.get("train_cpu_time_s", 0.0))

    def _synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
