"""The `full` presets, found by composing every preset: a preset often inherits `repro.tier` from its setting, so
only Hydra knows it. ~100 compositions take 10-20 s, so the names are kept in .cache/full_presets.json while the
config files are byte-identical (config_tree_digest). A paper's new full preset is picked up
without editing any shared file."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from optrepro.paths import CONFIG_DIR, REPO_ROOT, reproduction_config_dirs

CACHE = REPO_ROOT / ".cache" / "full_presets.json"


def config_tree_digest(config_dir: Path) -> str:
    """Content hash of every config a composition can read (the tree, the reproductions'): the cache's key."""
    digest = hashlib.sha256()
    files = [
        *sorted(Path(config_dir).rglob("*.yaml")),
        *(path for folder in reproduction_config_dirs() for path in sorted(folder.rglob("*.yaml"))),
    ]
    for path in files:
        digest.update(str(path).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def preset_names() -> list[str]:
    """Every `+repro=` preset of the config tree and the reproductions' folders."""
    return sorted(path.stem for folder in reproduction_config_dirs() for path in (folder / "repro").glob("*.yaml"))


def compose_full_presets(names: Iterable[str]) -> tuple[str, ...]:
    """The names among `names` whose composed config says `repro.tier: full`."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
            return tuple(name for name in names if compose("train", overrides=[f"+repro={name}"]).repro.tier == "full")
    finally:
        GlobalHydra.instance().clear()


def full_presets() -> tuple[str, ...]:
    """Every full preset, from the cache when the config files have not changed since it was written."""
    digest = config_tree_digest(CONFIG_DIR)
    try:
        stored = json.loads(CACHE.read_text())
    except (OSError, ValueError):
        stored = {}
    if isinstance(stored, dict) and stored.get("digest") == digest:
        return tuple(stored["presets"])
    presets = compose_full_presets(preset_names())
    try:
        CACHE.parent.mkdir(exist_ok=True)
        CACHE.write_text(json.dumps({"digest": digest, "presets": presets}))
    except OSError:
        pass  # a read-only checkout composes them again next time
    return presets
