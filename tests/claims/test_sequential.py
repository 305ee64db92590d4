"""Pre-registered sequential looks (claims.sequential): boundaries against published values, the verdict at each
look on constructed samples, and the test of the test: simulated claims whose true effect sits exactly at the
margin are called "reproduced" at most 5.5% of the time (a fixed rule re-applied after each batch of seeds, naive
optional stopping, is shown to inflate that rate)."""

from __future__ import annotations

import numpy as np
import pytest
from test_decision_rule import claim, evidence

from optrepro.claims.checks import evaluate_claim, judge, judge_sequential
from optrepro.claims.policy import missing_seeds
from optrepro.claims.sequential import nominal_levels, z_boundaries

LOOKS = "{looks: [3, 5, 10]}"
HIGHER = "{kind: ordering, better: sam, than: sgd, direction: higher}"


@pytest.mark.parametrize("kind, expected", [("obf", (3.578, 2.780, 1.980)), ("pocock", (2.312, 2.398, 2.226))])
def test_boundaries_equal_the_published_lan_demets_values(kind, expected):
    """Looks at 3, 5 and 10 of 10 seeds (Lan & DeMets 1983; values in the team's reference, section B.2)."""
    assert z_boundaries((3, 5, 10), kind) == pytest.approx(expected, abs=2e-3)


def test_the_spending_adds_up_to_five_percent_over_equal_looks():
    """Equal looks at OBF-type spending: the last look's nominal level stays near the fixed 5% (about 0.045-0.048)."""
    levels = nominal_levels((5, 10, 20), "obf")
    assert levels[0] < 1e-3 < levels[1] < 0.01 < 0.04 < levels[2] < 0.05


def looks_claim(looks: str = LOOKS, check: str = HIGHER):
    return claim(check, seeds=looks)


def test_a_large_effect_is_decided_at_the_first_look_and_asks_for_no_more_seeds():
    samples = {"sam": [1.0, 1.01, 1.02], "sgd": [0.0, 0.0, 0.0]}  # t = 175 on 2 df: beyond OBF's first look
    verdict = judge_sequential(looks_claim(), evidence(samples, True))
    assert verdict.status == "reproduced" and verdict.label == "reproduced at look 1 of 3 (3 seeds)"
    assert missing_seeds(verdict) == {"sam": (), "sgd": ()}  # what `claims run` launches: nothing


def test_a_claim_still_undecided_at_its_last_look_asks_for_no_more_seeds():
    samples = {"sam": [1.0, 0.2, 0.5, 0.4, 0.9], "sgd": [0.6, 0.3, 0.1, 0.5, 0.8]}
    verdict = judge_sequential(looks_claim("{looks: [3, 5]}"), evidence(samples, True))
    assert verdict.label == "inconclusive at look 2 of 2 (5 seeds)"
    assert missing_seeds(verdict) == {"sam": (), "sgd": ()}


def test_an_undecided_look_asks_for_exactly_the_next_looks_seeds():
    samples = {"sam": [1.0, 0.2, 0.5], "sgd": [0.6, 0.3, 0.1]}
    verdict = judge_sequential(looks_claim(), evidence(samples, True))
    assert verdict.label == "inconclusive at look 1 of 3 (3 seeds; the next look adds 2)"
    assert missing_seeds(verdict) == {"sam": (3, 4), "sgd": (3, 4)}


def test_seeds_beyond_the_deciding_look_are_not_used():
    """Seeds 3..4 were run anyway: the verdict stays the first look's, made on seeds 0..2."""
    samples = {"sam": [1.0, 1.01, 1.02, 0.0, 0.0], "sgd": [0.0, 0.0, 0.0, 1.0, 1.0]}
    verdict = judge_sequential(looks_claim(), evidence(samples, True))
    assert verdict.look.index == 1 and all(len(arm.sample.values) == 3 for arm in verdict.arms.values())


def test_a_look_uses_a_wider_interval_than_the_fixed_rule():
    samples = {"sam": [1.0, 0.9, 1.3, 1.1, 0.7], "sgd": [0.5, 0.6, 0.4, 0.8, 0.3]}
    fixed = judge(claim(HIGHER, seeds=5), evidence(samples, True))
    at_look = judge_sequential(looks_claim("{looks: [5, 10]}"), evidence(samples, True))
    assert at_look.high - at_look.low > fixed.high - fixed.low
    assert fixed.status == "reproduced" and at_look.status == "inconclusive"


def test_before_the_first_look_the_claim_waits_for_its_seeds():
    samples = {"sam": [1.0, 1.1], "sgd": [0.0, 0.05]}
    verdict = judge_sequential(looks_claim(), evidence(samples, True))
    assert verdict.status == "inconclusive" and verdict.label == "inconclusive (2/3 seeds of look 1 of 3)"
    assert verdict.missing_seeds == {"sam": (2,), "sgd": (2,)}


def simulate(rule, looks, trials, rng):
    """Share of claims called reproduced when each seed's paired gain is N(margin = 0, 1)."""
    hits = 0
    for _ in range(trials):
        gains = rng.standard_normal(looks[-1])
        samples = {"sam": list(gains), "sgd": [0.0] * looks[-1]}
        hits += rule(samples) == "reproduced"
    return hits / trials


def test_the_sequential_rule_keeps_false_reproductions_at_the_fixed_rate_where_optional_stopping_does_not():
    """2000 simulated claims each (seeded); MC standard error ~0.4 points. Sequential: <= 5.5%. Naive optional
    stopping (the fixed 95% rule applied at 3, 5 and 10 seeds, stopping at the first 'reproduced'): inflated."""
    rng = np.random.default_rng(20261206)
    looks = (3, 5, 10)
    sequential = looks_claim()

    def sequential_rule(samples):
        return judge_sequential(sequential, evidence(samples, True)).status

    def naive_rule(samples):
        for n in looks:
            cut = {arm: values[:n] for arm, values in samples.items()}
            if judge(claim(HIGHER, seeds=n), evidence(cut, True)).status == "reproduced":
                return "reproduced"
        return "inconclusive"

    sequential_rate = simulate(sequential_rule, looks, 2000, rng)
    naive_rate = simulate(naive_rule, looks, 2000, rng)
    fixed_rate = simulate(lambda s: judge(claim(HIGHER, seeds=10), evidence(s, True)).status, looks, 2000, rng)
    assert sequential_rate <= 0.055 and fixed_rate <= 0.055
    assert naive_rate > sequential_rate + 0.015, (naive_rate, sequential_rate)


def test_the_claims_schema_refuses_bad_looks():
    from optrepro.claims.schema import ClaimsFileError

    for looks, words in [
        ("{looks: [10, 5]}", "is not two or more increasing"),
        ("{looks: [5]}", "increasing"),
        ("{looks: [5, 10], spending: fast}", "'fast' is not one of the choices"),
    ]:
        with pytest.raises(ClaimsFileError, match=words):
            looks_claim(looks)
    with pytest.raises(ClaimsFileError, match="the exact tests are fixed-n"):
        looks_claim(check="{kind: ordering, better: sam, than: sgd, direction: higher, exact: sign}")


def test_a_sequential_claim_not_run_asks_for_the_first_looks_seeds_only(records):
    import pandas as pd

    verdict = evaluate_claim(looks_claim(), pd.DataFrame({"recipe": [], "seed": []}), {"sam": "a", "sgd": "b"})
    assert verdict.status == "not run"
    assert all(max(seeds) == 2 for seeds in verdict.missing_seeds.values() if seeds)
