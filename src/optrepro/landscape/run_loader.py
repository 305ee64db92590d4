"""A finished run folder -> its record, its trained network (eval mode) and a fixed training subset."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from optrepro.data import load_splits
from optrepro.data.batches import InputTransform
from optrepro.data.splits import dataset_info
from optrepro.errors import OptreproError
from optrepro.landscape.subset import EvalSubset
from optrepro.records.record import RECORD_NAME, InvalidRecordError, read_record

CLASSIFICATION_TASK = "optrepro.train.ClassificationTask"  # the default `task._target_`

CHECKPOINT = Path("checkpoints") / "last.ckpt"
NET_PREFIX = "net."  # ClassifierModule keeps the network as `self.net`


class LandscapeInputError(OptreproError):
    """A run folder the landscape tool cannot measure; the message says why and what to do."""


@dataclass
class LoadedRun:
    run_dir: Path
    record: dict[str, Any]
    model: nn.Module
    subset: EvalSubset


def read_finished_record(run_dir: Path) -> dict[str, Any]:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise LandscapeInputError(f"{run_dir} is not a folder; pass a run folder (the one holding {RECORD_NAME})")
    try:
        record = read_record(run_dir)
    except InvalidRecordError as err:
        raise LandscapeInputError(f"{run_dir / RECORD_NAME} cannot be used: {err}") from err
    if record is None:
        raise LandscapeInputError(
            f"{run_dir} has no {RECORD_NAME}: it is not a run folder, or its run has not ended yet "
            "(a record is written when a run ends); wait for it or pass the run's own folder"
        )
    if record.get("status") != "finished":
        raise LandscapeInputError(
            f"the run in {run_dir} is {record.get('status')!r}, not finished; its weights are not a trained "
            "minimum. Relaunch it (it resumes from its checkpoint) and measure it when it has finished"
        )
    task = record.get("config", {}).get("task", "classification")  # a name before the task became a node
    if (task.get("_target_") if isinstance(task, dict) else task) not in ("classification", CLASSIFICATION_TASK):
        raise LandscapeInputError(
            f"the run in {run_dir} is a {task!r} run; only classification networks have a loss landscape to measure"
        )
    return record


def load_run(
    run_dir: Path, *, samples: int, batch_size: int = 500, data_dir: Path | None = None, device: str = "cpu"
) -> LoadedRun:
    """The run's network with its last checkpoint's weights, and its first `samples` training samples."""
    run_dir = Path(run_dir)
    record = read_finished_record(run_dir)
    checkpoint = run_dir / CHECKPOINT
    if not checkpoint.exists():
        raise LandscapeInputError(
            f"{checkpoint} does not exist: the run was trained with train.checkpoint=false (or its checkpoints "
            "were deleted). Rerun it with train.checkpoint=true to measure its landscape"
        )
    cfg = OmegaConf.create(record["config"])
    splits = load_splits(cfg.dataset, Path(data_dir or cfg.paths.data_dir), seed=int(cfg.seed))
    num_classes, input_shape = dataset_info(splits)
    model = instantiate(cfg.model, num_classes=num_classes, input_shape=input_shape)
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    model.load_state_dict({k[len(NET_PREFIX) :]: v for k, v in state.items() if k.startswith(NET_PREFIX)})
    model.to(device).eval()
    count = min(int(samples), splits.num_train)
    to_input = InputTransform(splits.mean, splits.std, splits.is_image, torch.device(device))
    subset = EvalSubset(
        to_input(splits.x_train[:count].to(device)), splits.y_train[:count].to(device).long(), batch_size
    )
    return LoadedRun(run_dir, record, model, subset)
