"""Checks and derived values of a composed config, and the hashes that identify a run and a setting."""
from __future__ import annotations

import hashlib
import json
from typing import Any

from omegaconf import DictConfig, OmegaConf

from optrepro.errors import ConfigError

# Keys that change where or how a run is shown, never what it computes.
# `trainer` takes only observing options (builders.USER_TRAINER_ARGS); the callbacks named here only observe.
NON_SEMANTIC_KEYS = ("paths", "logger", "cluster", "hydra", "skip_finished", "train.checkpoint", "train.ckpt_path",
                     "trainer", "callbacks.lr_monitor", "callbacks.device_stats", "callbacks.model_summary",
                     "callbacks.progress_bar")

# Knobs added after runs were recorded, with the value that reproduces what runs did before the knob existed.
# At that value a knob is left out of the hashes, so adding it keeps every earlier record matching its claim;
# set to anything else it is part of the setting. Add a key here whenever a new knob's default changes nothing.
NEUTRAL_DEFAULTS: dict[str, Any] = {
    "hardware.compile": False,
    "hardware.grad_compression": None,
    "task": "classification",
    "train.loss": "cross_entropy",
    "train.loss_dtype": None,
    "train.log_weight_bound": False,
    "train.sd_lambda": 0.0,
    "train.sd_anneal_step": None,
    "train.sd_anneal_lambda": None,
    "train.sd_anneal_scale": 1.0,
    "train.log_two_moons_margin": False,
    "optimizer.orthogonal_grad": False,
    "callbacks": {},
}


def semantic_config(cfg: DictConfig | dict) -> dict[str, Any]:
    """The resolved config without the keys that do not change the result."""
    container = OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg.copy()
    OmegaConf.set_struct(container, False)
    for dotted in NON_SEMANTIC_KEYS:
        _drop(container, dotted)
    for dotted, neutral in NEUTRAL_DEFAULTS.items():
        if OmegaConf.select(container, dotted, default=_MISSING) == neutral:
            _drop(container, dotted)
    return OmegaConf.to_container(container, resolve=True)


_MISSING = object()


def _drop(container: DictConfig, dotted: str) -> None:
    parent_path, _, key = dotted.rpartition(".")
    parent = OmegaConf.select(container, parent_path) if parent_path else container
    if isinstance(parent, DictConfig) and key in parent:
        del parent[key]


def _digest(data: dict[str, Any]) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def config_hash(cfg: DictConfig | dict) -> str:
    """Identifies one run: the semantic config including the seed."""
    return _digest(semantic_config(cfg))


def setting_hash(cfg: DictConfig | dict) -> str:
    """Identifies a setting: runs that differ only in `seed` share it."""
    data = semantic_config(cfg)
    data.pop("seed", None)
    return _digest(data)


def world_size(cfg: DictConfig) -> int:
    return int(cfg.hardware.devices) * int(cfg.hardware.num_nodes)


def per_device_batch_size(cfg: DictConfig) -> int:
    """The global batch split over devices; it must split evenly or the setting is not the one asked for."""
    global_batch, world = int(cfg.train.batch_size), world_size(cfg)
    if global_batch % world:
        raise ConfigError(
            f"train.batch_size={global_batch} does not split evenly over {world} devices "
            f"(hardware.devices={cfg.hardware.devices} x hardware.num_nodes={cfg.hardware.num_nodes}). "
            f"Choose a batch size divisible by {world}, or change the device count."
        )
    per_device = global_batch // world
    accumulate = int(cfg.train.accumulate)
    if per_device % accumulate:
        raise ConfigError(
            f"the per-device batch {per_device} does not split into train.accumulate={accumulate} micro-batches; "
            f"choose train.accumulate dividing {per_device}."
        )
    return per_device
