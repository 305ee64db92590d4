"""`optrepro landscape` on a tiny real run: PNGs, record fields, an intact record on failure, clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers.compose import compose_config

from optrepro.cli import main
from optrepro.landscape.record_update import write_landscape
from optrepro.records.record import read_record
from optrepro.records.table import load_records
from optrepro.train import run

SMALL = [
    "--samples",
    "64",
    "--points",
    "5",
    "--points-2d",
    "3",
    "--directions",
    "2",
    "--hessian-iterations",
    "3",
    "--ascent-steps",
    "2",
    "--batch-size",
    "32",
]
METRICS = (
    "landscape/hessian_max_eig",
    "landscape/adaptive_sharpness",
    "landscape/loss_rise_1d",
    "landscape/loss_at_center",
)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """One smoke run on the 8x8 digits with its checkpoint kept."""
    tmp = tmp_path_factory.mktemp("landscape_run")
    cfg = compose_config(
        [
            "debug=smoke",
            "logger=csv",
            "train.checkpoint=true",
            "train.batch_size=32",
            "dataset=digits",
            "model=small_cnn",
            "model.width=8",
        ],
        tmp,
    )
    record = run(cfg)
    assert record["status"] == "finished"
    (record_path,) = (tmp / "runs").rglob("record.json")
    return record_path.parent


@pytest.fixture
def run_copy(trained_run, tmp_path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(trained_run, target, symlinks=True)
    return target


def test_cli_writes_pngs_and_landscape_figures_beside_an_untouched_record(run_copy, capsys):
    original = (run_copy / "record.json").read_bytes()
    before = read_record(run_copy)
    assert main(["landscape", str(run_copy), *SMALL]) == 0
    assert (run_copy / "landscape" / "slice_1d.png").stat().st_size > 1000
    assert (run_copy / "landscape" / "slice_2d.png").stat().st_size > 1000
    assert (run_copy / "record.json").read_bytes() == original, "record.json is written once, when the run ends"
    after = read_record(run_copy)
    for name in METRICS:
        assert isinstance(after["metrics"]["final"][name], float)
    block = after["extra"]["landscape"]
    assert len(block["slice_1d"]) == 2 and len(block["slice_1d"][0]["loss"]) == 5
    assert len(block["slice_2d"]["loss"]) == 3 and block["settings"]["samples"] == 64
    center = block["slice_1d"][0]["loss"][2]
    assert after["metrics"]["final"]["landscape/loss_at_center"] == pytest.approx(center, rel=1e-5)
    # everything the run recorded is kept; only metrics.final and extra gained entries
    assert {k: v for k, v in after.items() if k not in ("metrics", "extra")} == {
        k: v for k, v in before.items() if k not in ("metrics", "extra")
    }
    assert before["metrics"]["final"].items() <= after["metrics"]["final"].items()
    table = load_records(run_copy)
    assert (
        len(table) == 1
        and table["m_final_landscape/hessian_max_eig"].iloc[0] == after["metrics"]["final"]["landscape/hessian_max_eig"]
    )
    assert "hessian_max_eig=" in capsys.readouterr().out


def test_a_write_that_fails_leaves_no_measurement_behind(run_copy):
    original = (run_copy / "record.json").read_text()
    with pytest.raises(TypeError):
        write_landscape(run_copy, {"metrics": {"landscape/x": 1.0}, "data": object()})
    assert (run_copy / "record.json").read_text() == original
    assert not (run_copy / "landscape.json").exists() and not list(run_copy.glob(".landscape.json.*"))


def test_a_folder_without_a_record_is_refused_with_the_reason(tmp_path, capsys):
    assert main(["landscape", str(tmp_path), *SMALL]) == 2
    assert "has no record.json" in capsys.readouterr().err


def test_an_unfinished_run_is_refused_with_the_reason(run_copy, capsys):
    record = json.loads((run_copy / "record.json").read_text())
    (run_copy / "record.json").write_text(json.dumps(record | {"status": "interrupted"}))
    assert main(["landscape", str(run_copy), *SMALL]) == 2
    assert "'interrupted', not finished" in capsys.readouterr().err


def test_a_run_without_a_checkpoint_is_refused_with_the_fix(run_copy, capsys):
    shutil.rmtree(run_copy / "checkpoints")
    assert main(["landscape", str(run_copy), *SMALL]) == 2
    assert "train.checkpoint=true" in capsys.readouterr().err
    assert "landscape" not in json.loads((run_copy / "record.json").read_text())["extra"]
