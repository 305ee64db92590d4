"""How a run shows up in W&B: names, claim-setting groups, job types, tags, the record's identity in the config."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.compose import compose_config

from optrepro import tracking
from optrepro.config import config_hash, setting_hash
from optrepro.results.wandb_runs import IDENTITY_KEY, read_offline_run, to_record

CODE = {"git_commit": "abc123", "git_dirty": False, "source_hash": "5eed"}


def init(overrides, tmp_path, choices=None, task=None, **kwargs):
    cfg = compose_config(list(overrides), tmp_path)
    run_dir = Path(cfg.paths.runs_dir) / "2026-12-02" / str(cfg.name) / "7_0_7"
    run_dir.mkdir(parents=True, exist_ok=True)
    return cfg, tracking.wandb_init_kwargs(
        cfg,
        run_dir,
        mode="offline",
        code=CODE,
        choices=choices or {},
        task_overrides=overrides if task is None else task,
        **kwargs,
    )


@pytest.mark.parametrize(
    ("arms", "group"),
    [
        (["+repro=sam_fmnist_cpu", "+repro=sam_fmnist_cpu_sgd", "+repro=asam_fmnist_cpu"], "sam_family_fmnist_cpu"),
        (["+repro=sam_cifar", "+repro=sam_cifar_sgd"], "sam_wrn28_10_cifar10_basic"),
        (["+repro=lion_k_mnist1d_cpu_l1", "+repro=lion_k_mnist1d_cpu_l2"], "lion_k_mnist1d_cpu"),  # no setting file
    ],
)
def test_the_arms_of_a_claim_share_one_group(arms, group, tmp_path):
    assert {init([arm], tmp_path)[1]["group"] for arm in arms} == {group}


def test_a_claims_setting_overrides_make_their_own_group_and_arm_seed_hardware_do_not(tmp_path):
    extra = ["seed=3", "hardware=gpu", "optimizer.rho=0.1", "logger=csv", "hydra/launcher=slurm", "skip_finished=false"]
    _, basic = init(["+repro=sam_cifar", *extra], tmp_path)
    _, cutout = init(["+repro=sam_cifar", "dataset.augment.cutout=16", *extra], tmp_path)
    _, cutout_sgd = init(["+repro=sam_cifar_sgd", "dataset.augment.cutout=16", "seed=0"], tmp_path)
    assert basic["group"] == "sam_wrn28_10_cifar10_basic"
    assert cutout["group"] == cutout_sgd["group"] == "sam_wrn28_10_cifar10_basic[dataset.augment.cutout=16]"


def test_names_say_preset_arm_and_seed(tmp_path):
    assert init(["+repro=sam_cifar", "seed=0"], tmp_path)[1]["name"] == "sam_cifar/sam/s0"
    assert init(["+repro=sam_fmnist_cpu_sgd", "seed=4"], tmp_path)[1]["name"] == "sam_fmnist_cpu_sgd/sgd/s4"
    adhoc = init(["optimizer=adam"], tmp_path)[1]
    assert (adhoc["name"], adhoc["group"]) == ("adhoc/adam/s0", "adhoc")


def test_smoke_and_debug_runs_are_typed_and_kept_apart(tmp_path):
    _, train = init(["+repro=sam_fmnist_cpu"], tmp_path)
    _, smoke = init(["+repro=sam_fmnist_cpu", "debug=smoke"], tmp_path, choices={"debug": "smoke"})
    _, limit = init(["+repro=sam_fmnist_cpu", "debug=limit"], tmp_path, choices={"debug": "limit"})
    _, by_hand = init(["+repro=sam_fmnist_cpu", "limits.max_epochs=1"], tmp_path)
    assert [k["job_type"] for k in (train, smoke, limit, by_hand)] == ["train", "smoke", "debug", "debug"]
    assert (smoke["name"], smoke["group"]) == ("sam_fmnist_cpu/sam/s0/smoke", "smoke/sam_family_fmnist_cpu")
    assert limit["group"] == by_hand["group"] == "debug/sam_family_fmnist_cpu"
    assert "smoke" in smoke["tags"] and "debug" in limit["tags"] and "train" not in train["tags"]


def test_smoke_and_debug_presets_leave_wandb_off_by_default(tmp_path):
    for preset in ("smoke", "limit"):
        assert compose_config([f"debug={preset}"], tmp_path).logger.wandb.enabled is False


def test_tags_are_unique_and_an_explicit_group_wins(tmp_path):
    overrides = ["+repro=sam_fmnist_cpu", "logger.wandb.tags=[sam,cpu,mine,sam]", "logger.wandb.group=my_sweep"]
    _, kwargs = init(overrides, tmp_path)
    assert kwargs["tags"] == ["sam", "cpu", "mine", "paper:sam", "tier:cpu", "arm:sam"]
    assert kwargs["group"] == "my_sweep"


def test_run_config_is_the_resolved_config_plus_the_records_identity(tmp_path):
    cfg, kwargs = init(["+repro=sam_fmnist_cpu", "seed=1"], tmp_path)
    config = dict(kwargs["config"])
    identity = config.pop(IDENTITY_KEY)
    assert config["seed"] == 1 and config["optimizer"]["rho"] == 0.05
    assert identity == {
        "run_id": "7_0_7",
        "run_folder": "2026-12-02/sam_fmnist_cpu/7_0_7",
        "config_hash": config_hash(cfg),
        "setting_hash": setting_hash(cfg),
        "recipe": ["repro=sam_fmnist_cpu"],  # what the W&B run reads back as its record's recipe
        "repro": {"paper": "sam", "name": "sam_fmnist_cpu", "tier": "cpu", "arm": "sam"},
        "job_type": "train",
        "git_commit": "abc123",
        "git_dirty": False,
        "source_hash": "5eed",
    }


def test_an_offline_wandb_run_folder_holds_name_group_type_tags_and_identity(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    overrides = [
        "+repro=sam_fmnist_cpu_sgd",
        "dataset.augment.cutout=8",
        "seed=2",
        "logger.wandb.enabled=true",
        "logger.wandb.mode=offline",
    ]
    cfg = compose_config(overrides, tmp_path)  # sets Hydra's context, as run.py's @hydra.main does
    run_dir = tmp_path / "runs" / "2026-12-02" / "sam_fmnist_cpu_sgd" / "9_0_9"
    run_dir.mkdir(parents=True)
    loggers = tracking.build_loggers(cfg, run_dir, is_global_zero=True, code=CODE)
    info = tracking.wandb_info(loggers)
    tracking.finish_wandb(loggers)
    wandb.teardown()  # flushes the transaction log
    assert info["dir"].startswith("wandb/offline-run-") and (run_dir / info["dir"] / "files").is_dir()
    group = "sam_family_fmnist_cpu[dataset.augment.cutout=8]"
    assert (info["name"], info["group"]) == ("sam_fmnist_cpu_sgd/sgd/s2", group)
    [log] = run_dir.rglob("run-*.wandb")
    run = read_offline_run(log)
    assert (run.name, run.group, run.job_type, run.tags) == (
        "sam_fmnist_cpu_sgd/sgd/s2",
        "sam_family_fmnist_cpu[dataset.augment.cutout=8]",
        "train",
        ["paper:sam", "tier:cpu", "arm:sgd"],
    )
    assert run.config[IDENTITY_KEY]["config_hash"] == config_hash(cfg)
    record = to_record(run)  # a W&B run read back as a record: the identity block is not part of its config
    assert IDENTITY_KEY not in record["config"] and record["config_hash"] == config_hash(cfg)
    assert record["recipe"] == ["dataset.augment.cutout=8", "repro=sam_fmnist_cpu_sgd"], "seed and logger left out"
