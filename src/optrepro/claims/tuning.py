"""The tuning stage: each tuned arm's knob chosen on a validation split, recorded before any confirmatory run.

Comparisons between methods are fair only at each method's own tuned knob, chosen the way its paper chose it
(SAM, Sec. 3.1 p. 5: rho from a grid, on 10% of the training set held out). A claim's `tuning` block states the
protocol before any run; `claims run` then
1. runs every grid value of every tuned arm for `tuning.seeds` seeds on the validation split
   (`dataset.val_fraction`: those runs never see the test set and never answer a claim: their setting differs);
2. writes the tuning record `results/tuning/<paper>/<claim id>.json`: the validation metric per value and run,
   the chosen value (best mean; ties go to the earlier value of the grid) and the code that chose it;
3. runs the claim's seeds at the chosen values, which `with_tuned_values` reads back into the claim's arms.
Until the record exists the claim is "not run": no run can answer an arm whose setting is not chosen yet.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from optrepro.claims.schema import Claim
from optrepro.errors import InvalidConfigError, OptreproError
from optrepro.paths import RESULTS_DIR, shown

TUNING_DIR = RESULTS_DIR / "tuning"


class StaleTuningRecordError(OptreproError, ValueError):
    """A tuning record made for another tuning block than the claim's."""


@dataclasses.dataclass(frozen=True)
class GridPoint:
    """One value of one tuned arm, with the overrides that run it on the validation split."""

    arm: str
    value: float
    extra: tuple[str, ...]


def record_path(claim: Claim, tuning_dir: Path = TUNING_DIR) -> Path:
    return Path(tuning_dir) / claim.paper / f"{claim.id}.json"


def protocol(claim: Claim) -> dict:
    """The tuning block as stored in its record, so a record can be checked against the claim that reads it."""
    tuning = claim.tuning
    return {
        "knob": tuning.knob,
        "grid": {arm: list(values) for arm, values in tuning.grid.items()},
        "val_fraction": tuning.val_fraction,
        "metric": tuning.metric,
        "direction": tuning.direction,
        "seeds": tuning.seeds,
    }


def with_tuned_values(claim: Claim, tuning_dir: Path = TUNING_DIR) -> Claim:
    """`claim` with each tuned arm's chosen value from its tuning record (unchanged when it has none yet)."""
    path = record_path(claim, tuning_dir)
    if claim.tuning is None or not path.exists():
        return claim
    record = json.loads(path.read_text())
    if record.get("protocol") != protocol(claim):
        raise StaleTuningRecordError(
            f"{shown(path)}: made for another tuning "
            f"block than claim {claim.key}'s; a registered tuning block is not edited after its runs (register a new "
            "claim), or delete the record to tune again"
        )
    return dataclasses.replace(
        claim, tuned=tuple((arm, float(arm_record["chosen"])) for arm, arm_record in record["arms"].items())
    )


def grid_points(claim: Claim) -> list[GridPoint]:
    tuning = claim.tuning
    return [
        GridPoint(arm, value, tuning.value_overrides(value)) for arm, values in tuning.grid.items() for value in values
    ]


def check_grid(claim: Claim, composer) -> None:
    """The knob must be a key of each tuned arm's composed config (a misspelt knob would add a key nobody reads):
    checked before any run; call inside `with composer:`."""
    for arm in claim.tuning.grid:
        if not composer.holds(claim, arm, claim.tuning.knob):
            raise InvalidConfigError(
                f"{claim.key} tuning.knob",
                f"{claim.tuning.knob!r} is not a key of the arms' composed config",
                "name an existing key, e.g. optimizer.rho",
            )


def grid_runs(
    claim: Claim, records: pd.DataFrame, extra_overrides: Sequence[str] = ()
) -> dict[GridPoint, tuple[str, dict[int, tuple[str, float]]]]:
    """grid point -> (its recipe key, {seed: (run id, validation metric)} of its finished runs)."""
    from optrepro.claims.evidence import metric_column
    from optrepro.claims.match import arm_key

    column = metric_column(claim.tuning.metric, "final")
    claim = dataclasses.replace(claim, tuned=())
    found = {}
    for point in grid_points(claim):
        key = arm_key(claim, point.arm, (*extra_overrides, *point.extra))
        rows = records[(records["recipe"] == key) & (records["status"] == "finished")] if len(records) else records
        by_seed: dict[int, tuple[str, float]] = {}
        for _, row in rows.iterrows():
            seed, value = int(row["seed"]), row.get(column)
            if seed < claim.tuning.seeds and seed not in by_seed and value is not None and math.isfinite(value):
                by_seed[seed] = (str(row["run_id"]), float(value))
        found[point] = (key, by_seed)
    return found


def missing_grid_runs(claim: Claim, found) -> list[tuple[GridPoint, int]]:
    """(grid point, seed) of every tuning run not yet recorded."""
    return [
        (point, seed)
        for point, (_, by_seed) in found.items()
        for seed in range(claim.tuning.seeds)
        if seed not in by_seed
    ]


def choose(claim: Claim, found, code: dict) -> dict:
    """The tuning record of a complete grid: per arm, each value's runs and mean, and the chosen value."""
    missing = missing_grid_runs(claim, found)
    if missing:
        raise OptreproError(
            f"{claim.key}: the tuning grid lacks {len(missing)} run(s) (e.g. {missing[0][0].arm} at "
            f"{claim.tuning.knob}={missing[0][0].value}, seed {missing[0][1]}); "
            f"run `python -m optrepro claims run {claim.key}`"
        )
    sign = 1.0 if claim.tuning.direction == "higher" else -1.0
    arms: dict[str, dict] = {}
    for point, (_, by_seed) in found.items():
        values = [value for _, value in by_seed.values()]
        arm = arms.setdefault(point.arm, {"values": []})
        arm["values"].append(
            {
                "value": point.value,
                "mean": sum(values) / len(values),
                "runs": {str(seed): run for seed, (run, _) in sorted(by_seed.items())},
                "metric_by_seed": {str(seed): v for seed, (_, v) in sorted(by_seed.items())},
            }
        )
    for arm in arms.values():
        best = max(arm["values"], key=lambda entry: sign * entry["mean"])  # max keeps the first of equal means
        arm["chosen"] = best["value"]
    return {
        "claim": claim.key,
        "protocol": protocol(claim),
        "source": claim.tuning.source,
        "arms": arms,
        "code": code,
        "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def write_record(claim: Claim, record: dict, tuning_dir: Path = TUNING_DIR) -> Path:
    from optrepro.records.writer import write_json_atomic

    path = record_path(claim, tuning_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, record)
    return path


def read_record(claim: Claim, tuning_dir: Path = TUNING_DIR) -> dict | None:
    path = record_path(claim, tuning_dir)
    return json.loads(path.read_text()) if claim.tuning is not None and path.exists() else None


def tuning_table(claim: Claim, tuning_dir: Path = TUNING_DIR) -> list[str]:
    """Markdown lines: the validation metric per grid value and arm, the chosen value in bold (RESULTS.md)."""
    record = read_record(claim, tuning_dir)
    if record is None:
        return []
    tuning = claim.tuning
    arms = list(record["arms"])
    values = sorted({entry["value"] for arm in arms for entry in record["arms"][arm]["values"]})
    lines = [
        f"Tuning ({tuning.source}): `{tuning.knob}` chosen per arm by mean `{tuning.metric}` ({tuning.direction} "
        f"is better) over {tuning.seeds} seed(s) on {tuning.val_fraction:g} of the training set held out; "
        f"record `{shown(record_path(claim, tuning_dir))}`",
        "",
        "| " + " | ".join([tuning.knob, *arms]) + " |",
        "|" + "---|" * (len(arms) + 1),
    ]
    for value in values:
        cells = []
        for arm in arms:
            entry = next((e for e in record["arms"][arm]["values"] if e["value"] == value), None)
            text = "" if entry is None else f"{entry['mean']:.4g}"
            cells.append(f"**{text}**" if entry is not None and record["arms"][arm]["chosen"] == value else text)
        lines.append("| " + " | ".join([f"{value:g}", *cells]) + " |")
    return [*lines, ""]
