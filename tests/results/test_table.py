"""load_records / load_history: flattened columns, NaN metrics, and corrupt records skipped with a warning."""

from __future__ import annotations

import math

import pytest
from claimkit import store

from optrepro.records.table import CorruptRecordWarning, load_history, load_records

SAM = ["optimizer=sam"]


def test_one_row_per_record_with_prefixed_columns(records):
    records.add(
        SAM,
        0,
        {"test/error": 2.7},
        wandb={"run_id": "w1", "mode": "offline", "dir": "/x"},
        history=[{"epoch": 0, "step": 10, "train/loss": 1.0}, {"epoch": 1, "step": 20, "train/loss": 0.5}],
    )
    records.add(SAM, 1, {"test/error": float("nan")}, status="diverged")
    table = load_records(records.root)
    assert list(table["run_id"]) == ["run001", "run002"]
    row = table.iloc[0]
    assert row["p_optimizer.name"] == "sam" and row["p_optimizer.rho"] == 0.05
    assert row["m_final_test/error"] == 2.7 and row["m_best_test/error"] == 2.7
    assert row["hw_world_size"] == 1 and row["hw_device_names"] == '["x86_64"]'
    assert row["code_git_commit"] == "c0ffee0000000000"
    assert row["wandb_run_id"] == "w1" and row["timing_time_per_step_s"] == 0.1
    assert row["record_path"].endswith("run001/record.json")
    assert math.isnan(table.iloc[1]["m_final_test/error"])  # stored as "nan" by the writer


def test_history_is_long_format(records):
    records.add(
        SAM,
        0,
        {"test/error": 2.7},
        history=[
            {"epoch": 0, "step": 10, "train/loss": 1.0, "test/error": 5.0},
            {"epoch": 1, "step": 20, "train/loss": 0.5, "test/error": 4.0},
        ],
    )
    history = load_history(records.root)
    assert list(history.columns) == ["run_id", "epoch", "step", "metric", "value"]
    assert history[history["metric"] == "train/loss"][["epoch", "value"]].values.tolist() == [[0, 1.0], [1, 0.5]]
    assert len(history) == 4


CORRUPT = [
    ("truncated JSON", '{"run_id": "x", "status"', "not readable JSON"),
    ("not an object", "[1, 2]", "top level is list"),
    ("missing fields", '{"run_id": "x"}', "missing required field(s) status, config"),
]


@pytest.mark.parametrize("name, text, reason", CORRUPT, ids=[c[0] for c in CORRUPT])
def test_corrupt_record_is_reported_and_skipped(records, name, text, reason):
    good = records.add(SAM, 0, {"test/error": 2.7})
    bad = records.root / "broken" / "record.json"
    bad.parent.mkdir(parents=True)
    bad.write_text(text)
    with pytest.warns(CorruptRecordWarning) as warned:
        table = load_records(records.root)
    assert str(bad) in str(warned[0].message) and reason in str(warned[0].message)
    assert list(table["run_id"]) == [good["run_id"]]


def test_empty_folder_gives_an_empty_table_with_identity_columns(tmp_path):
    table = load_records(tmp_path)
    assert table.empty and {"run_id", "status", "seed", "config_json"} <= set(table.columns)


def test_store_keeps_records_loadable(records, tmp_path):
    record = records.add(SAM, 0, {"test/error": 2.7})
    store(tmp_path / "copy", record)
    assert load_records(tmp_path / "copy")["config_hash"].tolist() == [record["config_hash"]]
