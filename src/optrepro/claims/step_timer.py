"""One arm's training step, built from its composed config, for side-by-side timing (claims.timing).

The arm's own model and step strategy (optrepro.builders, optrepro.optim.factory) on a LocalBackend, stepping on
the first training batch of the arm's data, at the setting's last epoch so that terms switched on mid-run (SAF's
and MESA's trajectory losses from E_start) are on, as in the training records' last-epoch timing.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from hydra import compose, initialize_config_dir

from optrepro import builders
from optrepro.optim.backend import LocalBackend
from optrepro.optim.factory import build_optimizer
from optrepro.paths import CONFIG_DIR


def arm_stepper(overrides: list[str]) -> Callable[[int], None]:
    """`step(count)`: `count` training steps of the arm whose `python run.py` overrides these are."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = compose(config_name="train", overrides=list(overrides))
    datamodule, data = builders.build_data(cfg)
    datamodule.place_on(torch.device("cpu"))
    batch = next(iter(datamodule.train_dataloader()))
    torch.manual_seed(int(cfg.seed))
    net = builders.build_net(cfg, data).train()
    _, strategy = build_optimizer(
        cfg.optimizer,
        net,
        num_train_samples=data.num_train,
        num_classes=data.num_classes,
        accumulate=int(cfg.train.accumulate),
        grad_clip=cfg.train.grad_clip,
    )
    backend, epoch = LocalBackend(net), builders.epochs_to_run(cfg) - 1

    def step(count: int) -> None:
        for _ in range(count):
            strategy.training_step(backend, batch, epoch=epoch)

    return step
