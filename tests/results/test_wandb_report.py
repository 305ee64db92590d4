"""The W&B comparison: local HTML and publish instructions offline; the report object online (not saved)."""

from __future__ import annotations

import dataclasses
import subprocess
import textwrap

import pytest
from claimkit import SAM_CLAIMS

from optrepro.claims.schema import Reported, parse_claims_text
from optrepro.paths import REPO_ROOT
from optrepro.records.table import load_records
from optrepro.results import wandb_report
from optrepro.results.report import evaluate_papers, reported_text

SAM, SGD = ["optimizer=sam"], ["optimizer=sgd"]


@pytest.fixture
def evaluated(records):
    for seed in range(2):
        offline = {
            "run_id": f"ws{seed}",
            "mode": "offline",
            "dir": f"wandb/offline-run-20261202_0000{seed}-ws{seed}",
            "name": f"sam/sam/s{seed}",
            "group": "tiny",
        }
        records.add(SAM, seed, {"test/error": 2.7}, wandb=offline)
        records.add(
            SGD,
            seed,
            {"test/error": 3.5 + 0.1 * seed},  # seeds that vary: arms constant on every seed
            wandb={"run_id": f"wg{seed}", "mode": "online", "dir": "wandb/x"},
        )  # give no CI (checks.py)
    table = load_records(records.root)
    paper = parse_claims_text(textwrap.dedent(SAM_CLAIMS).lstrip(), "claims.yaml")
    return evaluate_papers([paper], table), table


def test_local_comparison_shows_units_spreads_the_ci_and_runs_by_name(evaluated, tmp_path):
    results, table = evaluated
    plot = tmp_path / "plots" / "sam" / "ordering.png"
    plot.parent.mkdir(parents=True)
    plot.write_bytes(b"png")
    page = wandb_report.write_local_comparison(
        results[0], table, {"sam/ordering": [plot]}, tmp_path / "wandb" / "sam.html", publish="To publish: step 1 & 2"
    )
    html = page.read_text()
    assert "<th>ours: test/error (error, %)</th>" in html
    assert (
        "<tr><td><b>sam</b></td><td>2.7 ± 0 (mean ± SD over 2 seeds)</td><td>“2.7±0.1”</td>"
        "<td><code>sam/sam/s0</code><code>sam/sam/s1</code></td></tr>"
    ) in html
    # runs without a W&B name are named as W&B would name them, never by their id
    assert "<td><code>sgd/s0</code><code>sgd/s1</code></td></tr>" in html
    assert "wg0" not in html and "ws0" not in html
    assert "decided on 0.85, 95% CI [0.2147, 1.485] (paired t over 2 seeds" in html  # what the verdict rests on
    assert "<img src='../plots/sam/ordering.png'" in html
    assert "<pre>To publish: step 1 &amp; 2</pre>" in html and "<style>" in html
    assert str(tmp_path) not in html, "no path of this machine on the page"


def test_a_paper_number_in_another_unit_is_shown_in_ours_too():
    number = Reported(value=93.4, quantity="accuracy", unit="percent", source="paper", where="Table 4, p. 7")
    assert reported_text(number, "test/acc") == "93.4 % accuracy [paper, Table 4, p. 7] = 0.934 in test/acc"
    assert reported_text(number, "test/error") == "93.4 % accuracy [paper, Table 4, p. 7] = 6.6 in test/error"
    same = Reported(value=2.7, quantity="error", unit="percent", source="paper")
    assert reported_text(same, "test/error") == "2.7 % error [paper]"


def test_claims_not_run_come_after_those_with_results(evaluated):
    results, _ = evaluated
    first, second = results[0].verdicts
    not_run = dataclasses.replace(first, status="not run")
    assert wandb_report.page_order([not_run, second]) == [second, not_run]


def test_index_links_every_paper_page_with_its_verdict_counts(evaluated, tmp_path):
    results, _ = evaluated
    index = wandb_report.write_index(results, tmp_path).read_text()
    assert "<a href='sam.html'>sam</a>" in index
    assert [v.status for v in results[0].verdicts] == ["reproduced", "reproduced"]
    assert "<td>Sharpness-Aware Minimization</td><td>2 reproduced</td>" in index


def test_publish_lists_only_offline_runs_whose_folder_exists(evaluated):
    results, table = evaluated
    assert wandb_report.offline_run_ids(results, table) == []  # records without their W&B folders
    ws0 = table[table["wandb_run_id"] == "ws0"].iloc[0]
    (REPO_ROOT / ws0.record_path).parent.joinpath(ws0.wandb_dir).mkdir(parents=True)
    ids = wandb_report.offline_run_ids(results, table)
    assert ids == ["ws0"]
    text = wandb_report.publish_instructions(ids, "me", "optrepro")
    assert "    wandb sync --entity me --project optrepro */*/*/wandb/offline-run-*-ws0\n" in text
    assert "python -m optrepro results wandb --online --entity me --project optrepro" in text
    assert wandb_report.sync_pattern(["ws0", "ws1"]) == "*/*/*/wandb/offline-run-*-{ws0,ws1}"
    assert "No offline W&B run folder" in wandb_report.publish_instructions([], None, None)


def test_the_sync_pattern_finds_the_run_folders_under_a_runs_folder(tmp_path):
    for run_id in ("ws0", "ws1", "other"):
        (tmp_path / "2026-12-02" / "sam" / f"local_{run_id}" / "wandb" / f"offline-run-20261202_000000-{run_id}").mkdir(
            parents=True
        )
    pattern = wandb_report.sync_pattern(["ws0", "ws1"])
    found = subprocess.run(["bash", "-c", f"printf '%s\\n' {pattern}"], cwd=tmp_path, capture_output=True, text=True)
    assert found.stdout.splitlines() == [
        "2026-12-02/sam/local_ws0/wandb/offline-run-20261202_000000-ws0",
        "2026-12-02/sam/local_ws1/wandb/offline-run-20261202_000000-ws1",
    ]


def test_online_report_has_one_runset_per_arm_with_the_verdicts_runs(evaluated):
    pytest.importorskip("wandb_workspaces")
    results, table = evaluated
    report = wandb_report.build_online_report(results[0], table, "me", "optrepro")
    grids = [block for block in report.blocks if hasattr(block, "runsets")]
    ordering = grids[0]
    assert [(r.name, r.filters) for r in ordering.runsets] == [
        ("sam", "Metric('ID') in ['ws0', 'ws1']"),
        ("sgd", "Metric('ID') in ['wg0', 'wg1']"),
    ]
    assert (report.entity, report.project, report.title) == ("me", "optrepro", "sam: claims, arm by arm")
    headings = [block.text for block in report.blocks if type(block).__name__ == "H2"]
    assert headings == ["sam/ordering: reproduced (2/3 seeds)", "sam/value: reproduced (2/3 seeds)"]
    panels = [(type(panel).__name__, panel.title) for panel in ordering.panels]
    assert panels == [("BarPlot", "test/error"), ("LinePlot", "test/error")]
    assert [r.name for r in grids[1].runsets] == ["sam"]  # the value claim has one arm
