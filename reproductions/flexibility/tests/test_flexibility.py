"""Effective model complexity (reproductions/flexibility): the search on constructed fit/no-fit oracles, nested
class-balanced subsets, random labels, the trial's fit check, knob errors and a smoke search."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
from torch import nn

from optrepro.errors import ConfigError
from optrepro.optim.standard import StandardStep
from optrepro.paths import REPO_ROOT
from optrepro.train import run
from reproductions.flexibility.models import TinyCNN, tiny_cnn
from reproductions.flexibility.search import largest_fitted
from reproductions.flexibility.subsets import balanced_order, random_labels
from reproductions.flexibility.trial import batches, run_trial


def oracle(emc: int, calls: list[int]):
    def fits(n: int) -> bool:
        calls.append(n)
        return n <= emc

    return fits


def test_search_brackets_by_doubling_then_bisects_to_the_exact_emc():
    """start 10, EMC 137: 10, 20, 40, 80, 160 (fails) bracket [80, 160]; bisection 120, 140, 130, 135, 137, 138."""
    calls: list[int] = []
    result = largest_fitted(oracle(137, calls), start=10, limit=1000, rel_tol=0.0)
    assert (result.emc, result.first_unfitted, result.capped) == (137, 138, False)
    assert calls == [10, 20, 40, 80, 160, 120, 140, 130, 135, 137, 138]
    assert result.trials == [(n, n <= 137) for n in calls] and len(set(calls)) == len(calls)


def test_search_stops_at_the_relative_tolerance():
    result = largest_fitted(oracle(137, []), start=10, limit=1000, rel_tol=0.05)
    assert result.emc <= 137 < result.first_unfitted and result.first_unfitted - result.emc <= 0.05 * result.emc
    assert result.emc == 135 and result.first_unfitted == 140


def test_search_halves_when_the_start_does_not_fit():
    calls: list[int] = []
    result = largest_fitted(oracle(5, calls), start=64, limit=1000, rel_tol=0.0)
    assert calls[:4] == [64, 32, 16, 8] and (result.emc, result.first_unfitted) == (5, 6)


def test_search_is_capped_at_the_dataset_and_says_so():
    calls: list[int] = []
    result = largest_fitted(oracle(10_000, calls), start=100, limit=1347)
    assert calls == [100, 200, 400, 800, 1347] and result.emc == 1347 and result.capped


def test_search_reports_zero_when_nothing_fits():
    result = largest_fitted(lambda n: False, start=4, limit=10)
    assert (result.emc, result.first_unfitted) == (0, 1)


def test_search_refuses_a_start_outside_the_data():
    with pytest.raises(ValueError, match="1 <= start <= limit"):
        largest_fitted(lambda n: True, start=20, limit=10)


def test_balanced_order_takes_the_classes_in_turn_and_is_seeded():
    labels = torch.tensor([0] * 5 + [1] * 3 + [2] * 4)
    order = balanced_order(labels, seed=3)
    assert sorted(order.tolist()) == list(range(12))
    assert labels[order].tolist() == [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 2, 0]
    assert torch.equal(order, balanced_order(labels, seed=3)) and not torch.equal(order, balanced_order(labels, 4))


def test_random_labels_are_uniform_and_seeded():
    labels = random_labels(10_000, 10, seed=0)
    counts = torch.bincount(labels, minlength=10)
    assert counts.min() > 900 and counts.max() < 1100
    assert torch.equal(labels, random_labels(10_000, 10, seed=0))


def test_batches_cover_the_set_once_per_epoch_and_full_batch_is_the_whole_set():
    stream = batches(10, 4, torch.Generator().manual_seed(0))
    epoch = [next(stream) for _ in range(3)]
    assert [len(b) for b in epoch] == [4, 4, 2] and sorted(torch.cat(epoch).tolist()) == list(range(10))
    assert next(batches(10, None, torch.Generator())).tolist() == list(range(10))


def separable_trial(n: int, labels: torch.Tensor, max_steps: int):
    x = torch.eye(n)  # one-hot inputs: a linear model fits any labels

    def build(count: int):
        torch.manual_seed(0)
        model = nn.Linear(n, 2)
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        return model, optimizer, StandardStep(optimizer)

    return run_trial(build, x, labels, batch_size=None, max_steps=max_steps, check_every=5, seed=0)


def test_trial_stops_at_the_first_check_that_fits():
    trial = separable_trial(8, torch.tensor([0, 1] * 4), max_steps=500)
    assert trial.fitted and trial.train_acc == 1.0 and trial.steps % 5 == 0 and trial.steps < 500


def test_trial_that_cannot_fit_runs_the_whole_budget():
    """Two identical inputs with different labels can never both be right."""
    x = torch.ones(2, 3)

    def build(count: int):
        model = nn.Linear(3, 2)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        return model, optimizer, StandardStep(optimizer)

    trial = run_trial(build, x, torch.tensor([0, 1]), batch_size=1, max_steps=40, check_every=15, seed=0)
    assert not trial.fitted and trial.train_acc == 0.5 and trial.steps == 40


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_lr_schedule_over_the_step_budget(schedule, monkeypatch):
    """Step k (1-based) runs at 0.1 x 0.5 (1 + cos(pi (k - 1) / max_steps)) under cosine, 0.1 under constant;
    after the budget the cosine lr is 0."""
    used, optimizers, original = [], [], torch.optim.SGD.step

    def recording_step(self, *args, **kwargs):
        used.append(self.param_groups[0]["lr"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", recording_step)

    def build(count: int):
        model = nn.Linear(3, 2)
        optimizers.append(torch.optim.SGD(model.parameters(), lr=0.1))
        return model, optimizers[-1], StandardStep(optimizers[-1])

    run_trial(
        build,
        torch.ones(2, 3),
        torch.tensor([0, 1]),
        batch_size=None,
        max_steps=40,
        check_every=10,
        seed=0,
        schedule=schedule,
    )
    cosine = schedule == "cosine"
    expected = [0.1 * (0.5 * (1 + math.cos(math.pi * k / 40)) if cosine else 1.0) for k in range(40)]
    assert used == pytest.approx(expected, abs=1e-12)
    assert optimizers[0].param_groups[0]["lr"] == pytest.approx(0.0 if cosine else 0.1, abs=1e-12)


def test_tiny_cnn_parameters_match_the_mlp_of_the_cpu_tier():
    """channels 3 on 8x8: 1*9*3+3 + 3*9*6+6 + 6*2*2*10+10 = 30 + 168 + 250 = 448."""
    assert sum(p.numel() for p in TinyCNN(10, (1, 8, 8), channels=3).parameters()) == 448


@pytest.mark.parametrize(
    ("channels", "line"),
    [
        (0, "model.channels: must be >= 1, got 0; set model.channels to at least 1"),
        (2.0, "model.channels: 2.0 is not a whole number; give an integer, e.g. model.channels=1"),
    ],
)
def test_bad_tiny_cnn_channels_name_the_key(channels, line):
    with pytest.raises(ConfigError) as error:
        tiny_cnn("tiny_cnn", 10, (1, 8, 8), channels=channels)
    assert str(error.value) == line


@pytest.mark.parametrize(
    "override, message",
    [
        ("task.max_steps=0", "task.max_steps: must be >= 1, got 0; set task.max_steps to at least 1"),
        ("task.rel_tol=1.5", "task.rel_tol: must be < 1, got 1.5; set task.rel_tol below 1"),
        (
            "task.full_batch=maybe",
            "task.full_batch: 'maybe' is not true or false; set task.full_batch=true or task.full_batch=false",
        ),
        ("task.lr_schedule=linear", "task.lr_schedule: unknown value 'linear'; valid choices: constant, cosine"),
        ("scheduler=cosine", "scheduler: 'cosine': a schedule over epochs has no meaning"),
        ("model=tiny_cnn model.channels=0", "model.channels: must be >= 1, got 0; set model.channels to at least 1"),
    ],
)
def test_bad_knobs_fail_before_any_work(make_cfg, override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        run(make_cfg(["+repro=emc_smoke", *override.split(" ")]))


def test_run_py_prints_one_error_line_exits_2_and_leaves_no_record(tmp_path):
    done = subprocess.run(
        [sys.executable, "run.py", "+repro=emc_smoke", "task.start=0", f"paths.runs_dir={tmp_path}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 2
    expected = "optrepro: error: task.start: must be >= 1, got 0; set task.start to at least 1"
    assert done.stderr.strip().splitlines()[-1] == expected
    assert not list(tmp_path.rglob("record.json"))


def test_smoke_search_records_every_trial_and_the_emc(make_cfg):
    record = run(make_cfg(["+repro=emc_smoke"]))
    final, history = record["metrics"]["final"], record["history"]
    assert record["status"] == "finished" and final["emc/trials"] == len(history)
    fitted = [row["emc/n"] for row in history if row["emc/fitted"] == 1.0]
    assert final["emc/samples"] == max(fitted) and final["emc/first_unfitted"] > final["emc/samples"]
    assert final["emc/params"] == 64 * 6 + 6 + 6 * 10 + 10
    assert final["emc/per_param"] == pytest.approx(final["emc/samples"] / final["emc/params"])
