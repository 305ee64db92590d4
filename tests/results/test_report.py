"""`results report` writes RESULTS.md, plots and verdicts.json deterministically; `results check` catches flips."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from claimkit import compose_run, launch_version, write_claims

from optrepro.cli import main
from optrepro.regression.regress import BaselineUnavailableError, load_baseline

SAM, SGD = ["optimizer=sam"], ["optimizer=sgd"]
UNRUN_PAPER = """
    paper: saf
    title: "Sharpness-Aware Training for Free"
    citation: "Du et al., NeurIPS 2022"
    claims:
      - id: cost
        source: {where: "Table 3"}
        statement: "SAF costs about what SGD costs per step"
        tier: cpu
        seeds: 2
        metric: test/error
        arms:
          saf: {overrides: [optimizer=sam, optimizer.rho=0.5]}
          sgd: {overrides: [optimizer=sgd]}
        check: {kind: ratio, numerator: saf, denominator: sgd, metric: timing/time_per_step_s, max: 1.1}
    """


def curve(final):
    return [{"epoch": 0, "step": 10, "test/error": final + 2.0}, {"epoch": 1, "step": 20, "test/error": final}]


@pytest.fixture
def workspace(tmp_path, config_dir, records):
    write_claims(tmp_path / "reproductions")
    write_claims(tmp_path / "reproductions", UNRUN_PAPER, paper="saf")
    for seed, error in enumerate([2.6, 2.7, 2.8]):
        records.add(SAM, seed, {"test/error": error}, history=curve(error))
    for seed, error in enumerate([3.4, 3.6]):
        records.add(SGD, seed, {"test/error": error}, history=curve(error))
    paths = {
        "out": tmp_path / "RESULTS.md",
        "plots": tmp_path / "results" / "plots",
        "verdicts": tmp_path / "results" / "verdicts.json",
    }
    args = [
        "--reproductions",
        str(tmp_path / "reproductions"),
        "--records",
        str(records.root),
        "--out",
        str(paths["out"]),
        "--plots",
        str(paths["plots"]),
        "--verdicts",
        str(paths["verdicts"]),
    ]
    return paths, args


def snapshot(paths):
    files = [paths["out"], paths["verdicts"], *sorted(paths["plots"].rglob("*.png"))]
    return {str(f): f.read_bytes() for f in files}


def test_report_is_byte_for_byte_reproducible(workspace):
    paths, args = workspace
    assert main(["results", "report", *args]) == 0
    first = snapshot(paths)
    assert main(["results", "report", *args]) == 0
    assert snapshot(paths) == first
    assert len(first) == 2 + 4  # RESULTS.md, verdicts.json, and per run claim a comparison and a curves plot


def test_results_md_tables_and_plots(workspace, config_dir):
    paths, args = workspace
    version = launch_version(compose_run(config_dir, SAM))[:8]  # the records' code version (claimkit default)
    main(["results", "report", *args])
    text = paths["out"].read_text()
    assert "**2 reproduced · 0 inconclusive · 0 not reproduced · 1 not run** (3 claims)" in text
    assert (
        "| `ordering` | Table 1, p. 6 | cpu | test/error (error, %) | sam: “2.7±0.1”<br>sgd: “3.5±0.1” | "
        f"sam: 2.7 ± 0.1 (n=3)<br>sgd: 3.5 ± 0.1414 (n=2) | cpu ×1, 32-true; code {version} (git c0ffee00) | "
        "**reproduced (2/3 seeds)** |" in text
    )
    assert (
        "| `cost` | Table 3 | cpu | timing/time_per_step_s (time, s/step) | saf/sgd ≤ 1.1 | — | — | **not run** |"
        in text
    )
    assert "| paper | tier | reproduced | inconclusive | not reproduced | not run |" in text  # the overview
    assert "| [sam](#sam-sharpness-aware-minimization) | cpu | 2 |  |  |  |" in text
    assert "\n## sam: Sharpness-Aware Minimization\n" in text
    assert "code commits c0ffee00, 1 in all" in text and "from the 5 run record(s)" in text
    assert "![sam/ordering: ordering](results/plots/sam/ordering.png)" in text
    assert "![sam/ordering: ordering_curves](results/plots/sam/ordering_curves.png)" in text
    assert not (paths["plots"] / "saf").exists()
    verdicts = json.loads(paths["verdicts"].read_text())["claims"]
    assert verdicts["sam/ordering"]["arms"]["sgd"]["run_ids"] == ["run004", "run005"]
    assert verdicts["saf/cost"]["status"] == "not run"


def test_stale_plots_are_removed(workspace):
    paths, args = workspace
    stale = paths["plots"] / "sam" / "removed_claim.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    main(["results", "report", *args])
    assert not stale.exists()


def test_check_passes_when_nothing_regressed(workspace, tmp_path, capsys):
    paths, args = workspace
    main(["results", "report", *args])
    baseline = shutil.copy(paths["verdicts"], tmp_path / "baseline.json")
    assert main(["results", "check", "--baseline", str(baseline), *args]) == 0
    assert "no claim regressed" in capsys.readouterr().out


def test_check_fails_naming_the_claim_and_the_old_and_new_numbers(workspace, records, tmp_path, capsys):
    paths, args = workspace
    main(["results", "report", *args])
    baseline = shutil.copy(paths["verdicts"], tmp_path / "baseline.json")
    for seed, error in enumerate([3.8, 3.9, 4.0]):  # a newer code version makes SAM worse than the paper says
        records.add(SAM, seed, {"test/error": error}, commit="badc0de000", finished_at="2025-06-01T00:00:00Z")
    assert main(["results", "check", "--baseline", str(baseline), *args]) == 1
    err = capsys.readouterr().err
    assert "REGRESSION sam/value: was reproduced: 2.7 ± 0.2484 (sam 2.7 ± 0.1 n=3)" in err
    assert "now not reproduced: 3.9 ± 0.2484 (sam 3.9 ± 0.1 n=3)" in err
    assert "REGRESSION sam/ordering: was reproduced" in err
    assert "2 claim(s) that held" in err


def test_baseline_from_git_revision(tmp_path):
    repo = tmp_path / "repo"
    verdicts = repo / "results" / "verdicts.json"
    verdicts.parent.mkdir(parents=True)
    verdicts.write_text('{"claims": {"p/c": {"status": "reproduced"}}}')
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "verdicts"], check=True)
    verdicts.write_text('{"claims": {}}')  # uncommitted edits are not the baseline
    assert load_baseline("HEAD", verdicts, repo)["claims"] == {"p/c": {"status": "reproduced"}}
    with pytest.raises(BaselineUnavailableError, match="--baseline <file or git revision>"):
        load_baseline("no-such-rev", verdicts, repo)


def test_a_plot_is_redrawn_only_when_what_it_shows_changes(workspace, records):
    paths, args = workspace
    main(["results", "report", *args])
    value_plot, curves = paths["plots"] / "sam" / "value.png", paths["plots"] / "saf"
    first = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in paths["plots"].rglob("*.png")}
    records.add(SGD, 2, {"test/error": 3.5}, history=curve(3.5))  # changes the ordering claim only
    main(["results", "report", *args])
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in paths["plots"].rglob("*.png")}
    assert after[value_plot] == first[value_plot], "unchanged inputs: the PNG is kept, not redrawn"
    ordering = paths["plots"] / "sam" / "ordering.png"
    assert after[ordering][0] != first[ordering][0], "sgd gained a seed: the ordering plot is redrawn"
    assert not curves.exists()


def test_a_store_without_records_is_not_named(workspace, tmp_path):
    """A runs/ holding only Hydra's logs gives no record: RESULTS.md is the same with it as without it."""
    paths, args = workspace
    assert main(["results", "report", *args]) == 0
    without = paths["out"].read_text()
    empty = tmp_path / "runs"
    (empty / "hydra").mkdir(parents=True)
    assert main(["results", "report", *args, "--records", str(empty)]) == 0
    assert paths["out"].read_text() == without
