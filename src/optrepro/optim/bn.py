"""Normalization-layer helpers for the SAM family.

Two jobs:

* BatchNorm running statistics must come from the clean pass only (as in
  google-research/sam, which returns the first pass's BN state). We snapshot and
  restore the buffers exactly. The popular "momentum = 0" trick still increments
  ``num_batches_tracked`` and, with ``momentum=None`` (cumulative average), does
  not freeze the statistics at all.
* SAM-ON perturbs only the affine parameters of normalization layers. The
  official code selects them by parameter *name* ("norm"/"bn"), which silently
  picks nothing for a model whose layers are named otherwise; we select by
  module *type*, which also covers timm's norm classes (they subclass these).
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

NormBufferSnapshot = list[tuple[_BatchNorm, dict[str, Tensor]]]

RUNNING_STAT_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")

NORM_LAYER_TYPES: tuple[type[nn.Module], ...] = (
    _BatchNorm,  # BatchNorm1d/2d/3d, SyncBatchNorm, Lazy variants
    _InstanceNorm,  # InstanceNorm1d/2d/3d (affine only when affine=True)
    nn.GroupNorm,
    nn.LayerNorm,
) + ((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ())


def snapshot_norm_buffers(model: nn.Module) -> NormBufferSnapshot:
    """Copy the running statistics of every BatchNorm layer in ``model``."""
    snapshot: NormBufferSnapshot = []
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            saved = {
                name: buffer.detach().clone()
                for name in RUNNING_STAT_BUFFERS
                if (buffer := getattr(module, name, None)) is not None
            }
            snapshot.append((module, saved))
    return snapshot


def restore_norm_buffers(model: nn.Module, snapshot: NormBufferSnapshot) -> None:
    """Write the snapshot back in place, bit for bit (``model`` must be the snapshotted one)."""
    snapshot_modules = {id(module) for module, _ in snapshot}
    current_modules = {id(m) for m in model.modules() if isinstance(m, _BatchNorm)}
    if snapshot_modules != current_modules:
        raise ValueError("BatchNorm snapshot does not belong to this model (its BatchNorm layers differ)")
    for module, saved in snapshot:
        for name, value in saved.items():
            getattr(module, name).copy_(value)


def norm_layer_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Affine parameters (weight, bias) of the normalization layers of ``model``, by module type."""
    selected: dict[int, nn.Parameter] = {}
    for module in model.modules():
        if isinstance(module, NORM_LAYER_TYPES):
            for param in module.parameters(recurse=False):
                selected.setdefault(id(param), param)
    return list(selected.values())
