"""A^{-1/4} from a 4-bit state, the two ways the paper compares (Section 3, Table 1), and the errors it reports.

Both keep the exact eigenvalues' shift of the practical algorithm: (A + max(lambda) * epsilon * I)^{-1/4} [paper].
- ``preconditioner`` (the naive 4-bit Shampoo): A's off-diagonal part is quantized, its diagonal kept in fp32; the
  root is taken of the dequantized matrix (its eigenvalues clamped at 0 first: a quantized PSD matrix can have
  slightly negative ones; ours).
- ``eigenvectors`` (the paper's): A = U Lambda U^T with Lambda kept in fp32 and U quantized; the dequantized V is
  optionally rectified by Björck steps V <- 1.5 V - 0.5 V V^T V (orthogonal rectification, "OR") and the root is
  V (Lambda + max(lambda) epsilon I)^{-1/4} V^T.
Errors of g against the exact f = A^{-1/4}: NRE = ||f - g||_F / ||f||_F and AE = the angle between f and g as
vectors, arccos(<f, g> / (||f||_F ||g||_F)), in degrees (the standard definitions; the notes do not spell them out).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from reproductions.shampoo4bit.quantize import round_trip

TARGETS = ("preconditioner", "eigenvectors", "eigenvectors_rectified")


def root_from_eigen(eigenvalues: Tensor, eigenvectors: Tensor, epsilon: float) -> Tensor:
    """V (Lambda + max(lambda) epsilon I)^{-1/4} V^T, eigenvalues clamped at 0."""
    lam = eigenvalues.clamp_min(0.0)
    return (eigenvectors * (lam + lam.max() * epsilon).pow(-0.25)) @ eigenvectors.T


def exact_root(matrix: Tensor, epsilon: float) -> Tensor:
    eigenvalues, eigenvectors = torch.linalg.eigh(matrix.double())
    return root_from_eigen(eigenvalues, eigenvectors, epsilon)


def bjorck(matrix: Tensor, steps: int) -> Tensor:
    """``steps`` Björck orthonormalization steps V <- 1.5 V - 0.5 V V^T V (paper Alg. 2, after dequantizing U)."""
    for _ in range(steps):
        matrix = 1.5 * matrix - 0.5 * matrix @ matrix.T @ matrix
    return matrix


def quantized_root(matrix: Tensor, target: str, epsilon: float, rectify_steps: int = 1, **quant) -> Tensor:
    """A^{-1/4} from ``matrix`` stored with its ``target`` quantized (module docstring); ``quant``: mapping, bits,
    block of ``quantize.round_trip``."""
    matrix = matrix.double()
    if target == "preconditioner":
        diagonal = torch.diagonal(matrix)
        stored = round_trip(matrix - torch.diag(diagonal), **quant)
        stored = 0.5 * (stored + stored.T)  # both triangles are quantized; the root needs a symmetric matrix
        stored = stored - torch.diag(torch.diagonal(stored)) + torch.diag(diagonal)
        return exact_root(stored, epsilon)
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; valid: {', '.join(TARGETS)}")
    eigenvalues, eigenvectors = torch.linalg.eigh(matrix)
    stored = round_trip(eigenvectors.T, **quant).T  # blocks along each eigenvector (a column of U)
    if target == "eigenvectors_rectified":
        stored = bjorck(stored, rectify_steps)
    return root_from_eigen(eigenvalues, stored, epsilon)


def relative_error(exact: Tensor, approx: Tensor) -> float:
    return float(torch.linalg.matrix_norm(exact - approx) / torch.linalg.matrix_norm(exact))


def angle_error_degrees(exact: Tensor, approx: Tensor) -> float:
    cosine = float((exact * approx).sum() / (torch.linalg.matrix_norm(exact) * torch.linalg.matrix_norm(approx)))
    return math.degrees(math.acos(max(-1.0, min(1.0, cosine))))
