"""The recipe of a run (records.recipe): one canonical form of its overrides, the identity claims match by."""

from __future__ import annotations

import pytest

from optrepro.records.recipe import recipe, recipe_key
from optrepro.records.record import SCHEMA_VERSION, RunRecord


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["+repro=sam_fmnist_cpu"], ("repro=sam_fmnist_cpu",)),
        (["optimizer.rho=5e-2", "dataset.label_noise=0.40"], ("dataset.label_noise=0.4", "optimizer.rho=0.05")),
        (["optimizer.rho=0.1", "optimizer.rho=0.2"], ("optimizer.rho=0.2",)),  # the later one wins, as in Hydra
        (["++callbacks.x.k=[1,2]", "~callbacks.y"], ("callbacks.x.k=[1,2]", "~callbacks.y")),
        (
            ["seed=3", "hardware=gpu", "hardware.devices=2", "name=x", "repro.arm=a", "logger.wandb.mode=offline"],
            (),
        ),
        (["paths.runs_dir=/tmp/r", "trainer.log_every_n_steps=5", "hydra/launcher=submitit_slurm"], ()),
    ],
)
def test_recipe_is_canonical_and_leaves_out_seed_hardware_and_display(overrides, expected):
    assert recipe(overrides) == expected


def test_recipe_key_is_none_only_for_an_unknown_recipe():
    assert recipe_key(None) is None
    assert recipe_key([]) == "[]" and recipe_key(("a=1",)) == '["a=1"]'


def test_a_version_2_record_reads_with_a_null_recipe():
    record = RunRecord.from_dict(
        {"schema_version": 2, "run_id": "r", "status": "finished", "config": {}, "config_hash": "", "setting_hash": ""}
    )
    assert record.recipe is None and record.schema_version == SCHEMA_VERSION == 3


def test_a_recipe_that_is_not_a_list_of_strings_is_refused():
    with pytest.raises(ValueError, match="recipe is neither a list of override strings nor null"):
        RunRecord(run_id="r", status="finished", config={}, config_hash="", setting_hash="", recipe="repro=x")
