"""Inverse empirical-Fisher-vector products over a sliding window of m gradients (the dynamic M-FAC algorithm).

The window G (m x d, one gradient per row, zero rows until filled) defines F = lambda I + (1/m) G^T G. By the
Woodbury identity

    F^{-1} v = (v - G^T K^{-1} G v) / lambda,    K = m lambda I_m + G G^T   (m x m),

so an IHVP costs two d x m products and one m x m triangular solve pair, O(dm + m^2), and replacing the oldest
gradient costs one new row of the Gram matrix G G^T (O(dm)) and a new Cholesky factor of K (O(m^3)): the costs the
paper states for its dynamic algorithm [abstract]. The paper reaches them through its own recursion over the
window; this is the same matrix (tests compare both with a dense solve). The Gram matrix and its factor are stored
and factored in float64 whatever the window's dtype (they are m x m, and K's condition number grows as 1/lambda);
the products with the window itself are in the window's dtype.
"""

from __future__ import annotations

import torch
from torch import Tensor


class SlidingWindowIHVP:
    """A ring buffer of the last ``m`` gradients (oldest replaced first) and F^{-1} v for the current window."""

    def __init__(
        self, dim: int, m: int, damp: float, *, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
    ) -> None:
        if m < 1 or dim < 1:
            raise ValueError(f"need m >= 1 and dim >= 1, got m={m}, dim={dim}")
        if not damp > 0.0:
            raise ValueError(f"the damping lambda must be > 0, got {damp}")
        self.m, self.damp = int(m), float(damp)
        self.grads = torch.zeros(self.m, dim, dtype=dtype, device=device)
        self.gram = torch.zeros(self.m, self.m, dtype=torch.float64, device=device)
        self.next = 0  # row the next gradient replaces
        self.count = 0  # gradients inserted so far
        self._factor = self._cholesky()

    def _cholesky(self) -> Tensor:
        eye = torch.eye(self.m, dtype=torch.float64, device=self.gram.device)
        return torch.linalg.cholesky(self.gram + self.m * self.damp * eye)

    def insert(self, grad: Tensor) -> None:
        """Replace the oldest gradient by ``grad`` (a d-vector) and refactor K."""
        row = self.next
        self.grads[row] = grad.to(self.grads.dtype)
        dots = (self.grads @ self.grads[row]).to(torch.float64)
        self.gram[row, :] = dots
        self.gram[:, row] = dots
        self.next = (row + 1) % self.m
        self.count += 1
        self._factor = self._cholesky()

    def state_dict(self) -> dict:
        """The window as a checkpoint holds it (a resumed run continues with the same last m gradients)."""
        return {"grads": self.grads.clone(), "gram": self.gram.clone(), "next": self.next, "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.grads.copy_(state["grads"])
        self.gram.copy_(state["gram"])
        self.next, self.count = int(state["next"]), int(state["count"])
        self._factor = self._cholesky()

    def solve(self, vector: Tensor) -> Tensor:
        """F^{-1} v for the current window, in the window's dtype."""
        v = vector.to(self.grads.dtype)
        coefficients = torch.cholesky_solve((self.grads @ v).to(torch.float64).unsqueeze(1), self._factor)
        return (v - self.grads.T @ coefficients.squeeze(1).to(v.dtype)) / self.damp

    def window(self) -> Tensor:
        """The window's gradients, oldest first (m x d; zero rows until m gradients were inserted)."""
        return torch.roll(self.grads, -self.next, dims=0)


def dense_ihvp(grads: Tensor, damp: float, vector: Tensor) -> Tensor:
    """The O(d^3) reference: solve (lambda I + G^T G / m) x = v with F formed densely, in float64."""
    g = grads.to(torch.float64)
    fisher = damp * torch.eye(g.shape[1], dtype=torch.float64) + g.T @ g / g.shape[0]
    return torch.linalg.solve(fisher, vector.to(torch.float64))


def recursive_ihvp(grads: Tensor, damp: float, vector: Tensor) -> Tensor:
    """The paper's rank-one recursion, densely (reference only): H_0 = I / lambda, and for each window gradient g,
    H <- H - (H g)(H g)^T / (m + g^T H g); after the window H = F^{-1} (reference notes, official HInvSlow [repo])."""
    g = grads.to(torch.float64)
    m = g.shape[0]
    inverse = torch.eye(g.shape[1], dtype=torch.float64) / damp
    for row in g:
        h = inverse @ row
        inverse = inverse - torch.outer(h, h) / (m + row @ h)
    return inverse @ vector.to(torch.float64)
