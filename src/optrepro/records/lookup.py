"""Find an earlier finished run of the same command: relaunching a sweep then skips the cells that are done."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from optrepro.records.record import RECORD_NAME


def finished_run(
    runs_dir: str | Path, config_hash: str, recipe: list[str] | None, seed: int, hardware: Any
) -> Path | None:
    """The folder of a finished run of this config (same config hash), or of this command on this hardware (same
    recipe, seed and hardware block), if any; unreadable records are ignored here.

    The recipe makes a run recorded before a knob was added (its config lacks the key, so its hash differs) count
    as done, without re-hashing old configs under today's rules."""
    for path in sorted(Path(runs_dir).glob(f"*/*/*/{RECORD_NAME}")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if record.get("status") not in ("finished", "diverged"):
            continue
        if record.get("config_hash") == config_hash:
            return path.parent
        same_command = recipe is not None and record.get("recipe") == recipe and record.get("seed") == seed
        if same_command and (record.get("config") or {}).get("hardware") == hardware:
            return path.parent
    return None
