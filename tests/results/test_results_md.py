"""The repository's RESULTS.md is generated, never hand-edited: regenerating it gives the committed bytes."""

from __future__ import annotations

import shutil

from optrepro.claims.load import load_all_claims
from optrepro.paths import REPO_ROOT, REPRODUCTIONS_DIR
from optrepro.results.report import write_report

FIX = (
    "regenerate with `python -m optrepro results report --records results/records` and commit RESULTS.md, "
    "results/verdicts.json, results/plots (claims turning 'not run' after a new config knob: "
    "tests/test_records.py::test_every_new_config_knob_has_a_neutral_default names the key and the fix)"
)


def test_committed_results_md_is_what_the_records_give(tmp_path):
    committed = REPO_ROOT / "RESULTS.md"
    assert committed.exists(), f"RESULTS.md is missing: {FIX}"
    records = REPO_ROOT / "results" / "records"
    if records.exists():  # same relative layout as the repository, so links and paths match
        shutil.copytree(records, tmp_path / "results" / "records")
    out, plots, verdicts = (
        tmp_path / "RESULTS.md",
        tmp_path / "results" / "plots",
        tmp_path / "results" / "verdicts.json",
    )
    write_report(
        load_all_claims(REPRODUCTIONS_DIR),
        [tmp_path / "results" / "records"],
        out,
        plots,
        verdicts,
    )
    assert out.read_text() == committed.read_text(), f"RESULTS.md differs from what the records and claims give: {FIX}"
    assert verdicts.read_text() == (REPO_ROOT / "results" / "verdicts.json").read_text(), FIX
    new_plots = {p.relative_to(plots): p.read_bytes() for p in plots.rglob("*.png")}
    old_root = REPO_ROOT / "results" / "plots"
    old_plots = {p.relative_to(old_root): p.read_bytes() for p in old_root.rglob("*.png")} if old_root.exists() else {}
    assert new_plots == old_plots, f"results/plots differ from what the records give: {FIX}"
