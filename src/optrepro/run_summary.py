"""The end-of-run summary: what the run measured, what the paper reports for each claim it answers and how many
of the claim's seeds are done, and where the record, the metrics and the W&B run are.

A run ends with this text instead of paths only, so the reader sees the number beside the paper's at once.
`format_summary` is pure (tested on constructed records); `claims_progress` reads the claims files and the records.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("optrepro")

HEADLINE_METRICS = (
    "test/error",
    "test/acc",
    "test/loss",
    "val/error",
    "val/acc",
    "val/loss",
    "train/loss",
    "train/acc",
)


@dataclass(frozen=True)
class ClaimProgress:
    """One claim the run answers: the paper's numbers, and how far our seeds are."""

    key: str
    source: str
    metric: str
    reported: dict[str, str]  # arm -> the paper's number as printed
    seeds: int  # seeds the claim asks for per arm
    done: dict[str, int]  # arm -> seeds with a result (finished or diverged) now
    arm: str  # this run's arm
    verdict: str  # the claim's verdict on the records there are now
    counted: dict[str, int] = field(default_factory=dict)  # arm -> seeds the verdict uses (empty: not run)
    notes: tuple[str, ...] = ()  # why the verdict leaves runs out


# ---- the text --------------------------------------------------------------------------------------------
def format_summary(
    record: Mapping[str, Any],
    *,
    record_path: Path,
    metrics_files: Sequence[Path] = (),
    claims: Sequence[ClaimProgress] = (),
    claims_note: str = "",
    base: Path | None = None,
) -> str:
    """The summary printed when a run ends; paths are shown relative to `base` (the working folder) when inside."""
    base = Path.cwd() if base is None else base
    wandb = record.get("wandb") or {}
    run_dir = Path(record_path).parent
    lines = [_headline(record, wandb)]
    if record.get("error"):
        lines.append(f"  error    {record['error']}")
    shown = [*HEADLINE_METRICS, *(c.metric for c in claims)]
    metrics = record.get("metrics") or {}
    final = _metric_line(metrics.get("final") or {}, shown)
    if final:
        lines.append(f"  final    {final}")
    best = _best_line(metrics.get("best") or {}, record.get("history") or [], shown)
    if best:
        lines.append(f"  best     {best}")
    for claim in claims:
        lines.extend(_claim_lines(claim))
    if claims_note:
        lines.append(f"  claims   {claims_note}")
    lines.append(f"  record   {_show(Path(record_path), base)}")
    for path in metrics_files:
        lines.append(f"  metrics  {_show(Path(path), base)}")
    if wandb:
        lines.append(f"  W&B      {_wandb_text(wandb, run_dir, base)}")
    return "\n".join(lines)


def _headline(record: Mapping[str, Any], wandb: Mapping[str, Any]) -> str:
    repro = record.get("repro") or {}
    config = record.get("config") or {}
    preset = repro.get("name") or config.get("name") or "run"
    arm = repro.get("arm") or (config.get("optimizer") or {}).get("name") or "run"
    epochs = len(record.get("history") or [])
    wall = (record.get("timing") or {}).get("wall_time_s")
    took = f" in {_duration(wall)}" if isinstance(wall, (int, float)) and math.isfinite(wall) else ""
    return (
        f"optrepro: {preset}/{arm}/s{record.get('seed')} {record.get('status')}{took} "
        f"({epochs} epoch{'s' if epochs != 1 else ''}; run {record.get('run_id')})"
    )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _number(value: Any) -> str:
    """A metric as every command prints it (claims.checks.fmt); a value that is no number as it is."""
    from optrepro.claims.checks import fmt

    try:
        return fmt(float(value))
    except (TypeError, ValueError):
        return str(value)


def _metric_line(values: Mapping[str, Any], names: Iterable[str]) -> str:
    return "  ".join(f"{name} {_number(values[name])}" for name in dict.fromkeys(names) if name in values)


def _best_line(best: Mapping[str, Any], history: Sequence[Mapping[str, Any]], names: Iterable[str]) -> str:
    """Best values with the epoch each was reached at (1-based, as the per-epoch lines count)."""
    parts = []
    for name in dict.fromkeys(names):
        if name not in best:
            continue
        epoch = next((row.get("epoch") for row in history if row.get(name) == best[name]), None)
        parts.append(f"{name} {_number(best[name])}" + (f" (epoch {int(epoch) + 1})" if epoch is not None else ""))
    return "  ".join(parts)


def _claim_lines(claim: ClaimProgress) -> list[str]:
    paper = ", ".join(f"{arm} {value}" for arm, value in claim.reported.items()) or "no number stated"
    seeds = ", ".join(f"{arm} {claim.done.get(arm, 0)}/{claim.seeds}" for arm in claim.done)
    lines = [
        f"  claim    {claim.key} [{claim.metric}] (this run: arm {claim.arm})",
        f"           paper: {paper} ({claim.source})",
        f"           seeds done: {seeds}; verdict now: {claim.verdict}",
    ]
    if claim.counted and claim.counted != claim.done:
        counted = ", ".join(f"{arm} {n}" for arm, n in claim.counted.items())
        lines.append(f"           the verdict counts {counted}: {'; '.join(claim.notes)}")
    return lines


def _show(path: Path, base: Path) -> str:
    """A path relative to `base` when it lies inside it (what a person types next), else as it is."""
    try:
        return Path(path).resolve().relative_to(Path(base).resolve()).as_posix()
    except ValueError:
        return str(path)


def _wandb_text(wandb: Mapping[str, Any], run_dir: Path, base: Path) -> str:
    where = (
        f"run {wandb.get('name') or wandb.get('run_id')} in group {wandb.get('group')}"
        if wandb.get("group")
        else f"run {wandb.get('path') or wandb.get('run_id')}"
    )
    if wandb.get("mode") == "offline":
        folder = (
            _show(run_dir / wandb["dir"], base) if wandb.get("dir") else f"{_show(run_dir, base)}/wandb/offline-run-*"
        )
        return f"offline {where}; upload: wandb sync {folder}"
    return f"{wandb.get('mode')} {where}" + (f": {wandb['url']}" if wandb.get("url") else "")


# ---- the claims this run answers ----------------------------------------------------------------------------
def preset_claims(preset: str | None, reproductions_dir: Path | None = None) -> list[Any]:
    """The claims with an arm (or setting) built on `+repro=<preset>`."""
    from optrepro.claims.load import load_all_claims
    from optrepro.paths import REPRODUCTIONS_DIR

    if not preset:
        return []
    return [
        claim
        for paper in load_all_claims(reproductions_dir or REPRODUCTIONS_DIR, mentioning=f"repro={preset}")
        for claim in paper.claims
        if any(f"+repro={preset}" in claim.arm_overrides(arm) for arm in claim.arms)
    ]


def claims_progress(
    record: Mapping[str, Any], record_roots: Sequence[Path], reproductions_dir: Path | None = None
) -> list[ClaimProgress]:
    """Each claim whose arm this run is (same recipe as the arm in claims.yaml, whatever preset it names), with the
    seeds of every arm that have a result in `record_roots` and the verdict on them (claims.policy.decide_claims,
    as every command)."""
    from optrepro.claims.evidence import RESULT_STATUSES
    from optrepro.claims.load import load_all_claims
    from optrepro.claims.match import arm_keys
    from optrepro.claims.policy import decide_claims
    from optrepro.claims.schema import ValueCheck
    from optrepro.paths import REPRODUCTIONS_DIR
    from optrepro.records.recipe import recipe_key
    from optrepro.records.table import iter_records, records_to_frame

    run_key = recipe_key(record.get("recipe"))
    if run_key is None:
        return []
    preset = next((entry for entry in record["recipe"] if entry.startswith("repro=")), None)  # an arm names it too
    papers = load_all_claims(reproductions_dir or REPRODUCTIONS_DIR, mentioning=preset)
    claims = [claim for paper in papers for claim in paper.claims]
    keys = arm_keys(claims)
    answered = [claim for claim in claims if run_key in {keys[(claim.key, arm)] for arm in claim.arms}]
    if not answered:
        return []
    wanted = {keys[(claim.key, arm)] for claim in answered for arm in claim.arms}
    found: dict[str, tuple[Path, dict[str, Any]]] = {}
    for root in record_roots:
        for path, other in iter_records(root) if Path(root).exists() else ():
            if recipe_key(other.get("recipe")) in wanted:
                found.setdefault(other["run_id"], (path, other))
    records = records_to_frame(found.values())
    results = records[records["status"].isin(RESULT_STATUSES)]
    verdicts = decide_claims(answered, records)
    progress = []
    for claim in answered:
        arm_keys = {arm: keys[(claim.key, arm)] for arm in claim.arms}
        done = {
            arm: int(
                results.loc[(results["recipe"] == key) & results["seed"].isin(claim.seed_values), "seed"].nunique()
            )
            for arm, key in arm_keys.items()
        }
        reported = {arm: str(value) for arm, value in claim.reported.items()} or (
            {claim.check.arm: str(claim.check.reported)} if isinstance(claim.check, ValueCheck) else {}
        )
        verdict = verdicts[claim.key]
        progress.append(
            ClaimProgress(
                key=claim.key,
                source=str(claim.source),
                metric=claim.metric,
                reported=reported,
                seeds=claim.seeds,
                done=done,
                arm=next(arm for arm, key in arm_keys.items() if key == run_key),
                verdict=verdict.label,
                counted={arm: result.sample.n_runs for arm, result in verdict.arms.items()},
                notes=verdict.notes,
            )
        )
    return progress


def print_run_summary(
    record: Mapping[str, Any],
    record_path: Path,
    *,
    metrics_files: Sequence[Path] = (),
    record_roots: Sequence[Path] = (),
) -> None:
    """Print the summary; the claims part is best effort (a broken claims file must not fail a finished run)."""
    note = ""
    try:
        claims = claims_progress(record, record_roots)
        preset = (record.get("repro") or {}).get("name")
        if not claims and preset_claims(preset):
            note = (
                f"none: this config is no claim's arm, though claims use +repro={preset} (an override or a "
                f"debug limit changed the setting)"
            )
    except Exception as err:  # noqa: BLE001 - the run is over; say why the claims are missing and go on
        log.warning("end-of-run summary: claims not shown (%s: %s)", type(err).__name__, err)
        claims = []
    print(
        format_summary(record, record_path=record_path, metrics_files=metrics_files, claims=claims, claims_note=note),
        flush=True,
    )


def summary_roots(runs_dir: str | os.PathLike) -> list[Path]:
    """Where the seeds of a claim are counted: this machine's runs folder and the committed record store."""
    from optrepro.paths import COMMITTED_RECORDS

    return [Path(runs_dir), COMMITTED_RECORDS]
