"""Lion-K on a 5-d quadratic, started far outside the constraint set: Phase 1 and Phase 2 in one picture.

The unconstrained minimizer lies outside the l2 ball (radius 1/lambda = 5) but inside the l_inf box, so the
l2 run ends on its boundary and the l1 run ends inside its box, after riding the boundary for a while.

The paper's continuous-time Lion-K (alpha = gamma) is integrated with optrepro's own `Lion` at a small step
(lr = dt, beta2 = 1 - dt*gamma, beta1 = 1 - eps*gamma; see tests/optim/test_lion.py). Panels, for K = l1 (Lion)
and K = l2:
  left:  lambda * ||x||_dual (l_inf for l1, l_2 for l2) with the bound 1 and the Phase-1 envelope
         1 + (1 - dt*lambda)^t * excess_0;
  right: f(x) and the Lyapunov function H(x, m) once x is inside the set (H never increases; f does at times).

    .venv/bin/python reproductions/lion_k/toy_figure.py   # writes reproductions/lion_k/lion_k_toy.png
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from torch import nn

from optrepro.optim.lion import Lion, dual_norm

LAM, GAMMA, EPS, DT, STEPS = 0.2, 0.05, 0.5, 2e-3, 20000
K_NORM = {"l1": 1.0, "l2": 2.0}


def trajectory(k: str):
    gen = torch.Generator().manual_seed(3)
    root = torch.randn(5, 5, generator=gen, dtype=torch.float64)
    A = root @ root.T / 5 + 0.5 * torch.eye(5, dtype=torch.float64)
    b = 4.0 * torch.randn(5, generator=gen, dtype=torch.float64)
    x = nn.Parameter(3 * 4.0 * torch.randn(5, generator=gen, dtype=torch.float64))

    def f(z):
        return 0.5 * (z - b) @ A @ (z - b)

    opt = Lion([x], lr=DT, betas=(1 - EPS * GAMMA, 1 - DT * GAMMA), weight_decay=LAM, k=k)
    coef = (1 - EPS * GAMMA) / (1 + EPS * LAM)
    bound, fs, hs = [], [], []
    for _ in range(STEPS):
        m = -opt.state[x]["exp_avg"] if opt.state[x] else torch.zeros_like(x)
        xd = x.detach()
        value = LAM * float(dual_norm(xd, k))
        bound.append(value)
        fs.append(float(f(xd)))
        inside = value <= 1 + 1e-12
        k_m = float(torch.linalg.vector_norm(m, ord=K_NORM[k]))
        hs.append(GAMMA * float(f(xd)) + coef * (k_m - LAM * float(m @ xd)) if inside else float("nan"))
        opt.zero_grad()
        f(x).backward()
        opt.step()
    return bound, fs, hs


def main() -> None:
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5))
    t = torch.arange(STEPS) * DT
    for row, k in enumerate(["l1", "l2"]):
        bound, fs, hs = trajectory(k)
        envelope = [1 + (1 - DT * LAM) ** i * (bound[0] - 1) for i in range(STEPS)]
        ax = axes[row, 0]
        ax.plot(t, bound, label=f"lambda * ||x||_{'inf' if k == 'l1' else '2'}")
        ax.plot(t, envelope, "--", label="1 + (1 - lr lambda)^t (start - 1)")
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_yscale("log")
        ax.set_title(f"K = {k}: Phase 1, into the constraint set")
        ax.set_xlabel("time t = step * lr")
        ax.legend(fontsize=8)
        ax = axes[row, 1]
        ax.plot(t, [g * GAMMA for g in fs], label="alpha f(x)", alpha=0.7)
        ax.plot(t, hs, label="H(x, m) (inside the set)")
        ax.set_title(f"K = {k}: Phase 2, H never increases")
        ax.set_xlabel("time t = step * lr")
        ax.legend(fontsize=8)
    fig.suptitle(f"Lion-K ODE (alpha = gamma = {GAMMA}, eps = {EPS}, lambda = {LAM}), Euler step {DT}")
    fig.tight_layout()
    out = Path(__file__).with_name("lion_k_toy.png")
    fig.savefig(out, dpi=110)
    print(out)


if __name__ == "__main__":
    main()
