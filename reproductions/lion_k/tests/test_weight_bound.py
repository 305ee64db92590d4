"""callbacks.weight_bound (reproductions/lion_k): lambda * ||x|| of the decayed weights in every history row and in
the record's final metrics."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from optrepro.optim.lion import Lion
from optrepro.train import run
from reproductions.lion_k.weight_bound import BOUND_KEY, MAX_ABS_KEY, weight_bound_metrics

WEIGHT_BOUND = "reproductions.lion_k.weight_bound.WeightBoundCallback"

FAST = [
    "logger=csv",
    "train.checkpoint=false",
    "train.batch_size=32",
    "dataset=mnist1d",
    "model=mlp",
    "limits.train_batches=3",
    "limits.eval_batches=2",
]


def test_metrics_cover_only_decayed_groups_and_use_the_lion_norm():
    a = nn.Parameter(torch.tensor([[3.0, -4.0]]))  # ||.||_inf 4, ||.||_2 5
    b = nn.Parameter(torch.tensor([0.5, -0.5, 2.0]))  # ||.||_inf 2, ||.||_2 ~2.12
    c = nn.Parameter(torch.tensor([100.0]))  # no decay: ignored
    l1 = Lion([{"params": [a, b], "weight_decay": 0.1}, {"params": [c], "weight_decay": 0.0}], k="l1")
    assert weight_bound_metrics(l1) == pytest.approx({MAX_ABS_KEY: 0.4, BOUND_KEY: 0.4})
    l2 = Lion([{"params": [a, b], "weight_decay": 0.1}, {"params": [c], "weight_decay": 0.0}], k="l2")
    assert weight_bound_metrics(l2) == pytest.approx({MAX_ABS_KEY: 0.4, BOUND_KEY: 0.5})
    linf = Lion([a], weight_decay=0.1, k="linf")
    assert weight_bound_metrics(linf) == pytest.approx({MAX_ABS_KEY: 0.4, BOUND_KEY: 0.7})
    adamw = torch.optim.AdamW([a, c], weight_decay=0.5)  # no `k`: the l_inf box for both
    assert weight_bound_metrics(adamw) == pytest.approx({MAX_ABS_KEY: 50.0, BOUND_KEY: 50.0})
    none = weight_bound_metrics(torch.optim.SGD([a], lr=0.1))
    assert math.isnan(none[MAX_ABS_KEY]) and math.isnan(none[BOUND_KEY])


def test_flag_adds_the_bound_to_every_history_row_and_the_final_metrics(make_cfg):
    record = run(
        make_cfg(
            FAST
            + [
                "optimizer=lion",
                "optimizer.base.weight_decay=10",
                "optimizer.base.lr=3e-3",
                "train.epochs=2",
                f"+callbacks.weight_bound._target_={WEIGHT_BOUND}",
            ]
        )
    )
    assert record["status"] == "finished"
    assert len(record["history"]) == 2
    for row in record["history"]:
        assert 0.0 < row[MAX_ABS_KEY] == row[BOUND_KEY]
    assert record["metrics"]["final"][MAX_ABS_KEY] == record["history"][-1][MAX_ABS_KEY]
    assert record["history"][1][MAX_ABS_KEY] < record["history"][0][MAX_ABS_KEY]  # decaying toward the box


def test_flag_off_by_default_leaves_the_record_alone(make_cfg):
    record = run(make_cfg(FAST + ["optimizer=lion"]))
    assert MAX_ABS_KEY not in record["metrics"]["final"]
    assert record["config"]["callbacks"] == {}
