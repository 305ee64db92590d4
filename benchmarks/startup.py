"""Start-up time of `run.py`: `--help`, `--cfg job` and a shell-completion query, against bare Python, bare
Hydra, and the torch + Lightning import that a run pays (and every call paid before they were imported lazily).

Each contender is a fresh `python` subprocess from the repository root, run interleaved with the others
(`common.interleaved`); the figures are medians over the repetitions, in seconds of wall time. The target is
1.5 s for each of the three run.py calls; the last line is the slowest of them over that target (<= 1 meets it).
The "eager import" row is what one run.py call cost when run.py imported optrepro.train at module load: the
Hydra part of `--cfg job` plus the import of optrepro.train.

Machine assumptions: any; on a loaded machine every row grows (compare rows of one run, not runs).
Command: python benchmarks/startup.py   (--quick: 1 repetition, only checks the script works)
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

from common import interleaved, parse_args, timed

from optrepro.paths import REPO_ROOT

TARGET_S = 1.5
COMPLETION_LINE = "python run.py optimizer=s"
CONTENDERS: dict[str, list[str]] = {
    "python -c pass": ["-c", "pass"],
    "python -c 'import hydra'": ["-c", "import hydra"],
    "python run.py --help": ["run.py", "--help"],
    "python run.py --cfg job": ["run.py", "--cfg", "job"],
    f"completion: {COMPLETION_LINE}<Tab>": ["run.py", "-sc", "query=bash"],
    "python -c 'import optrepro.train'": ["-c", "import optrepro.train"],
}
RUN_PY_CALLS = ("python run.py --help", "python run.py --cfg job", f"completion: {COMPLETION_LINE}<Tab>")


def launcher(args: list[str]):
    """A call that runs `python <args>` from the repository root, as a user would, and checks it succeeded."""
    env = os.environ | {
        "COMP_LINE": COMPLETION_LINE,
        "COMP_POINT": str(len(COMPLETION_LINE)),
        "PYTHONPATH": os.pathsep.join([str(Path(REPO_ROOT, "src")), os.environ.get("PYTHONPATH", "")]),
    }

    def call() -> float:
        return timed(
            lambda: subprocess.run(
                [sys.executable, *args],
                cwd=REPO_ROOT,
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )

    return call


def main() -> None:
    args = parse_args(__doc__)
    repetitions = 1 if args.quick else 7
    contenders = {name: launcher(argv) for name, argv in CONTENDERS.items()}
    for call in contenders.values():  # warm-up: file-system caches and .pyc files, not measured
        call()
    seconds = {name: statistics.median(times) for name, times in interleaved(contenders, repetitions).items()}
    seconds["eager import (run.py before: --cfg job + import optrepro.train)"] = (
        seconds["python run.py --cfg job"] + seconds["python -c 'import optrepro.train'"]
    )
    width = max(map(len, seconds))
    print(f"median wall seconds over {repetitions} interleaved repetitions ({os.cpu_count()} cores)")
    for name, value in seconds.items():
        print(f"  {name:<{width}}  {value:6.2f} s")
    slowest = max(RUN_PY_CALLS, key=seconds.__getitem__)
    print(f"RATIO slowest run.py start-up ({slowest}) / {TARGET_S} s target: {seconds[slowest] / TARGET_S:.3f}")


if __name__ == "__main__":
    main()
