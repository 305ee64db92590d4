"""SAMformer (Ilbert et al., ICML 2024, arXiv 2402.10198): RevIN, one channel-wise attention layer with a residual
connection, and a linear head from the look-back window to the horizon (official samformer_pytorch: W_Q, W_K of
L x d_m, W_V of L x L, no output projection; re-implemented, not copied). `model=samformer`. With `value_dim: k`
the value path is the official TensorFlow model's Keras MultiHeadAttention instead: values projected to k dims,
then an output projection back to L.

Inputs are B x D x L (D channels, look-back L), outputs B x D x H. Attention runs over the D channels, so there is
no positional encoding. `attention: none` drops the attention branch (the linear model of the paper's toy
experiment, Y = X W_O), `revin: false` the normalisation (the official toy runs use none).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any

import torch
from omegaconf import DictConfig
from pydantic import Field
from torch import Tensor, nn

from optrepro.config_schema import PosInt, Section, Text, check_node, choice

ATTENTION_KINDS = ("channel", "none")


class SAMformerKnobs(Section):
    """The `model` node of samformer (configs/model/samformer.yaml), typed once; the defaults are the constructor's."""

    target: Text | None = Field(None, alias="_target_")
    name: Text
    d_model: PosInt = 16
    revin: bool = True
    attention: Annotated[str, choice("reproductions.samformer.model:ATTENTION_KINDS")] = "channel"  # none: linear
    value_dim: PosInt | None = None  # null: W_V of L x L


def check_knobs(node: DictConfig | Mapping[str, Any]) -> SAMformerKnobs:
    return check_node(node, "model", SAMformerKnobs)


class RevIN(nn.Module):
    """Reversible instance normalisation (Kim et al., ICLR 2022): each window and channel is standardised over time
    and given a learned affine map; `denormalize` undoes both exactly, so the head predicts in normalised units."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def normalize(self, x: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """B x D x L -> (normalised x, (mean, std) per window and channel) for `denormalize`."""
        mean = x.mean(dim=-1, keepdim=True)
        std = torch.sqrt(x.var(dim=-1, keepdim=True, unbiased=False) + self.eps)
        return (x - mean) / std * self.weight[:, None] + self.bias[:, None], (mean, std)

    def denormalize(self, y: Tensor, stats: tuple[Tensor, Tensor]) -> Tensor:
        """The inverse of `normalize`'s map, applied to B x D x H outputs."""
        mean, std = stats
        return (y - self.bias[:, None]) / self.weight[:, None] * std + mean


def attention_entropy(attention: Tensor) -> Tensor:
    """Shannon entropy (nats) of each row of row-stochastic matrices, ... x D x D -> ... x D; log D when uniform."""
    return -(attention * torch.log(attention.clamp_min(torch.finfo(attention.dtype).tiny))).sum(dim=-1)


class SAMformer(nn.Module):
    """The model of the module docstring; `num_classes` is the horizon H (the builder's output count)."""

    validate = staticmethod(check_knobs)  # the config check calls it with the model node, before any work

    def __init__(
        self,
        name: str,
        num_classes: int,
        input_shape: tuple[int, ...],
        d_model: int = 16,
        revin: bool = True,
        attention: str = "channel",
        value_dim: int | None = None,
    ) -> None:
        super().__init__()
        knobs = dict(name=name, d_model=d_model, revin=revin, attention=attention, value_dim=value_dim)
        check_knobs(knobs)  # as the config check does
        channels, length = input_shape
        self.revin = RevIN(channels) if revin else None
        self.d_model = d_model
        if attention == "channel":
            self.query, self.key = nn.Linear(length, d_model), nn.Linear(length, d_model)
            self.value = (
                nn.Linear(length, length)
                if value_dim is None
                else nn.Sequential(nn.Linear(length, value_dim), nn.Linear(value_dim, length))
            )
        self.has_attention = attention == "channel"
        self.head = nn.Linear(length, num_classes)

    def attention(self, x: Tensor) -> Tensor:
        """The B x D x D channel attention softmax(Q K^T / sqrt(d_m)) of already normalised inputs."""
        scores = self.query(x) @ self.key(x).transpose(-1, -2) / math.sqrt(self.d_model)
        return torch.softmax(scores, dim=-1)

    def attention_of_inputs(self, x: Tensor) -> Tensor | None:
        """The attention the forward pass uses on raw inputs x (None without an attention branch)."""
        if not self.has_attention:
            return None
        return self.attention(self.revin.normalize(x)[0] if self.revin is not None else x)

    def forward(self, x: Tensor) -> Tensor:
        stats = None
        if self.revin is not None:
            x, stats = self.revin.normalize(x)
        if self.has_attention:
            x = x + self.attention(x) @ self.value(x)
        out = self.head(x)
        return self.revin.denormalize(out, stats) if stats is not None else out
