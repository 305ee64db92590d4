"""`claims run`: launch exactly the runs a claim still lacks, so re-running the command resumes a sweep.

A run is done when a record with its `config_hash` (semantic config including seed and hardware)
has a result status (finished or diverged). Arms shared by several claims are launched once.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from optrepro.claims.evidence import RESULT_STATUSES
from optrepro.claims.match import ArmComposer
from optrepro.claims.schema import Claim
from optrepro.config import config_hash
from optrepro.paths import REPO_ROOT

ENTRY_POINT = "run.py"
SLURM_LAUNCHER_OVERRIDE = "hydra/launcher=slurm"


@dataclass(frozen=True)
class PlannedRun:
    """One (claim, arm, seed) without a result; `overrides` already include the seed."""

    claim: str
    arm: str
    seed: int
    overrides: tuple[str, ...]
    config_hash: str


def plan_missing_runs(
    claims: Iterable[Claim], records: pd.DataFrame, composer: ArmComposer, extra_overrides: Sequence[str] = ()
) -> list[PlannedRun]:
    """Every (claim, arm, seed) whose config_hash has no result record, each distinct config once."""
    results = records[records["status"].isin(RESULT_STATUSES)]
    # Hashes recomputed from each record's config under today's rules, as claims matching does: a knob added
    # since (config.NEUTRAL_DEFAULTS) must not make a finished run look missing.
    done = set(results["config_hash"]) | {config_hash(json.loads(text)) for text in results["config_json"].dropna()}
    planned: dict[str, PlannedRun] = {}
    for claim in claims:
        for arm in claim.arms:
            arm_cfg = composer.compose(claim, arm, extra_overrides)
            for seed in claim.seed_values:
                overrides = (*claim.arm_overrides(arm), *extra_overrides, f"seed={seed}")
                run_hash = config_hash(OmegaConf.merge(arm_cfg, {"seed": seed}))
                if run_hash not in done and run_hash not in planned:
                    planned[run_hash] = PlannedRun(claim.key, arm, seed, overrides, run_hash)
    return list(planned.values())


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


def execute(commands: Sequence[Sequence[str]], cwd: Path = REPO_ROOT, concurrent: bool = False) -> list[str]:
    """Run the commands, one after the other or all at once; a failure does not stop the rest.

    SLURM arrays are submitted concurrently (each Hydra multirun blocks until its array ends), so the scheduler
    sees every missing run at once and fills all free slots; local runs go one at a time. Returns the failed ones.
    """
    if not concurrent:
        failed = []
        for command in commands:
            print(f"$ {show(command)}", flush=True)
            if subprocess.run(list(command), cwd=cwd, check=False).returncode != 0:
                failed.append(show(command))
        return failed
    running = []
    for command in commands:
        print(f"$ {show(command)} &", flush=True)
        running.append((command, subprocess.Popen(list(command), cwd=cwd)))
    return [show(command) for command, process in running if process.wait() != 0]
