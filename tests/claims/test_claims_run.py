"""`claims run --dry-run` lists exactly the missing (arm, seed) runs; SLURM arrays are submitted side by side;
`claims list` shows verdicts."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from claimkit import store, write_claims

from optrepro import paths
from optrepro.claims import launch
from optrepro.cli import main

SAM, SGD = ["optimizer=sam"], ["optimizer=sgd"]


@pytest.fixture
def cli_args(tmp_path, records):
    write_claims(tmp_path / "reproductions")
    return [
        "--reproductions",
        str(tmp_path / "reproductions"),
        "--records",
        str(records.root),
    ]


@pytest.fixture
def run_args(cli_args, config_dir):
    """`claims run` also composes the arms (the hardware of the launch): it takes the config folder."""
    return [*cli_args, "--config-dir", str(config_dir)]


def dry_run_lines(capsys, run_args, *extra):
    assert main(["claims", "run", *extra, "--dry-run", *run_args]) == 0
    return [line for line in capsys.readouterr().out.splitlines() if line.startswith("python ")]


def test_dry_run_lists_exactly_the_missing_runs(capsys, run_args, records):
    records.add(SAM, 0, {"test/error": 2.7})
    records.add(SAM, 1, {"test/error": 2.7})
    records.add(SGD, 0, {"test/error": 9.9}, status="diverged")  # a result: not relaunched
    records.add(SGD, 1, {"test/error": 3.5}, status="failed")  # not a result: relaunched
    records.add(SGD, 2, {"test/error": 3.5}, status="interrupted")
    lines = dry_run_lines(capsys, run_args, "sam")
    # sam seed 2 is needed by both claims of the paper and is launched once
    assert lines == [
        "python run.py optimizer=sam seed=2",
        "python run.py optimizer=sgd seed=1",
        "python run.py optimizer=sgd seed=2",
    ]


def test_nothing_to_launch_when_every_run_exists(capsys, run_args, records):
    for seed in range(3):
        records.add(SAM, seed, {"test/error": 2.7})
        records.add(SGD, seed, {"test/error": 3.5})
    assert dry_run_lines(capsys, run_args, "sam/ordering") == []


def test_slurm_launcher_sweeps_the_missing_seeds_of_each_arm(capsys, run_args, records):
    records.add(SGD, 1, {"test/error": 3.5})
    lines = dry_run_lines(capsys, run_args, "sam/ordering", "--launcher", "slurm")
    assert lines == [
        "python run.py -m hydra/launcher=slurm optimizer=sam seed=0,1,2",
        "python run.py -m hydra/launcher=slurm optimizer=sgd seed=0,2",
    ]


def test_a_run_recorded_before_a_knob_existed_is_not_launched_again(capsys, run_args, records):
    """A record's config lacks a key added since (so its hashes differ from today's); its recipe identifies it."""
    for seed in range(3):
        for arm in (SAM, SGD):
            record = records.add(arm, seed, {"test/error": 3.0})
            record["config"]["train"].pop("batch_size")
            record |= {"config_hash": "hash-before-knob", "setting_hash": "setting-before-knob"}
            store(records.root, record)
    assert dry_run_lines(capsys, run_args, "sam/ordering") == []


def test_extra_overrides_are_part_of_the_run_identity(capsys, run_args, records):
    for seed in range(3):
        records.add(SAM, seed, {"test/error": 2.7})
    lines = dry_run_lines(capsys, run_args, "sam/value", "hardware=gpu8")
    assert lines == [f"python run.py optimizer=sam hardware=gpu8 seed={s}" for s in range(3)]


OLD = {"commit": "0" * 16, "source_hash": "0" * 16}  # another code version than today's


def test_an_older_arm_reruns_one_seed_as_a_bridge_and_holds_back_the_others(capsys, run_args, records):
    """Runs of two code versions pool only once shown to compute alike, so a launch at today's version runs one seed
    the old version has (the bridge) and the seeds no version has, and holds back the old version's other seeds."""
    for seed in range(2):
        records.add(SAM, seed, {"test/error": 2.7 + seed / 10}, **OLD)
    for seed in range(3):
        records.add(SGD, seed, {"test/error": 3.5})  # today's version, complete
    assert main(["claims", "run", "sam/ordering", "--dry-run", *run_args]) == 0
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if line.startswith("python ")] == [
        "python run.py optimizer=sam seed=0",
        "python run.py optimizer=sam seed=2",
    ]
    assert "sam/ordering arm=sam: seeds 1 held back: an older code version has them" in out


def test_the_bridge_is_a_seed_whose_older_run_had_this_machines_cpu_kernels(capsys, run_args, records):
    """Seed 0's older run came from another CPU (other bits whatever the code); seed 1's from this one."""
    from optrepro.records.provenance import cpu_kernels

    records.add(SAM, 0, {"test/error": 2.7}, **OLD, cpu_kernels="x86_64-other", finished_at="2025-01-02T00:00:00Z")
    records.add(SAM, 1, {"test/error": 2.8}, **OLD, cpu_kernels=cpu_kernels(), finished_at="2025-01-01T00:00:00Z")
    for seed in range(3):
        records.add(SGD, seed, {"test/error": 3.5})
    assert main(["claims", "run", "sam/ordering", "--dry-run", *run_args]) == 0
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if line.startswith("python ")] == [
        "python run.py optimizer=sam seed=1",
        "python run.py optimizer=sam seed=2",
    ]
    assert "sam/ordering arm=sam: seeds 0 held back" in out


@pytest.mark.parametrize(
    ("bridge_error", "launched"),
    [(2.7, [2]), (2.7000000000000006, [1, 2])],
    ids=["same bits: the old seeds pool", "other bits: every seed at today's version"],
)
def test_after_the_bridge_the_old_seeds_pool_only_if_it_computed_the_same_bits(
    capsys, run_args, records, bridge_error, launched
):
    for seed in range(2):
        records.add(SAM, seed, {"test/error": 2.7 + seed / 10}, **OLD)
    records.add(SAM, 0, {"test/error": bridge_error})  # the bridge, at today's version
    for seed in range(3):
        records.add(SGD, seed, {"test/error": 3.5})
    expected = [f"python run.py optimizer=sam seed={s}" for s in launched]
    assert dry_run_lines(capsys, run_args, "sam/ordering") == expected


def test_unknown_claim_is_an_error_listing_the_known_ones(capsys, cli_args):
    assert main(["claims", "run", "sam/nope", "--dry-run", *cli_args]) == 2
    assert "no paper or claim named 'sam/nope'; known: sam, sam/ordering, sam/value" in capsys.readouterr().err


def test_claims_list_filters_by_status(capsys, cli_args, records):
    for seed in range(3):
        records.add(SAM, seed, {"test/error": 2.7})
    assert main(["claims", "list", "--status", "reproduced", *cli_args]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("record stores: ") and "(3 records)" in out[0]
    assert out[2:] == ["sam/value  cpu    value     reproduced"]


def _meet(mine: Path, theirs: Path, wait_s: float = 20) -> list[str]:
    """A command that leaves `mine` and succeeds only if `theirs` appears within `wait_s`: it needs a partner
    running."""
    code = (
        f"import pathlib, sys, time; pathlib.Path({str(mine)!r}).touch(); end = time.time() + {wait_s}\n"
        f"while time.time() < end and not pathlib.Path({str(theirs)!r}).exists(): time.sleep(0.05)\n"
        f"sys.exit(0 if pathlib.Path({str(theirs)!r}).exists() else 1)"
    )
    return [sys.executable, "-c", code]


def test_concurrent_execution_runs_the_commands_side_by_side_and_reports_each_failure(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    failing = [sys.executable, "-c", "raise SystemExit(3)"]
    failed = launch.execute([_meet(a, b), _meet(b, a), failing], cwd=tmp_path, jobs=2)
    assert failed == [launch.show(failing)]


def test_jobs_one_runs_one_command_at_a_time(tmp_path):
    """Two commands that each need the other running: one at a time, neither meets its partner."""
    a, b = tmp_path / "a", tmp_path / "b"
    fast = [_meet(a, b, wait_s=1), _meet(b, a, wait_s=1)]  # (the wait is an argument: a tmp path may hold "20")
    assert len(launch.execute(fast, cwd=tmp_path, jobs=1)) == 1  # the first waits alone; the second finds a


def _planned(seed: int, recipe: str = "optimizer=sam") -> launch.PlannedRun:
    return launch.PlannedRun("sam/c", "sam", seed, (recipe, f"seed={seed}"), recipe)


def test_a_run_another_launch_holds_is_skipped_until_that_launch_ends(tmp_path):
    runs = [_planned(0), _planned(1), _planned(0, "optimizer=sgd")]
    with launch.claimed(runs[:1], tmp_path) as (first, taken):
        assert first == runs[:1] and taken == []
        with launch.claimed(runs, tmp_path) as (second, taken):
            assert second == runs[1:]
            assert len(taken) == 1 and taken[0].startswith("sam/c arm=sam seed=0: already being launched by ")
            assert f"pid {os.getpid()} since " in taken[0]
    with launch.claimed(runs, tmp_path) as (again, taken):  # released when the first launch ended
        assert again == runs and taken == []


def test_claims_run_launches_nothing_that_another_claims_run_is_launching(
    capsys, run_args, records, config_dir, tmp_path, monkeypatch
):
    from optrepro.claims.load import load_all_claims, select_claims
    from optrepro.claims.match import ArmComposer
    from optrepro.records.table import load_records_from

    monkeypatch.setattr(paths, "RUNS_DIR", tmp_path / "runs")
    claims = select_claims(load_all_claims(tmp_path / "reproductions"))
    with ArmComposer(config_dir) as composer:
        runs = launch.plan_missing_runs(claims, load_records_from([records.root]), composer).runs
    assert runs
    with launch.claimed(runs, tmp_path / "runs" / ".launching") as (held, _):
        assert held == runs
        assert main(["claims", "run", "sam", *run_args]) == 0  # would start `python run.py ...` for a run not held
    out = capsys.readouterr().out
    assert "$ " not in out
    assert out.count("already being launched by `claims run` pid") == len(runs)
