"""Block-wise b-bit quantization of a matrix, as 4-bit Shampoo stores its state (paper Section 3, App. C).

Each row is cut into blocks of ``block`` consecutive entries (for an eigenvector matrix: the rows of U^T, i.e. blocks
along one eigenvector); a block is divided by its max-abs (kept in fp32) and each entry is rounded to the nearest
value of a fixed 2^b-point map of [-1, 1]:
- ``linear2`` (paper eq. 3): R(j) = -(-1 + 2j/(2^b-1))^2 for j < 2^(b-1)-1, 0 at j = 2^(b-1)-1, (-1 + 2j/(2^b-1))^2
  above; at b = 4: {-1, -0.7511, ..., -0.0400, 0, 0.0044, 0.0400, ..., 1} [paper, App. C];
- ``dynamic_tree`` (4 bits only): the paper's 16 values, App. C [paper].
The stored bytes are b/8 per entry plus 4 per block (``stored_bytes``): about 32/(4 + 0.5) ~ 7x below fp32 at b = 4,
block 64 [paper, App. G].
"""

from __future__ import annotations

import torch
from torch import Tensor

MAPPINGS = ("linear2", "dynamic_tree")
DYNAMIC_TREE_4BIT = (
    -0.8875,
    -0.6625,
    -0.4375,
    -0.2125,
    -0.0775,
    -0.0325,
    -0.0055,
    0.0,
    0.0055,
    0.0325,
    0.0775,
    0.2125,
    0.4375,
    0.6625,
    0.8875,
    1.0,
)


def codebook(mapping: str, bits: int) -> Tensor:
    """The 2^bits values of the map, ascending, float64."""
    if mapping == "dynamic_tree":
        if bits != 4:
            raise ValueError(f"the dynamic-tree map is given for 4 bits only, got {bits}")
        return torch.tensor(DYNAMIC_TREE_4BIT, dtype=torch.float64)
    if mapping != "linear2":
        raise ValueError(f"unknown mapping {mapping!r}; valid: {', '.join(MAPPINGS)}")
    j = torch.arange(2**bits, dtype=torch.float64)
    base = -1.0 + 2.0 * j / (2**bits - 1)
    values = torch.where(j < 2 ** (bits - 1) - 1, -(base**2), base**2)
    values[2 ** (bits - 1) - 1] = 0.0
    return values


def _blocks(matrix: Tensor, block: int) -> tuple[Tensor, int]:
    """The matrix's rows cut into blocks of ``block`` entries (the last one zero-padded): (blocks, padding)."""
    rows, cols = matrix.shape
    padding = (-cols) % block
    padded = torch.nn.functional.pad(matrix, (0, padding))
    return padded.reshape(rows, -1, block), padding


def quantize(matrix: Tensor, mapping: str = "linear2", bits: int = 4, block: int = 64) -> tuple[Tensor, Tensor]:
    """(codes: uint8 indices into ``codebook``, scales: fp32 max-abs per block) of a 2-D tensor, row-wise blocks."""
    values = codebook(mapping, bits)
    blocks, _ = _blocks(matrix.double(), block)
    scales = blocks.abs().amax(dim=-1, keepdim=True).float()
    normalized = blocks / scales.double().clamp_min(torch.finfo(torch.float32).tiny)
    codes = (normalized.unsqueeze(-1) - values).abs().argmin(dim=-1).to(torch.uint8)
    return codes, scales


def dequantize(codes: Tensor, scales: Tensor, columns: int, mapping: str = "linear2", bits: int = 4) -> Tensor:
    """The float64 matrix the codes stand for (padding dropped)."""
    values = codebook(mapping, bits)[codes.long()] * scales.double()
    return values.reshape(codes.shape[0], -1)[:, :columns]


def round_trip(matrix: Tensor, mapping: str = "linear2", bits: int = 4, block: int = 64) -> Tensor:
    """dequantize(quantize(matrix)): what a b-bit state gives back."""
    codes, scales = quantize(matrix, mapping, bits, block)
    return dequantize(codes, scales, matrix.shape[1], mapping, bits)


def stored_bytes(rows: int, columns: int, bits: int = 4, block: int = 64) -> float:
    """Bytes of a quantized rows x columns state: bits/8 per entry and one fp32 scale per (padded) block."""
    blocks_per_row = -(-columns // block)
    return rows * columns * bits / 8 + rows * blocks_per_row * 4
