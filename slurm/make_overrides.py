"""Turn a Hydra sweep into an overrides file for slurm/sweep.sbatch: one line per array element.

    python slurm/make_overrides.py seed=0,1,2 optimizer=sgd,sam +repro=sam_cifar --max-parallel 4

writes runs/sweeps/<time>.txt (6 lines, e.g. `+repro=sam_cifar seed=0 optimizer=sgd`) and prints the
sbatch command that submits it. The sweep syntax is Hydra's own (`a=1,2`, `range(0,5)`, quoting),
expanded by Hydra's basic sweeper, so the elements are exactly those `python run.py -m ...` would run.
Each element's config is composed (a bad override stops here, before anything is submitted), and the sbatch
resources come from it, as the submitit launcher takes them: `--nodes`, `--ntasks-per-node` (one task per
device), `--cpus-per-task` and, only for runs on GPUs, `--gpus-per-node` (a CPU cluster rejects any GPU request).
"""

import argparse
import datetime
import shlex
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException

from optrepro.paths import CONFIG_DIR

SWEEP_SCRIPT = "slurm/sweep.sbatch"


def expand(sweep: list[str]) -> list[list[str]]:
    """The cartesian product of the sweep, one list of plain overrides per element."""
    overrides = OverridesParser.create().parse_overrides(sweep)
    [elements] = BasicSweeper.split_arguments(overrides, max_batch_size=None)
    return elements


def resources(element: list[str]) -> tuple[tuple[str, int], ...]:
    """The sbatch resource flags one element's composed config asks for."""
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        cfg = compose("train", overrides=element)
    flags = (
        ("--nodes", cfg.hardware.num_nodes),
        ("--ntasks-per-node", cfg.hardware.devices),
        ("--cpus-per-task", cfg.cluster.cpus_per_task),
        ("--gpus-per-node", cfg.hardware.gpus_per_node),
    )
    return tuple((flag, int(value)) for flag, value in flags if not (flag == "--gpus-per-node" and not value))


def sweep_resources(elements: list[list[str]]) -> tuple[tuple[str, int], ...]:
    """The resources every element shares (one array, one allocation shape); the seed never changes them."""
    found: dict[tuple[tuple[str, int], ...], list[str]] = {}
    for element in elements:
        shape = tuple(o for o in element if not o.startswith("seed="))
        found.setdefault(resources(list(shape)), []).append(" ".join(element))
    if len(found) > 1:
        shapes = "; ".join(f"{' '.join(f'{k}={v}' for k, v in key)} for {items[0]!r}" for key, items in found.items())
        raise ValueError(f"the elements ask for different resources ({shapes}); split the sweep by hardware")
    return next(iter(found))


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
    try:
        flags = sweep_resources(elements)
    except (HydraException, ValueError) as exc:
        parser.error(
            f"cannot submit the sweep {args.sweep}: {str(exc).splitlines()[0]}; check the overrides with "
            "`python run.py <overrides> --cfg job`"
        )
    output = args.output or Path("runs/sweeps") / f"{datetime.datetime.now():%Y%m%d-%H%M%S-%f}.txt"
    output.parent.mkdir(parents=True, exist_ok=True)
    # Shell-quoted so sweep.sbatch can split each line back into the exact arguments.
    output.write_text("".join(shlex.join(element) + "\n" for element in elements))

    array = f"0-{len(elements) - 1}" + (f"%{args.max_parallel}" if args.max_parallel else "")
    # Logs next to the overrides file: its folder exists, and SLURM does not create folders.
    logs = output.with_name(f"{output.stem}_%A_%a.out")
    print(f"wrote {len(elements)} array elements to {output}; submit from the repository root with:", file=sys.stderr)
    print(
        shlex.join(
            [
                "sbatch",
                f"--array={array}",
                *(f"{flag}={value}" for flag, value in flags),
                f"--output={logs}",
                SWEEP_SCRIPT,
                str(output),
            ]
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
