"""A plain (Elman) tanh RNN classifying a sequence from its last hidden state, with the initializations of
Pascanu et al. (ICML 2013, Section 4.1.1; RNN.py of github.com/pascanur/trainingRNNs):

* ``basic_tanh``: W_in, W_rec, W_out ~ N(0, 0.1^2) (std 0.1, as the code's ``scale=.1``), biases 0;
* ``smart_tanh``: W_in, W_out ~ N(0, 0.01^2); W_rec sparse, 15 non-zero N(0, 0.01^2) incoming weights per unit,
  rescaled to spectral radius 0.95; biases 0.

h_t = tanh(W_in u_t + W_rec h_{t-1} + b), h_0 = 0; logits = W_out h_L + b_out (softmax cross-entropy outside).
With ``keep_states`` the recurrence runs step by step (same parameters, same function) and, in training, keeps
h_1..h_L in ``states`` with their gradients retained: the vanishing-gradient regulariser (``regularizer.py``)
reads dE/dh_t from them after the backward pass.
Every draw comes from torch's global generator (seeded by the run seed). torch's nn.RNN runs the recurrence (one
bias vector set to zero, the other learned: the same function).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import torch
from omegaconf import DictConfig
from pydantic import Field
from torch import Tensor, nn

from optrepro.config_schema import PosFloat, PosInt, Section, Text, check_node, choice
from optrepro.errors import InvalidConfigError

INITS = ("basic_tanh", "smart_tanh")


def sparse_recurrent(hidden: int, fan_in: int, radius: float, std: float) -> Tensor:
    """hidden x hidden matrix with `fan_in` non-zero N(0, std^2) entries per row, scaled to spectral radius `radius`."""
    weights = torch.randn(hidden, hidden) * std
    keep = torch.zeros(hidden, hidden, dtype=torch.bool)
    for row in range(hidden):
        keep[row, torch.randperm(hidden)[:fan_in]] = True
    weights = weights * keep
    return weights * (radius / torch.linalg.eigvals(weights).abs().max())


class TanhRNNKnobs(Section):
    """The `model` node of tanh_rnn (configs/model/tanh_rnn.yaml), typed once; the defaults are the paper's."""

    target: Text | None = Field(None, alias="_target_")
    name: Text
    units: PosInt = 50
    init: Annotated[str, choice("reproductions.rnn_clipping.rnn:INITS")] = "basic_tanh"
    sparse_fan_in: PosInt = 15  # smart_tanh: non-zero incoming recurrent weights per unit
    spectral_radius: PosFloat = 0.95
    keep_states: bool = False


def check_knobs(node: DictConfig | Mapping[str, Any]) -> TanhRNNKnobs:
    """The node typed by TanhRNNKnobs, then the rule that ties the fan-in to the units."""
    knobs = check_node(node, "model", TanhRNNKnobs)
    if knobs.sparse_fan_in > knobs.units:
        raise InvalidConfigError(
            "model.sparse_fan_in",
            f"{knobs.sparse_fan_in} incoming weights per unit but only {knobs.units} units",
            "set model.sparse_fan_in <= model.units",
        )
    return knobs


class TanhRNN(nn.Module):
    validate = staticmethod(check_knobs)  # the config check calls it with the model node, before any work

    def __init__(
        self,
        name: str,
        num_classes: int,
        input_shape: tuple[int, ...],
        units: int = 50,
        init: str = "basic_tanh",
        sparse_fan_in: int = 15,
        spectral_radius: float = 0.95,
        keep_states: bool = False,
    ) -> None:
        super().__init__()
        self.name = name  # every model node has a name (config check); kept for repr and debugging
        self.keep_states = keep_states
        self.states: list[Tensor] | None = None
        knobs = dict(name=name, units=units, init=init, sparse_fan_in=sparse_fan_in, spectral_radius=spectral_radius)
        check_knobs({**knobs, "keep_states": keep_states})  # as the config check does
        if len(input_shape) != 2:
            raise ValueError(f"TanhRNN reads sequences (length x symbols); got samples of shape {input_shape}")
        self.rnn = nn.RNN(input_shape[-1], units, nonlinearity="tanh", batch_first=True)
        self.out = nn.Linear(units, num_classes)
        with torch.no_grad():
            std = 0.1 if init == "basic_tanh" else 0.01
            self.rnn.weight_ih_l0.normal_(0.0, std)
            self.out.weight.normal_(0.0, std)
            if init == "basic_tanh":
                self.rnn.weight_hh_l0.normal_(0.0, std)
            else:
                self.rnn.weight_hh_l0.copy_(sparse_recurrent(units, sparse_fan_in, spectral_radius, std))
            for bias in (self.rnn.bias_ih_l0, self.rnn.bias_hh_l0, self.out.bias):
                bias.zero_()
        self.rnn.bias_ih_l0.requires_grad_(False)  # one bias vector, as in the paper's h_t

    def forward(self, x: Tensor) -> Tensor:
        if not self.keep_states:
            _, last = self.rnn(x)
            return self.out(last[-1])
        drive = x @ self.rnn.weight_ih_l0.T + self.rnn.bias_ih_l0 + self.rnn.bias_hh_l0
        h = x.new_zeros(x.shape[0], self.rnn.hidden_size)
        states = []
        for t in range(x.shape[1]):
            h = torch.tanh(drive[:, t] + h @ self.rnn.weight_hh_l0.T)
            if h.requires_grad:
                h.retain_grad()
            states.append(h)
        self.states = states if torch.is_grad_enabled() else None
        return self.out(h)
