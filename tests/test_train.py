"""End-to-end runs through optrepro.train.run: every offline dataset, the record, determinism, failures, DDP."""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.run_if import RunIf

from optrepro.paths import REPO_ROOT
from optrepro.records.provenance import cpu_kernels
from optrepro.records.recipe import recipe
from optrepro.records.record import read_record
from optrepro.train import last_epoch_time_per_step, run

FAST = ["debug=smoke", "logger=csv", "train.checkpoint=false", "train.batch_size=32"]
DATASETS = {
    "digits": ["dataset=digits", "model=small_cnn", "model.width=8"],
    "mnist1d": ["dataset=mnist1d", "model=mlp"],
    "synthetic": ["dataset=synthetic", "model=small_cnn", "model.width=8"],
    "fashion_mnist": ["dataset=fashion_mnist", "model=small_cnn", "model.width=8"],
}
RECORD_FIELDS = {
    "schema_version",
    "run_id",
    "status",
    "error",
    "repro",
    "seed",
    "recipe",
    "config",
    "config_hash",
    "setting_hash",
    "metrics",
    "history",
    "timing",
    "hardware",
    "code",
    "versions",
    "slurm",
    "wandb",
    "extra",
    "started_at",
    "finished_at",
}


def only_record(runs_dir: Path) -> dict:
    records = sorted(runs_dir.rglob("record.json"))
    assert len(records) == 1, records
    return json.loads(records[0].read_text())


def test_a_run_without_checkpointing_writes_no_checkpoint(make_cfg, tmp_path):
    """train.checkpoint=false: Lightning's default ModelCheckpoint (an epoch file under csv/) is off too."""
    record = run(make_cfg(FAST + DATASETS["digits"]))
    assert record["status"] == "finished"
    assert list((tmp_path / "runs").rglob("*.ckpt")) == []
    run(make_cfg([*FAST, *DATASETS["digits"], "train.checkpoint=true", "seed=1"]))
    written = list((tmp_path / "runs").rglob("*.ckpt"))
    assert written and {path.parent.name for path in written} == {"checkpoints"}  # only the product's own


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_smoke_fit_on_every_offline_dataset(dataset, make_cfg, tmp_path):
    if dataset == "fashion_mnist" and not Path("/usr/share/datasets/fashion-mnist").exists():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    record = run(make_cfg(FAST + DATASETS[dataset]))
    assert record["status"] == "finished"
    assert 0.0 <= record["metrics"]["final"]["test/acc"] <= 1.0
    assert record["timing"]["steps"] == 3


def test_record_has_every_field_and_describes_the_run(make_cfg, tmp_path):
    overrides = FAST + DATASETS["digits"] + ["seed=3", "train.batch_size=64"]
    record = run(make_cfg(overrides))
    assert set(record) == RECORD_FIELDS
    assert record == only_record(tmp_path / "runs") | {}  # what was returned is what was written
    hw = record["hardware"]
    assert (hw["world_size"], hw["per_device_batch_size"], hw["global_batch_size"], hw["precision"]) == (
        1,
        64,
        64,
        "32-true",
    )
    assert hw["cpu_kernels"] == cpu_kernels(), "the kernel set a CPU run's bits depend on"
    assert record["seed"] == 3 and record["config"]["seed"] == 3
    assert record["recipe"] == list(recipe(overrides)) and "seed=3" not in record["recipe"]
    assert record["code"]["git_commit"] and isinstance(record["code"]["git_dirty"], bool)
    assert record["versions"]["torch"] and record["versions"]["lightning"]
    timing = record["timing"]
    assert timing["time_per_step_s"] == pytest.approx(timing["train_time_s"] / timing["steps"])
    assert timing["last_epoch_cpu_time_per_step_s"] == pytest.approx(
        record["history"][-1]["time/train_cpu_s"] / timing["steps"]
    )
    assert timing["last_epoch_cpu_time_per_step_s"] > 0
    assert record["metrics"]["best"]["test/acc"] >= record["metrics"]["final"]["test/acc"] - 1e-12
    assert [row["epoch"] for row in record["history"]] == [0]


def test_a_run_on_a_validation_split_reports_val_metrics_and_never_test_metrics(make_cfg):
    record = run(make_cfg(FAST + DATASETS["digits"] + ["dataset.val_fraction=0.1"]))
    final = record["metrics"]["final"]
    assert {"val/acc", "val/error", "val/loss"} <= set(final)
    assert not [key for row in record["history"] for key in row if key.startswith("test/")]
    assert final["val/error"] == pytest.approx(100 * (1 - final["val/acc"]))


def test_same_seed_gives_identical_metrics_and_another_seed_does_not(make_cfg):
    overrides = FAST + DATASETS["digits"] + ["limits.train_batches=6", "skip_finished=false"]
    first, second = run(make_cfg(overrides)), run(make_cfg(overrides))
    assert first["run_id"] != second["run_id"], "two real runs, not one record read twice"
    other = run(make_cfg(overrides + ["seed=1"]))
    clocks = {"time/train_s": 0, "time/train_cpu_s": 0}
    assert first["history"][0] | clocks == second["history"][0] | clocks
    assert first["metrics"]["final"]["train/loss"] != other["metrics"]["final"]["train/loss"]


def test_a_finished_config_is_skipped_when_launched_again(make_cfg, tmp_path):
    overrides = FAST + DATASETS["digits"]
    first = run(make_cfg(overrides))
    again = run(make_cfg(overrides))
    assert again == first and len(list((tmp_path / "runs").rglob("record.json"))) == 1
    other_seed = run(make_cfg(overrides + ["seed=1"]))
    assert other_seed["run_id"] != first["run_id"]
    forced = run(make_cfg(overrides + ["skip_finished=false"]))
    assert forced["run_id"] != first["run_id"] and forced["config_hash"] == first["config_hash"]


def test_a_run_recorded_before_a_knob_existed_is_skipped_by_its_recipe_and_not_on_other_hardware(make_cfg, tmp_path):
    """The stored config lacks a knob added since (so its hash differs); the same command (recipe, seed) on the same
    hardware is still done, the same command with another hardware block is not."""
    overrides = FAST + DATASETS["digits"]
    first = run(make_cfg(overrides))
    (path,) = (tmp_path / "runs").rglob("record.json")
    config = {**first["config"], "train": {k: v for k, v in first["config"]["train"].items() if k != "drop_last"}}
    path.write_text(json.dumps(first | {"config": config, "config_hash": "hash-before-knob"}))
    again = run(make_cfg(overrides))
    assert again["run_id"] == first["run_id"] and len(list((tmp_path / "runs").rglob("record.json"))) == 1
    elsewhere = run(make_cfg(overrides + ["hardware.cpu_threads=1"]))
    assert elsewhere["run_id"] != first["run_id"] and elsewhere["recipe"] == first["recipe"]


def test_nan_loss_ends_as_a_diverged_record(make_cfg, tmp_path):
    record = run(make_cfg(FAST + ["dataset=digits", "model=mlp", "optimizer.base.lr=1e30", "limits.max_epochs=2"]))
    assert record["status"] == "diverged" and "NaN" in record["error"]
    assert len(record["history"]) == 1, "training stops at the end of the epoch whose loss was not finite"
    assert only_record(tmp_path / "runs")["status"] == "diverged"


def test_a_failing_run_still_leaves_a_failed_record(make_cfg, tmp_path, monkeypatch):
    """A failure inside training (here a step that raises; bad config is stopped before any run folder)."""
    from optrepro.lit.module import ClassifierModule

    def failing_step(*args, **kwargs):
        raise RuntimeError("a bug inside the training step")

    monkeypatch.setattr(ClassifierModule, "training_step", failing_step)
    cfg = make_cfg(FAST + DATASETS["digits"])
    with pytest.raises(RuntimeError) as info:
        run(cfg)
    record = only_record(tmp_path / "runs")
    assert record["status"] == "failed" and str(info.value) in record["error"]


def test_wandb_is_offline_without_a_key_and_says_so_once(make_cfg, tmp_path, caplog, monkeypatch):
    from optrepro import tracking

    monkeypatch.setattr(tracking, "_offline_notice_given", False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.delenv("WANDB_MODE")
    overrides = ["debug=smoke", "logger=default", "logger.wandb.enabled=true", *DATASETS["digits"]]
    with caplog.at_level(logging.WARNING, logger="optrepro.tracking"):
        first = run(make_cfg(overrides))
        run(make_cfg(overrides + ["seed=1"]))
    notices = [r for r in caplog.records if "logging offline" in r.getMessage()]
    assert len(notices) == 1
    assert first["wandb"]["mode"] == "offline" and first["wandb"]["run_id"]
    run_dir = next((tmp_path / "runs").rglob(f"{first['run_id']}/record.json")).parent
    offline_run = run_dir / first["wandb"]["dir"]  # stored relative to the run folder
    assert offline_run.name.startswith("offline-run-") and (offline_run / "files").is_dir(), (
        "a real folder for `wandb sync`"
    )


def test_cifar_offline_stops_at_once_with_a_message_that_says_how_to_get_it(tmp_path):
    env = {**os.environ, "OPTREPRO_DATA": str(tmp_path / "data"), "OPTREPRO_RUNS": str(tmp_path / "runs")}
    env.pop("HF_HUB_OFFLINE", None)  # the real network of this machine: no route to the hub
    result = subprocess.run(
        [sys.executable, "run.py", "+repro=sam_cifar", "hardware=cpu"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    message = result.stderr
    assert "cifar10" in message and str(tmp_path / "data") in message and "dataset.path" in message
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob("record.json"))


# SGD: the union of the rank batches is the single-process batch. SAM per device: each rank perturbs with
# its own half-batch gradient, which is single-process m-sharpness with m = the per-device batch.
DDP_EQUIVALENCES = {
    "sgd": (["optimizer=sgd"], ["optimizer=sgd"]),
    "sam_per_device": (
        ["optimizer=sam", "optimizer.m_sharpness=32"],
        ["optimizer=sam", "optimizer.perturbation_sync=per_device"],
    ),
}


@pytest.mark.parametrize("method", sorted(DDP_EQUIVALENCES))
def test_two_gloo_processes_equal_the_single_process_computation(method, tmp_path):
    """DDP on 2 CPU processes through Lightning, on a BatchNorm-free model, ends at the single-process metrics."""
    common = [
        "dataset=digits",
        "model=mlp",
        "logger=csv",
        "train.checkpoint=false",
        "train.batch_size=64",
        "limits.max_epochs=1",
        "limits.train_batches=5",
        f"paths.runs_dir={tmp_path}/RUNS",
    ]
    single_overrides, ddp_overrides = DDP_EQUIVALENCES[method]
    results = {}
    for hardware, extra in (("cpu", single_overrides), ("ddp_cpu", ddp_overrides)):
        runs = tmp_path / hardware
        cmd = [sys.executable, "run.py", f"hardware={hardware}", *extra, *[c.replace("RUNS", hardware) for c in common]]
        done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        results[hardware] = only_record(runs)
    single, ddp = results["cpu"], results["ddp_cpu"]
    assert ddp["hardware"]["world_size"] == 2 and ddp["hardware"]["per_device_batch_size"] == 32
    for metric in ("train/loss", "test/loss", "test/acc"):
        assert ddp["metrics"]["final"][metric] == pytest.approx(single["metrics"]["final"][metric], rel=1e-5, abs=1e-6)


@pytest.mark.slow
def test_a_preempted_run_resumes_from_its_epoch_checkpoint_and_ends_identical(tmp_path):
    """SIGUSR1 mid-run stops between batches with an `interrupted` record; running again in the same folder
    (what a requeued SLURM job does) resumes from last.ckpt and ends bit-identical to an uninterrupted run, row for
    row, test metrics included, also when the test split is evaluated only every 4th epoch (the checkpoint is
    still written at every epoch end, after the epoch's row is complete)."""
    common = [
        sys.executable,
        "run.py",
        "dataset=digits",
        "model=small_cnn",
        "model.width=8",
        "logger=csv",
        "train.epochs=30",
        "train.eval_every=4",
        "train.batch_size=32",
        "optimizer=sam",
    ]
    control_env = {**os.environ, "OPTREPRO_RUN_DIR": str(tmp_path / "control")}
    (tmp_path / "control").mkdir()
    subprocess.run(common, cwd=REPO_ROOT, env=control_env, check=True, capture_output=True, timeout=300)
    control = read_record(tmp_path / "control")
    assert (
        control["recipe"]
        == list(recipe(common[2:]))
        == [  # what run.py was told, without display keys
            "dataset=digits",
            "model.width=8",
            "model=small_cnn",
            "optimizer=sam",
            "train.batch_size=32",
            "train.epochs=30",
            "train.eval_every=4",
        ]
    )

    run_env = {**os.environ, "OPTREPRO_RUN_DIR": str(tmp_path / "preempted")}
    (tmp_path / "preempted").mkdir()
    job = subprocess.Popen(
        common, cwd=REPO_ROOT, env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    checkpoint = tmp_path / "preempted" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 240
    while not checkpoint.exists() and time.monotonic() < deadline:  # the end of epoch 0, before any evaluation
        time.sleep(0.05)
    job.send_signal(signal.SIGUSR1)
    job.wait(timeout=240)
    interrupted = read_record(tmp_path / "preempted")
    assert interrupted["status"] == "interrupted" and "SIGUSR1" in interrupted["error"], job.stderr.read()[-2000:]
    assert 1 <= len(interrupted["history"]) < 30

    again = subprocess.run(common, cwd=REPO_ROOT, env=run_env, check=True, capture_output=True, text=True, timeout=300)
    resumed = read_record(tmp_path / "preempted")
    assert resumed["status"] == "finished"
    assert "resuming from a checkpoint that holds epochs 0.." in again.stdout + again.stderr
    assert len(list((tmp_path / "preempted" / "csv").glob("attempt_*"))) >= 1

    def strip(rows):
        return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]

    assert strip(resumed["history"]) == strip(control["history"])
    first, second = resumed["timing"]["attempts"]
    assert first["wall_time_s"] == interrupted["timing"]["wall_time_s"] and second["resumed_after_epoch"] >= 0
    assert resumed["timing"]["wall_time_s"] == pytest.approx(first["wall_time_s"] + second["wall_time_s"])


@pytest.mark.parametrize("optimizer", ["sgd", "sam"])
def test_bf16_autocast_runs_through_lightning_on_cpu(optimizer, make_cfg):
    record = run(make_cfg(FAST + DATASETS["digits"] + [f"optimizer={optimizer}", "hardware.precision=bf16-mixed"]))
    assert record["status"] == "finished" and record["hardware"]["precision"] == "bf16-mixed"
    assert math.isfinite(record["metrics"]["final"]["train/loss"])


@RunIf(min_gpus=1)
@pytest.mark.parametrize("hardware", ["gpu", "gpu_bf16"])
@pytest.mark.parametrize("optimizer", ["sgd", "sam", "saf"])
def test_gpu_presets_run_with_channels_last_and_mixed_precision(hardware, optimizer, make_cfg):
    record = run(make_cfg(FAST + DATASETS["synthetic"] + [f"hardware={hardware}", f"optimizer={optimizer}"]))
    assert record["status"] == "finished" and record["hardware"]["accelerator"] == "gpu"


@RunIf(min_gpus=1)
def test_fp16_gradient_scaler_path_runs_sam_on_gpu(make_cfg):
    record = run(
        make_cfg(FAST + DATASETS["synthetic"] + ["hardware=gpu", "hardware.precision=16-mixed", "optimizer=sam"])
    )
    assert record["status"] == "finished"


def test_last_epoch_time_per_step_uses_only_the_final_epoch():
    history = [{"step": 10, "time/train_s": 5.0}, {"step": 20, "time/train_s": 7.0}, {"step": 30, "time/train_s": 10.0}]
    assert last_epoch_time_per_step(history) == pytest.approx(0.3)
    assert last_epoch_time_per_step(history[:1]) == pytest.approx(0.5)
    assert math.isnan(last_epoch_time_per_step(history, clock="time/train_cpu_s"))  # a record from before the CPU clock
    cpu = [row | {"time/train_cpu_s": row["time/train_s"] / 2} for row in history]
    assert last_epoch_time_per_step(cpu, clock="time/train_cpu_s") == pytest.approx(0.15)


def test_imagenet_layout_folders_train_through_the_worker_loader(make_cfg, tmp_path):
    """The ImageNet path (class folders, DataLoader workers, torchvision transforms) on a tiny generated copy."""
    from PIL import Image

    for split in ("train", "val"):
        for label in ("n01", "n02"):
            folder = tmp_path / "imagenet" / split / label
            folder.mkdir(parents=True)
            for i in range(4):
                Image.new("RGB", (40, 40), color=(60 * i, 100 if label == "n01" else 0, 30)).save(folder / f"{i}.JPEG")
    cfg = make_cfg(
        [
            "dataset=imagenet",
            f"dataset.path={tmp_path / 'imagenet'}",
            "dataset.num_workers=0",
            "model=timm",
            "model.name=resnet18",
            "train.batch_size=4",
            "debug=smoke",
            "logger=csv",
            "train.checkpoint=false",
        ]
    )
    record = run(cfg)
    assert record["status"] == "finished" and record["timing"]["steps"] == 2


# ---- callbacks and trainer options from config (configs/callbacks, configs/trainer) ----------------------------


def capture_trainer(monkeypatch) -> list:
    """The Trainer each run builds, kept for inspection after the run."""
    from optrepro import builders

    built, real = [], builders.build_trainer
    monkeypatch.setattr(builders, "build_trainer", lambda *a, **k: built.append(real(*a, **k)) or built[-1])
    return built


def test_trainer_profiler_from_the_command_line_profiles_the_run(make_cfg, monkeypatch):
    from lightning.pytorch.profilers import SimpleProfiler

    built = capture_trainer(monkeypatch)
    record = run(make_cfg(FAST + DATASETS["digits"] + ["+trainer.profiler=simple"]))
    assert record["status"] == "finished"
    profiler = built[0].profiler
    assert isinstance(profiler, SimpleProfiler)
    assert any("run_training_epoch" in action for action in profiler.recorded_durations)


def test_a_callback_added_from_the_command_line_runs_and_logs(make_cfg, tmp_path):
    overrides = (
        FAST + DATASETS["digits"] + ["+callbacks.lr_monitor._target_=lightning.pytorch.callbacks.LearningRateMonitor"]
    )
    record = run(make_cfg(overrides))
    assert record["status"] == "finished"
    (metrics_csv,) = (tmp_path / "runs").rglob("csv/*/metrics.csv")
    header = metrics_csv.read_text().splitlines()[0].split(",")
    assert any(column.startswith("lr-") for column in header), header


def test_the_lr_monitor_group_option_composes_the_same_callback(make_cfg):
    cfg = make_cfg(["callbacks=lr_monitor"])
    assert cfg.callbacks.lr_monitor._target_ == "lightning.pytorch.callbacks.LearningRateMonitor"


@pytest.mark.parametrize(
    "override, words",
    [
        ("+trainer.max_epochs=3", "trainer.max_epochs: is computed by optrepro; set train.epochs"),
        ("+trainer.precision=16", "trainer.precision: is computed by optrepro; set hardware.precision"),
        ("+trainer.max_steps=5", "trainer.max_steps: changes what a run computes"),
        ("+trainer.profilr=simple", "trainer.profilr: is not a Trainer option"),
    ],
)
def test_a_trainer_key_the_user_may_not_set_is_an_error_naming_it(override, words, make_cfg, tmp_path):
    from optrepro.errors import ConfigError

    with pytest.raises(ConfigError, match=words.replace(".", r"\.")):
        run(make_cfg(FAST + DATASETS["digits"] + [override]))
    assert not list((tmp_path / "runs").rglob("record.json")), "the error comes before any run folder"


def test_a_callback_entry_without_target_is_an_error_naming_it(make_cfg):
    from optrepro.errors import ConfigError

    with pytest.raises(ConfigError, match=r"callbacks\.lr: has no _target_"):
        run(make_cfg(FAST + DATASETS["digits"] + ["+callbacks.lr.logging_interval=step"]))


def test_observer_options_stay_out_of_the_hash_and_other_callbacks_do_not(make_cfg):
    from optrepro.config import config_hash

    plain = config_hash(make_cfg([]))
    assert config_hash(make_cfg(["+trainer.profiler=simple", "callbacks=lr_monitor"])) == plain
    swa = "+callbacks.swa._target_=lightning.pytorch.callbacks.StochasticWeightAveraging"
    assert config_hash(make_cfg([swa, "+callbacks.swa.swa_lrs=0.01"])) != plain
