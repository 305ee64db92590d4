"""End to end on real small runs: claims run -> records -> collect -> report -> check, and resuming launches nothing."""

from __future__ import annotations

import json

import pytest
from claimkit import write_claims

from optrepro.cli import main
from optrepro.paths import CONFIG_DIR

SMOKE_CLAIMS = """
    paper: smoke
    title: "Smoke"
    citation: "optrepro CI"
    claims:
      - id: sam_runs
        source: {where: "n/a"}
        statement: "SAM and SGD train end to end on synthetic data"
        tier: smoke
        seeds: 1
        metric: test/error
        setting: [debug=smoke, logger=csv, train.checkpoint=false, train.batch_size=32, dataset=synthetic,
                  model=small_cnn, model.width=8]
        arms:
          sam: {overrides: [optimizer=sam]}
          sgd: {overrides: [optimizer=sgd]}
        check: {kind: bound, arm: sam, max: 100.0}
    """


@pytest.mark.slow
def test_claim_from_real_runs(tmp_path, capsys):
    write_claims(tmp_path / "reproductions", SMOKE_CLAIMS, paper="smoke")
    runs, store = tmp_path / "runs", tmp_path / "results" / "records"
    claims = [
        "--reproductions",
        str(tmp_path / "reproductions"),
        "--config-dir",
        str(CONFIG_DIR),
        "--records",
        str(runs),
    ]
    assert main(["claims", "run", "smoke", f"paths.runs_dir={runs}", *claims]) == 0
    assert len(list(runs.rglob("record.json"))) == 2
    capsys.readouterr()
    assert main(["claims", "run", "smoke", f"paths.runs_dir={runs}", "--dry-run", *claims]) == 0
    assert "0 run(s) missing" in capsys.readouterr().out

    assert main(["results", "collect", str(runs), "--table", str(tmp_path / "t.parquet"), "--into", str(store)]) == 0
    report = [
        "--reproductions",
        str(tmp_path / "reproductions"),
        "--records",
        str(store),
        "--out",
        str(tmp_path / "RESULTS.md"),
        "--plots",
        str(tmp_path / "results" / "plots"),
        "--verdicts",
        str(tmp_path / "results" / "verdicts.json"),
    ]
    assert main(["results", "report", *report]) == 0
    verdict = json.loads((tmp_path / "results" / "verdicts.json").read_text())["claims"]["smoke/sam_runs"]
    assert verdict["status"] == "reproduced" and verdict["arms"]["sam"]["n"] == 1
    assert main(["results", "check", "--baseline", str(tmp_path / "results" / "verdicts.json"), *report]) == 0
