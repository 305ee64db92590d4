"""Find an earlier finished run of the same config: relaunching a sweep then skips the cells that are done."""

from __future__ import annotations

import json
from pathlib import Path

from optrepro.config import config_hash as hash_of
from optrepro.records.record import RECORD_NAME


def finished_run(runs_dir: str | Path, config_hash: str) -> Path | None:
    """The folder of a finished run with this config hash, if any (unreadable records are ignored here).

    A record's config is hashed again under today's rules when its stored hash differs, as `claims run` does: a
    knob added since at its neutral default (config.NEUTRAL_DEFAULTS) must not make a finished run look new."""
    for path in sorted(Path(runs_dir).glob(f"*/*/*/{RECORD_NAME}")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if record.get("status") not in ("finished", "diverged"):
            continue
        if record.get("config_hash") == config_hash or hash_of(record.get("config") or {}) == config_hash:
            return path.parent
    return None
