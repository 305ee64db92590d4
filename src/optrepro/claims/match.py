"""Which runs answer which claim arm: the arm's recipe (its `setting + overrides`) equals the run's recorded recipe.

Nothing is composed to match: a run launched for an arm (`claims run`, or `python run.py <the arm's overrides>
seed=<s>` by hand) records the same canonical recipe (records.recipe), whatever its seed, hardware or display
options. Hardware stays out of the recipe on purpose: the same setting run on a laptop CPU and on 8 GPUs answers
the same claim, and the evidence step splits such runs by hardware class instead of silently averaging them. The
code version (`code.source_hash`) decides between runs of one recipe made by different code (claims.evidence).

Composition is still needed where a config must exist before any run: the hardware a launch will use and a tuned
knob's presence (ArmComposer).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from optrepro.claims.schema import Claim
from optrepro.errors import OptreproError
from optrepro.paths import CONFIG_DIR
from optrepro.records.recipe import recipe, recipe_key

CONFIG_NAME = "train"


class ArmCompositionError(OptreproError, ValueError):
    """Hydra could not compose a claim arm's overrides."""


def arm_key(claim: Claim, arm: str, extra: Sequence[str] = ()) -> str:
    """The recipe key of `arm` launched with `extra` overrides: the `recipe` column value of the runs that answer it."""
    return recipe_key(recipe((*claim.arm_overrides(arm), *extra)))


def arm_keys(claims: Iterable[Claim]) -> dict[tuple[str, str], str]:
    """(claim key, arm name) -> arm_key for every arm of every claim."""
    return {(claim.key, arm): arm_key(claim, arm) for claim in claims for arm in claim.arms}


class ArmComposer:
    """Composes arms' configs with Hydra's compose API; one Hydra initialization serves many compositions."""

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

    def holds(self, claim: Claim, arm: str, dotted: str) -> bool:
        """Whether the arm's composed config has the key `dotted`; call inside `with composer:`."""
        absent = object()
        return OmegaConf.select(self.compose(claim, arm), dotted, default=absent) is not absent
