"""`results collect`: record.json files and W&B offline runs -> one table, a parquet file, a record store."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from optrepro.cli import main
from optrepro.records.table import load_records
from optrepro.results.collect import (
    WandbRunSkipped,
    gather_records,
    store_records,
    write_parquet,
)
from optrepro.results.wandb_runs import read_offline_run

SAM = ["optimizer=sam"]
CONFIG = {
    "seed": 1,
    "repro": {"paper": "sam", "name": None, "tier": "cpu", "arm": None},
    "optimizer": {"name": "sam", "lr": 0.1, "rho": 0.05},
    "train": {"epochs": 2, "batch_size": 128},
    "hardware": {"accelerator": "cpu", "devices": 1, "num_nodes": 1, "precision": "32-true"},
}


@pytest.fixture(scope="module")
def offline_wandb_run(tmp_path_factory):
    """A real W&B offline run (config, 2 history rows, summary) that left no record.json."""
    wandb = pytest.importorskip("wandb")
    root = tmp_path_factory.mktemp("wandb_runs")
    run = wandb.init(mode="offline", dir=str(root), project="optrepro-test", config=CONFIG)
    for epoch, error in enumerate([5.0, 4.0]):
        run.log({"epoch": epoch, "test/error": error, "train/loss": 1.0 / (epoch + 1)})
    run.finish()
    wandb.teardown()  # the W&B service flushes the log file after finish() returns; teardown waits for it
    return root, run.id


def test_offline_run_log_is_read_without_a_server(offline_wandb_run):
    root, run_id = offline_wandb_run
    [log] = list(root.rglob("run-*.wandb"))
    run = read_offline_run(log)
    assert (run.run_id, run.project, run.status) == (run_id, "optrepro-test", "finished")
    assert run.config["optimizer"] == CONFIG["optimizer"]
    assert run.summary["test/error"] == 4.0
    assert [row["test/error"] for row in run.history] == [5.0, 4.0]
    assert run.dir == f"wandb/{log.parent.name}" and str(root) not in run.dir  # relative, as in a record


def test_collect_merges_run_folders_and_wandb_runs(records, offline_wandb_run, tmp_path):
    root, run_id = offline_wandb_run
    records.add(SAM, 0, {"test/error": 2.7})
    records.add(SAM, 2, {"test/error": 2.9}, wandb={"run_id": "known-id", "mode": "offline", "dir": "x"})
    found = gather_records([records.root, root])
    assert [r["run_id"] for _, r in found] == ["run001", "run002", f"wandb-{run_id}"]
    source, from_wandb = found[2]
    assert source.endswith(".wandb")
    assert from_wandb["seed"] == 1 and from_wandb["metrics"]["final"]["test/error"] == 4.0
    assert from_wandb["hardware"]["per_device_batch_size"] == 128
    assert from_wandb["history"][1]["epoch"] == 1


def test_a_wandb_run_with_a_record_is_taken_from_the_record(records, offline_wandb_run):
    root, run_id = offline_wandb_run
    records.add(SAM, 1, {"test/error": 2.7}, wandb={"run_id": run_id, "mode": "offline", "dir": str(root)})
    found = gather_records([records.root, root])
    assert [r["run_id"] for _, r in found] == ["run001"]


def test_unreadable_wandb_log_is_skipped_with_a_warning(records, tmp_path):
    records.add(SAM, 0, {"test/error": 2.7})
    broken = tmp_path / "wandb" / "offline-run-x" / "run-x.wandb"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not a log")
    with pytest.warns(WandbRunSkipped, match="not a W&B transaction log"):
        found = gather_records([records.root, tmp_path / "wandb"])
    assert len(found) == 1


def test_parquet_table_round_trips_with_mixed_type_columns(tmp_path):
    table = pd.DataFrame({"run_id": ["a", "b"], "p_x": [0.1, "auto"], "m_final_acc": [0.9, math.nan]})
    path = write_parquet(table, tmp_path / "table.parquet")
    back = pd.read_parquet(path)
    assert back["p_x"].tolist() == ["0.1", '"auto"'] and back["m_final_acc"].iloc[0] == 0.9


def test_collect_command_writes_table_and_record_store(records, tmp_path, capsys):
    records.add(SAM, 0, {"test/error": 2.7})
    into = tmp_path / "store"
    assert (
        main(["results", "collect", str(records.root), "--table", str(tmp_path / "t.parquet"), "--into", str(into)])
        == 0
    )
    assert pd.read_parquet(tmp_path / "t.parquet")["run_id"].tolist() == ["run001"]
    stored = into / "sam" / "run001" / "record.json"
    assert json.loads(stored.read_text())["metrics"]["final"]["test/error"] == 2.7
    assert load_records(into)["run_id"].tolist() == ["run001"]


def test_store_records_overwrites_an_older_copy_of_the_same_run(records, tmp_path):
    record = records.add(SAM, 0, {"test/error": 2.7})
    store_records([("a", record)], tmp_path / "store")
    store_records([("a", record | {"status": "diverged"})], tmp_path / "store")
    assert load_records(tmp_path / "store")["status"].tolist() == ["diverged"]
