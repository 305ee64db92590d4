"""Which runs answer which claim arm: compose each arm with Hydra and hash it like the records are hashed.

The match key is the record writer's `setting_hash` of the semantic config *without* the `hardware`
block. Hardware stays out of the key on purpose: the same setting run on a laptop CPU and on 8 GPUs
answers the same claim, and the evidence step splits such runs by hardware class instead of
silently averaging them (or silently ignoring the ones that do not match a default hardware preset).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from optrepro.claims.schema import Claim
from optrepro.config import setting_hash
from optrepro.errors import OptreproError
from optrepro.forked import forked_map
from optrepro.paths import CONFIG_DIR, REPO_ROOT, reproduction_config_dirs

CONFIG_NAME = "train"
HARDWARE_KEY = "hardware"


class ArmCompositionError(OptreproError, ValueError):
    """Hydra could not compose a claim arm's overrides."""


def match_key(cfg: DictConfig | Mapping[str, Any]) -> str:
    """The hardware-independent setting hash shared by every seed of one claim arm."""
    return setting_hash(cfg if isinstance(cfg, DictConfig) else dict(cfg), without=(HARDWARE_KEY,))


def with_match_keys(records: pd.DataFrame) -> pd.DataFrame:
    """`records` (from load_records) with a `match_key` column computed from each run's config."""
    keys = [match_key(json.loads(text)) for text in records.get("config_json", pd.Series(dtype=object))]
    return records.assign(match_key=pd.Series(keys, index=records.index, dtype=object))


# Composing an arm with Hydra takes 0.1-0.3 s and the claims have ~90 distinct arms: their match keys are kept
# here, valid while the config files and the hashing code are byte-identical (config_tree_digest). When many are
# missing (a fresh clone, a changed config file) they are composed in forked worker processes (optrepro.forked).
ARM_KEY_CACHE = REPO_ROOT / ".cache" / "arm_match_keys.json"
HASHING_CODE = (Path(__file__).resolve(), Path(__file__).resolve().parents[1] / "config.py")


def config_tree_digest(config_dir: Path) -> str:
    """Content hash of every config a composition can read (the tree, the reproductions') and of the hash rules."""
    digest = hashlib.sha256()
    files = [
        *sorted(Path(config_dir).rglob("*.yaml")),
        *(path for folder in reproduction_config_dirs() for path in sorted(folder.rglob("*.yaml"))),
        *HASHING_CODE,
    ]
    for path in files:
        digest.update(str(path).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


class ArmComposer:
    """Composes configs with Hydra's compose API; one Hydra initialization serves many compositions.

    For the repository's own config tree, match keys are also cached on disk (ARM_KEY_CACHE) across commands."""

    def __init__(self, config_dir: Path | str = CONFIG_DIR, config_name: str = CONFIG_NAME) -> None:
        self.config_dir = Path(config_dir).resolve()
        self.config_name = config_name
        self._context: Any = None
        self._composed: dict[tuple[str, ...], DictConfig] = {}  # claims share arms (e.g. the SGD baseline)
        self._cache_path = ARM_KEY_CACHE if self.config_dir == Path(CONFIG_DIR).resolve() else None
        self._cached_keys: dict[str, str] | None = None
        self._digest = ""

    def __enter__(self) -> ArmComposer:
        self._context = initialize_config_dir(config_dir=str(self.config_dir), version_base=None)
        self._context.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._context.__exit__(*exc)
        self._save_keys()

    def compose(self, claim: Claim, arm: str, extra: Sequence[str] = ()) -> DictConfig:
        """The config of `arm` (plus `extra` overrides); call inside `with composer:`. Do not mutate it."""
        overrides = (*claim.arm_overrides(arm), *extra)
        if overrides in self._composed:
            return self._composed[overrides]
        try:
            cfg = compose(config_name=self.config_name, overrides=list(overrides))
        except HydraException as err:
            raise ArmCompositionError(
                f"claim {claim.key} (claims.yaml line {claim.line}), arm {arm!r}: Hydra could not compose "
                f"overrides {overrides} from {self.config_dir}: {err}. Fix the claim's `setting` or the arm's "
                f"`overrides` (they must be valid `python run.py` overrides)."
            ) from err
        self._composed[overrides] = cfg
        return cfg

    def arm_key(self, claim: Claim, arm: str) -> str:
        """match_key of the arm's composed config, from the disk cache when the config files are unchanged."""
        keys = self._keys()
        name = json.dumps(claim.arm_overrides(arm))
        if name not in keys:
            keys[name] = match_key(self.compose(claim, arm))
        return keys[name]

    def holds(self, claim: Claim, arm: str, dotted: str) -> bool:
        """Whether the arm's composed config has the key `dotted`; cached on disk beside the match keys, so checking a
        claim's knob costs no composition while the config files are unchanged."""
        keys = self._keys()
        name = json.dumps([*claim.arm_overrides(arm), f"holds {dotted}"])
        if name not in keys:
            absent = object()
            keys[name] = str(OmegaConf.select(self.compose(claim, arm), dotted, default=absent) is not absent)
        return keys[name] == "True"

    def prefetch_keys(self, arms: Sequence[tuple[Claim, str]]) -> None:
        """Compose the arms whose keys are not cached, in forked workers when there are many (call inside `with`)."""
        keys = self._keys()
        missing = list(
            {
                json.dumps(claim.arm_overrides(arm)): (claim, arm)
                for claim, arm in arms
                if json.dumps(claim.arm_overrides(arm)) not in keys
            }.items()
        )
        found = forked_map(lambda pair: match_key(self.compose(*pair)), [pair for _, pair in missing])
        keys.update(zip((name for name, _ in missing), found))

    def _keys(self) -> dict[str, str]:
        if self._cached_keys is None:
            self._cached_keys = {}
            if self._cache_path is not None:
                self._digest = config_tree_digest(self.config_dir)
                try:
                    stored = json.loads(self._cache_path.read_text())
                except (OSError, ValueError):
                    stored = {}
                if isinstance(stored, dict) and stored.get("digest") == self._digest:
                    self._cached_keys = dict(stored.get("keys") or {})
        return self._cached_keys

    def _save_keys(self) -> None:
        if self._cache_path is None or self._cached_keys is None:
            return
        from optrepro.records.writer import write_json_atomic

        try:
            write_json_atomic(self._cache_path, {"digest": self._digest, "keys": self._cached_keys})
        except OSError:
            pass  # a read-only checkout still works, only slower


def arm_match_keys(claims: Iterable[Claim], composer: ArmComposer) -> dict[tuple[str, str], str]:
    """(claim key, arm name) -> match key for every arm of every claim."""
    arms = [(claim, arm) for claim in claims for arm in claim.arms]
    composer.prefetch_keys(arms)
    return {(claim.key, arm): composer.arm_key(claim, arm) for claim, arm in arms}


def backfill_recipes(stores: Iterable[Path], claims: Sequence[Claim], composer: ArmComposer) -> dict[str, int]:
    """Give every record without a recipe (written before runs recorded their overrides) the recipe of the claim
    arm it answers under the config-hash matching; a record that answers no arm keeps a null recipe.

    Rewrites those record.json files in place (schema version 3); returns the counts by outcome."""
    from optrepro.records.recipe import recipe
    from optrepro.records.record import RunRecord
    from optrepro.records.table import find_record_files
    from optrepro.records.writer import write_json_atomic

    recipes: dict[str, set[tuple[str, ...]]] = {}
    with composer:
        for (claim_key, arm), key in arm_match_keys(claims, composer).items():
            claim = next(c for c in claims if c.key == claim_key)
            recipes.setdefault(key, set()).add(recipe(claim.arm_overrides(arm)))
    counts = {"filled": 0, "no arm": 0, "had one": 0}
    for store in stores:
        for path in find_record_files(store):
            raw = json.loads(path.read_text())
            if raw.get("recipe") is not None:
                counts["had one"] += 1
                continue
            found = recipes.get(match_key(raw.get("config") or {}), set())
            if len(found) > 1:
                raise OptreproError(f"{path}: its config answers arms with different recipes {sorted(found)}")
            if not found:
                counts["no arm"] += 1
                continue
            record = RunRecord.from_dict(raw)
            record.recipe = list(next(iter(found)))
            write_json_atomic(path, record.to_dict())
            counts["filled"] += 1
    return counts
