"""`claims run`: launch exactly the runs a claim still lacks, so re-running the command resumes a sweep.

What is missing comes from the evidence policy (claims.policy), the same that gives `claims list` its verdicts.
Arms shared by several claims are launched once.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from optrepro.claims.match import ArmComposer, arm_key
from optrepro.claims.policy import launch_needs
from optrepro.claims.schema import Claim
from optrepro.claims.tuning import check_grid
from optrepro.paths import REPO_ROOT

ENTRY_POINT = "run.py"
SLURM_LAUNCHER_OVERRIDE = "hydra/launcher=slurm"


@dataclass(frozen=True)
class PlannedRun:
    """One (claim, arm, seed) without a result; `overrides` already include the seed; `recipe` is the arm's recipe
    key (claims.match.arm_key)."""

    claim: str
    arm: str
    seed: int
    overrides: tuple[str, ...]
    recipe: str


@dataclass(frozen=True)
class Plan:
    """The runs to launch now, and per (claim, arm) the seeds held back until a bridge run has finished
    (policy.LaunchNeeds): launched by the next plan only if the bridge shows the older version computes otherwise."""

    runs: list[PlannedRun]
    held_back: dict[tuple[str, str], tuple[int, ...]]


def plan_missing_runs(
    claims: Iterable[Claim], records: pd.DataFrame, composer: ArmComposer, extra_overrides: Sequence[str] = ()
) -> Plan:
    """Every (claim, arm, seed) the evidence policy finds missing on the launch's hardware, each (recipe, seed) once.

    Missing is policy.missing_seeds: the seeds an arm lacks in the runs its verdict uses, so a seed that only has a
    failed run, or only a run on other hardware, is launched, and a claim `claims list` shows complete launches
    nothing. A tuned knob that is not a key of its arms stops here, before any run. Call inside `with composer:`.
    """
    planned: dict[tuple[str, int], PlannedRun] = {}
    held_back: dict[tuple[str, str], tuple[int, ...]] = {}
    for claim in claims:
        if claim.tuning is not None:
            check_grid(claim, composer)
        needs = launch_needs(claim, records, composer, extra_overrides)
        for arm, seeds in needs.seeds_to_run().items():
            key = arm_key(claim, arm, extra_overrides)
            for seed in seeds:
                overrides = (*claim.arm_overrides(arm), *extra_overrides, f"seed={seed}")
                planned.setdefault((key, seed), PlannedRun(claim.key, arm, seed, overrides, key))
        held_back |= {(claim.key, arm): seeds for arm, seeds in needs.deferred.items() if seeds}
    return Plan(list(planned.values()), held_back)


def local_commands(runs: Sequence[PlannedRun]) -> list[list[str]]:
    """One `python run.py <overrides> seed=<s>` per run, run one after the other."""
    return [[sys.executable, ENTRY_POINT, *run.overrides] for run in runs]


def slurm_commands(runs: Sequence[PlannedRun]) -> list[list[str]]:
    """One Hydra multirun per (claim, arm) sweeping its missing seeds: one SLURM array per arm."""
    seeds_by_arm: dict[tuple[str, str], list[PlannedRun]] = {}
    for run in runs:
        seeds_by_arm.setdefault((run.claim, run.arm), []).append(run)
    commands = []
    for arm_runs in seeds_by_arm.values():
        shared = [o for o in arm_runs[0].overrides if not o.startswith("seed=")]
        seeds = ",".join(str(run.seed) for run in arm_runs)
        commands.append([sys.executable, ENTRY_POINT, "-m", SLURM_LAUNCHER_OVERRIDE, *shared, f"seed={seeds}"])
    return commands


def show(command: Sequence[str]) -> str:
    """The command as a shell line (python shown as `python`), for --dry-run and logs."""
    return shlex.join(["python", *command[1:]])


def execute(commands: Sequence[Sequence[str]], cwd: Path = REPO_ROOT, jobs: int = 1) -> list[str]:
    """Run the commands, at most `jobs` at a time; a failure does not stop the rest. Returns the failed ones.

    SLURM arrays are all submitted at once (`jobs` = their number: each Hydra multirun blocks until its array
    ends), so the scheduler sees every missing run and fills all free slots. Local runs go `jobs` at a time, each
    with one torch thread (`claims run --jobs N`: N independent runs side by side on N cores; two runs on two
    cores each spinning two threads would wait on each other)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"} if jobs > 1 else None
    failed: list[str] = []
    running: list[tuple[Sequence[str], subprocess.Popen]] = []
    pending = list(commands)
    while pending or running:
        while pending and len(running) < jobs:
            command = pending.pop(0)
            print(f"$ {show(command)}" + (" &" if jobs > 1 else ""), flush=True)
            running.append((command, subprocess.Popen(list(command), cwd=cwd, env=env)))
        command, process = running.pop(0)
        if process.wait() != 0:
            failed.append(show(command))
    return failed
