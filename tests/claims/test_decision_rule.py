"""The decision rule on constructed samples: paired and unpaired CIs, margins, non-inferiority, diverged seeds,
single-seed claims, and the seeds a power estimate asks for (hand-computed with scipy's t quantiles)."""

from __future__ import annotations

import math
import textwrap

import pytest
from scipy.stats import t as student_t

from optrepro.claims.checks import judge
from optrepro.claims.evidence import ArmSample, Evidence, HardwareClass
from optrepro.claims.schema import parse_claims_text

CPU = HardwareClass("cpu", "cpu", 1, "32-true")
NAN = float("nan")


def claim(check: str, seeds: int | str = 3, arms: tuple[str, ...] = ("sam", "sgd")):
    arm_map = ", ".join(f"{arm}: {{overrides: [optimizer={arm}]}}" for arm in arms)
    text = textwrap.dedent(f"""
        paper: p
        title: t
        citation: c
        claims:
          - id: c
            source: {{where: "Table 1"}}
            statement: s
            tier: cpu
            seeds: {seeds}
            metric: test/error
            arms: {{{arm_map}}}
            check: {check}
        """).lstrip()
    return parse_claims_text(text, "claims.yaml").claims[0]


def evidence(samples: dict[str, list[float]], paired: bool, diverged: dict[str, tuple[int, ...]] | None = None):
    diverged = diverged or {}
    built = {}
    for arm, values in samples.items():
        failed = tuple(sorted(set(diverged.get(arm, ())) | {s for s, v in enumerate(values) if math.isnan(v)}))
        built[arm] = ArmSample(
            arm, tuple(enumerate(values)), failed, tuple(f"{arm}{s}" for s in range(len(values))), ("v1",)
        )
    return Evidence(built, CPU, "", (), paired=paired)


LOWER = "{kind: ordering, better: sam, than: sgd, direction: lower}"
SIGN = "{kind: ordering, better: sam, than: sgd, direction: higher, exact: sign}"
BOSCHLOO = "{kind: ordering, better: sam, than: sgd, direction: higher, exact: boschloo}"
HIGHER_MARGIN = "{kind: ordering, better: sam, than: sgd, direction: higher, min_difference: %s}"
# A shared per-seed offset (the seed's initial weights) that the paired difference cancels and Welch cannot.
SHARED_START = {"sam": [2.0, 3.0, 4.0], "sgd": [2.3, 3.25, 4.3]}

# (name, check, samples, paired, diverged, expected status, words in the test name)
CASES = [
    (
        "paired, CI beyond zero",
        LOWER,
        {"sam": [2.6, 2.7, 2.8], "sgd": [3.4, 3.5, 3.7]},
        True,
        None,
        "reproduced",
        "paired t over 3 seeds",
    ),
    (
        "unpaired, CI beyond zero",
        LOWER,
        {"sam": [2.6, 2.7, 2.8], "sgd": [3.4, 3.5, 3.7]},
        False,
        None,
        "reproduced",
        "Welch t",
    ),
    ("pairing cancels a shared start", LOWER, SHARED_START, True, None, "reproduced", "paired t"),
    ("the same samples unpaired: CI crosses zero", LOWER, SHARED_START, False, None, "inconclusive", "Welch t"),
    (
        "identical per-seed differences: the degenerate paired interval gives way to Welch",
        "{kind: ordering, better: sam, than: sgd, direction: higher}",
        {"sam": [0.990, 0.995, 0.988], "sgd": [0.9878, 0.9928, 0.9858]},
        True,
        None,
        "inconclusive",
        "the per-seed differences are identical",
    ),
    (
        "neither arm varies over the seeds: one test image is not a CI",
        "{kind: ordering, better: sam, than: sgd, direction: higher}",
        {"sam": [448 / 450] * 3, "sgd": [447 / 450] * 3},
        True,
        None,
        "inconclusive",
        "neither arm varies",
    ),
    (
        "CI crossing zero",
        LOWER,
        {"sam": [11.5, 12.3, 11.8], "sgd": [12.1, 12.4, 12.0]},
        False,
        None,
        "inconclusive",
        "Welch t",
    ),
    (
        "CI excludes the claim",
        LOWER,
        {"sam": [3.6, 3.7, 3.8], "sgd": [3.4, 3.45, 3.6]},
        True,
        None,
        "not reproduced",
        "paired t",
    ),
    (
        "margin cleared",
        HIGHER_MARGIN % 0.5,
        {"sam": [1.8, 1.8, 1.9], "sgd": [1.0, 1.0, 1.0]},
        True,
        None,
        "reproduced",
        "paired t",
    ),
    (
        "CI crosses the margin",
        HIGHER_MARGIN % 0.9,
        {"sam": [1.8, 1.8, 1.9], "sgd": [1.0, 1.0, 1.0]},
        True,
        None,
        "inconclusive",
        "paired t",
    ),
    (
        "CI short of the margin",
        HIGHER_MARGIN % 1.0,
        {"sam": [1.8, 1.8, 1.9], "sgd": [1.0, 1.0, 1.0]},
        True,
        None,
        "not reproduced",
        "paired t",
    ),
    (
        "non-inferiority margin held",
        HIGHER_MARGIN % -0.5,
        {"sam": [0.8, 0.8, 0.9], "sgd": [1.0, 1.0, 1.0]},
        True,
        None,
        "reproduced",
        "paired t",
    ),
    (
        "non-inferiority margin crossed",
        HIGHER_MARGIN % -0.5,
        {"sam": [0.3, 0.8, 0.7], "sgd": [1.0, 1.0, 1.0]},
        True,
        None,
        "inconclusive",
        "paired t",
    ),
    (
        "a diverged seed of the method",
        LOWER,
        {"sam": [2.6, NAN, 2.8], "sgd": [3.4, 3.5, 3.6]},
        True,
        None,
        "not reproduced",
        "a failed seed of the method",
    ),
    (
        "a diverged seed of the reference drops its pair",
        LOWER,
        {"sam": [2.6, 2.7, 2.8], "sgd": [3.4, 3.5, 3.7]},
        True,
        {"sgd": (1,)},
        "reproduced",
        "paired t over 2 seeds",
    ),
    (
        "every reference seed diverged, no value to compare (the default)",
        LOWER,
        {"sam": [2.6, 2.7, 2.8], "sgd": [NAN, NAN, NAN]},
        True,
        {"sgd": (0, 1, 2)},
        "inconclusive",
        "every reference seed diverged",
    ),
    (
        "every reference seed diverged, and the claim counts that against it",
        "{kind: ordering, better: sam, than: sgd, direction: lower, reference_divergence: loses}",
        {"sam": [2.6, 2.7, 2.8], "sgd": [NAN, NAN, NAN]},
        True,
        {"sgd": (0, 1, 2)},
        "reproduced",
        "every reference seed diverged",
    ),
    ("one seed of three: no CI", LOWER, {"sam": [2.6], "sgd": [3.4]}, True, None, "inconclusive", "no CI"),
    (
        "value within tolerance",
        "{kind: value, arm: sam, reported: 2.7, tolerance: 0.3, tolerance_reason: r}",
        {"sam": [2.8, 2.9, 3.0]},
        False,
        None,
        "reproduced",
        "t interval of the mean",
    ),
    (
        "value outside, CI reaching in",
        "{kind: value, arm: sam, reported: 2.7, tolerance: 0.3, tolerance_reason: r}",
        {"sam": [3.0, 3.1, 3.2]},
        False,
        None,
        "inconclusive",
        "t interval of the mean",
    ),
    (
        "value excluded",
        "{kind: value, arm: sam, reported: 2.7, tolerance: 0.3, tolerance_reason: r}",
        {"sam": [3.5, 3.6, 3.7]},
        False,
        None,
        "not reproduced",
        "t interval of the mean",
    ),
    ("bound held", "{kind: bound, arm: sam, max: 3.0}", {"sam": [2.0, 2.1, 2.2]}, False, None, "reproduced", "mean"),
    (
        "bound crossed",
        "{kind: bound, arm: sam, max: 2.2}",
        {"sam": [2.0, 2.1, 2.2]},
        False,
        None,
        "inconclusive",
        "mean",
    ),
    (
        "bound exceeded",
        "{kind: bound, arm: sam, max: 1.5}",
        {"sam": [2.0, 2.1, 2.2]},
        False,
        None,
        "not reproduced",
        "mean",
    ),
    (
        "ratio held",
        "{kind: ratio, numerator: sam, denominator: sgd, max: 2.5}",
        {"sam": [0.20, 0.21, 0.19], "sgd": [0.10, 0.10, 0.11]},
        False,
        None,
        "reproduced",
        "log ratio",
    ),
    (
        "ratio exceeded",
        "{kind: ratio, numerator: sam, denominator: sgd, max: 1.5}",
        {"sam": [0.20, 0.21, 0.19], "sgd": [0.10, 0.10, 0.11]},
        False,
        None,
        "not reproduced",
        "log ratio",
    ),
    # exact tests (claims.exact): arms constant over the seeds, success counts
    (
        "sign test: 6 of 6 seeds, constant arms",
        SIGN,
        {"sam": [1.0] * 6, "sgd": [0.9] * 6},
        True,
        None,
        "reproduced",
        "exact sign test: 6 of 6",
    ),
    (
        "sign test: 5 of 5 seeds is p = 1/32 > 0.025",
        SIGN,
        {"sam": [1.0] * 5, "sgd": [0.9] * 5},
        True,
        None,
        "inconclusive",
        "exact sign test: 5 of 5",
    ),
    (
        "sign test: identical arms, every seed tied",
        SIGN,
        {"sam": [1.0] * 6, "sgd": [1.0] * 6},
        True,
        None,
        "inconclusive",
        "0 of 0 untied seeds favour the claim (6 tied)",
    ),
    (
        "sign test: 6 of 6 against",
        SIGN,
        {"sam": [0.8] * 6, "sgd": [0.9] * 6},
        True,
        None,
        "not reproduced",
        "exact sign test: 0 of 6",
    ),
    (
        "Boschloo: 3/3 vs 0/3 successes",
        BOSCHLOO,
        {"sam": [1.0] * 3, "sgd": [0.0] * 3},
        True,
        None,
        "reproduced",
        "Boschloo's exact test: 3/3 vs 0/3",
    ),
    (
        "Boschloo: 2/3 vs 0/3 successes",
        BOSCHLOO,
        {"sam": [1.0, 0.0, 1.0], "sgd": [0.0] * 3},
        True,
        None,
        "inconclusive",
        "Boschloo's exact test: 2/3 vs 0/3",
    ),
    (
        "Boschloo on a metric that is not 0/1",
        BOSCHLOO,
        {"sam": [0.5] * 3, "sgd": [0.0] * 3},
        True,
        None,
        "inconclusive",
        "Boschloo",
    ),
]


@pytest.mark.parametrize("name, check, samples, paired, diverged, status, test", CASES, ids=[c[0] for c in CASES])
def test_decision_rule(name, check, samples, paired, diverged, status, test):
    seeds = max(3, len(next(iter(samples.values()))))
    verdict = judge(claim(check, seeds=seeds, arms=tuple(samples)), evidence(samples, paired, diverged))
    assert verdict.status == status
    assert test in verdict.test


def test_a_single_seed_claim_is_decided_on_its_point_value():
    one_seed = claim("{kind: bound, arm: sam, max: 3.0}", seeds=1, arms=("sam",))
    assert judge(one_seed, evidence({"sam": [2.0]}, False)).status == "reproduced"
    assert judge(one_seed, evidence({"sam": [4.0]}, False)).status == "not reproduced"
    assert "the claim declares 1 seed" in judge(one_seed, evidence({"sam": [2.0]}, False)).test


def test_paired_interval_matches_a_hand_computation():
    verdict = judge(claim(LOWER), evidence(SHARED_START, True))
    differences = [0.3, 0.25, 0.3]  # sgd - sam per seed (lower is better)
    mean = sum(differences) / 3
    std = math.sqrt(sum((d - mean) ** 2 for d in differences) / 2)
    half = student_t.ppf(0.975, 2) * std / math.sqrt(3)
    assert verdict.observed == pytest.approx(mean)
    assert (verdict.low, verdict.high) == (pytest.approx(mean - half), pytest.approx(mean + half))


def test_inconclusive_verdict_states_the_seeds_a_power_estimate_needs():
    samples = {"sam": [11.5, 12.3, 11.8], "sgd": [12.1, 12.4, 12.0]}
    verdict = judge(claim(LOWER), evidence(samples, False))
    gain = (12.1 + 12.4 + 12.0) / 3 - (11.5 + 12.3 + 11.8) / 3
    spread = math.sqrt(statistics_var(samples["sam"]) + statistics_var(samples["sgd"]))
    # smallest n with (t_0.975 + t_0.8 at 2n - 2 df) * spread / sqrt(n) <= gain
    expected = next(
        n
        for n in range(2, 101)
        if (student_t.ppf(0.975, 2 * n - 2) + student_t.ppf(0.8, 2 * n - 2)) * spread / math.sqrt(n) <= gain
    )
    assert verdict.seeds_needed == expected
    assert f"needs about {expected} seeds per arm" in verdict.detail


def statistics_var(values: list[float]) -> float:
    mean = sum(values) / len(values)
    return sum((v - mean) ** 2 for v in values) / (len(values) - 1)
