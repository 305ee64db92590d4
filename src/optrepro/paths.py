"""Where the repository's folders are, found from this file rather than the working directory."""

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO_ROOT / "configs"
REPRODUCTIONS_DIR = REPO_ROOT / "reproductions"
# Where runs live: the run folders of this machine (as configs/paths/default.yaml's runs_dir, OPTREPRO_RUNS first),
# and the committed results: the record store RESULTS.md is generated from, tuning and timing records, drift runs.
RUNS_DIR = Path(os.environ.get("OPTREPRO_RUNS", REPO_ROOT / "runs"))
RESULTS_DIR = REPO_ROOT / "results"
COMMITTED_RECORDS = RESULTS_DIR / "records"


def shown(path: Path | str) -> str:
    """A path as output shows it: relative to the repository when inside it (no machine's folders in what is
    committed or printed), else as given."""
    resolved = Path(path).resolve()
    return resolved.relative_to(REPO_ROOT).as_posix() if resolved.is_relative_to(REPO_ROOT) else str(path)


def reproduction_config_dirs() -> list[Path]:
    """The `configs` folder of every reproduction, in a stable order."""
    return sorted(p for p in REPRODUCTIONS_DIR.glob("*/configs") if p.is_dir())


def import_reproductions() -> None:
    """Paper code is referenced as `reproductions.<paper>.<module>`: put the repository root on sys.path (once), so
    that resolves in every process that builds a run (run.py, a DDP worker, a SLURM job) from any working folder."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
