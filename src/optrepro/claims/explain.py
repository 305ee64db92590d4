"""A verdict explained in lines of text: the test that decided it, the runs used, and why each other run was not.

Shared by `claims explain`, `claims list -v` and RESULTS.md, so the explanation reads the same everywhere.
"""

from __future__ import annotations

from optrepro.claims.checks import Verdict


def explanation(verdict: Verdict) -> list[str]:
    """Lines (no indentation, no trailing newline) that explain `verdict`."""
    lines = [
        f"decided by: {verdict.test}" if verdict.test else "decided by: nothing (no evidence)",
        f"why: {verdict.detail}",
    ]
    if verdict.status == "inconclusive" and verdict.claim.to_decide:
        lines.append(f"to decide: {verdict.claim.to_decide}")
    if verdict.hardware is not None:
        lines.append(f"hardware: {verdict.hardware.label()}")
    for name, arm in verdict.arms.items():
        runs = ", ".join(f"{run_id} (seed {seed})" for run_id, (seed, _) in zip(arm.sample.run_ids, arm.sample.by_seed))
        lines.append(f"used for {name} (code {' = '.join(v[:8] for v in arm.sample.versions)}): {runs}")
    missing = {arm: seeds for arm, seeds in verdict.missing_seeds.items() if seeds}
    if missing:
        lines.append("missing seeds: " + "; ".join(f"{arm} {list(seeds)}" for arm, seeds in missing.items()))
    lines += [f"pending: {text}" for text in verdict.pending]
    lines += [f"not used: {u.run_id} ({u.arm}, seed {u.seed}): {u.reason}" for u in verdict.unused]
    lines += [f"note: {note}" for note in verdict.notes]
    return lines
