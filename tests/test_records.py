"""Run folders never collide and records are written whole or not at all."""
from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from optrepro.records.run_dir import RUN_DIR_ENV, make_run_dir
from optrepro.records.schema import best_metrics, final_metrics
from optrepro.records.writer import read_record, write_json_atomic, write_record


@pytest.fixture(autouse=True)
def _no_slurm(monkeypatch):
    for name in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", RUN_DIR_ENV):
        monkeypatch.delenv(name, raising=False)


def test_many_runs_started_in_the_same_second_get_distinct_folders(tmp_path):
    with ThreadPoolExecutor(8) as pool:
        folders = list(pool.map(lambda _: make_run_dir(tmp_path, "sweep"), range(64)))
    assert len(set(folders)) == 64 and all(f.is_dir() for f in folders)


def test_slurm_array_elements_are_named_by_their_ids_and_a_requeue_finds_its_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "1005")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "1000")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "5")
    first = make_run_dir(tmp_path, "sam_cifar")
    assert first.name == "1000_5_1005"
    assert make_run_dir(tmp_path, "sam_cifar") == first, "a requeued job (same ids) resumes in its folder"
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "6")
    monkeypatch.setenv("SLURM_JOB_ID", "1006")
    assert make_run_dir(tmp_path, "sam_cifar") != first


def test_ddp_workers_reuse_the_folder_of_rank_zero(tmp_path, monkeypatch):
    monkeypatch.setenv(RUN_DIR_ENV, str(tmp_path / "rank0"))
    assert make_run_dir(tmp_path, "x") == tmp_path / "rank0"


def test_record_write_is_atomic_and_a_failed_write_keeps_the_old_record(tmp_path, monkeypatch):
    write_record(tmp_path, {"status": "finished", "value": 1.0})

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        write_record(tmp_path, {"status": "finished", "value": 2.0})
    assert read_record(tmp_path) == {"status": "finished", "value": 1.0}
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"], "no temporary file is left behind"


def test_non_finite_metrics_are_stored_as_readable_json(tmp_path):
    write_json_atomic(tmp_path / "r.json", {"loss": float("nan"), "rows": [{"acc": float("inf")}]})
    assert json.loads((tmp_path / "r.json").read_text()) == {"loss": "nan", "rows": [{"acc": "inf"}]}


def test_best_and_final_metrics_over_the_history():
    history = [
        {"epoch": 0, "step": 10, "lr": 0.1, "train/loss": 2.0, "test/acc": 0.5, "test/loss": 1.0},
        {"epoch": 1, "step": 20, "lr": 0.05, "train/loss": 1.0, "test/acc": 0.7, "test/loss": 1.2},
        {"epoch": 2, "step": 30, "lr": 0.0, "train/loss": float("nan"), "test/acc": 0.6, "test/loss": 0.9},
    ]
    assert best_metrics(history) == {"train/loss": 1.0, "test/acc": 0.7, "test/loss": 0.9}
    final = final_metrics(history)
    assert final["test/acc"] == 0.6 and final["lr"] == 0.0 and "epoch" not in final
