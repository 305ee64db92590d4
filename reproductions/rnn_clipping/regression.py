"""The addition problem's loss, metrics and task (Pascanu et al., ICML 2013, Section 4.1.2; official RNN.py,
``classifType='lastLinear'``):

* ``SquaredError`` (loss node ``loss: {_target_: reproductions.rnn_clipping.regression.SquaredError}``): the mean
  over the minibatch of the squared error summed over the outputs, the code's ``((t - y)**2).mean(axis=0).sum()``
  (one output here: torch's mse_loss).
* ``RegressionModule``: the product's ClassifierModule with the paper's regression metrics in place of argmax
  accuracy: a sequence counts as correct when its squared error is at most ``max_sq_error`` (paper p. 7-8: "a
  sequence is misclassified [when] the square error is larger than .04"; code: ``((t - y)**2).sum(axis=1) > .04``),
  so ``test/error`` is the paper's percentage of misclassified sequences (read by ``success.SolvedCallback``:
  solved under 1%), ``test/acc`` its complement and ``test/loss`` the test MSE; ``train/acc`` likewise.
* ``RegressionTask`` (``task: {_target_: reproductions.rnn_clipping.regression.RegressionTask, max_sq_error: 0.04}``,
  ``configs/task/addition_regression.yaml``): the product's ClassificationTask with that module.
"""

from __future__ import annotations

import torch
from torch import Tensor

from optrepro import builders
from optrepro.errors import ConfigError
from optrepro.lit.module import ClassifierModule
from optrepro.train import ClassificationTask

PAPER_MAX_SQ_ERROR = 0.04  # paper Section 4.1.2 and RNN.py


def squared_errors(outputs: Tensor, targets: Tensor) -> Tensor:
    """Per-sequence squared error summed over the outputs (N x K outputs and targets -> N)."""
    if outputs.shape != targets.shape:
        raise ValueError(
            f"regression outputs {tuple(outputs.shape)} and targets {tuple(targets.shape)} differ in shape"
        )
    return (outputs.float() - targets.float()).pow(2).flatten(1).sum(dim=1)


def within_tolerance(outputs: Tensor, targets: Tensor, max_sq_error: float = PAPER_MAX_SQ_ERROR) -> Tensor:
    """Boolean N: the sequences the paper does not count as misclassified (squared error <= max_sq_error)."""
    return squared_errors(outputs, targets) <= max_sq_error


class SquaredError:
    """Mean over the batch of the summed squared error (RNN.py's lastLinear cost); label smoothing must be 0."""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        if label_smoothing:
            raise ConfigError(
                f"train.label_smoothing={label_smoothing}: the squared-error loss has no labels to smooth"
            )

    def __call__(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return squared_errors(outputs, targets).mean()


class RegressionModule(ClassifierModule):
    """ClassifierModule whose accuracy is the share of sequences within the squared-error tolerance and whose
    test loss is the mean squared error (module docstring)."""

    def __init__(self, *args, max_sq_error: float = PAPER_MAX_SQ_ERROR, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.max_sq_error = float(max_sq_error)

    def training_step(self, batch: tuple[Tensor, Tensor, Tensor], batch_idx: int) -> None:
        output = self.strategy.training_step(self.backend, batch, epoch=self.current_epoch)
        self.lr_schedulers().step()
        targets = batch[1]
        n = len(targets)
        correct = within_tolerance(output.logits.detach(), targets, self.max_sq_error).sum()
        self._train_sums += torch.stack(
            [output.loss.float() * n, correct.float(), torch.tensor(float(n), device=self.device)]
        )

    def validation_step(self, batch: tuple[Tensor, Tensor, Tensor], batch_idx: int) -> None:
        inputs, targets, _ = batch
        errors = squared_errors(self(inputs), targets)
        correct = (errors <= self.max_sq_error).sum()
        self._eval_sums += torch.stack(
            [errors.sum(), correct.float(), torch.tensor(float(len(targets)), device=self.device)]
        )


class RegressionTask(ClassificationTask):
    """The product's task with RegressionModule (its training loss still comes from the `loss` node)."""

    def __init__(self, max_sq_error: float = PAPER_MAX_SQ_ERROR) -> None:
        if not max_sq_error > 0:
            raise ConfigError(f"task.max_sq_error={max_sq_error}: the tolerance on the squared error must be > 0")
        self.max_sq_error = float(max_sq_error)

    def build_module(self, cfg, net, data) -> RegressionModule:
        return builders.build_module(cfg, net, data, module_class=RegressionModule, max_sq_error=self.max_sq_error)
