"""Find an earlier finished run of the same config: relaunching a sweep then skips the cells that are done."""
from __future__ import annotations

import json
from pathlib import Path

from optrepro.records.writer import RECORD_NAME


def finished_run(runs_dir: str | Path, config_hash: str) -> Path | None:
    """The folder of a finished run with this config hash, if any (unreadable records are ignored here)."""
    for path in sorted(Path(runs_dir).glob(f"*/*/*/{RECORD_NAME}")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if record.get("config_hash") == config_hash and record.get("status") in ("finished", "diverged"):
            return path.parent
    return None
