"""Turn a Hydra sweep into an overrides file for slurm/sweep.sbatch: one line per array element.

    python slurm/make_overrides.py seed=0,1,2 optimizer=sgd,sam +repro=sam_cifar --max-parallel 4

writes runs/sweeps/<time>.txt (6 lines, e.g. `+repro=sam_cifar seed=0 optimizer=sgd`) and prints the
sbatch command that submits it. The sweep syntax is Hydra's own (`a=1,2`, `range(0,5)`, quoting),
expanded by Hydra's basic sweeper, so the elements are exactly those `python run.py -m ...` would run.
"""

import argparse
import datetime
import shlex
import sys
from pathlib import Path

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException

SWEEP_SCRIPT = "slurm/sweep.sbatch"


def expand(sweep: list[str]) -> list[list[str]]:
    """The cartesian product of the sweep, one list of plain overrides per element."""
    overrides = OverridesParser.create().parse_overrides(sweep)
    [elements] = BasicSweeper.split_arguments(overrides, max_batch_size=None)
    return elements


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep", nargs="+", help="Hydra overrides; comma lists and range() are swept")
    parser.add_argument("--output", type=Path, help="overrides file to write (default: runs/sweeps/<time>.txt)")
    parser.add_argument("--max-parallel", type=int, help="run at most this many array elements at once")
    args = parser.parse_args(argv)

    try:
        elements = expand(args.sweep)
    except HydraException as exc:
        parser.error(f"cannot expand the sweep {args.sweep}: {exc}")
    output = args.output or Path("runs/sweeps") / f"{datetime.datetime.now():%Y%m%d-%H%M%S-%f}.txt"
    output.parent.mkdir(parents=True, exist_ok=True)
    # Shell-quoted so sweep.sbatch can split each line back into the exact arguments.
    output.write_text("".join(shlex.join(element) + "\n" for element in elements))

    array = f"0-{len(elements) - 1}" + (f"%{args.max_parallel}" if args.max_parallel else "")
    # Logs next to the overrides file: its folder exists, and SLURM does not create folders.
    logs = output.with_name(f"{output.stem}_%A_%a.out")
    print(f"wrote {len(elements)} array elements to {output}; submit from the repository root with:", file=sys.stderr)
    print(shlex.join(["sbatch", f"--array={array}", f"--output={logs}", SWEEP_SCRIPT, str(output)]))


if __name__ == "__main__":
    main(sys.argv[1:])
