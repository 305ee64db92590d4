"""`task=width_scaling`: the product's classification task, with the model's parametrisation knobs and the sharpness
callback's checked before any work (config_schema calls a task's `validate(cfg)`), so a bad value stops with one
line and no run folder. Training is the default task's."""

from __future__ import annotations

from omegaconf import DictConfig

from optrepro.train import ClassificationTask
from reproductions.super_consistency.parametrisation import check_model
from reproductions.super_consistency.sharpness import SharpnessCallback


class WidthScalingTask(ClassificationTask):
    @staticmethod
    def validate(cfg: DictConfig) -> None:
        check_model(cfg.model)
        sharpness = (cfg.get("callbacks") or {}).get("sharpness")
        if sharpness is not None:
            SharpnessCallback(**{k: v for k, v in sharpness.items() if k != "_target_"})
