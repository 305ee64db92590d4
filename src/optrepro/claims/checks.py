"""The four check kinds (value, ordering, ratio, bound) and the verdict each gives on a claim's evidence.

Verdict rules (documented for authors in reproductions/README.md):
- `not run`: some arm has no result, or no hardware class has results of every arm;
- otherwise the check decides `reproduced` / `not reproduced` on the seeds there are, and the
  verdict is marked incomplete ("reproduced (2/5 seeds)") when an arm has fewer seeds than claimed;
- a failed seed (diverged, or a non-finite metric) of the arm the claim is about (value: `arm`,
  ordering: `better`, ratio: `numerator`, bound: `arm`) makes the claim `not reproduced`: a method
  that diverges on some seeds does not do what the paper says. Failed seeds of the reference arm
  (`than`, `denominator`) are reported and left out of its statistics.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from optrepro.claims.evidence import ArmSample, Evidence, HardwareClass, gather_evidence
from optrepro.claims.schema import (
    BoundCheck,
    Claim,
    OrderingCheck,
    RatioCheck,
    ValueCheck,
)
from optrepro.claims.stats import SeedStats, seed_stats, welch_difference

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
NOT_RUN = "not run"


@dataclass(frozen=True)
class ArmResult:
    """One arm's statistics over its finite seeds, and the runs they come from."""

    sample: ArmSample
    stats: SeedStats

    def summary(self) -> str:
        """e.g. `2.71 ± 0.05 (n=5)`, `2.9 (n=1)`, `2.71 ± 0.05 (n=4, 1 diverged)`."""
        failed = f", {len(self.sample.failed_seeds)} diverged" if self.sample.failed_seeds else ""
        spread = f" ± {fmt(self.stats.std)}" if self.stats.n >= 2 else ""
        mean = fmt(self.stats.mean) if self.stats.n else "—"
        return f"{mean}{spread} (n={self.stats.n}{failed})"


@dataclass(frozen=True)
class Outcome:
    """What a check found: pass/fail, the checked quantity with its 95% CI half-width, and why."""

    holds: bool
    observed: float
    ci95: float
    detail: str


@dataclass(frozen=True)
class Verdict:
    """The verdict on one claim, with every run it used and every run it did not."""

    claim: Claim
    status: str
    observed: float
    ci95: float
    detail: str
    arms: dict[str, ArmResult]
    hardware: HardwareClass | None
    notes: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return bool(self.arms) and all(a.sample.n_runs >= self.claim.seeds for a in self.arms.values())

    @property
    def label(self) -> str:
        if self.status == NOT_RUN or self.complete:
            return self.status
        fewest = min(a.sample.n_runs for a in self.arms.values())
        return f"{self.status} ({fewest}/{self.claim.seeds} seeds)"

    def to_json(self) -> dict[str, Any]:
        """The machine-readable form stored in results/verdicts.json (what `results check` compares)."""
        return {
            "claim": self.claim.key,
            "status": self.status,
            "complete": self.complete,
            "observed": _json_number(self.observed),
            "ci95": _json_number(self.ci95),
            "detail": self.detail,
            "hardware": self.hardware.label() if self.hardware else None,
            "arms": {
                name: {
                    "mean": _json_number(arm.stats.mean), "std": _json_number(arm.stats.std),
                    "n": arm.stats.n, "failed_seeds": list(arm.sample.failed_seeds),
                    "commit": arm.sample.commit, "run_ids": list(arm.sample.run_ids),
                }
                for name, arm in self.arms.items()
            },
            "notes": list(self.notes),
        }


def fmt(value: float) -> str:
    """Numbers as people read them in a table: 4 significant digits; NaN as `undefined`."""
    if value is None or math.isnan(value):
        return "undefined"
    return f"{0.0 if abs(value) < 1e-12 else value:.4g}"  # float noise such as 4e-16 reads as 0


def _json_number(value: float) -> float | None:
    """JSON has no NaN or infinity; those become null (the verdict's detail says why)."""
    return round(value, 10) if math.isfinite(value) else None


def _ci_text(observed: float, ci95: float) -> str:
    if math.isnan(ci95):
        return "95% CI undefined (needs 2+ seeds per arm)"
    return f"95% CI {fmt(observed - ci95)} to {fmt(observed + ci95)}"


def check_value(check: ValueCheck, arms: dict[str, ArmResult]) -> Outcome:
    stats = arms[check.arm].stats
    gap = abs(stats.mean - check.reported)
    holds = gap <= check.tolerance
    return Outcome(holds, stats.mean, stats.ci95,
                   f"{check.arm} mean {fmt(stats.mean)} vs paper {fmt(check.reported)}: off by {fmt(gap)}, "
                   f"tolerance {fmt(check.tolerance)} ({check.tolerance_reason}); {_ci_text(stats.mean, stats.ci95)}")


def check_ordering(check: OrderingCheck, arms: dict[str, ArmResult]) -> Outcome:
    better, than = arms[check.better].stats, arms[check.than].stats
    if than.n == 0:
        return Outcome(True, math.inf, math.nan, f"every {check.than} seed diverged; {check.better} did not")
    first, second = (than, better) if check.direction == "lower" else (better, than)
    gain = welch_difference(first, second)
    holds = gain.value > check.min_difference
    verb = "beats" if gain.value > 0 else "does not beat"
    return Outcome(holds, gain.value, gain.ci95,
                   f"{check.better} {verb} {check.than} by {fmt(gain.value)} ({check.direction} is better; "
                   f"needed > {fmt(check.min_difference)}); {_ci_text(gain.value, gain.ci95)}")


def check_ratio(check: RatioCheck, arms: dict[str, ArmResult]) -> Outcome:
    numerator, denominator = arms[check.numerator].stats.mean, arms[check.denominator].stats.mean
    ratio = numerator / denominator if denominator else math.inf
    holds = ratio <= check.max
    return Outcome(holds, ratio, math.nan,
                   f"{check.metric}: {check.numerator}/{check.denominator} = {fmt(numerator)}/{fmt(denominator)} "
                   f"= {fmt(ratio)}, allowed at most {fmt(check.max)}")


def check_bound(check: BoundCheck, arms: dict[str, ArmResult]) -> Outcome:
    stats = arms[check.arm].stats
    holds = stats.mean <= check.max
    return Outcome(holds, stats.mean, stats.ci95,
                   f"{check.metric} of {check.arm}: mean {fmt(stats.mean)}, allowed at most {fmt(check.max)}; "
                   f"{_ci_text(stats.mean, stats.ci95)}")


CHECKS: dict[str, Callable[[Any, dict[str, ArmResult]], Outcome]] = {
    "value": check_value, "ordering": check_ordering, "ratio": check_ratio, "bound": check_bound,
}


def check_metric(claim: Claim) -> str:
    """The metric the check reads: ratio and bound checks may name their own, the others use the claim's."""
    return getattr(claim.check, "metric", claim.metric)


def evaluate_claim(claim: Claim, records: pd.DataFrame, arm_keys: dict[str, str]) -> Verdict:
    """The verdict on `claim` from `records` (with match_key column); `arm_keys` maps arm -> match key."""
    evidence = gather_evidence(claim, records, arm_keys, check_metric(claim))
    if evidence.missing:
        return Verdict(claim, NOT_RUN, math.nan, math.nan, evidence.missing, {}, None, evidence.notes)
    return judge(claim, evidence)


def judge(claim: Claim, evidence: Evidence) -> Verdict:
    arms = {name: ArmResult(sample, seed_stats(sample.values)) for name, sample in evidence.samples.items()}
    subject, *reference = claim.check.arms
    notes = list(evidence.notes)
    for name in reference:
        if arms[name].sample.failed_seeds:
            notes.append(f"{name}: seed(s) {_seeds(arms[name].sample.failed_seeds)} diverged; left out of its statistics")
    failed = arms[subject].sample.failed_seeds
    if failed:
        detail = (f"{subject} diverged (or gave a non-finite {check_metric(claim)}) on seed(s) {_seeds(failed)} "
                  f"of {arms[subject].sample.n_runs}")
        return Verdict(claim, NOT_REPRODUCED, math.nan, math.nan, detail, arms, evidence.hardware, tuple(notes))
    outcome = CHECKS[claim.check.kind](claim.check, arms)
    status = REPRODUCED if outcome.holds else NOT_REPRODUCED
    return Verdict(claim, status, outcome.observed, outcome.ci95, outcome.detail, arms, evidence.hardware, tuple(notes))


def _seeds(seeds: tuple[int, ...]) -> str:
    return ", ".join(str(s) for s in seeds)
