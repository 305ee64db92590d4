"""Regressions of paper claims: one definition (`is_regression`) and one way to print a verdict (`describe`), for
the two commands that look for them.

- `regression claims` runs the claims' runs with the current code into a fresh store and compares the verdicts. Both
  come from the evidence policy every command uses (claims.policy.decide_claims): the committed one on the
  committed records, the new one on the fresh store only. The change of a claim's effect (its checked quantity)
  is given in units of the committed 95% CI half-width.
- `results check` compares the verdicts recomputed now (records and claims of the working tree) with the verdicts
  committed beside RESULTS.md (results/verdicts.json at a git revision, HEAD by default): no runs. Claims that
  newly hold, or were removed from a claims file, are reported but do not fail.
A claim that was reproduced and is not now is a regression (exit 1).
"""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from optrepro.claims.checks import REPRODUCED, fmt
from optrepro.claims.schema import Claim
from optrepro.errors import OptreproError
from optrepro.paths import shown

REPORT_NAME = "regress.json"
REPORT_FORMAT = 1


def is_regression(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> bool:
    """Reproduced before, and now anything else (a claim removed from its file is not a regression)."""
    return old is not None and new is not None and old["status"] == REPRODUCED and new["status"] != REPRODUCED


@dataclass(frozen=True)
class ClaimRegress:
    """One claim: its committed and new verdicts and the move of its effect in committed CIs."""

    claim: str
    committed: Mapping[str, Any]
    new: Mapping[str, Any]

    @property
    def is_regression(self) -> bool:
        return is_regression(self.committed, self.new)

    @property
    def shift_in_ci(self) -> float | None:
        """(new effect - committed effect) / committed CI half-width; None when either is undefined."""
        old, new, ci = self.committed.get("observed"), self.new.get("observed"), _half_width(self.committed)
        if old is None or new is None or ci is None or ci <= 0:
            return None
        return (new - old) / ci

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "committed": dict(self.committed),
            "new": dict(self.new),
            "regression": self.is_regression,
            "shift_in_ci": self.shift_in_ci,
        }


def decide_on_store(claims: Sequence[Claim], store: Path) -> dict[str, dict[str, Any]]:
    """claim key -> its verdict (verdicts.json form) on the records of `store` alone."""
    from optrepro.claims.policy import decide_claims, load_evidence_records

    verdicts = decide_claims(claims, load_evidence_records([store]))
    return {key: verdict.to_json() for key, verdict in verdicts.items()}


def compare_verdicts(
    committed: Mapping[str, Mapping[str, Any]], new: Mapping[str, Mapping[str, Any]]
) -> list[ClaimRegress]:
    return [ClaimRegress(key, committed[key], new[key]) for key in sorted(committed)]


def describe(verdict: Mapping[str, Any]) -> str:
    """`reproduced: 0.3 ± 0.21 (sam 11.9 ± 0.4 n=3, sgd 12.2 ± 0.2 n=3 (1 diverged))`: the status with the numbers
    behind it; the one way both commands print a verdict."""
    observed = verdict.get("observed")
    if observed is None:
        effect = "—"
    elif verdict.get("ci95") is not None:
        effect = f"{fmt(observed)} ± {fmt(verdict['ci95'])}"
    elif verdict.get("ci_low") is not None and verdict.get("ci_high") is not None:
        effect = f"{fmt(observed)} [{fmt(verdict['ci_low'])}, {fmt(verdict['ci_high'])}]"
    else:
        effect = fmt(observed)
    arms = ", ".join(
        f"{name} {_number(arm['mean'])}"
        + (f" ± {_number(arm['std'])}" if arm.get("std") is not None else "")
        + f" n={arm['n']}"
        + (f" ({len(arm['failed_seeds'])} diverged)" if arm.get("failed_seeds") else "")
        for name, arm in sorted((verdict.get("arms") or {}).items())
    )
    return f"{verdict['status']}: {effect}" + (f" ({arms})" if arms else "")


def render(results: Sequence[ClaimRegress]) -> list[str]:
    lines = []
    for result in results:
        shift = result.shift_in_ci
        moved = (
            f"effect moved {shift:+.2f} CI"
            if shift is not None
            else f"effect moved {raw_change(result)} (no committed CI)"
        )
        word = "REGRESSION " if result.is_regression else ""
        lines += [
            f"{word}{result.claim}",
            f"  committed: {describe(result.committed)}",
            f"  now:       {describe(result.new)}",
            f"  {moved}",
        ]
    return lines


def write_report(
    results: Sequence[ClaimRegress], path: Path, *, store: Path, baseline: Path, failed_runs: Sequence[str]
) -> Path:
    document = {
        "format": REPORT_FORMAT,
        "generated_by": "python -m optrepro regression claims",
        "store": shown(store),
        "baseline": shown(baseline),
        "failed_runs": list(failed_runs),
        "regressions": [r.claim for r in results if r.is_regression],
        "claims": {r.claim: r.to_json() for r in results},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    return path


# ---- `results check`: the committed verdicts.json against the verdicts recomputed now ------------------------
class BaselineUnavailableError(OptreproError, RuntimeError):
    """The committed verdicts could not be read."""


@dataclass(frozen=True)
class Change:
    """A claim whose status differs between the committed verdicts and now (None: absent on that side)."""

    claim: str
    old: Mapping[str, Any] | None
    new: Mapping[str, Any] | None

    @property
    def is_regression(self) -> bool:
        return is_regression(self.old, self.new)

    def describe(self) -> str:
        if self.new is None:
            return f"removed {self.claim}: was {self.old['status']}; it is no longer in any claims file"
        if self.old is None:
            return f"new {self.claim}: {describe(self.new)}"
        word = "REGRESSION" if self.is_regression else "changed"
        return f"{word} {self.claim}: was {describe(self.old)}; now {describe(self.new)}"


def compare(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    """Every claim whose status differs between two verdicts.json documents (sorted by claim)."""
    old_claims, new_claims = old.get("claims", {}), new.get("claims", {})
    changes = []
    for key in sorted(set(old_claims) | set(new_claims)):
        before, after = old_claims.get(key), new_claims.get(key)
        if before is None or after is None or before["status"] != after["status"]:
            changes.append(Change(key, before, after))
    return changes


def load_baseline(baseline: str, verdicts_path: Path, repo_root: Path) -> dict[str, Any]:
    """The committed verdicts: `baseline` is a file path, or a git revision whose verdicts.json is read."""
    as_file = Path(baseline)
    if as_file.is_file():
        return json.loads(as_file.read_text())
    relative = verdicts_path.resolve().relative_to(repo_root.resolve()).as_posix()
    shown = subprocess.run(["git", "show", f"{baseline}:{relative}"], cwd=repo_root, capture_output=True, text=True)
    if shown.returncode != 0:
        raise BaselineUnavailableError(
            f"cannot read the committed verdicts {baseline}:{relative} ({shown.stderr.strip()}). "
            f"Commit RESULTS.md and {relative} (made by `python -m optrepro results report`), or pass "
            f"--baseline <file or git revision>."
        )
    return json.loads(shown.stdout)


def _half_width(verdict: Mapping[str, Any]) -> float | None:
    """The CI half-width: `ci95`, else half of [ci_low, ci_high] (a ratio's CI is not symmetric)."""
    if verdict.get("ci95") is not None:
        return verdict["ci95"]
    low, high = verdict.get("ci_low"), verdict.get("ci_high")
    return None if low is None or high is None else (high - low) / 2


def raw_change(result: ClaimRegress) -> str:
    """The raw change of the effect when there is no CI to measure it in (one seed), relative when it can be."""
    old, new = result.committed.get("observed"), result.new.get("observed")
    if old is None or new is None:
        return "undefined"
    relative = f", {(new - old) / abs(old):+.2%}" if old else ""
    return f"by {fmt(new - old)}{relative}"


def _number(value: float | None) -> str:
    return fmt(math.nan if value is None else value)
