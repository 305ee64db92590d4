"""`results check`: the regression test of paper claims.

Compares the verdicts recomputed now (from the records and claims in the working tree) with the
verdicts committed beside RESULTS.md (results/verdicts.json at a git revision, HEAD by default).
A claim that was `reproduced` there and is anything else now is a regression; it is named with
its old and new numbers. Claims that newly hold, or were removed from a claims file, are reported
but do not fail.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optrepro.claims.checks import REPRODUCED, fmt
from optrepro.errors import OptreproError


class BaselineUnavailableError(OptreproError, RuntimeError):
    """The committed verdicts could not be read."""


@dataclass(frozen=True)
class Change:
    claim: str
    old: Mapping[str, Any] | None
    new: Mapping[str, Any] | None

    @property
    def is_regression(self) -> bool:
        return self.old is not None and self.old["status"] == REPRODUCED and self.new is not None \
            and self.new["status"] != REPRODUCED

    def describe(self) -> str:
        if self.new is None:
            return f"removed {self.claim}: was {self.old['status']}; it is no longer in any claims file"
        if self.old is None:
            return f"new {self.claim}: {describe_verdict(self.new)}"
        word = "REGRESSION" if self.is_regression else "changed"
        return f"{word} {self.claim}: was {describe_verdict(self.old)}; now {describe_verdict(self.new)}"


def describe_verdict(verdict: Mapping[str, Any]) -> str:
    """`reproduced (observed 0.77 ± 0.1; sam 2.71 ± 0.05 n=5, sgd ...)`: status with the numbers behind it."""
    ci = f" ± {fmt(verdict['ci95'])}" if verdict.get("ci95") is not None else ""
    observed = f"observed {fmt(verdict['observed'])}{ci}" if verdict.get("observed") is not None else "no value"
    arms = ", ".join(
        f"{name} {_number(arm['mean'])}" + (f" ± {_number(arm['std'])}" if arm.get("std") is not None else "")
        + f" n={arm['n']}" + (f" ({len(arm['failed_seeds'])} diverged)" if arm.get("failed_seeds") else "")
        for name, arm in sorted(verdict.get("arms", {}).items())
    )
    return f"{verdict['status']} ({observed}{'; ' + arms if arms else ''}): {verdict.get('detail', '')}"


def _number(value: float | None) -> str:
    return fmt(float("nan") if value is None else value)


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
