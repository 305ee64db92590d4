"""Batch augmentation with tensor ops on the training device: random crop with padding, flip, cutout.

Random draws are made per sample on a CPU generator (see `draw_augment_params`), then applied on the
device, so a sample's augmentation depends only on (seed, epoch, position), not on the device or rank count.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from optrepro.errors import UnknownChoiceError

PAD_MODES = ("zeros", "reflect")


@dataclass(frozen=True)
class AugmentConfig:
    """`dataset.augment`. pad_mode "zeros" is torchvision's RandomCrop(padding=p);
    google-research/sam pads with "reflect".

    `cutout` is the side of the square (DeVries & Taylor 2017: 16 on CIFAR-10, 8 on CIFAR-100), 0 disables it.
    """

    crop_padding: int = 0
    flip: bool = False
    cutout: int = 0
    pad_mode: str = "zeros"

    def __post_init__(self) -> None:
        if self.pad_mode not in PAD_MODES:
            raise UnknownChoiceError("dataset.augment.pad_mode", self.pad_mode, PAD_MODES)
        if self.crop_padding < 0 or self.cutout < 0:
            raise ValueError(
                f"dataset.augment sizes must be >= 0, got crop_padding={self.crop_padding}, cutout={self.cutout}"
            )

    @classmethod
    def from_cfg(cls, augment_cfg) -> AugmentConfig:
        """From a dict / DictConfig / None; a misspelled key is an error rather than a silently ignored option."""
        if augment_cfg is None:
            return cls()
        if isinstance(augment_cfg, AugmentConfig):
            return augment_cfg
        known = {f.name for f in fields(cls)}
        for key in augment_cfg:
            if key not in known:
                raise UnknownChoiceError("dataset.augment key", key, sorted(known))
        return cls(**{key: augment_cfg[key] for key in augment_cfg})

    @property
    def enabled(self) -> bool:
        return self.crop_padding > 0 or self.flip or self.cutout > 0


class AugmentParams(NamedTuple):
    """Per-sample random draws: crop offsets in [0, 2 * padding], flip flags, cutout centres."""

    crop_offsets: Tensor
    flips: Tensor
    cutout_centers: Tensor

    def select(self, index: Tensor) -> AugmentParams:
        return AugmentParams(*(t[index] for t in self))

    def to(self, device: torch.device) -> AugmentParams:
        return AugmentParams(*(t.to(device, non_blocking=True) for t in self))


def draw_augment_params(
    config: AugmentConfig, count: int, height: int, width: int, generator: torch.Generator
) -> AugmentParams:
    """Always draws all three, so enabling one augmentation does not change the others' random stream."""
    return AugmentParams(
        crop_offsets=torch.randint(2 * config.crop_padding + 1, (count, 2), generator=generator),
        flips=torch.rand(count, generator=generator) < 0.5,
        cutout_centers=torch.stack(
            [torch.randint(height, (count,), generator=generator), torch.randint(width, (count,), generator=generator)],
            1,
        ),
    )


def augment_batch(images: Tensor, params: AugmentParams, config: AugmentConfig) -> Tensor:
    """Crop and flip (on raw pixels, so zero padding is black as in torchvision); cutout is applied later."""
    if config.crop_padding:
        images = random_crop(images, params.crop_offsets, config.crop_padding, config.pad_mode)
    if config.flip:
        images = horizontal_flip(images, params.flips)
    return images


def random_crop(images: Tensor, offsets: Tensor, padding: int, pad_mode: str = "zeros") -> Tensor:
    """Pad by `padding` and cut the original size at `offsets` (row, col) of the padded image.

    Offset (padding, padding) is the identity; output pixel (i, j) is input (i + dy - padding, j + dx - padding).
    `unfold` views every window of the padded batch without copying; one indexing op picks each sample's window.
    "reflect" mirrors without repeating the edge (numpy/TF 'reflect'); any dtype works, uint8 included.
    """
    n, _, height, width = images.shape
    padded = F.pad(images, (padding,) * 4, mode="constant" if pad_mode == "zeros" else pad_mode)
    windows = padded.unfold(2, height, 1).unfold(3, width, 1)  # (n, C, 2p + 1, 2p + 1, H, W)
    rows, cols = offsets[:, 0].to(images.device), offsets[:, 1].to(images.device)
    return windows[torch.arange(n, device=images.device), :, rows, cols].contiguous()


def horizontal_flip(images: Tensor, flips: Tensor) -> Tensor:
    return torch.where(flips[:, None, None, None], images.flip(-1), images)


def cutout(images: Tensor, centers: Tensor, size: int) -> Tensor:
    """Zero a size x size square starting at centre - size // 2 (clipped at the borders), per DeVries & Taylor.

    Applied after normalization, so the square holds the dataset mean, as in their code.
    """
    if size == 0:
        return images
    _, _, height, width = images.shape
    top, left = centers[:, :1] - size // 2, centers[:, 1:] - size // 2
    rows = torch.arange(height, device=images.device)
    cols = torch.arange(width, device=images.device)
    in_rows = (rows >= top) & (rows < top + size)  # (n, H)
    in_cols = (cols >= left) & (cols < left + size)  # (n, W)
    return images.masked_fill((in_rows[:, :, None] & in_cols[:, None, :])[:, None], 0)
