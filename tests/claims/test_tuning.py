"""The tuning stage (claims.tuning): the grid runs on the validation split, the choice, the record, and the claim
that reads it back. Records are hand-made for composed configs (claimkit), so matching is exercised for real."""

from __future__ import annotations

import json
import textwrap

import pytest
from claimkit import write_claims

from optrepro.claims import tuning
from optrepro.claims.load import load_paper_claims
from optrepro.claims.policy import decide_claims, load_evidence_records
from optrepro.claims.schema import ClaimsFileError, parse_claims_text
from optrepro.cli import main

TUNED_CLAIMS = """
    paper: sam
    title: t
    citation: c
    claims:
      - id: tuned
        source: {where: "Table 4", page: 7}
        statement: "SAM beats SGD at its tuned rho"
        tier: cpu
        seeds: 3
        metric: test/acc
        arms:
          sam: {overrides: [optimizer=sam]}
          sgd: {overrides: [optimizer=sgd]}
        check: {kind: ordering, better: sam, than: sgd, direction: higher}
        tuning:
          knob: optimizer.rho
          grid: {sam: [0.01, 0.05, 0.1]}
          val_fraction: 0.1
          metric: val/acc
          direction: higher
          seeds: 2
          source: "SAM Sec. 3.1, p. 5"
    """
GRID = "++dataset.val_fraction=0.1"


@pytest.fixture
def repo(tmp_path):
    """A repository layout: reproductions/sam/claims.yaml, and results/tuning/ where its record goes."""
    write_claims(tmp_path / "reproductions", TUNED_CLAIMS)
    return tmp_path


@pytest.fixture
def cli_args(repo, config_dir, records):
    """The options that point the claims commands at this test's repository layout, configs and records."""
    return [
        "--reproductions",
        str(repo / "reproductions"),
        "--config-dir",
        str(config_dir),
        "--records",
        str(records.root),
    ]


def claims_file(repo):
    return repo / "reproductions" / "sam" / "claims.yaml"


def add_grid(records, means: dict[float, tuple[float, float]]):
    for rho, per_seed in means.items():
        for seed, acc in enumerate(per_seed):
            records.add(["optimizer=sam", f"optimizer.rho={rho!r}", GRID], seed, {"val/acc": acc})


def tune(repo, records):
    claim = load_paper_claims(claims_file(repo)).claims[0]
    found = tuning.grid_runs(claim, load_evidence_records([records.root]))
    record = tuning.choose(claim, found, {"git_commit": "c0ffee"})
    tuning.write_record(claim, record, repo / "results" / "tuning")
    return record


def test_a_claim_whose_tuning_has_not_run_is_not_run_and_names_the_command(repo, records):
    claim = load_paper_claims(claims_file(repo)).claims[0]
    assert claim.tuning_pending
    records.add(["optimizer=sam"], 0, {"test/acc": 0.9})  # the default rho: not the tuned arm, so no evidence
    verdict = decide_claims([claim], load_evidence_records([records.root]))[claim.key]
    assert verdict.status == "not run"
    assert "tuning stage has not chosen optimizer.rho" in verdict.detail
    assert verdict.missing_seeds == {"sam": (0, 1, 2), "sgd": (0, 1, 2)}


def test_dry_run_lists_the_grid_runs_on_the_validation_split_and_no_claim_run(repo, records, cli_args, capsys):
    add_grid(records, {0.01: (0.8,)})  # one of six grid runs exists
    assert main(["claims", "run", "sam/tuned", "--dry-run", *cli_args]) == 0
    out = capsys.readouterr().out
    commands = [line for line in out.splitlines() if line.startswith("python ")]
    assert commands == [
        f"python run.py optimizer=sam optimizer.rho=0.01 {GRID} seed=1",
        *(
            f"python run.py optimizer=sam optimizer.rho={rho} {GRID} seed={seed}"
            for rho in (0.05, 0.1)
            for seed in (0, 1)
        ),
    ]
    assert "5 of 6 grid run(s) missing" in out
    assert "after tuning: sam/tuned" in out


def test_claims_that_share_a_tuned_arm_launch_its_grid_runs_once(repo, cli_args, capsys):
    path = claims_file(repo)
    text = path.read_text()
    second = text[text.index("  - id: tuned") :].replace("id: tuned", "id: tuned_again")
    path.write_text(text + second)
    assert main(["claims", "run", "sam", "--dry-run", *cli_args]) == 0
    commands = [line for line in capsys.readouterr().out.splitlines() if line.startswith("python ")]
    assert len(commands) == len(set(commands)) == 6


def test_the_best_mean_is_chosen_and_the_arms_then_carry_it(repo, records):
    add_grid(records, {0.01: (0.80, 0.82), 0.05: (0.90, 0.84), 0.1: (0.86, 0.85)})
    record = tune(repo, records)
    assert record["arms"]["sam"]["chosen"] == 0.05  # means 0.81, 0.87, 0.855
    assert [entry["mean"] for entry in record["arms"]["sam"]["values"]] == pytest.approx([0.81, 0.87, 0.855])
    claim = load_paper_claims(claims_file(repo)).claims[0]
    assert not claim.tuning_pending
    assert claim.arm_overrides("sam") == ["optimizer=sam", "optimizer.rho=0.05"]
    assert claim.arm_overrides("sgd") == ["optimizer=sgd"]
    for seed, (sam, sgd) in enumerate([(0.9, 0.8), (0.91, 0.8), (0.92, 0.81)]):
        records.add(["optimizer=sam", "optimizer.rho=0.05"], seed, {"test/acc": sam})
        records.add(["optimizer=sgd"], seed, {"test/acc": sgd})
    verdict = decide_claims([claim], load_evidence_records([records.root]))[claim.key]
    assert verdict.status == "reproduced"
    assert "chosen on the validation split by the claim's tuning stage: sam 0.05" in verdict.notes[-1]


def test_equal_means_go_to_the_earlier_grid_value(repo, records):
    add_grid(records, {0.01: (0.8, 0.9), 0.05: (0.9, 0.8), 0.1: (0.5, 0.5)})
    assert tune(repo, records)["arms"]["sam"]["chosen"] == 0.01


def test_an_incomplete_grid_chooses_nothing(repo, records):
    add_grid(records, {0.01: (0.8, 0.9), 0.05: (0.9,)})
    with pytest.raises(Exception, match=r"lacks 3 run\(s\) \(e.g. sam at optimizer.rho=0.05, seed 1\)"):
        tune(repo, records)


def test_a_record_made_for_another_tuning_block_is_refused(repo, records):
    add_grid(records, {0.01: (0.8, 0.9), 0.05: (0.9, 0.8), 0.1: (0.5, 0.5)})
    tune(repo, records)
    path = claims_file(repo)
    path.write_text(path.read_text().replace("seeds: 2", "seeds: 3"))
    with pytest.raises(tuning.StaleTuningRecordError, match="made for another tuning block"):
        load_paper_claims(path)


def test_the_tuning_table_shows_each_value_and_the_choice(repo, records):
    add_grid(records, {0.01: (0.80, 0.82), 0.05: (0.90, 0.84), 0.1: (0.86, 0.85)})
    tune(repo, records)
    claim = load_paper_claims(claims_file(repo)).claims[0]
    table = tuning.tuning_table(claim, repo / "results" / "tuning")
    assert table[2:7] == [
        "| optimizer.rho | sam |",
        "|---|---|",
        "| 0.01 | 0.81 |",
        "| 0.05 | **0.87** |",
        "| 0.1 | 0.855 |",
    ]
    stored = json.loads(tuning.record_path(claim, repo / "results" / "tuning").read_text())
    assert stored["arms"]["sam"]["values"][1]["runs"] == {"0": "run003", "1": "run004"}


def test_a_knob_missing_from_the_arms_config_stops_claims_run_in_one_line_before_any_run(repo, cli_args, capsys):
    path = claims_file(repo)
    path.write_text(path.read_text().replace("knob: optimizer.rho", "knob: optimizer.rhoo"))
    assert main(["claims", "run", "sam/tuned", "--dry-run", *cli_args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "optrepro: error: sam/tuned tuning.knob: 'optimizer.rhoo' is not a key of the arms' composed "
        "config; name an existing key, e.g. optimizer.rho"
    ]


@pytest.mark.parametrize(
    "old, new, field, problem",
    [
        ("val_fraction: 0.1", "val_fraction: 1", "claims[0].tuning.val_fraction", "leaves no validation"),
        ("val_fraction: 0.1", "val_fraction: 0", "claims[0].tuning.val_fraction", "leaves no validation"),
        (
            "grid: {sam: [0.01, 0.05, 0.1]}",
            "grid: {sam: [0.01], sgd: [0.1, 0.2]}",
            "claims[0].tuning.grid",
            "grids of different sizes",
        ),
        ("grid: {sam: [0.01, 0.05, 0.1]}", "grid: {asam: [0.5]}", "claims[0].tuning.grid.asam", "not defined"),
        ("grid: {sam: [0.01, 0.05, 0.1]}", "grid: {sam: [0.1, 0.1]}", "claims[0].tuning.grid.sam", "distinct numbers"),
        ("seeds: 2", "seeds: 0", "claims[0].tuning.seeds", "0 seeds per grid value"),
        ("          direction: higher", "          direction: up", "claims[0].tuning.direction", "'up'"),
    ],
)
def test_a_bad_tuning_block_names_its_field(old, new, field, problem):
    text = TUNED_CLAIMS.replace(old, new, 1)
    assert text != TUNED_CLAIMS
    with pytest.raises(ClaimsFileError) as caught:
        parse_claims_text(textwrap.dedent(text).lstrip(), "claims.yaml")
    assert any(issue.field == field and problem in issue.problem for issue in caught.value.issues), str(caught.value)


def test_the_tuning_plot_is_drawn_from_the_record_and_kept_while_it_is_unchanged(repo, records, tmp_path):
    from optrepro.results.plots import plot_tuning

    add_grid(records, {0.01: (0.80, 0.82), 0.05: (0.90, 0.84), 0.1: (0.86, 0.85)})
    tune(repo, records)
    claim = load_paper_claims(claims_file(repo)).claims[0]
    record = tuning.read_record(claim, repo / "results" / "tuning")
    path = plot_tuning(claim, record, tmp_path / "tuning.png")
    assert path is not None and path.stat().st_size > 0
    stamp = path.stat().st_mtime_ns
    assert plot_tuning(claim, record, path) == path and path.stat().st_mtime_ns == stamp  # kept, not redrawn
    assert plot_tuning(claim, None, tmp_path / "none.png") is None
