"""One evidence policy: with one extra run in runs/, every command (and the end-of-run summary) reads the same stores
and agrees on every claim."""

from __future__ import annotations

import json

from claimkit import RecordFactory, compose_run, launch_version, write_claims

from optrepro.claims.policy import DEFAULT_STORES, record_stores
from optrepro.cli import build_parser, main
from optrepro.records.record import read_record
from optrepro.run_summary import claims_progress

SAM, SGD = ["optimizer=sam"], ["optimizer=sgd"]
OLD = {"finished_at": "2025-01-01T00:00:00Z"}  # made by today's code: what `claims run` completes
NEW = {"commit": "9e90000000", "source_hash": "9e90000000000000", "finished_at": "2025-02-01T00:00:00Z"}


def test_every_command_defaults_to_the_same_stores():
    commands = [
        ["claims", "list"],
        ["claims", "explain", "sam"],
        ["claims", "run", "sam"],
        ["results", "report"],
        ["results", "check"],
        ["results", "wandb"],
    ]
    for command in commands:
        assert record_stores(build_parser(command).parse_args(command).records) == DEFAULT_STORES, command


def test_list_report_check_dry_run_and_run_summary_agree_with_one_extra_run(tmp_path, config_dir, capsys):
    write_claims(tmp_path / "reproductions")
    committed, runs = tmp_path / "results" / "records", tmp_path / "runs"
    store = RecordFactory(config_dir, committed)
    for seed, error in enumerate([2.6, 2.7, 2.8]):
        store.add(SAM, seed, {"test/error": error}, run_id=f"sam{seed}", **OLD)
    for seed, error in enumerate([3.4, 3.6]):  # sgd lacks seed 2: the ordering claim is incomplete
        store.add(SGD, seed, {"test/error": error}, run_id=f"sgd{seed}", **OLD)
    # The README's first command, after a code change: one new run of seed 0 at a newer code version.
    RecordFactory(config_dir, runs).add(SAM, 0, {"test/error": 3.9}, run_id="new_sam0", **NEW)

    common = [
        "--reproductions",
        str(tmp_path / "reproductions"),
        "--records",
        str(runs),
        "--records",
        str(committed),
    ]
    report = [
        "--out",
        str(tmp_path / "scratch" / "RESULTS.md"),
        "--plots",
        str(tmp_path / "scratch" / "plots"),
        "--verdicts",
        str(tmp_path / "scratch" / "verdicts.json"),
    ]

    def output(*command):
        assert main([*command, *common]) == 0, command
        return capsys.readouterr().out.splitlines()

    listed = output("claims", "list")
    reported = output("results", "report", *report)
    checked = output("results", "check", *report, "--baseline", str(tmp_path / "scratch" / "verdicts.json"))
    planned = output("claims", "run", "sam", "--dry-run", "--config-dir", str(config_dir))
    banners = {lines[0] for lines in (listed, reported, checked, planned)}
    assert banners == {f"record stores: {runs} (1 record), {committed} (5 records)"}

    today = launch_version(compose_run(config_dir, SAM))[:8]
    pending = (
        f"  [pending: sam: code version 9e900000 has 1 of 3 seeds (pending; the complete {today} is used "
        "until it has all)]"
    )
    statuses = {line.split()[0]: line.split(None, 3)[3] for line in listed[2:]}
    assert statuses == {"sam/ordering": "reproduced (2/3 seeds)" + pending, "sam/value": "reproduced" + pending}
    document = json.loads((tmp_path / "scratch" / "verdicts.json").read_text())["claims"]
    assert {key: v["status"] for key, v in document.items()} == {
        "sam/ordering": "reproduced",
        "sam/value": "reproduced",
    }
    assert document["sam/value"]["arms"]["sam"]["run_ids"] == ["sam0", "sam1", "sam2"], "the new run is pending"
    assert not document["sam/ordering"]["complete"] and document["sam/value"]["complete"]
    assert "no claim regressed" in checked[-1] and "(0 change(s))" in checked[-1]
    # exactly the seed the incomplete claim lacks; the complete one launches nothing
    assert [line for line in planned if line.startswith("python ")] == ["python run.py optimizer=sgd seed=2"]
    # the end-of-run summary of the new run says the same of the claims it answers
    summary = claims_progress(read_record(runs / "new_sam0"), [runs, committed], tmp_path / "reproductions")
    assert {p.key: p.verdict for p in summary} == {"sam/ordering": "reproduced (2/3 seeds)", "sam/value": "reproduced"}
