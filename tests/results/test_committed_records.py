"""Every reporting command on the committed claims and records, as a user meets them after a fresh clone (the
fixtures elsewhere are smaller than the real data: a real claim carries `Reported` numbers, notes in words, paper
code, records from many code versions). RESULTS.md's own byte-for-byte check is in test_results_md.py."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from optrepro.claims.load import load_all_claims
from optrepro.cli import main
from optrepro.paths import REPO_ROOT, REPRODUCTIONS_DIR
from optrepro.records.record import read_record
from optrepro.run_summary import claims_progress, format_summary

RECORDS = REPO_ROOT / "results" / "records"
PAPERS = load_all_claims(REPRODUCTIONS_DIR)
CLAIM_KEYS = [claim.key for paper in PAPERS for claim in paper.claims]


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.targets: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.targets += [value for name, value in attrs if (tag, name) in {("a", "href"), ("img", "src")}]


def test_results_wandb_writes_the_index_and_every_paper_page_and_every_link_resolves(tmp_path, capsys):
    out = tmp_path / "wandb"
    assert main(["results", "wandb", "--records", str(RECORDS), "--local-dir", str(out)]) == 0
    pages = {page.name for page in out.glob("*.html")}
    assert pages == {"index.html", *(f"{paper.paper}.html" for paper in PAPERS)}
    for page in out.glob("*.html"):
        parser = Links()
        parser.feed(page.read_text())
        for target in parser.targets:
            path = target.split("#")[0]
            assert path and (out / path).resolve().exists(), f"{page.name}: dead link {target}"
    index = (out / "index.html").read_text()
    order = [m for m in re.findall(r"<a href='(\w+)\.html'>", index)]
    assert order == [paper.paper for paper in PAPERS] and order[0] == "sam", "README's order, SAM family first"
    sam = (out / "sam.html").read_text()
    assert "= 0.934 in test/acc" in sam, "the paper's 93.4 % accuracy shown in our unit"
    assert sam.index("fmnist_cpu_sam_flatter_than_sgd") < sam.index("c10_wrn28_10_basic"), "results before not run"


def test_results_check_passes_on_the_committed_verdicts(capsys):
    assert main(["results", "check", "--records", str(RECORDS)]) == 0
    assert "no claim regressed" in capsys.readouterr().out


def test_claims_list_and_explain_name_every_claim(capsys):
    assert main(["claims", "list", "--records", str(RECORDS)]) == 0
    listed = capsys.readouterr().out
    assert main(["claims", "explain", "--records", str(RECORDS), *(paper.paper for paper in PAPERS)]) == 0
    explained = capsys.readouterr().out
    for key in CLAIM_KEYS:
        assert key in listed and f"{key}: " in explained, key


@pytest.mark.parametrize("paper", sorted({p.relative_to(RECORDS).parts[0] for p in RECORDS.rglob("record.json")}))
def test_the_end_of_run_summary_of_a_committed_record_shows_its_claims(paper):
    """One record per paper, the first (by folder) that is an arm of a claim: the summary's claims part must not
    fail on real claims (the run itself hides such a failure behind a warning, so it is called directly here)."""
    for path in sorted((RECORDS / paper).rglob("record.json")):
        record = read_record(path.parent)
        progress = claims_progress(record, [RECORDS])
        if progress:
            break
    else:
        pytest.fail(f"no committed {paper} record is an arm of any claim")
    text = format_summary(record, record_path=Path(path).relative_to(REPO_ROOT), metrics_files=[], claims=progress)
    assert all(f"claim    {p.key}" in text or p.key in text for p in progress)
    assert "seeds done" in text and "verdict now" in text


def test_every_pooling_of_code_versions_in_the_committed_verdicts_rests_on_a_seed_with_the_same_outcome():
    """Checked from the record files themselves (records.record.outcome, not the digest the policy reads): the code
    versions an arm's runs span are joined by seeds finished under two of them with the same outcome to the bit."""
    from optrepro.claims.policy import decide_claims, load_evidence_records
    from optrepro.records.record import outcome

    verdicts = decide_claims([c for paper in PAPERS for c in paper.claims], load_evidence_records([RECORDS]))
    records = [read_record(path) for path in RECORDS.rglob("record.json")]
    by_id = {r["run_id"]: r for r in records}
    pooled = 0
    for verdict in verdicts.values():
        for arm in verdict.arms.values():
            if len(arm.sample.versions) < 2:
                continue
            pooled += 1
            recipe = by_id[arm.sample.run_ids[0]]["recipe"]
            runs = [r for r in records if r["recipe"] == recipe and r["status"] == "finished"]
            joined = {
                version
                for a in runs
                for b in runs
                if a["seed"] == b["seed"]
                and a["code"]["source_hash"] != b["code"]["source_hash"]
                and outcome(a) == outcome(b)
                for version in (a["code"]["source_hash"], b["code"]["source_hash"])
            }
            assert set(arm.sample.versions) <= joined, f"{verdict.claim.key} {arm.sample.arm}: {arm.sample.versions}"
    assert pooled, "the committed verdicts pool versions somewhere (ASAM's Fashion-MNIST arm, seed 3)"
