"""Throughput of `claims run --jobs 2` against one run at a time: the same independent short runs, both ways.

Why: a claim's seeds are independent runs; on a 2-core machine two side by side, one torch thread each, should
finish in about half the wall time (issue target >= 1.8x). The runs are `optrepro.claims.launch.execute`'s, the
code `claims run` uses, on the digits label-noise SGD preset cut to 20 epochs, into a temporary runs folder.

Machine: an idle CPU machine with 2 cores (it measures whatever else runs too), about 2 minutes (`--quick`: 2 tiny
runs per mode). Inputs: none. Command: `python benchmarks/parallel_runs.py`. Prints the wall-time ratio last.
"""

from __future__ import annotations

import sys
import tempfile
import time

from common import parse_args, print_ratio

from optrepro.claims.launch import ENTRY_POINT, execute


def commands(runs_dir: str, count: int, epochs: int) -> list[list[str]]:
    return [
        [
            sys.executable,
            ENTRY_POINT,
            "+repro=sam_noise_digits_cpu_sgd",
            f"train.epochs={epochs}",
            "logger=csv",
            "train.checkpoint=false",
            f"seed={seed}",
            f"paths.runs_dir={runs_dir}",
            "skip_finished=false",
        ]
        for seed in range(count)
    ]


def main() -> None:
    args = parse_args(__doc__)
    count, epochs = (2, 2) if args.quick else (4, 20)
    walls = {}
    for jobs in (1, 2):
        with tempfile.TemporaryDirectory() as runs_dir:
            start = time.perf_counter()
            failed = execute(commands(runs_dir, count, epochs), jobs=jobs)
            walls[jobs] = time.perf_counter() - start
            if failed:
                raise SystemExit(f"failed: {failed}")
    print(f"{count} runs of {epochs} epochs: one at a time {walls[1]:.1f} s, two side by side {walls[2]:.1f} s")
    print_ratio("throughput of --jobs 2 over --jobs 1", walls[1] / walls[2])


if __name__ == "__main__":
    main()
