"""How long `claims list` and `results report` take on the committed record store (targets: 3 s and 10 s).

Each command runs as a user runs it, in a fresh process, side by side in one session: `claims list` twice (runs
match arms by recipe, nothing is composed, so there is no cache to warm: the two figures show the spread);
`results report` with the committed plots in place (kept: only changed plots are drawn, the normal case) and into
an empty folder (every plot drawn). Wall and CPU seconds are printed: on a shared machine CPU seconds are the
command's own work, wall seconds include waiting for a core.
"""

from __future__ import annotations

import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import describe_machine, parse_args

from optrepro.paths import REPO_ROOT

STORE = REPO_ROOT / "results" / "records"
TARGETS_S = {"claims list": 3.0, "results report": 10.0}


def run_command(arguments: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child process) of `python -m optrepro <arguments>`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "optrepro", *arguments], cwd=REPO_ROOT, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    args = parse_args(__doc__)
    describe_machine()
    scratch = Path(tempfile.mkdtemp())
    listing = ["claims", "list", "--records", str(STORE)] + (["--paper", "sam"] if args.quick else [])

    def report(plots: Path) -> list[str]:
        return [
            "results",
            "report",
            "--records",
            str(STORE),
            "--out",
            str(scratch / "RESULTS.md"),
            "--plots",
            str(plots),
            "--verdicts",
            str(scratch / "verdicts.json"),
        ]

    shutil.copytree(REPO_ROOT / "results" / "plots", scratch / "kept_plots")
    try:
        figures = {"claims list, first": run_command(listing), "claims list, second": run_command(listing)}
        if not args.quick:
            figures["results report, plots kept"] = run_command(report(scratch / "kept_plots"))
            figures["results report, every plot drawn"] = run_command(report(scratch / "new_plots"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for name, (wall, cpu) in figures.items():
        target = TARGETS_S[name.split(",")[0]]
        verdict = "under" if wall < target else "OVER"
        print(f"{name}: {wall:.1f} s wall, {cpu:.1f} s CPU ({verdict} the {target:.0f} s target)")
    first, second = figures["claims list, first"][1], figures["claims list, second"][1]
    print(f"RATIO claims list CPU seconds, first / second run: {first / second:.3f}")


if __name__ == "__main__":
    main()
