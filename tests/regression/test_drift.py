"""The drift detector's comparison on constructed records: what counts as drift and what the message says."""

from __future__ import annotations

import json

from optrepro.records.provenance import cpu_kernels
from optrepro.regression.drift import (
    ABSENT,
    UNKNOWN_KERNELS,
    Mismatch,
    baseline_dir,
    bless,
    compare_runs,
    describe_drift,
    version_changes,
)

VERSIONS = {"python": "3.11.7", "torch": "2.14.1", "torch_build": "2.14.1+cu130", "numpy": "2.4.6"}


def record(final, best=None, versions=VERSIONS):
    return {"metrics": {"final": final, "best": best if best is not None else final}, "versions": versions}


def test_equal_metrics_and_changed_timings_are_no_drift():
    committed = record({"train/loss": 1.0273716926574707, "time/train_s": 19.6})
    new = record({"train/loss": 1.0273716926574707, "time/train_s": 31.2})
    assert compare_runs("sam_step", committed, new) == []


def test_a_difference_in_the_last_bit_is_drift():
    committed, new = record({"test/loss": 0.1 + 0.2}), record({"test/loss": 0.3})
    assert compare_runs("sam_step", committed, new) == [
        Mismatch("sam_step", "best/test/loss", 0.30000000000000004, 0.3),
        Mismatch("sam_step", "final/test/loss", 0.30000000000000004, 0.3),
    ]


def test_a_metric_present_on_one_side_only_is_drift():
    committed = record({"train/loss": 1.0}, best={})
    new = record({"train/loss": 1.0, "landscape/hessian_max_eig": 3.5}, best={})
    assert compare_runs("landscape", committed, new) == [
        Mismatch("landscape", "final/landscape/hessian_max_eig", ABSENT, 3.5)
    ]


def test_message_names_run_metric_both_values_and_both_version_sets():
    committed = record({"train/loss": 1.0273716926574707})
    new = record({"train/loss": 1.0301}, versions={**VERSIONS, "torch": "2.15.0", "torch_build": "2.15.0+cu130"})
    message = describe_drift("sam_step", compare_runs("sam_step", committed, new), committed, new, "x86_64-avx2")
    lines = message.splitlines()
    assert lines[0] == "DRIFT sam_step: 2 metric(s) differ from results/drift/x86_64-avx2/sam_step/record.json"
    assert "  final/train/loss: committed 1.0273716926574707, now 1.0301" in lines
    assert "  committed with: numpy 2.4.6, python 3.11.7, torch 2.14.1, torch_build 2.14.1+cu130" in lines
    assert "  now with:       numpy 2.4.6, python 3.11.7, torch 2.15.0, torch_build 2.15.0+cu130" in lines
    assert lines[-1] == "  versions that differ: torch 2.14.1 -> 2.15.0, torch_build 2.14.1+cu130 -> 2.15.0+cu130"


def test_message_says_when_only_the_code_changed_or_the_cpu_may_differ():
    committed, new = record({"train/loss": 1.0}), record({"train/loss": 2.0})
    mismatches = compare_runs("standard_step", committed, new)
    own = describe_drift("standard_step", mismatches, committed, new, "x86_64-avx2")
    assert own.splitlines()[-1] == "  versions that differ: none (the code changed what it computes)"
    unnamed = describe_drift("standard_step", mismatches, committed, new, UNKNOWN_KERNELS)
    assert "or this CPU's kernels differ from the unnamed ones of the baseline" in unnamed.splitlines()[-1]


def test_a_machine_is_compared_with_the_baseline_of_its_own_cpu_kernels(tmp_path):
    """Another CPU type runs other BLAS/oneDNN/ATen kernels; a run recorded on one is not compared bit for bit with
    another, unless only the unnamed baseline exists."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "record.json").write_text(json.dumps({"run_id": "r", "status": "finished", **record({"a": 1.0})}))
    assert cpu_kernels().startswith(__import__("platform").machine() + "-")
    blessed = bless("sam_step", run_dir, drift_dir=tmp_path / "drift", kernels="x86_64-avx2")
    assert blessed == tmp_path / "drift" / "x86_64-avx2" / "sam_step"
    assert baseline_dir(tmp_path / "drift", kernels="x86_64-avx2") == tmp_path / "drift" / "x86_64-avx2"
    assert baseline_dir(tmp_path / "drift", kernels="x86_64-avx512") == tmp_path / "drift" / UNKNOWN_KERNELS
    assert json.loads((blessed / "record.json").read_text())["metrics"]["final"] == {"a": 1.0}


def test_version_changes_lists_added_and_changed_packages_only():
    assert version_changes(record({}), record({}, versions={**VERSIONS, "numpy": "2.5.0", "scipy": "1.17.1"})) == {
        "numpy": ("2.4.6", "2.5.0"),
        "scipy": (None, "1.17.1"),
    }


def test_blessed_runs_hold_no_path_of_this_machine(tmp_path):
    run_dir = tmp_path / "2026-12-02" / "sam" / "local_0"
    run_dir.mkdir(parents=True)
    (run_dir / "landscape.json").write_text(
        json.dumps(
            {
                "measurement": "landscape",
                "metrics": {},
                "artifacts": [str(run_dir / "landscape" / "slice_1d.png")],
                "note": "not/a/path",
            }
        )
    )
    blessed = bless("sam_step", run_dir, drift_dir=tmp_path / "drift")
    assert json.loads((blessed / "landscape.json").read_text()) == {
        "measurement": "landscape",
        "metrics": {},
        "artifacts": ["landscape/slice_1d.png"],
        "note": "not/a/path",
    }
