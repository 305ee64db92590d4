"""The top Hessian eigenpair, warm-started from the last eigenvector.

The product's ``optrepro.landscape.hessian.power_iteration`` (H v by double backward) also returns its last
direction, so a callback that measures every few steps starts from the previous one and converges in a few
products where a random start needs tens. Like the official code (hessian_norm.py) it returns v^T H v for the
eigenvalue of largest magnitude, with its sign.
"""

from __future__ import annotations

from optrepro.landscape.hessian import PowerIteration as Eigenpair
from optrepro.landscape.hessian import power_iteration as top_eigenpair

__all__ = ["Eigenpair", "top_eigenpair"]
