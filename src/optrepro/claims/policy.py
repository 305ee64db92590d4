"""The evidence policy: the one place that decides which records every command reads and what they conclude.

`claims list`, `claims explain`, `claims run` (what is missing), `results report`, `results check` and
`results wandb` all call this module, so the same records give the same verdict whatever the command:
- the same default stores, `DEFAULT_STORES` (the runs folder, then the committed store results/records),
  printed at the top of each command's output by `stores_banner`;
- the same choice of runs and the same decision rule: `decide_claims` (runs: claims.evidence; rule:
  claims.checks);
- the same notion of "missing": `missing_seeds`, the seeds each arm lacks in the evidence its verdict uses.

`decide_claims(claims, records) -> {claim key: Verdict}` is the stable entry point for other tools (e.g.
`regression claims`): `records` is a load_records table; runs answer an arm by their recipe (claims.match).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from optrepro.paths import COMMITTED_RECORDS, RUNS_DIR, shown

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
            f"{shown(store)} ({count} record{'s' if count != 1 else ''}"
            f"{'' if Path(store).exists() else ', folder absent'})"
        )
    return "record stores: " + ", ".join(parts)


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


@dataclass(frozen=True)
class LaunchNeeds:
    """What `claims run` launches for a claim: the seeds its verdict lacks on the launch's hardware, at the code
    version a launch records now, less `deferred`: seeds an older version already has, held back while one of
    them re-runs as a bridge; if the bridge computes the same bits, the older runs pool (claims.evidence) and
    the held-back seeds are never run."""

    verdict: Verdict
    deferred: dict[str, tuple[int, ...]]

    def seeds_to_run(self) -> dict[str, tuple[int, ...]]:
        return {
            arm: tuple(s for s in seeds if s not in self.deferred.get(arm, ()))
            for arm, seeds in missing_seeds(self.verdict).items()
        }


def launch_needs(
    claim: Claim, records: pd.DataFrame, composer: ArmComposer, extra_overrides: Sequence[str] = ()
) -> LaunchNeeds:
    """The verdict as `claims run` sees it, and the seeds it holds back. The arms get the launch's extra overrides,
    and only runs on the hardware the launch uses count (a run elsewhere cannot complete that class); when that is
    the class decide_claims chose, this is decide_claims' verdict. Call inside `with composer:`.

    When it lacks runs, it is the verdict on the runs made by the code version this launch runs (per arm: the
    shared code and the papers it uses) or a version shown to compute alike, so what is missing is counted there:
    the new runs complete one version instead of adding seeds to an older version's, which the evidence policy
    would never pool with them."""
    from optrepro.claims.checks import evaluate_claim
    from optrepro.claims.match import arm_key
    from optrepro.records.provenance import papers_used, source_hash

    configs = {arm: composer.compose(claim, arm, extra_overrides) for arm in claim.arms}
    wanted = _launch_hardware(next(iter(configs.values())))
    keys = {arm: arm_key(claim, arm, extra_overrides) for arm in claim.arms}
    verdict = evaluate_claim(claim, records, keys, wanted)
    if not any(missing_seeds(verdict).values()):
        return LaunchNeeds(verdict, {})
    versions = {arm: source_hash(papers_used(configs[arm])) for arm in claim.arms}
    runs = {arm: _arm_runs(records, keys[arm], wanted) for arm in claim.arms}
    verdict = evaluate_claim(claim, at_launch_version(records, runs, versions), keys, wanted)
    deferred = {arm: _held_back(claim, runs[arm], versions[arm], missing_seeds(verdict)[arm]) for arm in claim.arms}
    return LaunchNeeds(verdict, deferred)


def at_launch_version(records: pd.DataFrame, runs: dict[str, list[dict]], versions: dict[str, str]) -> pd.DataFrame:
    """`records` without the runs of these arms (`runs[arm]`: _arm_runs on the launch's hardware) made by a code
    version other than `versions[arm]` (the one a launch of the arm records now, records.provenance.code_info) and
    not shown to compute alike (claims.evidence.same_computation)."""
    from optrepro.claims.evidence import same_computation

    dropped = []
    for arm, arm_runs in runs.items():
        alike = same_computation((r["version"], r["seed"], r["digest"]) for r in arm_runs).get(versions[arm], ())
        dropped += [r["index"] for r in arm_runs if r["version"] not in (versions[arm], *alike)]
    return records.drop(index=dropped)


def _held_back(claim: Claim, runs: list[dict], version: str, missing: tuple[int, ...]) -> tuple[int, ...]:
    """The missing seeds an older version of this arm finished, all but the bridge, unless a bridge already ran at
    this version (then the older version computes otherwise, or it would have pooled). The bridge is the seed whose
    older run most likely shares this machine's bits: one recorded on its CPU kernel set, else the latest finished."""
    from optrepro.records.provenance import cpu_kernels

    finished = [r for r in runs if isinstance(r["digest"], str)]
    older = [r for r in finished if r["version"] != version and r["seed"] in claim.seed_values]
    bridged = {r["seed"] for r in older} & {r["seed"] for r in finished if r["version"] == version}
    candidates = [r for r in older if r["seed"] in missing]
    if bridged or not candidates:
        return ()
    here = cpu_kernels()
    bridge = max(candidates, key=lambda r: (r["kernels"] == here, r["finished"], -r["seed"]))["seed"]
    return tuple(sorted({r["seed"] for r in candidates} - {bridge}))


def _arm_runs(records: pd.DataFrame, key: str, wanted: HardwareFilter) -> list[dict]:
    """index, code version, seed, outcome digest, CPU kernel set and end of an arm's runs on the wanted hardware."""
    from optrepro.claims.evidence import code_version, hardware_class

    rows = records[records["recipe"] == key].to_dict("index")
    return [
        {
            "index": index,
            "version": code_version(row),
            "seed": int(row["seed"]),
            "digest": row.get("outcome_digest"),
            "kernels": row.get("hw_cpu_kernels"),
            "finished": row["finished_at"] if isinstance(row.get("finished_at"), str) else "",
        }
        for index, row in rows.items()
        if wanted(hardware_class(row))
    ]


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
