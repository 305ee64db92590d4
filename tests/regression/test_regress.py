"""`regression claims` logic on constructed records: the same policy on both stores, regressions, shift, resume."""

from __future__ import annotations

import json
import math

import pytest
from claimkit import write_claims

from optrepro.claims.load import load_paper_claims
from optrepro.regression import regress, runner
from optrepro.regression.shared_paths import GUARD_TOLERANCE, SharedPathRun, guard_claims

SAM, SGD = ["optimizer=sam"], ["optimizer=sgd"]


def verdict(status, observed=None, ci95=None):
    return {"status": status, "observed": observed, "ci95": ci95, "arms": {}}


def test_reproduced_to_anything_else_is_a_regression_and_the_reverse_is_not():
    results = regress.compare_verdicts(
        {
            "a": verdict("reproduced"),
            "b": verdict("not reproduced"),
            "c": verdict("reproduced"),
            "d": verdict("reproduced"),
        },
        {
            "a": verdict("not reproduced"),
            "b": verdict("reproduced"),
            "c": verdict("not run"),
            "d": verdict("reproduced"),
        },
    )
    assert [r.claim for r in results if r.is_regression] == ["a", "c"]


def test_shift_is_the_move_of_the_effect_in_committed_ci_half_widths():
    result = regress.ClaimRegress("a", verdict("reproduced", 0.30, 0.20), verdict("not reproduced", -0.10, 0.25))
    assert math.isclose(result.shift_in_ci, -2.0)
    one_seed = regress.ClaimRegress("b", verdict("reproduced", 2.0, None), verdict("not reproduced", 2.1, None))
    assert one_seed.shift_in_ci is None
    assert regress.render([one_seed])[-1] == "  effect moved by 0.1, +5.00% (no committed CI)"


def test_sam_ordering_that_no_longer_holds_on_the_fresh_store_is_reported(tmp_path, config_dir):
    from claimkit import RecordFactory

    claims = list(load_paper_claims(write_claims(tmp_path / "reproductions")).claims)
    committed, fresh = RecordFactory(config_dir, tmp_path / "committed"), RecordFactory(config_dir, tmp_path / "fresh")
    for seed, (sam, sgd) in enumerate([(2.6, 3.5), (2.7, 3.6), (2.8, 3.4)]):
        committed.add(SAM, seed, {"test/error": sam})
        committed.add(SGD, seed, {"test/error": sgd})
    for seed, (sam, sgd) in enumerate([(4.6, 3.5), (4.8, 3.6), (4.5, 3.4)]):  # a broken step: SAM worse
        fresh.add(SAM, seed, {"test/error": sam})
        fresh.add(SGD, seed, {"test/error": sgd})
    results = regress.compare_verdicts(
        regress.decide_on_store(claims, committed.root), regress.decide_on_store(claims, fresh.root)
    )
    by_claim = {r.claim: r for r in results}
    assert [r.claim for r in results if r.is_regression] == ["sam/ordering", "sam/value"]
    assert by_claim["sam/ordering"].committed["status"] == "reproduced"
    assert by_claim["sam/ordering"].new["status"] == "not reproduced"
    assert math.isclose(by_claim["sam/ordering"].new["observed"], -(1.1 + 1.2 + 1.1) / 3)
    assert math.isclose(
        by_claim["sam/ordering"].shift_in_ci,
        (-(1.1 + 1.2 + 1.1) / 3 - 0.8) / by_claim["sam/ordering"].committed["ci95"],
    )
    lines = regress.render(results)
    assert lines[lines.index("REGRESSION sam/ordering") + 1].startswith("  committed: reproduced: 0.8 ± ")
    report = json.loads(
        regress.write_report(
            results, tmp_path / "regress.json", store=fresh.root, baseline=committed.root, failed_runs=[]
        ).read_text()
    )
    assert report["regressions"] == ["sam/ordering", "sam/value"]
    assert report["claims"]["sam/ordering"]["regression"] is True


def test_guard_claims_check_the_committed_value_within_the_relative_tolerance():
    run = SharedPathRun("sam_step", "SAM step", ("optimizer=sam",), ("train/loss", "test/loss"))
    claims = guard_claims((run,), {"sam_step": {"metrics": {"final": {"train/loss": 2.0, "test/loss": -0.5}}}})
    assert [c.key for c in claims] == ["shared_paths/sam_step:train/loss", "shared_paths/sam_step:test/loss"]
    assert [(c.check.reported, c.check.tolerance) for c in claims] == [
        (2.0, 2.0 * GUARD_TOLERANCE),
        (-0.5, 0.5 * GUARD_TOLERANCE),
    ]
    assert claims[0].arms["sam_step"].overrides == ("optimizer=sam",)


def test_a_killed_check_resumes_only_the_runs_without_a_record(tmp_path, config_dir, monkeypatch):
    from claimkit import RecordFactory

    store = tmp_path / "store"
    RecordFactory(config_dir, store / "2026-12-02" / "sam").add(SAM, 0, {"train/loss": 1.0})
    launched = []
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # run_shared_paths pins it for its runs; restored after the test
    monkeypatch.setattr(runner, "execute", lambda planned, launcher: launched.extend(planned) or [])
    runs = (
        SharedPathRun("done", "SAM", tuple(SAM), ("train/loss",)),
        SharedPathRun("todo", "SGD", tuple(SGD), ("train/loss",)),
    )
    found, failed = runner.run_shared_paths(runs, store, "local")
    assert [(p.arm, p.overrides[0], p.overrides[-1]) for p in launched] == [("todo", "optimizer=sgd", "seed=0")]
    assert f"paths.runs_dir={store.resolve()}" in launched[0].overrides
    assert list(found) == ["done"] and failed == []


def test_regress_without_committed_drift_runs_stops_before_running_anything(monkeypatch, capsys, tmp_path):
    from optrepro.cli import main
    from optrepro.regression import drift

    monkeypatch.setattr(drift, "read_committed", lambda name, baseline: None)
    monkeypatch.setattr(runner, "run_shared_paths", lambda *args: pytest.fail("ran before checking its input"))
    assert main(["regression", "claims", "--store", str(tmp_path / "store")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "optrepro: error: no committed drift run for sam_step, saf_step, mesa_step, standard_step, ddp_sam_step, "
        "structure_learning, landscape; make them with `python -m optrepro regression drift --record`"
    ]


@pytest.mark.parametrize(
    ("old", "new"),
    [(["claims", "regress", "sam"], "regression claims"), (["drift", "record"], "regression drift --record")],
)
def test_a_renamed_command_names_its_new_name_and_runs_nothing(capsys, old, new):
    from optrepro.cli import main

    assert main(old) == 2
    assert capsys.readouterr().err == f"optrepro: error: `{' '.join(old[:2])}` is now `{new}` (same options)\n"
