"""What the cpu tier's claims cost in machine time: the wall time of the runs their verdicts use, per paper.

One definition for benchmarks/cpu_tier_budget.py (which prints it against the tier's budget) and the test that
holds every paper to PAPER_MINUTES unless its claims.yaml says why it needs more (`cpu_cost`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from optrepro.claims.policy import missing_seeds

if TYPE_CHECKING:
    import pandas as pd

    from optrepro.claims.checks import Verdict

PAPER_MINUTES = 20  # one-core minutes a paper's cpu tier may take at its registered seeds without saying why


@dataclass
class TierCost:
    """Run ids per paper with their minutes; claimed seeds no run answers; claims decided by timing measurements."""

    minutes: dict[str, float]  # run id -> wall minutes (data loading to record)
    runs: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    missing: dict[tuple[str, str], tuple[int, ...]] = field(default_factory=dict)  # (claim, arm) -> seeds
    measured_claims: set[str] = field(default_factory=set)  # side-by-side timing records: no wall time stored

    def paper_minutes(self, paper: str) -> float:
        return sum(self.minutes[run] for run in self.runs[paper])

    def total_minutes(self) -> tuple[int, float]:
        """Distinct runs and their minutes: a run several claims or papers use (a shared baseline) counts once."""
        used = set().union(*self.runs.values())
        return len(used), sum(self.minutes[run] for run in used)


def tier_cost(verdicts: dict[str, Verdict], records: pd.DataFrame) -> TierCost:
    """The cost of the runs behind `verdicts` (decided on `records` by claims.policy.decide_claims)."""
    minutes = dict(zip(records["run_id"], records["timing_wall_time_s"] / 60)) if len(records) else {}
    cost = TierCost(minutes)
    for verdict in verdicts.values():
        for result in verdict.arms.values():
            ids = set(result.sample.run_ids)
            if ids - set(minutes):
                cost.measured_claims.add(verdict.claim.key)
            cost.runs[verdict.claim.paper] |= ids & set(minutes)
        cost.missing |= {(verdict.claim.key, arm): s for arm, s in missing_seeds(verdict).items() if s}
    return cost
