"""TinyTransformer (``model=tiny_transformer``): a small decoder-only transformer that predicts the next token.

Inputs are token ids stored as float vectors (N x T; the product's vector datasets are float); the model casts them
to integers. Learned token and position embeddings, pre-LayerNorm blocks of causal multi-head self-attention and
a GELU MLP, a final LayerNorm and a linear head read at the last position. Attention is written out (matmul and
softmax) so that double backward, which directional sharpness needs, works on every backend.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from omegaconf import DictConfig
from pydantic import Field
from torch import Tensor, nn

from optrepro.config_schema import PosInt, Section, Text, check_node
from optrepro.errors import InvalidConfigError


class TinyTransformerKnobs(Section):
    """The `model` node of tiny_transformer (configs/model/tiny_transformer.yaml), typed once; the defaults are
    the constructor's."""

    target: Text | None = Field(None, alias="_target_")
    name: Text
    width: PosInt = 64
    heads: PosInt = 4
    layers: PosInt = 2
    mlp_ratio: PosInt = 4


def check_knobs(node: DictConfig | Mapping[str, Any]) -> TinyTransformerKnobs:
    """The model node typed by TinyTransformerKnobs, then the rule that ties heads to width."""
    knobs = check_node(node, "model", TinyTransformerKnobs)
    if knobs.width % knobs.heads:
        raise InvalidConfigError(
            "model.heads",
            f"{knobs.heads} heads do not split width {knobs.width}",
            "choose heads dividing model.width, e.g. 4 for 64",
        )
    return knobs


class CausalSelfAttention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: Tensor) -> Tensor:
        n, t, width = x.shape
        q, k, v = self.qkv(x).view(n, t, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-2, -1) / math.sqrt(width // self.heads)
        mask = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
        attention = scores.masked_fill(mask, float("-inf")).softmax(dim=-1)
        return self.out((attention @ v).transpose(1, 2).reshape(n, t, width))


class Block(nn.Module):
    def __init__(self, width: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attention = CausalSelfAttention(width, heads)
        self.mlp = nn.Sequential(nn.Linear(width, mlp_ratio * width), nn.GELU(), nn.Linear(mlp_ratio * width, width))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyTransformer(nn.Module):
    @staticmethod
    def validate(node: DictConfig) -> None:
        """The config check calls this before any work; the input shape is checked when the data exist."""
        check_knobs(node)

    def __init__(
        self,
        name: str,
        num_classes: int,
        input_shape: Sequence[int],
        width: int = 64,
        heads: int = 4,
        layers: int = 2,
        mlp_ratio: int = 4,
    ) -> None:
        super().__init__()
        if len(input_shape) != 1:
            raise InvalidConfigError(
                "model",
                f"input shape {tuple(input_shape)} is not a token sequence",
                "use a sequence dataset such as dataset=markov_lm",
            )
        knobs = dict(name=name, width=width, heads=heads, layers=layers, mlp_ratio=mlp_ratio)
        check_knobs(knobs)  # a model built outside a run gets the same checks
        self.name = name  # every model node has a name (config check)
        self.vocab = num_classes  # next-token prediction: the classes are the vocabulary
        self.token = nn.Embedding(num_classes, width)
        self.position = nn.Embedding(int(input_shape[0]), width)
        self.blocks = nn.ModuleList(Block(width, heads, mlp_ratio) for _ in range(layers))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        tokens = x.round().long().clamp_(0, self.vocab - 1)
        h = self.token(tokens) + self.position(torch.arange(tokens.shape[1], device=x.device))
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h[:, -1]))
