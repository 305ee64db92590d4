"""Checks and derived values of a composed config, and the hashes that identify a run and a setting."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from omegaconf import DictConfig, OmegaConf

from optrepro.errors import ConfigError, InvalidConfigError

# Keys that change where or how a run is shown, never what it computes.
# `trainer` takes only observing options (builders.USER_TRAINER_ARGS); the callbacks named here only observe.
NON_SEMANTIC_KEYS = (
    "paths",
    "logger",
    "cluster",
    "hydra",
    "skip_finished",
    "train.checkpoint",
    "train.ckpt_path",
    "trainer",
    "callbacks.lr_monitor",
    "callbacks.device_stats",
    "callbacks.model_summary",
    "callbacks.progress_bar",
)


def semantic_config(cfg: DictConfig | dict) -> dict[str, Any]:
    """The resolved config without the keys that do not change the result (what the record's hashes cover).

    A plain dict (a record's stored config, already resolved) is handled without OmegaConf."""
    if isinstance(cfg, dict):
        data = json.loads(json.dumps(cfg, default=str))  # a deep copy with JSON's types, as the hash sees them
        for dotted in NON_SEMANTIC_KEYS:
            _drop_plain(data, dotted)
        return data
    container = cfg.copy()
    OmegaConf.set_struct(container, False)
    for dotted in NON_SEMANTIC_KEYS:
        _drop(container, dotted)
    return OmegaConf.to_container(container, resolve=True)


def _drop_plain(data: dict[str, Any], dotted: str) -> None:
    *parents, key = dotted.split(".")
    node: Any = data
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict) and key in node:
        del node[key]


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
        raise InvalidConfigError(
            "train.batch_size",
            f"{global_batch} does not split evenly over {world} devices "
            f"(hardware.devices={cfg.hardware.devices} x hardware.num_nodes={cfg.hardware.num_nodes})",
            f"choose a batch size divisible by {world}, or change the device count",
        )
    per_device = global_batch // world
    accumulate = int(cfg.train.accumulate)
    if per_device % accumulate:
        raise InvalidConfigError(
            "train.accumulate",
            f"the per-device batch {per_device} does not split into {accumulate} micro-batches",
            f"choose train.accumulate dividing {per_device}",
        )
    return per_device


def check_epoch_batches(cfg: DictConfig, num_train: int) -> None:
    """Every batch an epoch will hand a device must split as the config asks (micro-batches, m-sharpness groups).

    Checked once the dataset size is known, before training: an m that does not divide the epoch's short last
    batch would otherwise stop the run at the end of its first epoch.
    """
    from optrepro.data.batches import per_device_batch_sizes

    m, accumulate = cfg.optimizer.get("m_sharpness"), int(cfg.train.accumulate)
    per_device, drop_last = per_device_batch_size(cfg), bool(cfg.train.drop_last)
    sizes = per_device_batch_sizes(num_train, per_device, world_size(cfg), drop_last)
    limit = cfg.limits.get("train_batches")
    if limit and int(limit) <= num_train // (per_device * world_size(cfg)):
        sizes = sizes[:1]  # a debug limit ends every epoch before its short last batch
    for size in sizes:
        last = (
            ""
            if size == per_device
            else (
                f" of the epoch's short last batch ({num_train} training samples leave "
                f"{num_train % (per_device * world_size(cfg))} "
                f"after full batches of {per_device * world_size(cfg)})"
            )
        )
        fix = "; set train.drop_last=true to drop it (as google-research/sam does)" if last else ""
        if size < accumulate:
            raise ConfigError(
                f"train.accumulate={accumulate}: a per-device batch of {size}{last} cannot split into "
                f"{accumulate} micro-batches{fix or '; choose a smaller train.accumulate'}"
            )
        micro_sizes = sorted({size // accumulate, -(-size // accumulate)})
        if m and any(micro % int(m) for micro in micro_sizes):
            raise ConfigError(
                f"optimizer.m_sharpness={m} must divide every per-device micro-batch, but the per-device batch "
                f"{size}{last} gives micro-batches of {'/'.join(map(str, micro_sizes))} "
                f"(train.accumulate={accumulate}){fix or f'; choose an m dividing {micro_sizes[0]}'}"
            )
