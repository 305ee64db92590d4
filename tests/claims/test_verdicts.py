"""Each verdict from hand-made records: the choice of runs (hardware, code version, pending versions, failed runs,
repeated seeds) and the verdict it leads to. The decision rule itself: test_decision_rule.py."""

from __future__ import annotations

import textwrap

import pytest
from claimkit import SAM_CLAIMS

from optrepro.claims.explain import explanation
from optrepro.claims.schema import parse_claims_text
from optrepro.records.table import load_records
from optrepro.results.report import evaluate_papers

SAM, SGD, GPU = ["optimizer=sam"], ["optimizer=sgd"], ["hardware=gpu8"]
OLD = {"commit": "0ld0000000", "finished_at": "2025-01-01T00:00:00Z"}
NEW = {"commit": "9e90000000", "finished_at": "2025-02-01T00:00:00Z"}
NAN = float("nan")
DIVERGED = "diverged"  # a seed whose record has status `diverged` (its metric value is finite)


def verdicts(records, text=SAM_CLAIMS):
    paper = parse_claims_text(textwrap.dedent(text).lstrip(), "claims.yaml")
    [result] = evaluate_papers([paper], load_records(records.root))
    return {v.claim.id: v for v in result.verdicts}


def add_runs(records, overrides, values, **fields):
    for seed, value in enumerate(values):
        if value == DIVERGED:
            records.add(overrides, seed, {"test/error": 1.0}, status=DIVERGED, **fields)
        else:
            records.add(overrides, seed, {"test/error": value}, **fields)


# (name, runs: [(overrides, values per seed 0.., extra record fields)], claim id, expected label, words in detail/notes)
CASES = [
    (
        "reproduced",
        [(SAM, [2.6, 2.7, 2.8], {}), (SGD, [3.4, 3.5, 3.7], {})],
        "ordering",
        "reproduced",
        ["sam beats sgd by 0.8", "95% CI", "decided by: paired t over 3 seeds"],
    ),
    (
        "not reproduced",
        [(SAM, [3.6, 3.7, 3.8], {}), (SGD, [3.4, 3.45, 3.6], {})],
        "ordering",
        "not reproduced",
        ["sam does not beat sgd by -0.2"],
    ),
    ("not run", [], "ordering", "not run", ["no runs of arm(s) sam, sgd", "missing seeds: sam [0, 1, 2]"]),
    ("missing arm", [(SAM, [2.6, 2.7, 2.8], {})], "ordering", "not run", ["no runs of arm(s) sgd"]),
    (
        "one seed only",
        [(SAM, [2.7], {}), (SGD, [3.5], {})],
        "ordering",
        "inconclusive (1/3 seeds)",
        ["95% CI undefined", "no CI (one seed so far)", "missing seeds: sam [1, 2]; sgd [1, 2]"],
    ),
    (
        "NaN metric of the method",
        [(SAM, [2.6, NAN, 2.8], {}), (SGD, [3.4, 3.5, 3.6], {})],
        "ordering",
        "not reproduced",
        ["sam diverged (or gave a non-finite test/error) on seed(s) 1 of 3"],
    ),
    (
        "diverged method run",
        [(SAM, [2.6, 2.7, DIVERGED], {}), (SGD, [3.4, 3.5, 3.6], {})],
        "ordering",
        "not reproduced",
        ["on seed(s) 2 of 3"],
    ),
    (
        "NaN metric of the baseline",
        [(SAM, [2.6, 2.7, 2.8], {}), (SGD, [3.4, NAN, 3.7], {})],
        "ordering",
        "reproduced",
        ["sgd: seed(s) 1 diverged; left out of its statistics", "paired t over 2 seeds"],
    ),
    (
        "newest of two complete code versions",
        [(SAM, [3.9, 3.9, 3.9], OLD), (SAM, [2.6, 2.7, 2.8], NEW), (SGD, [3.4, 3.5, 3.6], OLD)],
        "ordering",
        "reproduced",
        [
            "not used: run001 (sam, seed 0): other code version 0ld00000 (older than 9e900000)",
            "used for sam (code 9e900000): run004 (seed 0), run005 (seed 1), run006 (seed 2)",
        ],
    ),
    (
        "a source change splits an arm even within one commit (uncommitted edits)",
        [
            (SAM, [3.9, 3.9, 3.9], {"source_hash": "1" * 16, "finished_at": "2025-01-01T00:00:00Z"}),
            (SAM, [2.6, 2.7, 2.8], {"source_hash": "2" * 16, "finished_at": "2025-02-01T00:00:00Z"}),
            (SGD, [3.4, 3.5, 3.6], {}),
        ],
        "ordering",
        "reproduced",
        ["other code version 11111111 (older than 22222222)"],
    ),
    (
        "newest code version can break a claim",
        [(SAM, [3.9, 3.9, 3.9], NEW), (SAM, [2.6, 2.7, 2.8], OLD), (SGD, [3.4, 3.5, 3.6], OLD)],
        "ordering",
        "not reproduced",
        ["used for sam (code 9e900000)"],
    ),
    (
        "a pending newer version does not replace a complete older one",
        [(SAM, [2.6, 2.7, 2.8], OLD), (SAM, [3.9], NEW), (SGD, [3.4, 3.5, 3.6], OLD)],
        "ordering",
        "reproduced",
        [
            "pending: sam: code version 9e900000 has 1 of 3 seeds (pending; the complete "
            "0ld00000 is used until it has all)",
            "not used: run004 (sam, seed 0): other code version 9e900000 (pending: 1 of 3 seeds)",
        ],
    ),
    (
        "with no complete version the newest is used",
        [(SAM, [2.6, 2.7], OLD), (SAM, [2.65], NEW), (SGD, [3.4, 3.5, 3.6], OLD)],
        "ordering",
        "inconclusive (1/3 seeds)",
        ["used for sam (code 9e900000): run003 (seed 0)", "missing seeds: sam [1, 2]"],
    ),
    (
        "mixed hardware is split, tier cpu uses the cpu runs",
        [
            (SAM, [2.6, 2.7, 2.8], {}),
            (SGD, [3.4, 3.5, 3.6], {}),
            (SAM + GPU, [4.0, 4.0, 4.0], {}),
            (SGD + GPU, [3.0, 3.0, 3.0], {}),
        ],
        "ordering",
        "reproduced",
        [
            "mixed hardware, not pooled; used cpu ×1, 32-true",
            "x86_64 ×8, bf16-mixed: sam 3 seed(s), sgd 3 seed(s)",
            "not used: run007 (sam, seed 0): other hardware (x86_64 ×8, bf16-mixed; used cpu",
        ],
    ),
    (
        "arms on different hardware are not compared",
        [(SAM + GPU, [2.6, 2.7, 2.8], {}), (SGD, [3.4, 3.5, 3.6], {})],
        "ordering",
        "not run",
        ["no hardware class has runs of every arm"],
    ),
    ("value within tolerance", [(SAM, [2.8, 2.9, 3.0], {})], "value", "reproduced", ["off by 0.2, tolerance 0.3"]),
    (
        "value outside tolerance, CI reaching into it",
        [(SAM, [3.0, 3.1, 3.2], {})],
        "value",
        "inconclusive",
        ["off by 0.4", "needs about"],
    ),
    (
        "value outside tolerance, CI excluding it",
        [(SAM, [3.5, 3.6, 3.7], {})],
        "value",
        "not reproduced",
        ["off by 0.9"],
    ),
    (
        "failed runs are not results",
        [(SAM, [2.6, 2.7, 2.8], {"status": "failed"})],
        "value",
        "not run",
        ["not used: run001 (sam, seed 0): failed: not a result (relaunch it)"],
    ),
    (
        "a seed outside the claim's range is not used",
        [(SAM, [2.6, 2.7, 2.8, 9.9], {})],
        "value",
        "reproduced",
        ["not used: run004 (sam, seed 3): seed 3 out of range (the claim uses seeds 0..2)"],
    ),
]


@pytest.mark.parametrize("name, runs, claim_id, label, words", CASES, ids=[c[0] for c in CASES])
def test_verdict(records, name, runs, claim_id, label, words):
    for overrides, values, fields in runs:
        add_runs(records, overrides, values, **fields)
    verdict = verdicts(records)[claim_id]
    assert verdict.label == label
    explained = " | ".join(explanation(verdict))
    for word in words:
        assert word in explained


def test_a_pilot_seed_is_shown_as_a_pilot_and_never_counted(records):
    add_runs(records, SAM, [2.8, 2.9, 3.0])
    records.add(SAM, 100, {"test/error": 9.9})  # the pilot a tolerance was chosen from
    verdict = verdicts(records)["value"]
    assert verdict.arms["sam"].stats.n == 3 and verdict.status == "reproduced"
    assert any("pilot (seed 100 >= 100): shown, never evidence" in line for line in explanation(verdict))


def test_a_docs_only_commit_between_seeds_does_not_split_an_arm(records):
    """Seeds 0-1 and seed 2 ran at different commits with the same source hash: one code version, n = 3."""
    add_runs(records, SAM, [2.6, 2.7], commit="a" * 16, source_hash="5" * 16, finished_at="2025-01-01T00:00:00Z")
    records.add(SAM, 2, {"test/error": 2.8}, commit="b" * 16, source_hash="5" * 16, finished_at="2025-01-02T00:00:00Z")
    add_runs(records, SGD, [3.4, 3.5, 3.6])
    verdict = verdicts(records)["ordering"]
    assert verdict.arms["sam"].stats.n == 3
    assert not verdict.unused and not verdict.pending


V1, V2, V3 = ({"commit": c * 16, "finished_at": f"2025-0{i}-01T00:00:00Z"} for i, c in enumerate("abc", 1))


@pytest.mark.parametrize(
    ("runs", "n", "versions"),
    [
        # seed 0 re-run at V2 with the same outcome to the bit: V1's seeds 1-2 pool with it
        ([(0, 2.6, V1), (1, 2.7, V1), (2, 2.8, V1), (0, 2.6, V2)], 3, ("bbbbbbbb", "aaaaaaaa")),
        # the re-run differs in the last bit: V2 computes otherwise and is pending with 1 of 3 seeds
        ([(0, 2.6, V1), (1, 2.7, V1), (2, 2.8, V1), (0, 2.6000000000000005, V2)], 3, ("aaaaaaaa",)),
        # whole numbers can coincide without the same computation: no pooling
        ([(0, 2.0, V1), (1, 3.0, V1), (0, 2.0, V2), (2, 4.0, V2)], 2, ("bbbbbbbb",)),
        # joined transitively: V1 = V2 on seed 0, V2 = V3 on seed 1
        ([(0, 2.6, V1), (0, 2.6, V2), (1, 2.7, V2), (1, 2.7, V3), (2, 2.8, V3)], 3, ("cccccccc", "bbbbbbbb")),
    ],
    ids=["same bits pool", "other bits do not", "whole numbers do not", "transitive"],
)
def test_code_versions_pool_only_when_a_rerun_seed_shows_they_compute_alike(records, runs, n, versions):
    for seed, value, version in runs:
        records.add(SAM, seed, {"test/error": value}, **version)
    add_runs(records, SGD, [3.4, 3.5, 3.6])
    verdict = verdicts(records)["ordering"]
    sample = verdict.arms["sam"].sample
    assert sample.n_runs == n and tuple(v[:8] for v in sample.versions) == versions
    pooled = [note for note in verdict.notes if "compute alike" in note]
    assert bool(pooled) == (len(versions) > 1)


def test_verdict_names_the_runs_it_used(records):
    add_runs(records, SAM, [2.6, 2.7, 2.8])
    add_runs(records, SAM + GPU, [9.0])
    verdict = verdicts(records)["value"]
    assert verdict.arms["sam"].sample.run_ids == ("run001", "run002", "run003")
    assert verdict.to_json()["arms"]["sam"]["run_ids"] == ["run001", "run002", "run003"]
    assert verdict.hardware.label() == "cpu ×1, 32-true"


BATCH_SIZE_CLAIM = """
    paper: loss_landscape
    title: t
    citation: c
    claims:
      - id: small_batch
        source: {where: "Table 1"}
        statement: "a small batch ends lower"
        tier: cpu
        seeds: 3
        metric: test/error
        arms:
          small: {overrides: [train.batch_size=32]}
          large: {overrides: [train.batch_size=1024]}
        check: {kind: ordering, better: small, than: large, direction: lower}
    """


def test_arms_that_differ_in_batch_size_are_compared_on_the_same_hardware(records):
    add_runs(records, ["train.batch_size=32"], [2.6, 2.7, 2.8])
    add_runs(records, ["train.batch_size=1024"], [3.4, 3.5, 3.6])
    verdict = verdicts(records, BATCH_SIZE_CLAIM)["small_batch"]
    assert verdict.status == "reproduced"
    assert verdict.hardware.label() == "cpu ×1, 32-true"


def test_a_repeated_seed_counts_once_using_the_latest_run(records):
    add_runs(records, SAM, [2.6, 2.7, 2.8], finished_at="2025-01-01T00:00:00Z")
    records.add(SAM, 0, {"test/error": 2.9}, finished_at="2025-03-01T00:00:00Z")
    verdict = verdicts(records)["value"]
    assert verdict.arms["sam"].stats.n == 3
    assert verdict.arms["sam"].stats.mean == pytest.approx((2.9 + 2.7 + 2.8) / 3)


RATIO_AND_BOUND = """
    paper: saf
    title: t
    citation: c
    claims:
      - id: ratio
        source: {where: "Table 3"}
        statement: "SAF costs about as much as SGD per step"
        tier: cpu
        seeds: 2
        metric: test/error
        arms:
          saf: {overrides: [optimizer=sam]}
          sgd: {overrides: [optimizer=sgd]}
        check: {kind: ratio, numerator: saf, denominator: sgd, metric: timing/time_per_step_s, max: 1.1}
      - id: bound
        source: {where: "Fig. 2"}
        statement: "error stays under 3"
        tier: cpu
        seeds: 2
        metric: test/error
        arms:
          saf: {overrides: [optimizer=sam]}
        check: {kind: bound, arm: saf, max: 3.0}
    """


@pytest.mark.parametrize(
    "saf_time, saf_error, ratio_label, bound_label",
    [
        (0.105, 2.5, "reproduced", "reproduced"),
        (0.2, 3.5, "not reproduced", "not reproduced"),
    ],
)
def test_ratio_and_bound_checks(records, saf_time, saf_error, ratio_label, bound_label):
    for seed in range(2):
        records.add(SAM, seed, {"test/error": saf_error}, timing={"time_per_step_s": saf_time})
        records.add(SGD, seed, {"test/error": 3.5}, timing={"time_per_step_s": 0.1})
    found = verdicts(records, RATIO_AND_BOUND)
    assert found["ratio"].label == ratio_label
    assert found["ratio"].observed == pytest.approx(saf_time / 0.1)
    assert found["bound"].label == bound_label
    assert found["ratio"].low == found["ratio"].high == pytest.approx(saf_time / 0.1), "equal seeds: a zero-width CI"


TO_DECIDE = SAM_CLAIMS.replace(
    '        reported: {sam: "2.7±0.1", sgd: "3.5±0.1"}',
    '        reported: {sam: "2.7±0.1", sgd: "3.5±0.1"}\n        to_decide: "about 40 seeds per arm"',
)


@pytest.mark.parametrize(
    ("sgd", "shown"), [([2.0, 3.0, 4.0], True), ([3.4, 3.5, 3.6], False)], ids=["inconclusive", "reproduced"]
)
def test_what_would_decide_a_claim_is_shown_under_an_inconclusive_verdict_only(records, sgd, shown):
    add_runs(records, SAM, [2.6, 2.7, 2.8])
    add_runs(records, SGD, sgd)
    verdict = verdicts(records, TO_DECIDE)["ordering"]
    assert verdict.status == ("inconclusive" if shown else "reproduced")
    assert ("to decide: about 40 seeds per arm" in explanation(verdict)) == shown
