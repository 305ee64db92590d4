"""The static M-FAC inverse: the empirical Fisher of m fixed gradients, inverted block by block (for pruning).

Given m gradients G (m x d) at one point, F = lambda I + (1/m) G^T G. The blocked form keeps only the diagonal
blocks of B consecutive coordinates (official ``prun.HInvFastBlock``, ``--blocksize 128`` [repo]), so
F^{-1} is block-diagonal and each block b is, by the Woodbury identity,

    F_b^{-1} = (I - G_b^T K_b^{-1} G_b) / lambda,    K_b = m lambda I_m + G_b G_b^T   (m x m),

the same matrix ``ihvp.SlidingWindowIHVP`` inverts for the dynamic algorithm. Its diagonal is
(1 - sum_i G_b[i] * (K_b^{-1} G_b)[i]) / lambda, read off without forming F_b. The official code reaches the same
matrix through the paper's rank-one recursion (O(B m^2) per block); here all blocks go through one batched
Cholesky factorisation of their m x m matrices K_b, in float64. ``blocksize=None`` is the full (unblocked)
inverse. The last block is padded with zero coordinates: F is then lambda I there and the real coordinates of
that block are unchanged.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


class BlockFisherInverse:
    """F^{-1} of ``grads`` (m x d) in blocks of ``blocksize`` consecutive coordinates: its diagonal and products."""

    def __init__(self, grads: Tensor, damp: float, blocksize: int | None = None) -> None:
        if grads.dim() != 2 or grads.shape[0] < 1 or grads.shape[1] < 1:
            raise ValueError(f"grads must be an m x d matrix with m, d >= 1, got shape {tuple(grads.shape)}")
        if not damp > 0.0:
            raise ValueError(f"the damping lambda must be > 0, got {damp}")
        m, d = grads.shape
        self.dim, self.damp = d, float(damp)
        self.blocksize = d if blocksize is None else min(int(blocksize), d)
        blocks = math.ceil(d / self.blocksize)
        padded = torch.zeros(m, blocks * self.blocksize, dtype=torch.float64, device=grads.device)
        padded[:, :d] = grads.to(torch.float64)
        self.grads = padded.reshape(m, blocks, self.blocksize).transpose(0, 1)  # (blocks, m, B)
        eye = torch.eye(m, dtype=torch.float64, device=grads.device)
        self.factor = torch.linalg.cholesky(self.grads @ self.grads.transpose(1, 2) + m * self.damp * eye)

    def _blocks(self, vector: Tensor) -> Tensor:
        padded = torch.zeros(self.grads.shape[0] * self.blocksize, dtype=torch.float64, device=vector.device)
        padded[: self.dim] = vector.to(torch.float64)
        return padded.reshape(-1, self.blocksize)

    def diag(self) -> Tensor:
        """The d diagonal entries [F^{-1}]_qq (float64)."""
        solved = torch.cholesky_solve(self.grads, self.factor)  # K_b^{-1} G_b
        return ((1.0 - (self.grads * solved).sum(dim=1)) / self.damp).reshape(-1)[: self.dim]

    def mul(self, vector: Tensor) -> Tensor:
        """F^{-1} v (float64)."""
        v = self._blocks(vector)
        coefficients = torch.cholesky_solve(self.grads @ v.unsqueeze(2), self.factor)
        return ((v - (self.grads.transpose(1, 2) @ coefficients).squeeze(2)) / self.damp).reshape(-1)[: self.dim]
