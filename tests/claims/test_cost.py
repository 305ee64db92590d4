"""The cpu tier's cost per paper, on the committed records: a paper over PAPER_MINUTES says why."""

from __future__ import annotations

import pytest

from optrepro.claims.cost import PAPER_MINUTES, tier_cost
from optrepro.claims.load import load_all_claims, select_claims
from optrepro.claims.policy import decide_claims, load_evidence_records
from optrepro.paths import COMMITTED_RECORDS, REPRODUCTIONS_DIR


@pytest.fixture(scope="module")
def committed():
    """Every paper's claims, and the cost of the cpu tier decided on the committed records (read once)."""
    papers = load_all_claims(REPRODUCTIONS_DIR)
    records = load_evidence_records([COMMITTED_RECORDS])
    return papers, tier_cost(decide_claims(select_claims(papers, tier="cpu"), records), records)


def test_every_paper_over_its_minutes_says_why_in_claims_yaml(committed):
    papers, cost = committed
    over = {paper.paper: paper.cpu_cost for paper in papers if cost.paper_minutes(paper.paper) > PAPER_MINUTES}
    assert over, "no paper over the minutes: the test would pass whatever claims.yaml says"
    assert not [paper for paper, why in over.items() if not why], "add `cpu_cost:` (why it needs more) to claims.yaml"


def test_a_run_shared_by_two_papers_counts_once_in_the_total(committed):
    _, cost = committed
    shared = set.intersection(cost.runs["sam"], cost.runs["sam_on"])  # the SAM arm both papers compare with
    assert shared
    count, total = cost.total_minutes()
    assert count == len(set().union(*cost.runs.values()))
    assert total < sum(cost.paper_minutes(paper) for paper in cost.runs)
