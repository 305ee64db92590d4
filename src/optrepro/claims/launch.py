"""`claims run`: launch exactly the runs a claim still lacks, so re-running the command resumes a sweep.

What is missing comes from the evidence policy (claims.policy), the same that gives `claims list` its verdicts.
Arms shared by several claims are launched once, and two `claims run` at the same time never launch the same run.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shlex
import subprocess
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
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


@contextlib.contextmanager
def claimed(runs: Sequence[PlannedRun], lock_dir: Path) -> Iterator[tuple[list[PlannedRun], list[str]]]:
    """The planned runs this process may launch, and a line for each that another `claims run` is launching now.

    A run has no record until it ends, so a second `claims run` started meanwhile (another terminal, a SLURM sweep
    still in its queue) would plan it again. Each (recipe, seed) takes an exclusive lock on a file of `lock_dir`
    for as long as this process launches it; the operating system drops the lock when the process ends, however
    it ends, so no stale lock outlives a crash. (On a shared filesystem this needs its flock support.)"""
    lock_dir.mkdir(parents=True, exist_ok=True)
    mine: list[PlannedRun] = []
    taken: list[str] = []
    with contextlib.ExitStack() as held:
        for run in runs:
            name = hashlib.sha256(f"{run.recipe}\0{run.seed}".encode()).hexdigest()[:20]
            handle = open(lock_dir / f"{name}.lock", "a+")  # kept open (and locked) while the run is launched
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                handle.close()
                taken.append(f"{run.claim} arm={run.arm} seed={run.seed}: already being launched by {holder}; skipped")
                continue
            held.callback(handle.close)
            handle.seek(0)
            handle.truncate()
            handle.write(f"`claims run` pid {os.getpid()} since {datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} UTC")
            handle.flush()
            mine.append(run)
        yield mine, taken


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
