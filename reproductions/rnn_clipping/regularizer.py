"""RecurrentNormRegularizer: the vanishing-gradient regulariser of Pascanu et al. (ICML 2013, Section 3.3, eqs. 9-10),
as computed by the official RNN.py (github.com/pascanur/trainingRNNs; re-implemented, not copied); preset node
``callbacks.vanishing_reg: {_target_: reproductions.rnn_clipping.regularizer.RecurrentNormRegularizer, alpha: 4.0}``
with ``model.keep_states: true``.

For every step t = 1..L, with g_t = dE/dh_t (the full back-propagated gradient of the loss) and
h_t = tanh(W_in u_t + W_rec h_{t-1} + b), the error sent one step back is v_t = (g_t * (1 - h_t^2)) W_rec and

    Omega = sum_t mean_batch (||v_t||^2 / ||g_t||^2 - 1)^2 / sum_t mean_batch [||g_t||^2 >= bound]

(a sample's term is 0 where ||g_t||^2 < bound). Only the "immediate" derivative is used: g_t and h_t are constants,
so alpha * dOmega/dW_rec is added to W_rec's gradient right after the backward pass, before clipping (the official
code adds it before computing the norm and clipping; the paper: weight 4, always with clipping, footnote 4).
Adds ``train/omega`` (mean Omega over the epoch's steps) to each history row. One backward per step is assumed.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch import Tensor

from optrepro.errors import ConfigError
from optrepro.lit.last_row import LastRowCallback

OMEGA_KEY = "train/omega"


def recurrent_norm_omega(w_rec: Tensor, states: list[Tensor], grads: list[Tensor], bound: float = 1e-20) -> Tensor:
    """Omega above as a function of `w_rec` (H x H, torch's h @ W^T convention), `states` and `grads` held constant."""
    terms, counted = [], []
    for h, g in zip(states, grads):
        h, g = h.detach(), g.detach()
        sent_back = (g * (1 - h * h)) @ w_rec
        norm_sq = (g * g).sum(dim=1)
        valid = norm_sq >= bound
        ratio = torch.where(valid, (sent_back * sent_back).sum(dim=1) / torch.where(valid, norm_sq, 1.0), 1.0)
        terms.append(((ratio - 1) ** 2).mean())
        counted.append(valid.float().mean())
    return torch.stack(terms).sum() / torch.stack(counted).sum().clamp_min(1e-12)


class RecurrentNormRegularizer(LastRowCallback):
    def __init__(self, alpha: float = 4.0, bound: float = 1e-20) -> None:
        self.alpha = float(alpha)
        self.bound = float(bound)
        self._omegas: list[float] = []

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not getattr(pl_module.net, "keep_states", False):
            raise ConfigError(
                "callbacks.vanishing_reg needs the hidden states: use model=tanh_rnn with model.keep_states=true"
            )

    def on_after_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        net = pl_module.net
        states = net.states
        w_rec = net.rnn.weight_hh_l0
        with torch.enable_grad():
            w = w_rec.detach().requires_grad_(True)
            omega = recurrent_norm_omega(w, states, [h.grad for h in states], self.bound)
            (grad,) = torch.autograd.grad(self.alpha * omega, w)
        w_rec.grad = grad if w_rec.grad is None else w_rec.grad + grad
        self._omegas.append(float(omega.detach()))
        net.states = None

    def complete_last_row(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._omegas and pl_module.history:
            pl_module.add_to_last_history_row({OMEGA_KEY: sum(self._omegas) / len(self._omegas)})
            self._omegas = []
