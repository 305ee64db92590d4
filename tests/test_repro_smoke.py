"""The smoke variant of every reproduction that runs offline: each `cpu` preset for a few batches."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers.compose import compose_config
from hydra.utils import get_class

from optrepro.builders import build_data
from optrepro.paths import CONFIG_DIR, REPO_ROOT, reproduction_config_dirs
from optrepro.train import ClassificationTask, run


@functools.cache
def presets_by_tier() -> dict[str, dict[str, str]]:
    """tier -> {preset: the `task._target_` its run goes through}, every preset composed once."""
    found: dict[str, dict[str, str]] = {}
    for name in sorted(p.stem for d in reproduction_config_dirs() for p in (d / "repro").glob("*.yaml")):
        cfg = compose_config([f"+repro={name}"])
        found.setdefault(cfg.repro.tier, {})[name] = cfg.task._target_
    return found


def preset_tasks(tier: str) -> dict[str, str]:
    return presets_by_tier().get(tier, {})


def cpu_presets() -> list[str]:
    return list(preset_tasks("cpu"))


def test_every_task_config_runs_end_to_end(tmp_path):
    """The task table: each task config (configs/task and the papers') is run by a cpu preset's smoke run below or,
    when only a smoke-tier preset uses it (a task that claims add, as flexibility's EMC search), by that preset here."""
    folders = [CONFIG_DIR / "task", *(d / "task" for d in reproduction_config_dirs())]
    declared = {yaml.safe_load(f.read_text())["_target_"]: f.stem for d in folders for f in d.glob("*.yaml")}
    others = {target: stem for target, stem in declared.items() if target not in set(preset_tasks("cpu").values())}
    for target, stem in others.items():
        smoke = next((name for name, task in preset_tasks("smoke").items() if task == target), None)
        assert smoke is not None, f"task config {stem}: no cpu or smoke preset runs it"
        record = run(compose_config([f"+repro={smoke}", "logger=csv"], tmp_path / smoke))
        assert record["status"] == "finished" and record["metrics"]["final"], f"{stem} via {smoke}: {record['error']}"


def run_entry_script(overrides: list[str], runs_dir: Path) -> dict:
    """The run's record when run.py runs it in a subprocess (multi-process presets cannot run inside pytest)."""
    done = subprocess.run(
        [sys.executable, "run.py", *overrides], check=False, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(next(runs_dir.rglob("record.json")).read_text())


@pytest.mark.parametrize("preset", cpu_presets())
def test_cpu_preset_smoke_run_finishes_with_a_record(preset, tmp_path):
    overrides = [f"+repro={preset}", "debug=smoke", "logger=csv", "train.checkpoint=false"]
    cfg = compose_config(overrides, tmp_path)
    if cfg.hardware.devices > 1:  # DDP workers (PowerSGD's gloo pair): Lightning re-launches the entry script
        record = run_entry_script([*overrides, f"paths.runs_dir={cfg.paths.runs_dir}"], Path(cfg.paths.runs_dir))
    else:
        record = run(cfg)
    assert record["status"] == "finished", record["error"]
    assert record["repro"]["name"] == preset and record["repro"]["tier"] == "cpu"
    if not issubclass(get_class(cfg.task._target_), ClassificationTask):  # a paper's own task: its own metrics
        assert record["metrics"]["final"]
        if cfg.get("structure") is not None:  # a structure-learning run: solver iterations
            assert "graph/shd" in record["metrics"]["final"]
        return
    _, data = build_data(cfg)
    batches_per_epoch = -(-data.num_train // cfg.train.batch_size)  # 1 for a full-batch preset (grokking)
    assert record["timing"]["steps"] == min(3, batches_per_epoch)
