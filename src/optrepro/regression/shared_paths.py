"""The short runs that exercise each code path shared by many papers: the drift detector's runs and the CI selection.

Each is one seed of a real preset made small (tens of seconds on one core). `regression drift` compares their metrics
with the committed ones exactly; `regression claims` (no targets) decides them as guard claims with a tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass

from optrepro.claims.schema import Arm, Claim, Source, ValueCheck

SELECTION = "shared_paths"
# A smaller Fashion-MNIST cpu tier: 10 batches of 128 for 3 epochs, 5 test batches.
SMALL_FMNIST = ("dataset.train_subset=1280", "train.epochs=3", "limits.eval_batches=5")
# The landscape measurement made small: 256 samples, 5 points on one direction, no 2-D slice, 5 power iterations.
SMALL_LANDSCAPE = (
    "--samples",
    "256",
    "--points",
    "5",
    "--points-2d",
    "0",
    "--directions",
    "1",
    "--hessian-iterations",
    "5",
    "--ascent-steps",
    "2",
)
# Relative tolerance of a guard claim: another torch build moves these metrics in the 4th-5th digit (issue 13 re-ran
# 18 cpu runs on torch 2.14.1 vs 2.15.0: equal to the printed digit); a broken step moves them further.
GUARD_TOLERANCE = 1e-3


@dataclass(frozen=True)
class SharedPathRun:
    """One short run: `overrides` of `python run.py` (seed 0), then `landscape` arguments when it is measured."""

    name: str
    covers: str
    overrides: tuple[str, ...]
    guarded: tuple[str, ...]  # the metrics its guard claims check
    landscape: tuple[str, ...] = ()


SHARED_PATH_RUNS = (
    SharedPathRun(
        "sam_step",
        "SAM two-pass step (perturb, second pass, BatchNorm statistics restored)",
        ("+repro=sam_fmnist_cpu", *SMALL_FMNIST),
        ("train/loss", "test/loss"),
    ),
    SharedPathRun(
        "saf_step",
        "SAF trajectory loss (per-sample logit memory, KL term on from epoch 1)",
        ("+repro=saf_fmnist_cpu", *SMALL_FMNIST, "optimizer.start_epoch=0", "optimizer.epochs_ago=1"),
        ("train/loss", "test/loss"),
    ),
    SharedPathRun(
        "mesa_step",
        "MESA trajectory loss (EMA teacher, KL term on from epoch 1)",
        ("+repro=mesa_fmnist_cpu", *SMALL_FMNIST, "optimizer.start_epoch=0"),
        ("train/loss", "test/loss"),
    ),
    SharedPathRun(
        "standard_step",
        "standard one-pass step (SGD with momentum and weight decay)",
        ("+repro=sam_fmnist_cpu_sgd", *SMALL_FMNIST),
        ("train/loss", "test/loss"),
    ),
    # Global batch 256 (128 per process): claims match runs across hardware, so the DDP run needs a setting of its own.
    SharedPathRun(
        "ddp_sam_step",
        "2-process gloo DDP (hardware=ddp_cpu) with the SAM step, 128 per process",
        ("+repro=sam_fmnist_cpu", "hardware=ddp_cpu", "train.batch_size=256", *SMALL_FMNIST),
        ("train/loss", "test/loss"),
    ),
    SharedPathRun(
        "structure_learning",
        "task=structure_learning (NOTEARS, ER2, d=10)",
        ("+repro=notears_topo_er2_d10_cpu",),
        ("score/final",),
    ),
    SharedPathRun(
        "landscape",
        "python -m optrepro landscape (1-D slice, Hessian power iteration, adaptive sharpness)",
        (
            "+repro=landscape_digits_cpu_resnet32_skip",
            "train.epochs=2",
            "limits.train_batches=10",
            "limits.eval_batches=5",
        ),
        ("landscape/hessian_max_eig", "landscape/loss_rise_1d"),
        SMALL_LANDSCAPE,
    ),
)


def guard_claims(runs: tuple[SharedPathRun, ...], committed: dict[str, dict]) -> list[Claim]:
    """One value claim per guarded metric of each run: within GUARD_TOLERANCE of its committed record's value.

    `committed` maps run name -> its committed record (results/drift/<name>/record.json). The reference value is
    that record's, not a paper's: these claims guard the shared code, they do not reproduce a paper.
    """
    claims = []
    for run in runs:
        final = committed[run.name]["metrics"]["final"]
        for metric in run.guarded:
            reference = float(final[metric])
            claims.append(
                Claim(
                    paper=SELECTION,
                    id=f"{run.name}:{metric}",
                    source=Source(f"results/drift/{run.name}/record.json"),
                    statement=f"{run.covers}: {metric} as committed",
                    tier="smoke",
                    seeds=1,
                    metric=metric,
                    metric_source="final",
                    arms={run.name: _arm(run)},
                    setting=(),
                    check=ValueCheck(
                        arm=run.name,
                        reported=reference,
                        tolerance=max(abs(reference) * GUARD_TOLERANCE, 1e-9),
                        tolerance_reason=f"guard of a shared path: {GUARD_TOLERANCE:g} relative to the "
                        "committed drift run, not a paper number",
                    ),
                )
            )
    return claims


def _arm(run: SharedPathRun) -> Arm:
    return Arm(run.name, run.overrides)
