"""A claim on a landscape metric says "not measured" (and how to measure) instead of counting failed seeds."""

from __future__ import annotations

import textwrap

from claimkit import SAM_CLAIMS

from optrepro.claims.schema import parse_claims_text
from optrepro.records.table import load_records
from optrepro.results.report import evaluate_papers

SAM, SGD = ["optimizer=sam"], ["optimizer=sgd"]
EIG = "landscape/hessian_max_eig"
CLAIMS = SAM_CLAIMS.replace("metric: test/error", f"metric: {EIG}")


def ordering_verdict(records):
    paper = parse_claims_text(textwrap.dedent(CLAIMS).lstrip(), "claims.yaml")
    [result] = evaluate_papers([paper], load_records(records.root))
    return {v.claim.id: v for v in result.verdicts}["ordering"]


def test_no_run_measured_names_the_landscape_command(records):
    for seed in range(3):
        records.add(SAM, seed, {"test/error": 2.7})
        records.add(SGD, seed, {"test/error": 3.5})
    verdict = ordering_verdict(records)
    assert verdict.label == "not run"
    assert "not measured: run `python -m optrepro landscape" in verdict.detail


def test_some_runs_unmeasured_are_listed_not_counted_as_failed_seeds(records):
    for seed in range(3):
        records.add(SAM, seed, {EIG: 10.0 + seed})
        records.add(SGD, seed, {EIG: 20.0 + seed} if seed else {"test/error": 3.5})
    verdict = ordering_verdict(records)
    assert verdict.label == "not run"
    assert "not measured for 1 finished run(s) (run002)" in verdict.detail


def test_all_runs_measured_gives_a_verdict(records):
    for seed in range(3):
        records.add(SAM, seed, {EIG: 10.0 + seed})
        records.add(SGD, seed, {EIG: 20.0 + seed})
    assert ordering_verdict(records).label == "reproduced"
