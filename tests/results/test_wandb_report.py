"""The W&B comparison: local HTML and publish instructions offline; the report object online (not saved)."""

from __future__ import annotations

import textwrap

import pytest
from claimkit import SAM_CLAIMS

from optrepro.claims.schema import parse_claims_text
from optrepro.records.table import load_records
from optrepro.results import wandb_report
from optrepro.results.report import evaluate_papers

SAM, SGD = ["optimizer=sam"], ["optimizer=sgd"]


@pytest.fixture
def evaluated(records, composer):
    for seed in range(2):
        offline = {"run_id": f"ws{seed}", "mode": "offline", "dir": f"/runs/s{seed}/wandb"}
        records.add(SAM, seed, {"test/error": 2.7}, wandb=offline)
        records.add(SGD, seed, {"test/error": 3.5}, wandb={"run_id": f"wg{seed}", "mode": "online", "dir": "/runs/g"})
    table = load_records(records.root)
    paper = parse_claims_text(textwrap.dedent(SAM_CLAIMS).lstrip(), "claims.yaml")
    return evaluate_papers([paper], table, composer), table


def test_local_comparison_lists_each_arms_wandb_runs(evaluated, tmp_path):
    results, table = evaluated
    plot = tmp_path / "plots" / "sam" / "ordering.png"
    plot.parent.mkdir(parents=True)
    plot.write_bytes(b"png")
    page = wandb_report.write_local_comparison(results[0], table, {"sam/ordering": [plot]}, tmp_path / "wandb" / "sam.html")
    html = page.read_text()
    assert "<b>sam</b>: 2.7 ± 0 (n=2); W&amp;B runs: ws0, ws1" in html
    assert "<b>sgd</b>: 3.5 ± 0 (n=2); W&amp;B runs: wg0, wg1" in html
    assert "<img src='../plots/sam/ordering.png'" in html


def test_publish_instructions_sync_only_offline_runs(evaluated):
    results, table = evaluated
    dirs = wandb_report.offline_run_dirs(results, table)
    assert dirs == ["/runs/s0/wandb", "/runs/s1/wandb"]
    text = wandb_report.publish_instructions(dirs, "me", "optrepro")
    assert "wandb sync /runs/s0/wandb /runs/s1/wandb" in text
    assert "python -m optrepro results wandb --online --entity me --project optrepro" in text


def test_online_report_has_one_runset_per_arm_with_the_verdicts_runs(evaluated):
    pytest.importorskip("wandb_workspaces")
    results, table = evaluated
    report = wandb_report.build_online_report(results[0], table, "me", "optrepro")
    grids = [block for block in report.blocks if hasattr(block, "runsets")]
    ordering = grids[0]
    assert [(r.name, r.filters) for r in ordering.runsets] == [
        ("sam", "Metric('ID') in ['ws0', 'ws1']"), ("sgd", "Metric('ID') in ['wg0', 'wg1']"),
    ]
