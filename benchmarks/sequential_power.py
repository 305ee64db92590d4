"""Power and expected seeds of pre-registered sequential looks against a fixed seed count at the same maximum.

Why: a claim with `seeds: {looks: [3, 5, 10]}` may stop at 3 or 5 seeds; this shows what that costs in power and
saves in seeds, against `seeds: 10`, for true paired gains of 0 (the margin: the false-reproduction rate), 0.5, 1
and 1.5 seed standard deviations. Both rules are the repository's own (optrepro.claims.checks.judge and
judge_sequential) on simulated per-seed gains N(effect, 1).

Machine: any CPU, about a minute (`--quick`: seconds). Inputs: none.
Command: `python benchmarks/sequential_power.py`. Prints the sequential/fixed power ratio at effect 1.0 last.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from common import parse_args, print_ratio

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from claims.test_decision_rule import claim, evidence  # noqa: E402  (the decision-rule table's builders)

from optrepro.claims.checks import judge, judge_sequential  # noqa: E402

LOOKS = (3, 5, 10)
HIGHER = "{kind: ordering, better: a, than: b, direction: higher}"


def main() -> None:
    args = parse_args(__doc__)
    trials = 200 if args.quick else 2000
    rng = np.random.default_rng(0)
    sequential = claim(HIGHER, seeds=f"{{looks: {list(LOOKS)}}}", arms=("a", "b"))
    fixed = claim(HIGHER, seeds=LOOKS[-1], arms=("a", "b"))
    print(f"{trials} simulated claims per effect; looks {LOOKS} (O'Brien-Fleming-type spending) vs fixed {LOOKS[-1]}")
    ratio = float("nan")
    for effect in (0.0, 0.5, 1.0, 1.5):
        seq_hits = fixed_hits = seeds_used = 0
        for _ in range(trials):
            gains = list(rng.normal(effect, 1.0, LOOKS[-1]))
            samples = evidence({"a": gains, "b": [0.0] * LOOKS[-1]}, True)
            verdict = judge_sequential(sequential, samples)
            seq_hits += verdict.status == "reproduced"
            seeds_used += verdict.look.seeds
            fixed_hits += judge(fixed, samples).status == "reproduced"
        seq, fix = seq_hits / trials, fixed_hits / trials
        print(
            f"  effect {effect:.1f} SD: reproduced sequential {seq:.3f} (mean {seeds_used / trials:.1f} seeds), "
            f"fixed {fix:.3f} ({LOOKS[-1]} seeds)"
        )
        if effect == 1.0:
            ratio = seq / fix if fix else float("nan")
    print_ratio("sequential/fixed power at 1 SD", ratio)


if __name__ == "__main__":
    main()
