"""The evidence policy: the one place that decides which records every command reads and what they conclude.

`claims list`, `claims explain`, `claims run` (what is missing), `results report`, `results check` and
`results wandb` all call this module, so the same records give the same verdict whatever the command:
- the same default stores, `DEFAULT_STORES` (the runs folder, then the committed store results/records),
  printed at the top of each command's output by `stores_banner`;
- the same choice of runs and the same decision rule: `decide_claims` (runs: claims.evidence; rule:
  claims.checks);
- the same notion of "missing": `missing_seeds`, the seeds each arm lacks in the evidence its verdict uses.

`decide_claims(claims, records) -> {claim key: Verdict}` is the stable entry point for other tools (e.g.
`claims regress`): `records` is a load_records table; runs answer an arm by their recipe (claims.match).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from optrepro.paths import COMMITTED_RECORDS, REPO_ROOT, RUNS_DIR

if TYPE_CHECKING:  # imported where used: building the CLI parser needs DEFAULT_STORES only
    import pandas as pd
    from omegaconf import DictConfig

    from optrepro.claims.checks import Verdict
    from optrepro.claims.evidence import HardwareFilter
    from optrepro.claims.match import ArmComposer
    from optrepro.claims.schema import Claim

DEFAULT_STORES = (RUNS_DIR, COMMITTED_RECORDS)


def record_stores(given: Sequence[Path] | None) -> tuple[Path, ...]:
    """The stores a command reads: those given with --records, else DEFAULT_STORES."""
    return tuple(Path(p) for p in given) if given else DEFAULT_STORES


def load_evidence_records(stores: Iterable[Path]) -> pd.DataFrame:
    """Every record under the stores (a run found in two is read from the first)."""
    from optrepro.records.table import load_records_from

    return load_records_from(stores)


def stores_banner(stores: Sequence[Path], records: pd.DataFrame) -> str:
    """`record stores: runs (1 record), results/records (182 records)`: what a command's verdicts rest on."""
    paths = [str(p) for p in records["record_path"]] if "record_path" in records.columns else []
    parts = []
    for store in stores:
        prefix = str(Path(store)) + os.sep
        count = sum(1 for p in paths if p.startswith(prefix) or p == str(store))
        parts.append(
            f"{_shown(store)} ({count} record{'s' if count != 1 else ''}"
            f"{'' if Path(store).exists() else ', folder absent'})"
        )
    return "record stores: " + ", ".join(parts)


def _shown(path: Path) -> str:
    try:
        return Path(path).resolve().relative_to(REPO_ROOT.resolve()).as_posix()
    except ValueError:
        return str(path)


def decide_claims(claims: Sequence[Claim], records: pd.DataFrame) -> dict[str, Verdict]:
    """The verdict on every claim, keyed by claim key in the order given; the one policy every command uses.

    `records`: a load_records table (load_evidence_records reads one from the stores)."""
    from optrepro.claims.checks import evaluate_claim
    from optrepro.claims.match import arm_keys

    keys = arm_keys(claims)
    return {
        claim.key: evaluate_claim(claim, records, {arm: keys[(claim.key, arm)] for arm in claim.arms})
        for claim in claims
    }


def launch_verdict(
    claim: Claim, records: pd.DataFrame, composer: ArmComposer, extra_overrides: Sequence[str] = ()
) -> Verdict:
    """The verdict as `claims run` sees it: the arms with the launch's extra overrides, and only runs on the
    hardware the launch uses (a run elsewhere cannot complete that class). When the launch's hardware is the
    class decide_claims chose, this is decide_claims' verdict; call inside `with composer:`.

    When it lacks runs, it is the verdict on the runs made by the code version this launch runs (per arm: the
    shared code and the papers it uses), so what is missing is counted there: the new runs complete one version
    instead of adding seeds to an older version's, which the evidence policy would never pool with them."""
    from optrepro.claims.checks import evaluate_claim
    from optrepro.claims.match import arm_key

    configs = {arm: composer.compose(claim, arm, extra_overrides) for arm in claim.arms}
    wanted = _launch_hardware(next(iter(configs.values())))
    keys = {arm: arm_key(claim, arm, extra_overrides) for arm in claim.arms}
    verdict = evaluate_claim(claim, records, keys, wanted)
    if not any(missing_seeds(verdict).values()):
        return verdict
    return evaluate_claim(claim, at_launch_version(records, keys, configs), keys, wanted)


def at_launch_version(records: pd.DataFrame, keys: dict[str, str], configs: dict[str, DictConfig]) -> pd.DataFrame:
    """`records` without the runs of these arms made by another code version than the one a launch of each arm
    would record now (records.provenance.code_info)."""
    import pandas as pd

    from optrepro.records.provenance import papers_used, source_hash

    if records.empty:
        return records
    versions = records.get("code_source_hash", pd.Series(index=records.index, dtype=object))
    keep = pd.Series(True, index=records.index)
    for arm, key in keys.items():
        of_arm = records["recipe"] == key
        keep &= ~of_arm | (versions == source_hash(papers_used(configs[arm])))
    return records[keep]


def _launch_hardware(cfg: DictConfig) -> HardwareFilter:
    """Runs on the hardware a composed config asks for: same accelerator kind, world size and precision."""
    accelerator = str(cfg.hardware.accelerator)
    world = int(cfg.hardware.devices) * int(cfg.hardware.num_nodes)
    precision = str(cfg.hardware.precision)

    def matches(hardware) -> bool:
        return (hardware.accelerator, hardware.world_size, hardware.precision) == (accelerator, world, precision)

    return matches


def missing_seeds(verdict: Verdict) -> dict[str, tuple[int, ...]]:
    """arm -> the seeds of the claim that the verdict's evidence lacks (what `claims run` launches)."""
    return {arm: tuple(verdict.missing_seeds.get(arm, verdict.claim.seed_values)) for arm in verdict.claim.arms}
