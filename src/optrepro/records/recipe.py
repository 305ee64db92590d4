"""The recipe of a run: the command-line overrides that say what it computes, in one canonical form.

A claim arm is `setting + overrides`; a run launched for it by `python run.py <those overrides> seed=<s>` carries the
same recipe whatever its seed, hardware or display options. Identity by recipe needs no composition: two spellings
of one override (`+repro=x` / `repro=x`, `rho=5e-2` / `rho=0.05`) read the same, a later override of a key
replaces an earlier one as in Hydra, and the keys that never change a result are left out.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence

from optrepro.config import NON_SEMANTIC_KEYS

# Keys outside a run's recipe: its seed, the hardware it ran on (the evidence step splits runs by hardware class),
# how it is named and shown, and where it writes.
OUTSIDE_RECIPE = ("seed", "hardware", "name", *NON_SEMANTIC_KEYS)
_REPRO_FIELDS = "repro."  # repro.arm / repro.name label a run; `repro=<preset>` itself is the recipe's core


def recipe(overrides: Iterable[str]) -> tuple[str, ...]:
    """The canonical recipe of `overrides` (Hydra override strings): sorted `key=value` / `~key` entries."""
    return _recipe(tuple(overrides))


@functools.lru_cache(maxsize=4096)
def _recipe(overrides: tuple[str, ...]) -> tuple[str, ...]:
    """Cached: Hydra's parser takes about a millisecond per override, and claims share arms."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    entries: dict[str, str] = {}
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.key_or_group
        if _outside(key):
            continue
        entries[key] = f"~{key}" if override.is_delete() else f"{key}={override.get_value_element_as_str()}"
    return tuple(sorted(entries.values()))


def recipe_key(entries: Sequence[str] | None) -> str | None:
    """The recipe as one string (a table column, a dict key); None for a run whose recipe is unknown."""
    return None if entries is None else json.dumps(list(entries))


def _outside(key: str) -> bool:
    return key.startswith(_REPRO_FIELDS) or any(
        key == name or key.startswith((f"{name}.", f"{name}/")) for name in OUTSIDE_RECIPE
    )


def current_recipe() -> list[str] | None:
    """The recipe of the running `python run.py` (its task overrides); None outside a Hydra app."""
    from hydra.core.hydra_config import HydraConfig

    return list(recipe(HydraConfig.get().overrides.task)) if HydraConfig.initialized() else None
