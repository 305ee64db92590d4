"""The end of a run: the summary text and the claims a run answers; per-epoch lines without a terminal, the bar's
metrics on one; third-party notices dropped."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from claimkit import compose_run, make_record, store, write_claims, write_config_tree

from optrepro.lit.module import ClassifierModule
from optrepro.lit.progress import EpochLines, LossAccProgressBar, epoch_line, progress_callback
from optrepro.paths import REPO_ROOT
from optrepro.run_summary import ClaimProgress, claims_progress, format_summary

RECORD = {
    "run_id": "17_0_17",
    "status": "finished",
    "error": None,
    "seed": 2,
    "repro": {"paper": "sam", "name": "sam_fmnist_cpu", "tier": "cpu", "arm": "sam"},
    "config": {"name": "sam_fmnist_cpu"},
    "metrics": {
        "final": {"test/error": 12.345, "test/acc": 0.87655, "train/loss": 0.02, "lr": 0.0},
        "best": {"test/error": 12.1, "test/acc": 0.879},
    },
    "history": [
        {"epoch": 0, "test/error": 20.0, "test/acc": 0.8},
        {"epoch": 1, "test/error": 12.1, "test/acc": 0.879},
        {"epoch": 2, "test/error": 12.345, "test/acc": 0.87655},
    ],
    "timing": {"wall_time_s": 150.0},
    "wandb": {
        "run_id": "ab12cd34",
        "mode": "offline",
        "dir": "wandb/offline-run-20261202_041506-ab12cd34",
        "name": "sam_fmnist_cpu/sam/s2",
        "group": "sam_family_fmnist_cpu",
    },
}
CLAIM = ClaimProgress(
    key="sam/fmnist_cpu_sam_beats_sgd",
    source="Table 5, p. 16",
    metric="test/error",
    reported={"sam": "5.0", "sgd": "5.5"},
    seeds=3,
    done={"sam": 3, "sgd": 1},
    arm="sam",
    verdict="reproduced (1/3 seeds)",
)


def test_summary_shows_metrics_claims_and_where_everything_is(tmp_path):
    run_dir = tmp_path / "runs" / "2026-12-02" / "sam_fmnist_cpu" / "17_0_17"
    text = format_summary(
        RECORD,
        record_path=run_dir / "record.json",
        metrics_files=[run_dir / "csv" / "attempt_0" / "metrics.csv"],
        claims=[CLAIM],
        base=tmp_path,
    )
    folder = "runs/2026-12-02/sam_fmnist_cpu/17_0_17"
    assert text.splitlines() == [
        "optrepro: sam_fmnist_cpu/sam/s2 finished in 2.5 min (3 epochs; run 17_0_17)",
        "  final    test/error 12.35  test/acc 0.8766  train/loss 0.02",
        "  best     test/error 12.1 (epoch 2)  test/acc 0.879 (epoch 2)",
        "  claim    sam/fmnist_cpu_sam_beats_sgd [test/error] (this run: arm sam)",
        "           paper: sam 5.0, sgd 5.5 (Table 5, p. 16)",
        "           seeds done: sam 3/3, sgd 1/3; verdict now: reproduced (1/3 seeds)",
        f"  record   {folder}/record.json",
        f"  metrics  {folder}/csv/attempt_0/metrics.csv",
        "  W&B      offline run sam_fmnist_cpu/sam/s2 in group sam_family_fmnist_cpu; "
        f"upload: wandb sync {folder}/wandb/offline-run-20261202_041506-ab12cd34",
    ]


def test_summary_says_when_the_verdict_counts_fewer_seeds_than_are_done(tmp_path):
    older_code = ClaimProgress(
        **{
            **CLAIM.__dict__,
            "counted": {"sam": 1, "sgd": 1},
            "notes": ("sam: two or more code versions; used the newest, 1a2b3c4d",),
        }
    )
    text = format_summary(RECORD, record_path=tmp_path / "record.json", claims=[older_code], base=tmp_path)
    assert (
        "           the verdict counts sam 1, sgd 1: sam: two or more code versions; used the newest, 1a2b3c4d"
        in text.splitlines()
    )


def test_summary_says_why_a_presets_run_answers_no_claim(tmp_path):
    text = format_summary(
        RECORD, record_path=tmp_path / "record.json", claims_note="none: a debug limit", base=tmp_path
    )
    assert text.splitlines()[3:5] == ["  claims   none: a debug limit", "  record   record.json"]


def test_a_failed_run_says_why_and_keeps_paths_outside_the_working_folder_whole(tmp_path):
    failed = RECORD | {
        "status": "failed",
        "error": "ValueError: boom",
        "metrics": {},
        "history": [],
        "wandb": None,
        "timing": None,
    }
    text = format_summary(failed, record_path=Path("/elsewhere/run/record.json"), base=tmp_path)
    assert text.splitlines() == [
        "optrepro: sam_fmnist_cpu/sam/s2 failed (0 epochs; run 17_0_17)",
        "  error    ValueError: boom",
        "  record   /elsewhere/run/record.json",
    ]


# ---- which claims a run answers, and how many of their seeds are done ------------------------------------
PRESETS = {
    "repro/tiny_sam.yaml": "# @package _global_\ndefaults:\n  - override /optimizer: sam\n"
    "repro: {paper: sam, name: tiny_sam, tier: cpu, arm: sam}\n",
    "repro/tiny_sgd.yaml": "# @package _global_\ndefaults:\n  - override /optimizer: sgd\n"
    "repro: {paper: sam, name: tiny_sgd, tier: cpu, arm: sgd}\n",
}
TINY_CLAIMS = """
    paper: sam
    title: "Sharpness-Aware Minimization"
    citation: "Foret et al., ICLR 2021"
    claims:
      - id: ordering
        source: {where: "Table 1", page: 6}
        statement: "SAM lowers test error"
        tier: cpu
        seeds: 3
        metric: test/error
        arms:
          sam: {overrides: [+repro=tiny_sam]}
          sgd: {overrides: [+repro=tiny_sgd]}
        check: {kind: ordering, better: sam, than: sgd, direction: lower}
        reported: {sam: "2.7±0.1", sgd: "3.5±0.1"}
      - id: value
        source: {where: "Table 2"}
        statement: "SAM reaches 2.7% error"
        tier: cpu
        seeds: 3
        metric: test/error
        arms:
          sam: {overrides: [+repro=tiny_sam]}
        check: {kind: value, arm: sam, reported: 2.7, tolerance: 0.3, tolerance_reason: "3 seeds"}
      - id: other_setting
        source: {where: "Table 3"}
        statement: "SAM with 9 epochs"
        tier: cpu
        seeds: 3
        metric: test/error
        setting: [train.epochs=9]
        arms:
          sam: {overrides: [+repro=tiny_sam]}
        check: {kind: value, arm: sam, reported: 2.0, tolerance: 0.3, tolerance_reason: "3 seeds"}
    """


@pytest.fixture(scope="module")
def tiny_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    config_dir = write_config_tree(root / "configs")
    for name, text in PRESETS.items():
        (config_dir / name).parent.mkdir(exist_ok=True)
        (config_dir / name).write_text(text)
    write_claims(root / "reproductions", TINY_CLAIMS)
    return config_dir, root / "reproductions"


def _record(config_dir, overrides, seed, run_id, status="finished", error=2.7):
    cfg = compose_run(config_dir, [*overrides, f"seed={seed}"])
    record = make_record(cfg, run_id=run_id, metrics={"test/error": error}, status=status, overrides=overrides)
    return record | {"repro": dict(cfg.repro)}


def test_claims_of_a_run_count_every_arms_done_seeds(tiny_tree, tmp_path):
    config_dir, reproductions = tiny_tree
    runs, store_dir = tmp_path / "runs", tmp_path / "results"
    this = _record(config_dir, ["+repro=tiny_sam"], 1, "r1")
    store(runs, this)
    store(runs, _record(config_dir, ["+repro=tiny_sam"], 0, "r0"))
    store(runs, _record(config_dir, ["+repro=tiny_sam"], 2, "r2", status="failed"))  # not a result
    store(runs, _record(config_dir, ["+repro=tiny_sam"], 7, "r7"))  # not one of the claim's seeds
    store(store_dir, _record(config_dir, ["+repro=tiny_sgd"], 0, "g0", error=3.5))  # committed store counts too
    store(runs, _record(config_dir, ["+repro=tiny_sam", "train.epochs=9"], 0, "e0"))  # another setting
    progress = claims_progress(this, [runs, store_dir, tmp_path / "missing"], reproductions)
    assert [(p.key, p.arm, p.done, p.reported, p.source) for p in progress] == [
        ("sam/ordering", "sam", {"sam": 2, "sgd": 1}, {"sam": "2.7±0.1", "sgd": "3.5±0.1"}, "Table 1, p. 6"),
        ("sam/value", "sam", {"sam": 2}, {"sam": "2.7"}, "Table 2"),
    ]
    assert progress[0].verdict.endswith("(1/3 seeds)") and progress[1].verdict.endswith("(2/3 seeds)")
    assert [p.counted for p in progress] == [{"sam": 2, "sgd": 1}, {"sam": 2}]  # one code version, one hardware class


def test_a_run_off_every_claim_setting_answers_none(tiny_tree, tmp_path):
    config_dir, reproductions = tiny_tree
    debug = _record(config_dir, ["+repro=tiny_sam", "train.epochs=3"], 0, "d0")
    adhoc = _record(config_dir, ["optimizer=sam"], 0, "a0")
    unknown = _record(config_dir, ["+repro=tiny_sam"], 0, "u0") | {"recipe": None}  # a record older than recipes
    assert claims_progress(debug, [tmp_path], reproductions) == []
    assert claims_progress(adhoc, [tmp_path], reproductions) == []
    assert claims_progress(unknown, [tmp_path], reproductions) == []


# ---- per-epoch lines without a terminal, and the bar's metrics on one ---------------------------------------
EPOCH_LINE = re.compile(
    r"epoch (\d)/2  train loss \d\.\d{4} acc \d+\.\d\d%  test loss \d+\.\d{4} error \d+\.\d\d%"
    r"  \d+\.\d s train  \(0:\d\d elapsed\)"
)


def test_epoch_line_formats_one_history_row():
    row = {
        "epoch": 2,
        "train/loss": 0.41234,
        "train/acc": 0.85214,
        "time/train_s": 4.9,
        "test/loss": 0.39821,
        "test/error": 13.454,
    }
    assert epoch_line(row, 30, previous_train_s=3.7, elapsed_s=65) == (
        "epoch 3/30  train loss 0.4123 acc 85.21%  test loss 0.3982 error 13.45%  1.2 s train  (1:05 elapsed)"
    )
    assert epoch_line({"epoch": 0, "train/loss": 1.0, "train/acc": 0.5}, None, 0.0, 3) == (
        "epoch 1  train loss 1.0000 acc 50.00%  test -  (0:03 elapsed)"
    )
    forecast = {"epoch": 0, "train/loss": 0.5, "test/loss": 0.25, "test/mse": 0.25, "test/mae": 0.4}  # no accuracy
    assert epoch_line(forecast, 1, 0.0, 3, metrics=("mse", "mae", "r2")) == (
        "epoch 1/1  train loss 0.5000  test loss 0.2500 mse 0.2500 mae 0.4000  (0:03 elapsed)"
    )


def test_a_run_without_a_terminal_prints_one_line_per_epoch_and_no_third_party_noise(tmp_path):
    env = {
        **os.environ,
        "OPTREPRO_RUNS": str(tmp_path / "runs"),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(REPO_ROOT / "src"),
    }
    result = subprocess.run(
        [
            sys.executable,
            "run.py",
            "dataset=digits",
            "model=small_cnn",
            "model.width=8",
            "logger=csv",
            "train.epochs=2",
            "limits.train_batches=3",
            "limits.eval_batches=2",
            "train.checkpoint=false",
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert [EPOCH_LINE.fullmatch(line).group(1) for line in epochs] == ["1", "2"], lines
    assert any(line.startswith("optrepro: adhoc/sgd/s0 finished") for line in lines), lines
    assert any(line.startswith("  record   ") and line.endswith("record.json") for line in lines), lines
    noise = ("srun", "LeafSpec", "GPU available", "TPU available", "Tip:", "Trainer.fit", "anonymous")
    assert not [line for line in (result.stdout + result.stderr).splitlines() if any(n in line for n in noise)]


class _Trainer:
    is_global_zero = True
    max_epochs = 3


class _Module:
    def __init__(self, rows):
        self.history = rows


def test_epoch_lines_print_each_row_once_and_skip_short_epochs_without_a_test(capsys):
    callback = EpochLines(quiet_s=3600)
    rows = [{"epoch": 0, "train/loss": 1.0, "train/acc": 0.5, "test/loss": 1.0, "test/error": 40.0}]
    module = _Module(rows)
    callback.on_train_start(_Trainer(), _Module([]))  # nothing restored from a checkpoint
    callback.on_train_epoch_start(_Trainer(), module)
    rows.append({"epoch": 1, "train/loss": 0.9, "train/acc": 0.6})  # short, no test: skipped
    callback.on_train_epoch_start(_Trainer(), module)
    rows.append({"epoch": 2, "train/loss": 0.8, "train/acc": 0.7})  # the last row always prints
    callback.on_train_end(_Trainer(), module)
    callback.on_train_end(_Trainer(), module)
    printed = [line.split("  ")[0] for line in capsys.readouterr().out.splitlines()]
    assert printed == ["epoch 1/3", "epoch 3/3"]


def _classifier():
    return ClassifierModule(torch.nn.Linear(2, 2), build_optimizer=None, build_scheduler=None)


def test_progress_bar_shows_running_loss_accuracy_and_last_test_error_not_v_num():
    module = _classifier()
    module._train_sums = torch.tensor([6.0, 2.0, 4.0])  # loss * n, correct, n
    module._last_eval = {"test/loss": 0.3, "test/acc": 0.875, "test/error": 12.5}
    assert LossAccProgressBar().get_metrics(None, module) == {"loss": 1.5, "acc": 0.5, "test_err": 12.5}
    assert _classifier().progress_bar_values() == {}  # before the first batch


def test_the_bar_is_for_terminals_and_the_lines_for_everything_else(tmp_path):
    with open(tmp_path / "log", "w") as file:
        assert isinstance(progress_callback(file), EpochLines)


def test_third_party_notices_are_dropped_one_by_one_and_other_messages_pass(caplog):
    import logging
    import warnings

    from lightning.fabric.utilities.warnings import PossibleUserWarning

    from optrepro.lit.quiet import silence_third_party_noise

    silence_third_party_noise()
    silence_third_party_noise()  # idempotent: one filter per logger
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    assert len(rank_zero.filters) == len({id(f) for f in rank_zero.filters})
    with caplog.at_level(logging.INFO):
        rank_zero.info("GPU available: False, used: False")
        logging.getLogger("lightning.pytorch.accelerators.cuda").info("LOCAL_RANK: 0 - CUDA_VISIBLE_DEVICES: [0]")
        rank_zero.info("Restoring states from the checkpoint path at last.ckpt")
    assert [r.getMessage() for r in caplog.records] == ["Restoring states from the checkpoint path at last.ckpt"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        silence_third_party_noise()  # its filters go in front of "always"
        warnings.warn("The `srun` command is available on your system but is not used. HINT: ...", PossibleUserWarning)
        warnings.warn("The dataloader does not have many workers", PossibleUserWarning)
    assert [str(w.message) for w in caught] == ["The dataloader does not have many workers"]
