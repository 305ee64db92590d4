"""Records name no folder of the machine that made them: committed records read the same on every clone."""

from __future__ import annotations

import json

from optrepro.paths import REPO_ROOT
from optrepro.records.record import portable


def constructed_record(root: str, runs: str, wandb_dir: str) -> dict:
    return {
        "run_id": "7_1_42",
        "config": {"paths": {"root_dir": root, "data_dir": f"{root}/data", "runs_dir": runs, "run_dir": None}},
        "wandb": {"dir": wandb_dir, "mode": "offline"},
    }


def test_paths_inside_the_repository_become_relative_and_others_keep_only_their_name():
    record = constructed_record(
        "/cluster/u/optrepro", "/scratch/u/runs", "/scratch/u/runs/2026-12-02/sam_cifar/7_1_42/wandb/offline-run-x"
    )
    made = portable(record)
    assert made["config"]["paths"] == {
        "root_dir": ".",
        "data_dir": "data",
        "runs_dir": "<outside repository>/runs",
        "run_dir": None,
    }
    assert made["wandb"]["dir"] == "wandb/offline-run-x"
    assert record["config"]["paths"]["root_dir"] == "/cluster/u/optrepro"  # the input is left as it was


def test_paths_in_the_run_folder_become_relative_to_it_and_the_config_keeps_the_users_values():
    record = constructed_record("/cluster/u/optrepro", "/cluster/u/optrepro/runs", "wandb/offline-run-x")
    record["config"]["dataset"] = {"path": "/datasets/cifar10"}  # what the user asked for: left as written
    record["extra"] = {"figures": ["/cluster/u/optrepro/runs/2026-12-02/sam/7_1_42/landscape/slice_1d.png"]}
    made = portable(record)
    assert made["extra"] == {"figures": ["landscape/slice_1d.png"]}
    assert made["config"]["dataset"] == {"path": "/datasets/cifar10"}
    assert made["config"]["paths"]["runs_dir"] == "runs"


def test_a_portable_record_is_left_unchanged():
    record = constructed_record(".", "runs", "wandb/offline-run-x")
    record["config"]["paths"]["data_dir"] = "data"
    assert portable(record) == record


def test_no_committed_record_holds_an_absolute_path():
    offenders = []
    for path in sorted((REPO_ROOT / "results").rglob("*.json")):
        stack = [json.loads(path.read_text())]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
            elif isinstance(item, str) and item.startswith(("/work/", "/root/", "/tmp/", "/home/")):
                offenders.append(f"{path.relative_to(REPO_ROOT)}: {item}")
    assert not offenders, offenders[:5]
