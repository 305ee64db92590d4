"""The four check kinds (value, ordering, ratio, bound) and the verdict each gives on a claim's evidence.

Decision rule (the same for every claim; the numbers it uses, tolerance, margin and bound, are written in
claims.yaml before the runs; reproductions/README.md explains it to authors):
- `not run`: some arm has no result, or no hardware class has results of every arm;
- a failed seed (diverged, or a non-finite metric) of the arm the claim is about (value: `arm`, ordering:
  `better`, ratio: `numerator`, bound: `arm`) makes the claim `not reproduced`: a method that diverges on some
  seeds does not do what the paper says. Failed seeds of the reference arm are reported and left out; when
  every one failed, an ordering is `reproduced` if its check says `reference_divergence: loses` (the blow-up is
  the reference failing at what the metric measures), else `inconclusive` (no value to compare);
- otherwise the 95% CI of the checked quantity decides:
  - ordering (gain of `better` over `than`, margin `min_difference`, negative for non-inferiority):
    `reproduced` when the whole CI lies beyond the margin, `not reproduced` when the whole CI lies at or
    short of it, else `inconclusive`;
  - value: `reproduced` when the mean is within `tolerance` of the paper's number, `not reproduced` when the
    CI of the mean excludes the whole tolerance band, else `inconclusive`;
  - bound / ratio: `reproduced` when the whole CI is at most `max`, `not reproduced` when it is all above;
- the CI is a paired t interval over per-seed differences when the arms share initial weights and batch order
  per seed (evidence.shares_init_and_order), else Welch's, and Welch's too when the per-seed differences are all
  identical (a zero-width paired interval, e.g. one test image on every seed); ratios use Welch on the log ratio. An
  `inconclusive` verdict says how many seeds a power estimate (80%) from the observed spread would need;
- one seed gives no CI: a claim that declares `seeds: 1` is decided on the point value, any other claim
  with one seed so far is `inconclusive`; so is an ordering whose arms do not vary at all over the seeds. A verdict
  on fewer seeds than claimed is labelled "(k/n seeds)".
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from optrepro.claims import exact, timing
from optrepro.claims.evidence import ArmSample, Evidence, HardwareClass, HardwareFilter, Unused, gather_evidence
from optrepro.claims.schema import (
    BoundCheck,
    Claim,
    OrderingCheck,
    RatioCheck,
    ValueCheck,
)
from optrepro.claims.sequential import nominal_levels, t_critical
from optrepro.claims.stats import (
    Critical,
    Difference,
    SeedStats,
    mean_interval,
    paired_difference,
    seed_stats,
    seeds_needed,
    t975,
    welch_difference,
)
from optrepro.paths import REPO_ROOT

REPRODUCED = "reproduced"
INCONCLUSIVE = "inconclusive"
NOT_REPRODUCED = "not reproduced"
NOT_RUN = "not run"
VERDICTS = (REPRODUCED, INCONCLUSIVE, NOT_REPRODUCED, NOT_RUN)
IDENTICAL = 1e-9  # relative spread below which per-seed differences count as identical (float rounding)


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
    """What a check found: the verdict, the checked quantity with its 95% CI, the test that decided, and why."""

    status: str
    observed: float
    low: float
    high: float
    test: str
    detail: str
    seeds_needed: int | None = None


@dataclass(frozen=True)
class Look:
    """Which pre-registered look a sequential verdict was made at (claims.sequential)."""

    index: int  # 1-based
    of: int
    seeds: int
    nominal_p: float  # two-sided level of the look's repeated CI
    spending: str


@dataclass(frozen=True)
class Verdict:
    """The verdict on one claim, with every run it used and why every other candidate run was not used."""

    claim: Claim
    status: str
    observed: float
    low: float
    high: float
    test: str
    detail: str
    arms: dict[str, ArmResult]
    hardware: HardwareClass | None
    notes: tuple[str, ...]
    unused: tuple[Unused, ...] = ()
    pending: tuple[str, ...] = ()
    seeds_needed: int | None = None
    missing_seeds: dict[str, tuple[int, ...]] = field(default_factory=dict)
    look: Look | None = None  # sequential claims: the look this verdict was made at (None before the first)
    next_look: int | None = None  # sequential claims still undecided: the seeds per arm of the next look

    @property
    def ci95(self) -> float:
        """Half-width of a symmetric CI (NaN for the asymmetric ratio CI and when undefined)."""
        half = (self.high - self.low) / 2
        return half if math.isfinite(half) and math.isclose(self.observed, self.low + half, abs_tol=1e-12) else math.nan

    @property
    def complete(self) -> bool:
        return bool(self.arms) and all(a.sample.n_runs >= self.claim.seeds for a in self.arms.values())

    @property
    def label(self) -> str:
        """e.g. `reproduced`, `inconclusive (2/3 seeds)`, `not run`; sequential claims name their look:
        `reproduced at look 2 of 3 (10 seeds)`, `inconclusive at look 1 of 3 (5 seeds; the next look adds 5)`."""
        if self.status == NOT_RUN:
            return self.status
        if self.claim.looks:
            if self.look is None:
                fewest = min(a.sample.n_runs for a in self.arms.values())
                return f"{self.status} ({fewest}/{self.next_look} seeds of look 1 of {len(self.claim.looks)})"
            where = f"at look {self.look.index} of {self.look.of} ({self.look.seeds} seeds"
            adds = f"; the next look adds {self.next_look - self.look.seeds})" if self.next_look else ")"
            return f"{self.status} {where}{adds}"
        if self.complete:
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
            "ci_low": _json_number(self.low),
            "ci_high": _json_number(self.high),
            "test": self.test,
            "seeds_needed": self.seeds_needed,
            "detail": self.detail,
            "hardware": self.hardware.label() if self.hardware else None,
            "arms": {
                name: {
                    "mean": _json_number(arm.stats.mean),
                    "std": _json_number(arm.stats.std),
                    "n": arm.stats.n,
                    "failed_seeds": list(arm.sample.failed_seeds),
                    "commit": arm.sample.commit,
                    "run_ids": list(arm.sample.run_ids),
                }
                for name, arm in self.arms.items()
            },
            "pending": list(self.pending),
            "notes": list(self.notes),
        } | ({"label": self.label} if self.claim.looks else {})


def fmt(value: float) -> str:
    """Numbers as people read them in a table: 4 significant digits; NaN as `undefined`."""
    if value is None or math.isnan(value):
        return "undefined"
    return f"{0.0 if abs(value) < 1e-12 else value:.4g}"  # float noise such as 4e-16 reads as 0


def _json_number(value: float) -> float | None:
    """JSON has no NaN or infinity; those become null (the verdict's detail says why)."""
    return round(value, 10) if math.isfinite(value) else None


def _ci_text(low: float, high: float) -> str:
    if math.isnan(low) or math.isnan(high):
        return "95% CI undefined (needs 2+ seeds per arm)"
    return f"95% CI {fmt(low)} to {fmt(high)}"


def _needs(count: int | None) -> str:
    if count is None:
        return ""
    return (
        "; more than 100 seeds would be needed to decide"
        if count > 100
        else f"; a power estimate (80%) from the observed spread needs about {count} seeds per arm to decide"
    )


def _single_run(claim: Claim, holds: bool) -> tuple[str, str]:
    """(status, test) when there is no CI: the point decides only for a claim that declares one seed."""
    if claim.seeds == 1:
        return (REPRODUCED if holds else NOT_REPRODUCED), "single run, no CI (the claim declares 1 seed)"
    return INCONCLUSIVE, "no CI (one seed so far)"


def _beyond(low: float, high: float, threshold: float) -> str:
    """The verdict for a claim that the quantity exceeds `threshold`: all of the CI above, all at or below, or
    across."""
    if low > threshold:
        return REPRODUCED
    if high <= threshold:
        return NOT_REPRODUCED
    return INCONCLUSIVE


def _at_most(low: float, high: float, bound: float) -> str:
    """The verdict for a claim that the quantity is at most `bound`."""
    if high <= bound:
        return REPRODUCED
    if low > bound:
        return NOT_REPRODUCED
    return INCONCLUSIVE


def check_value(
    claim: Claim, check: ValueCheck, arms: dict[str, ArmResult], paired: bool, critical: Critical = t975
) -> Outcome:
    stats = arms[check.arm].stats
    gap = abs(stats.mean - check.reported)
    low, high = mean_interval(stats, critical)
    band_low, band_high = check.reported - check.tolerance, check.reported + check.tolerance
    needed = None
    if stats.n < 2:
        status, test = _single_run(claim, gap <= check.tolerance)
    else:
        test = f"t interval of the mean over {stats.n} seeds"
        if gap <= check.tolerance:
            status = REPRODUCED
        elif high < band_low or low > band_high:
            status = NOT_REPRODUCED
        else:
            status = INCONCLUSIVE
            needed = seeds_needed(gap - check.tolerance, stats.std, paired=True)
    return Outcome(
        status,
        stats.mean,
        low,
        high,
        test,
        f"{check.arm} mean {fmt(stats.mean)} vs paper {fmt(check.reported)}: off by {fmt(gap)}, "
        f"tolerance {fmt(check.tolerance)} ({check.tolerance_reason}); {_ci_text(low, high)}"
        + (_needs(needed) if status == INCONCLUSIVE else ""),
        needed,
    )


def ordering_gain(
    check: OrderingCheck, arms: dict[str, ArmResult], paired: bool, critical: Critical = t975
) -> tuple[Difference, str, float]:
    """The gain of `better` over `than` (positive when it wins), the test's name and the spread for a power estimate."""
    better, than = arms[check.better], arms[check.than]
    sign = -1.0 if check.direction == "lower" else 1.0
    degenerate = ""
    if paired:
        than_values = {seed: value for seed, value in than.sample.by_seed if seed not in than.sample.failed_seeds}
        pairs = [(seed, value, than_values[seed]) for seed, value in better.sample.by_seed if seed in than_values]
        differences = [sign * (b - t) for _, b, t in pairs]
        stats = seed_stats(differences)
        spread = stats.std
        if not (len(pairs) >= 2 and spread <= IDENTICAL * max(1.0, abs(stats.mean))):
            return (
                paired_difference(differences, critical),
                f"paired t over {len(pairs)} seeds (same initial weights and batch order per seed)",
                spread,
            )
        # Identical differences on every seed (e.g. one test image each time): the paired interval has zero
        # width and would call any such gain certain; the arms' own spread decides instead.
        degenerate = "; the per-seed differences are identical, so the paired interval is degenerate"
    gain = welch_difference(
        seed_stats([sign * v for v in better.sample.values]),
        seed_stats([sign * v for v in than.sample.values]),
        critical,
    )
    test = (f"Welch t (df {gain.df:.3g})" if math.isfinite(gain.df) else "Welch t") + degenerate
    return gain, test, math.sqrt(better.stats.std**2 + than.stats.std**2)


def _constant(stats: SeedStats) -> bool:
    """Two or more seeds that all gave the same value (up to float rounding)."""
    return stats.n >= 2 and stats.std <= IDENTICAL * max(1.0, abs(stats.mean))


def check_ordering(
    claim: Claim, check: OrderingCheck, arms: dict[str, ArmResult], paired: bool, critical: Critical = t975
) -> Outcome:
    if arms[check.than].stats.n == 0:
        if check.reference_divergence == "loses":
            return Outcome(
                REPRODUCED,
                math.inf,
                math.nan,
                math.nan,
                "every reference seed diverged",
                f"every {check.than} seed diverged; {check.better} did not (reference_divergence: loses)",
            )
        return Outcome(
            INCONCLUSIVE,
            math.nan,
            math.nan,
            math.nan,
            "every reference seed diverged",
            f"every {check.than} seed diverged, so {claim.metric} has no {check.than} value to compare "
            f"with {check.better}'s; the claim does not say that a blow-up of {check.than} counts against "
            "it (reference_divergence: no_evidence)",
        )
    if check.exact:
        return exact_ordering(claim, check, arms)
    gain, test, spread = ordering_gain(check, arms, paired, critical)
    low, high = gain.value - gain.ci95, gain.value + gain.ci95
    margin, needed = check.min_difference, None
    if all(_constant(arms[name].stats) for name in (check.better, check.than)):
        # Neither arm varies over the seeds (e.g. 448/450 against 447/450 test images on every seed): the
        # t statistic is 0/0, so the seeds give no interval; a finer or larger test set could, more seeds cannot.
        low = high = math.nan
        status, test = _single_run(claim, gain.value > margin)
        test = "no CI: neither arm varies over the seeds" if status == INCONCLUSIVE else test
    elif math.isnan(gain.ci95):
        status, test = _single_run(claim, gain.value > margin)
    else:
        status = _beyond(low, high, margin)
        if status == INCONCLUSIVE:
            needed = seeds_needed(gain.value - margin, spread, paired=paired)
    verb = "beats" if gain.value > 0 else "does not beat"
    return Outcome(
        status,
        gain.value,
        low,
        high,
        test,
        f"{check.better} {verb} {check.than} by {fmt(gain.value)} ({check.direction} is better; "
        f"needed > {fmt(margin)}); {_ci_text(low, high)}" + _needs(needed),
        needed,
    )


def exact_ordering(claim: Claim, check: OrderingCheck, arms: dict[str, ArmResult]) -> Outcome:
    """An ordering decided by its pre-registered exact test (claims.exact): no interval, a one-sided p."""
    sign = -1.0 if check.direction == "lower" else 1.0
    better, than = arms[check.better].sample, arms[check.than].sample
    than_values = {seed: value for seed, value in than.by_seed if seed not in than.failed_seeds}
    pairs = [(value, than_values[seed]) for seed, value in better.by_seed if seed in than_values]
    gains = [sign * (b - t) - check.min_difference for b, t in pairs]
    if check.exact == "sign":
        result = exact.sign_test(gains)
        short = f"; the sign test needs {exact.seeds_for_sign_test()} untied seeds on one side to decide"
    else:
        flip = (lambda v: 1.0 - v) if check.direction == "lower" else (lambda v: v)
        try:
            result = exact.boschloo_test([flip(v) for v in better.values], [flip(v) for v in than.values])
        except ValueError as err:
            return Outcome(
                INCONCLUSIVE,
                math.nan,
                math.nan,
                math.nan,
                "Boschloo's exact test",
                f"{err}; {claim.metric} is not 0/1 on every seed",
            )
        short = ""
    observed = math.fsum(gains) / len(gains) + check.min_difference if gains else math.nan
    if result.p_better <= exact.ONE_SIDED_ALPHA:
        status, short = REPRODUCED, ""
    elif result.p_worse <= exact.ONE_SIDED_ALPHA:
        status, short = NOT_REPRODUCED, ""
    else:
        status = INCONCLUSIVE
    return Outcome(
        status,
        observed,
        math.nan,
        math.nan,
        result.test,
        f"{check.better} vs {check.than} ({check.direction} is better; margin {fmt(check.min_difference)}): "
        f"{result.test}; one-sided p = {fmt(result.p_better)} for the claim, {fmt(result.p_worse)} "
        f"against it (each decides at <= {exact.ONE_SIDED_ALPHA}){short}",
    )


def check_ratio(
    claim: Claim, check: RatioCheck, arms: dict[str, ArmResult], paired: bool, critical: Critical = t975
) -> Outcome:
    top, bottom = arms[check.numerator].stats, arms[check.denominator].stats
    ratio = top.mean / bottom.mean if bottom.mean else math.inf
    low = high = math.nan
    needed, test = None, "Welch t on the log ratio (delta method)"
    if top.n >= 2 and bottom.n >= 2 and top.mean > 0 and bottom.mean > 0:
        va, vb = (top.std / top.mean) ** 2 / top.n, (bottom.std / bottom.mean) ** 2 / bottom.n
        total = va + vb
        df = total**2 / (va**2 / (top.n - 1) + vb**2 / (bottom.n - 1)) if total else math.inf
        half = critical(df) * math.sqrt(total)
        low, high = ratio * math.exp(-half), ratio * math.exp(half)
        status = _at_most(low, high, check.max)
        if status == INCONCLUSIVE:
            needed = seeds_needed(
                math.log(check.max / ratio),
                math.sqrt((top.std / top.mean) ** 2 + (bottom.std / bottom.mean) ** 2),
                paired=False,
            )
    else:
        status, test = _single_run(claim, ratio <= check.max)
    return Outcome(
        status,
        ratio,
        low,
        high,
        test,
        f"{check.metric}: {check.numerator}/{check.denominator} = {fmt(top.mean)}/{fmt(bottom.mean)} "
        f"= {fmt(ratio)}, allowed at most {fmt(check.max)}; {_ci_text(low, high)}" + _needs(needed),
        needed,
    )


def check_bound(
    claim: Claim, check: BoundCheck, arms: dict[str, ArmResult], paired: bool, critical: Critical = t975
) -> Outcome:
    stats = arms[check.arm].stats
    low, high = mean_interval(stats, critical)
    needed = None
    if stats.n < 2:
        status, test = _single_run(claim, stats.mean <= check.max)
    else:
        test = f"t interval of the mean over {stats.n} seeds"
        status = _at_most(low, high, check.max)
        if status == INCONCLUSIVE:
            needed = seeds_needed(check.max - stats.mean, stats.std, paired=True)
    return Outcome(
        status,
        stats.mean,
        low,
        high,
        test,
        f"{check.metric} of {check.arm}: mean {fmt(stats.mean)}, allowed at most {fmt(check.max)}; "
        f"{_ci_text(low, high)}" + _needs(needed),
        needed,
    )


CHECKS: dict[str, Callable[[Claim, Any, dict[str, ArmResult], bool, Critical], Outcome]] = {
    "value": check_value,
    "ordering": check_ordering,
    "ratio": check_ratio,
    "bound": check_bound,
}


def check_metric(claim: Claim) -> str:
    """The metric the check reads: ratio and bound checks may name their own, the others use the claim's."""
    return getattr(claim.check, "metric", claim.metric)


def not_run(
    claim: Claim,
    why: str,
    *,
    notes: tuple[str, ...] = (),
    unused: tuple[Unused, ...] = (),
    pending: tuple[str, ...] = (),
    missing_seeds: dict[str, tuple[int, ...]] | None = None,
) -> Verdict:
    """The verdict on a claim nothing answers yet: `why` says what is missing and the command that makes it."""
    return Verdict(
        claim,
        NOT_RUN,
        math.nan,
        math.nan,
        math.nan,
        "",
        why,
        {},
        None,
        notes,
        unused,
        pending,
        missing_seeds=missing_seeds or {},
    )


def evaluate_claim(
    claim: Claim, records: pd.DataFrame, arm_keys: dict[str, str], hardware_filter: HardwareFilter | None = None
) -> Verdict:
    """The verdict on `claim` from `records` (a load_records table); `arm_keys` maps arm -> its recipe key."""
    if getattr(claim.check, "measure", "runs") == "side_by_side":
        return timing_verdict(claim)
    if claim.tuning_pending:
        first = claim.looks[0] if claim.looks else claim.seeds
        return not_run(
            claim,
            f"its tuning stage has not chosen {claim.tuning.knob} yet (python -m optrepro claims run {claim.key} "
            "runs the grid on the validation split first)",
            missing_seeds={arm: tuple(range(first)) for arm in claim.arms},
        )
    verdict = _evaluate(claim, records, arm_keys, hardware_filter)
    if claim.tuned:
        chosen = ", ".join(f"{arm} {value:g}" for arm, value in claim.tuned)
        verdict = dataclasses.replace(
            verdict,
            notes=(
                *verdict.notes,
                f"{claim.tuning.knob} chosen on the validation split by the claim's tuning stage: {chosen}",
            ),
        )
    return verdict


def _evaluate(
    claim: Claim, records: pd.DataFrame, arm_keys: dict[str, str], hardware_filter: HardwareFilter | None
) -> Verdict:
    evidence = gather_evidence(claim, records, arm_keys, check_metric(claim), hardware_filter)
    if evidence.missing:
        first_look = {
            arm: tuple(s for s in seeds if not claim.looks or s < claim.looks[0])
            for arm, seeds in evidence.missing_seeds.items()
        }
        return not_run(
            claim,
            evidence.missing,
            notes=evidence.notes,
            unused=evidence.unused,
            pending=evidence.pending,
            missing_seeds=first_look,
        )
    return judge_sequential(claim, evidence) if claim.looks else judge(claim, evidence)


def timing_verdict(claim: Claim) -> Verdict:
    """A ratio measured side by side (claims.timing): the newest timing record of the claim decides."""
    found = timing.latest_record(claim)
    if found is None:
        return not_run(claim, f"no side-by-side timing record yet (python -m optrepro claims run {claim.key})")
    path, record = found
    check = claim.check
    ratio, low, high, n = timing.ratio_interval(record["ratios"])
    status = _at_most(low, high, check.max)
    arms = {
        arm: ArmResult(
            ArmSample(
                arm,
                tuple(enumerate(values)),
                (),
                (path.name,),
                (record["code"].get("source_hash") or record["code"].get("git_commit") or "unknown",),
            ),
            seed_stats(values),
        )
        for arm, values in record["seconds_per_step"].items()
    }
    test = f"t interval of the mean log ratio over {n} interleaved repetitions in one process"
    detail = (
        f"{check.numerator}/{check.denominator} time per step = {fmt(ratio)} (geometric mean of {n} "
        f"side-by-side repetitions, {record['machine']['cpu_kernels']}, {record['measured_at']}), allowed at "
        f"most {fmt(check.max)}; {_ci_text(low, high)}"
    )
    where = path.relative_to(REPO_ROOT).as_posix() if path.is_relative_to(REPO_ROOT) else path.name
    return Verdict(claim, status, ratio, low, high, test, detail, arms, None, (f"timing record {where}",))


def judge(claim: Claim, evidence: Evidence, critical: Critical = t975) -> Verdict:
    """The verdict on the evidence's seeds, with intervals of the given critical value (95% unless a look's)."""
    arms = {name: ArmResult(sample, seed_stats(sample.values)) for name, sample in evidence.samples.items()}
    subject, *reference = claim.check.arms
    notes = list(evidence.notes)
    for name in reference:
        if arms[name].sample.failed_seeds:
            notes.append(
                f"{name}: seed(s) {_seeds(arms[name].sample.failed_seeds)} diverged; left out of its statistics"
            )
    rest = dict(unused=evidence.unused, pending=evidence.pending, missing_seeds=evidence.missing_seeds)
    failed = arms[subject].sample.failed_seeds
    if failed:
        detail = (
            f"{subject} diverged (or gave a non-finite {check_metric(claim)}) on seed(s) {_seeds(failed)} "
            f"of {arms[subject].sample.n_runs}"
        )
        return Verdict(
            claim,
            NOT_REPRODUCED,
            math.nan,
            math.nan,
            math.nan,
            "a failed seed of the method",
            detail,
            arms,
            evidence.hardware,
            tuple(notes),
            **rest,
        )
    outcome = CHECKS[claim.check.kind](claim, claim.check, arms, evidence.paired, critical)
    return Verdict(
        claim,
        outcome.status,
        outcome.observed,
        outcome.low,
        outcome.high,
        outcome.test,
        outcome.detail,
        arms,
        evidence.hardware,
        tuple(notes),
        seeds_needed=outcome.seeds_needed,
        **rest,
    )


def judge_sequential(claim: Claim, evidence: Evidence) -> Verdict:
    """A claim with pre-registered looks (claims.sequential): at each look whose seeds every arm has, in order, the
    verdict on the first n_k seeds with that look's repeated CI; the first look that decides is the verdict. An
    undecided look before the last asks for the next look's seeds, and only for those."""
    levels = nominal_levels(claim.looks, claim.spending)
    have = {arm: set(sample.seeds) for arm, sample in evidence.samples.items()}
    verdict, look = None, None
    for index, (n, level) in enumerate(zip(claim.looks, levels)):
        if not all(set(range(n)) <= seeds for seeds in have.values()):
            break
        look = Look(index + 1, len(claim.looks), n, level, claim.spending)
        verdict = judge(claim, evidence_up_to(evidence, n), t_critical(level))
        if verdict.status != INCONCLUSIVE:  # decided: no arm needs another seed
            return replace(verdict, look=look, missing_seeds={arm: () for arm in claim.arms}, seeds_needed=None)
    upcoming = claim.looks[look.index] if look is not None and look.index < look.of else None
    if verdict is None:  # the first look's seeds are not all there yet
        upcoming = claim.looks[0]
        so_far = evidence_up_to(evidence, upcoming)
        verdict = judge(claim, so_far, t_critical(levels[0]))
        if not so_far.samples[claim.check.arms[0]].failed_seeds:  # only a failed seed of the method decides early
            verdict = replace(verdict, status=INCONCLUSIVE)
    missing = (
        {arm: tuple(s for s in range(upcoming) if s not in have[arm]) for arm in have}
        if upcoming
        else {arm: () for arm in claim.arms}
    )  # the last look was undecided: no seed is added after it
    return replace(verdict, look=look, missing_seeds=missing, seeds_needed=None, next_look=upcoming)


def evidence_up_to(evidence: Evidence, n: int) -> Evidence:
    """The evidence restricted to seeds 0..n-1 (a look sees only its own seeds)."""

    def cut(sample: ArmSample) -> ArmSample:
        kept = [(pair, run_id) for pair, run_id in zip(sample.by_seed, sample.run_ids) if pair[0] < n]
        return replace(
            sample,
            by_seed=tuple(p for p, _ in kept),
            run_ids=tuple(r for _, r in kept),
            failed_seeds=tuple(s for s in sample.failed_seeds if s < n),
        )

    return replace(evidence, samples={arm: cut(sample) for arm, sample in evidence.samples.items()})


def _seeds(seeds: tuple[int, ...]) -> str:
    return ", ".join(str(s) for s in seeds)
