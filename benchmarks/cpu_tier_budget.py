"""The machine time it takes to check every cpu tier claim, from the run records, against a 900-minute budget.

Why: the cpu tier is meant to be re-checkable by anyone on one ordinary machine. Budget: 900 one-core job-minutes
for all cpu tier claims of all papers (every arm, every seed), i.e. about 4.5 hours of wall time on a 2-core
machine running two one-core jobs side by side (the local SLURM cluster's packing). History: 90 job-minutes until
the SAM-family tier moved to a regime where the SGD baseline overfits (30 epochs, no augmentation), then 180; 240
since the tier grew from 8 to 12 papers (PowerSGD, Shampoo, loss landscape, colored digits) on 2026-11-22; 300 since
it grew to 16 papers (RNN clipping with its addition problem, CrAM, Jacobian descent, saddle-free Newton) on
2026-12-02, when the 16 measured 294.7 job-minutes (CrAM 47.6 of them, the other three 25); 540 since 2026-12-06,
when 30 papers measured 333.5 job-minutes before and 501.4 after that day's second session: the SAM family's
label-noise tier with its tuning stage (48 validation runs) and 10-seed looks (+159 min over asam, gam, saf, sam,
sam_on), 24 claims re-decided with sequential looks, four wave-3 papers. Those runs shared the 2 cores with up to
four other jobs, so their wall times are inflated (a digits SAM run: 27 s alone, 45-200 s there). 900 since the
third session of 2026-12-06, which measured 713.7: sequential claims taken to their next looks at one code version
(DeepZero and the skip-connection Hessian to 20 seeds), static M-FAC pruning and USEFUL's CNN claim (+212 min over
the day's second session, with up to six jobs on 2 cores inflating wall times again), and the Fashion-MNIST
SAM-family claims re-registered with looks whose first look at one code version (30 runs of 3-11 minutes, about
190 one-core minutes; 4 of them ran) is still to run.

Reads the run records of the default stores (runs/ or $OPTREPRO_RUNS, then results/records/), decides every
cpu tier claim with the evidence policy that every command uses (optrepro.claims.policy.decide_claims), and sums
the `timing.wall_time_s` of the runs those verdicts use, per paper and overall. A run that answers several claims
or papers (the shared SGD baseline) counts once in the total. Claimed seeds that a verdict's evidence lacks are
counted and named, not estimated. A paper over PAPER_MINUTES (20) shows its claims.yaml `cpu_cost`: why it needs more.
wall_time_s covers a run from data loading to its record (training, evaluation, checkpoints), not Python start-up;
runs launched side by side on one machine each count their own wall time.

Machine: any; measures nothing. Inputs: the record folders above.
Command: `python benchmarks/cpu_tier_budget.py` (`--quick` is accepted and changes nothing: it is already quick).
Prints the total in minutes last.
"""

from __future__ import annotations

from common import parse_args

from optrepro.claims.cost import PAPER_MINUTES, tier_cost
from optrepro.claims.load import load_all_claims, select_claims
from optrepro.claims.policy import DEFAULT_STORES, decide_claims, load_evidence_records, stores_banner
from optrepro.paths import REPRODUCTIONS_DIR

TIER = "cpu"
BUDGET_MINUTES = 900


def main() -> None:
    parse_args(__doc__)
    papers = load_all_claims(REPRODUCTIONS_DIR)
    claims = select_claims(papers, tier=TIER)
    records = load_evidence_records(DEFAULT_STORES)
    cost = tier_cost(decide_claims(claims, records), records)
    reasons = {paper.paper: paper.cpu_cost for paper in papers}
    print(f"{stores_banner(DEFAULT_STORES, records)}; {len(claims)} {TIER} tier claim(s)")
    for paper in sorted({claim.paper for claim in claims}):
        minutes = cost.paper_minutes(paper)
        over = minutes > PAPER_MINUTES
        why = f"; over {PAPER_MINUTES}: {reasons[paper] or 'NO REASON GIVEN (claims.yaml cpu_cost)'}" if over else ""
        print(f"  {paper}: {len(cost.runs[paper])} run(s), {minutes:.1f} min{why}")
    if cost.measured_claims:
        print(
            f"{len(cost.measured_claims)} timing claim(s) decided by side-by-side measurements "
            "(claims.timing), not counted: each is one process of a few minutes"
        )
    count, total = cost.total_minutes()
    print(
        f"{count} distinct run(s) (a run shared by several claims counts once); "
        f"{sum(len(seeds) for seeds in cost.missing.values())} claimed seed(s) without a run, not counted"
    )
    for (claim, arm), seeds in cost.missing.items():
        print(f"  missing: {claim} arm={arm} seed(s) {', '.join(map(str, seeds))}")
    verdict = "within" if total <= BUDGET_MINUTES else f"over by {total - BUDGET_MINUTES:.1f} min"
    print(f"budget {BUDGET_MINUTES} one-core job-minutes: {verdict}" + (" so far" if cost.missing else ""))
    print(f"TOTAL {TIER} tier claims wall time, minutes: {total:.1f}")


if __name__ == "__main__":
    main()
