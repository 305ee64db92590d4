"""Where the repository's folders are, found from this file rather than the working directory."""
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO_ROOT / "configs"
REPRODUCTIONS_DIR = REPO_ROOT / "reproductions"


def reproduction_config_dirs() -> list[Path]:
    """The `configs` folder of every reproduction, in a stable order."""
    return sorted(p for p in REPRODUCTIONS_DIR.glob("*/configs") if p.is_dir())
