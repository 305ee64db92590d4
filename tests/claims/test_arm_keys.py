"""The key of a claim arm is the recipe of its `setting + overrides` (and tuned value): runs launched for the arm
carry the same recipe, so they match without composing anything; a bad arm still fails, when composed for a
launch, with the claim's own one-line error."""

from __future__ import annotations

import dataclasses
import json

import pytest
from claimkit import SAM_CLAIMS, write_claims

from optrepro.claims.load import load_paper_claims
from optrepro.claims.match import ArmComposer, ArmCompositionError, arm_key, arm_keys


@pytest.fixture
def claims(tmp_path):
    return {c.id: c for c in load_paper_claims(write_claims(tmp_path / "reproductions", SAM_CLAIMS)).claims}


def test_an_arm_key_is_the_recipe_of_its_setting_overrides_and_tuned_value(claims):
    ordering = claims["ordering"]
    assert json.loads(arm_key(ordering, "sam")) == ["optimizer=sam"]
    noisy = dataclasses.replace(ordering, setting=("dataset.label_noise=0.40",))
    assert json.loads(arm_key(noisy, "sam")) == ["dataset.label_noise=0.4", "optimizer=sam"]
    assert arm_key(noisy, "sam", ["hardware=gpu8", "logger=csv"]) == arm_key(noisy, "sam"), "launch options"
    assert arm_key(noisy, "sam", ["train.epochs=1"]) != arm_key(noisy, "sam"), "a semantic extra is another setting"


def test_claims_sharing_an_arm_share_its_key(claims):
    keys = arm_keys(claims.values())
    assert keys[("sam/ordering", "sam")] == keys[("sam/value", "sam")] != keys[("sam/ordering", "sgd")]


def test_a_bad_arm_composed_for_a_launch_fails_with_the_claims_message(claims, config_dir):
    first = claims["ordering"]
    broken = dataclasses.replace(
        first, arms={**first.arms, "sam": dataclasses.replace(first.arms["sam"], overrides=("+repro=no_such_preset",))}
    )
    with (
        ArmComposer(config_dir) as composer,
        pytest.raises(ArmCompositionError, match=r"^claim sam/ordering .*arm 'sam'"),
    ):
        composer.compose(broken, "sam")
