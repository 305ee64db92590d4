"""Claims files: a valid file parses; each kind of mistake is reported with its line, field and allowed values."""

from __future__ import annotations

import textwrap

import pytest
from claimkit import SAM_CLAIMS

from optrepro.claims.schema import (
    ClaimsFileError,
    OrderingCheck,
    ValueCheck,
    parse_claims_text,
)

VALID_CLAIM = """
paper: sam
title: t
citation: c
claims:
  - id: c1
    source: {where: "Table 1", page: 6}
    statement: s
    tier: cpu
    seeds: 3
    metric: test/error
    arms:
      sam: {overrides: [optimizer=sam]}
      sgd: {overrides: [optimizer=sgd]}
    check:
      kind: ordering
      better: sam
      than: sgd
      direction: lower
"""


def parse(text: str, expected_paper: str | None = None):
    return parse_claims_text(textwrap.dedent(text).lstrip(), "claims.yaml", expected_paper=expected_paper)


def test_cpu_cost_is_read_and_optional():
    assert parse(VALID_CLAIM).cpu_cost == ""
    assert parse(VALID_CLAIM.replace("citation: c", "citation: c\ncpu_cost: why", 1)).cpu_cost == "why"


def test_valid_file_builds_claims():
    paper = parse(SAM_CLAIMS)
    ordering, value = paper.claims
    assert ordering.key == "sam/ordering"
    assert ordering.check == OrderingCheck(better="sam", than="sgd", direction="lower", min_difference=0.0)
    assert ordering.arm_overrides("sam") == ["optimizer=sam"]
    assert ordering.seed_values == (0, 1, 2)
    assert ordering.reported == {"sam": "2.7±0.1", "sgd": "3.5±0.1"}
    assert isinstance(value.check, ValueCheck) and value.check.tolerance == 0.3
    assert value.metric_source == "final"


# (replace this text of VALID_CLAIM, with this, expected line, field, words in the problem, words in allowed)
SCHEMA_ERRORS = [
    ("kind: ordering", "kind: ordre", 15, "claims[0].check.kind", "'ordre'", "value, ordering, ratio, bound"),
    ("tier: cpu", "tier: gpu", 8, "claims[0].tier", "'gpu'", "full, cpu, smoke"),
    ("    statement: s\n", "", 5, "claims[0].statement", "missing required field", "statement"),
    ("than: sgd", "than: adam", 17, "claims[0].check.than", "arm 'adam' is not defined", "sam, sgd"),
    ("seeds: 3", "seeds: three", 9, "claims[0].seeds", "'three'", "an integer"),
    ("seeds: 3", "seeds: 0", 9, "claims[0].seeds", "0 seeds", ">= 1"),
    ("direction: lower", "direction: smaller", 18, "claims[0].check.direction", "'smaller'", "lower, higher"),
    (
        "direction: lower",
        "direction: lower\n      reference_divergence: loose",
        19,
        "claims[0].check.reference_divergence",
        "'loose'",
        "no_evidence, loses",
    ),
    ("metric: test/error", "metrc: test/error", 10, "claims[0].metrc", "unknown field", "metric"),
    ("[optimizer=sam]", "optimizer=sam", 12, "claims[0].arms.sam.overrides", "not a list of strings", "[optimizer=sam"),
    ("than: sgd", "than: sam", 17, "claims[0].check.than", "same arm as `better`", "sgd"),
    ("paper: sam", "paper: sam\npaper: saf", 2, "(file)", "duplicate key 'paper'", "YAML syntax"),
    ("citation: c", "citation: c\ncpu_cost: 40", 4, "cpu_cost", "40", "a non-empty string"),
]


@pytest.mark.parametrize("old, new, line, field, problem, allowed", SCHEMA_ERRORS)
def test_schema_error_names_line_field_and_allowed_values(old, new, line, field, problem, allowed):
    text = VALID_CLAIM.replace(old, new, 1)
    assert text != VALID_CLAIM
    with pytest.raises(ClaimsFileError) as caught:
        parse(text)
    issues = [i for i in caught.value.issues if i.field == field]
    assert issues, f"no issue for {field}: {caught.value}"
    assert issues[0].line == line
    assert problem in issues[0].problem
    assert allowed in issues[0].allowed
    assert f"line {line}, {field}" in str(caught.value)


def test_value_check_requires_tolerance_reason():
    text = VALID_CLAIM.replace(
        "kind: ordering\n      better: sam\n      than: sgd\n      direction: lower",
        "kind: value\n      arm: sam\n      reported: 2.7\n      tolerance: 0.3",
    )
    with pytest.raises(ClaimsFileError) as caught:
        parse(text)
    assert [(i.line, i.field) for i in caught.value.issues] == [(15, "claims[0].check.tolerance_reason")]


def test_every_problem_is_reported_at_once():
    text = VALID_CLAIM.replace("tier: cpu", "tier: gpu").replace("than: sgd", "than: adam")
    with pytest.raises(ClaimsFileError) as caught:
        parse(text)
    assert {i.field for i in caught.value.issues} == {"claims[0].tier", "claims[0].check.than"}


def test_duplicate_claim_ids_and_wrong_paper_folder():
    claim = VALID_CLAIM.split("claims:\n", 1)[1]
    text = VALID_CLAIM + claim
    with pytest.raises(ClaimsFileError) as caught:
        parse(text, expected_paper="saf")
    found = {(i.field, i.line) for i in caught.value.issues}
    assert ("paper", 1) in found
    assert ("claims[1].id", 19) in found


REPORTED = """
    reported:
      sam: {value: 2.7, quantity: error, unit: percent, spread: 0.1, spread_kind: ci95, source: paper, where: "Table 1"}
      sgd: "3.5 (no spread printed)"
"""


def test_reported_numbers_are_data_and_words_stay_words():
    claim = parse(VALID_CLAIM.replace("    arms:\n", REPORTED.lstrip("\n") + "    arms:\n", 1)).claims[0]
    number = claim.reported["sam"]
    assert (number.value, number.quantity, number.unit, number.source) == (2.7, "error", "percent", "paper")
    assert (number.spread, number.spread_kind, number.where) == (0.1, "ci95", "Table 1")
    assert str(number) == "2.7 ± 0.1 (ci95) % error [paper, Table 1]"
    assert claim.reported["sgd"] == "3.5 (no spread printed)"


@pytest.mark.parametrize(
    "bad, field, problem, allowed",
    [
        ("unit: percent", "claims[0].reported.sam.unit", "'furlongs' is not one of the choices", "percent, fraction"),
        (
            "source: paper",
            "claims[0].reported.sam.source",
            "'blog' is not one of the choices",
            "paper, submission, repo, secondary",
        ),
        ("spread_kind: ci95", "claims[0].reported.sam", "spread and spread_kind go together", "both or neither"),
    ],
)
def test_a_reported_number_without_its_unit_source_or_spread_kind_is_refused(bad, field, problem, allowed):
    replacement = {"unit: percent": "unit: furlongs", "source: paper": "source: blog", "spread_kind: ci95": ""}[bad]
    text = VALID_CLAIM.replace("    arms:\n", REPORTED.lstrip("\n").replace(bad, replacement) + "    arms:\n", 1)
    text = text.replace(", ,", ",")
    with pytest.raises(ClaimsFileError) as err:
        parse(text)
    [issue] = err.value.issues
    assert (issue.field, issue.line) == (field, 12)
    assert problem in issue.problem and allowed in issue.allowed
