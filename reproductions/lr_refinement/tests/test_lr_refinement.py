"""lr_refinement: the closed form against hand computations, linear decay, the refined schedule from norms, the
scheduler extension point (scheduler._target_), the norm recorder and objective, bad knobs, one smoke run."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers.compose import compose_config
from omegaconf import OmegaConf

from optrepro.config_schema import validate_config
from optrepro.errors import ConfigError
from optrepro.paths import REPO_ROOT
from optrepro.schedulers import build_scheduler
from optrepro.train import run
from reproductions.lr_refinement import export_norms
from reproductions.lr_refinement.grad_norms import update_norms
from reproductions.lr_refinement.objective import l2_penalty
from reproductions.lr_refinement.schedules import closed_form, linear_decay, refined, refined_schedule, smooth


@pytest.mark.parametrize(
    ("norms", "power", "expected"),
    [
        # eta_t = w_t * sum_{s>t} w_s, w = G^-power, divided by the max (hand computations, T = 5)
        ((1, 1, 1, 1, 1), 2, (4 / 4, 3 / 4, 2 / 4, 1 / 4, 0)),  # w = 1: 4, 3, 2, 1, 0
        ((2, 1, 1, 1, 1), 2, (1 / 3, 3 / 3, 2 / 3, 1 / 3, 0)),  # w = 1/4, 1, 1, 1, 1: 1, 3, 2, 1, 0
        ((1, 1, 1, 1, 2), 2, (1, 2.25 / 3.25, 1.25 / 3.25, 0.25 / 3.25, 0)),  # w_5 = 1/4: 3.25, 2.25, 1.25, .25, 0
        ((4, 2, 1, 1, 1), 1, (0.4375, 0.75, 1, 0.5, 0)),  # w = 1/4, 1/2, 1, 1, 1: .875, 1.5, 2, 1, 0
    ],
)
def test_closed_form_matches_hand_computation(norms, power, expected):
    np.testing.assert_allclose(closed_form(norms, power), expected, rtol=1e-12, atol=1e-15)


def test_large_early_norms_give_a_warmup_and_the_last_step_is_zero():
    schedule = refined_schedule([8.0] * 10 + [1.0] * 90, tau=0.0, trim=0, resolution=100)
    assert schedule[0] < 0.02 and schedule.argmax() >= 10 and schedule[-1] == 0.0


def sched_node(target: str, **keys) -> OmegaConf:
    return OmegaConf.create(
        {"_target_": f"reproductions.lr_refinement.schedules.{target}", "name": target, "warmup_epochs": 0, **keys}
    )


def test_linear_decay_goes_from_one_to_zero_over_the_run():
    factor = linear_decay(sched_node("linear_decay"), steps_per_epoch=3, epochs=3, base_lr=0.5)
    assert [factor(t) for t in range(9)] == pytest.approx([(8 - t) / 8 for t in range(9)], abs=1e-15)


def test_refined_schedule_of_constant_norms_is_linear_decay_at_the_runs_steps():
    norms = [0.7] * 400
    refined_factor = refined(sched_node("refined", norms=norms), steps_per_epoch=21, epochs=30, base_lr=1.0)
    linear_factor = linear_decay(sched_node("linear_decay"), steps_per_epoch=21, epochs=30, base_lr=1.0)
    assert [refined_factor(t) for t in range(630)] == pytest.approx([linear_factor(t) for t in range(630)], abs=1e-9)


def test_median_filter_removes_a_short_spike_and_keeps_a_constant():
    values = np.ones(100)
    values[50:53] = 10.0
    # tau 0.1 at resolution 100: width 2 * (10 // 2) + 1 = 11, so 3 outliers are a minority in every window
    np.testing.assert_array_equal(smooth(values, 0.1, 100), np.ones(100))


def test_product_scheduler_builds_a_paper_schedule_from_its_target():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.4)
    scheduler = build_scheduler(sched_node("linear_decay"), optimizer, steps_per_epoch=2, epochs=2)
    lrs = []
    for _ in range(4):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx([0.4, 0.4 * 2 / 3, 0.4 / 3, 0.0])


def test_update_norms_add_coupled_weight_decay():
    weight = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    weight.grad = torch.tensor([3.0, 4.0])
    optimizer = torch.optim.SGD([weight], lr=0.1, weight_decay=0.5)
    l2, l1 = update_norms(optimizer)  # g + wd w = (3.5, 5)
    assert l2 == pytest.approx((3.5**2 + 5**2) ** 0.5) and l1 == pytest.approx(8.5)
    assert l2_penalty(optimizer) == pytest.approx(0.25 * 5.0)  # (0.5 / 2) * (1 + 4)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["scheduler=refined_digits", "scheduler.weighting=l3"],
            r"^scheduler\.weighting: unknown value 'l3'; valid choices: l1, l2$",
        ),
        (
            ["scheduler=refined_digits", "scheduler.tau=1.5"],
            r"^scheduler\.tau: must be < 1, got 1\.5; set scheduler\.tau below 1$",
        ),
        (
            ["scheduler=refined_digits", "scheduler.resolution=1"],
            r"^scheduler\.resolution: must be >= 2, got 1; set scheduler\.resolution to at least 2$",
        ),
        (["scheduler=refined_digits", "scheduler.norms=[1.0,2.0]"], r"scheduler\.norms: needs a previous run's"),
        (["scheduler=refined_digits", "scheduler.trim=400"], r"scheduler\.trim: 400 leaves fewer than 2 norms"),
        (
            ["scheduler=linear_decay", "+scheduler.tau=0.1"],
            r"^scheduler\.tau: not a config key \(misspelled, or added with \+ where nothing reads it\); "
            r"check the spelling; the keys here are _target_, name, warmup_epochs$",
        ),
        (["scheduler=cosine", "+scheduler.norms=[1.0]"], r"scheduler\.norms: not a key of the product's schedules"),
        (["scheduler=cosine", "scheduler.name=linear"], r"scheduler\.name: unknown value 'linear'"),
        (
            ["scheduler=linear_decay", "scheduler._target_=reproductions.lr_refinement.schedules.nothing"],
            r"scheduler\._target_: cannot import",
        ),
    ],
)
def test_bad_scheduler_knobs_stop_before_any_work(overrides, message, tmp_path):
    cfg = compose_config(["+repro=lrr_digits_cpu", *overrides], tmp_path)
    with pytest.raises(ConfigError, match=message):
        validate_config(cfg)


def test_bad_knob_exits_2_with_one_line():
    done = subprocess.run(
        [sys.executable, "run.py", "+repro=lrr_smoke", "scheduler=refined_digits", "scheduler.weighting=l3"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    expected = "optrepro: error: scheduler.weighting: unknown value 'l3'; valid choices: l1, l2"
    assert done.stderr.strip().splitlines()[-1] == expected


def test_smoke_run_records_norms_objective_and_exports_a_composable_schedule(tmp_path, monkeypatch):
    record = run(compose_config(["+repro=lrr_smoke", "logger=csv"], tmp_path))
    assert record["status"] == "finished", record["error"]
    final = record["metrics"]["final"]
    assert final["train/objective"] > final["train/last_loss"] > 0
    run_dir = next((tmp_path / "runs").rglob("record.json")).parent
    norms = json.loads((run_dir / "grad_norms.json").read_text())
    assert len(norms["l2"]) == len(norms["l1"]) == record["timing"]["steps"] == 2 * 21
    monkeypatch.setattr(export_norms, "SCHEDULER_DIR", tmp_path)
    export_norms.main([str(run_dir), "refined_test"])
    node = OmegaConf.load(tmp_path / "refined_test.yaml")
    factor = refined(node, steps_per_epoch=5, epochs=2, base_lr=1.0)
    stored = [float(f"{v:.8g}") for v in norms["l2"]]
    expected = np.interp(np.linspace(0, 1, 10), np.linspace(0, 1, 10_000), refined_schedule(stored))
    assert [factor(t) for t in range(10)] == pytest.approx(expected.tolist(), abs=1e-12)
