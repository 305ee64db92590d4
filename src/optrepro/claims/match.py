"""Which runs answer which claim arm: compose each arm with Hydra and hash it like the records are hashed.

The match key is the record writer's `setting_hash` of the semantic config *without* the `hardware`
block. Hardware stays out of the key on purpose: the same setting run on a laptop CPU and on 8 GPUs
answers the same claim, and the evidence step splits such runs by hardware class instead of
silently averaging them (or silently ignoring the ones that do not match a default hardware preset).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from optrepro.claims.schema import Claim
from optrepro.config import semantic_config, setting_hash
from optrepro.errors import OptreproError
from optrepro.paths import CONFIG_DIR

CONFIG_NAME = "train"
HARDWARE_KEY = "hardware"


class ArmCompositionError(OptreproError, ValueError):
    """Hydra could not compose a claim arm's overrides."""


def match_key(cfg: DictConfig | Mapping[str, Any]) -> str:
    """The hardware-independent setting hash shared by every seed of one claim arm."""
    semantic = semantic_config(cfg if isinstance(cfg, DictConfig) else OmegaConf.create(dict(cfg)))
    semantic.pop(HARDWARE_KEY, None)
    return setting_hash(OmegaConf.create(semantic))


def with_match_keys(records: pd.DataFrame) -> pd.DataFrame:
    """`records` (from load_records) with a `match_key` column computed from each run's config."""
    keys = [match_key(json.loads(text)) for text in records.get("config_json", pd.Series(dtype=object))]
    return records.assign(match_key=pd.Series(keys, index=records.index, dtype=object))


class ArmComposer:
    """Composes configs with Hydra's compose API; one Hydra initialization serves many compositions."""

    def __init__(self, config_dir: Path | str = CONFIG_DIR, config_name: str = CONFIG_NAME) -> None:
        self.config_dir = Path(config_dir).resolve()
        self.config_name = config_name
        self._context: Any = None
        self._composed: dict[tuple[str, ...], DictConfig] = {}  # claims share arms (e.g. the SGD baseline)

    def __enter__(self) -> ArmComposer:
        self._context = initialize_config_dir(config_dir=str(self.config_dir), version_base=None)
        self._context.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._context.__exit__(*exc)

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


def arm_match_keys(claims: Iterable[Claim], composer: ArmComposer) -> dict[tuple[str, str], str]:
    """(claim key, arm name) -> match key for every arm of every claim."""
    return {
        (claim.key, arm): match_key(composer.compose(claim, arm))
        for claim in claims
        for arm in claim.arms
    }
