"""The one adapter between regression checks and the evidence policy: claims + a record store -> verdicts.

Both sides of a regress (the committed store and the fresh one) go through this function, so they are decided
by the same policy as `claims list` and RESULTS.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from optrepro.claims.checks import evaluate_claim
from optrepro.claims.match import ArmComposer, arm_match_keys, with_match_keys
from optrepro.claims.schema import Claim
from optrepro.records.table import load_records


def decide_claims(claims: Sequence[Claim], store: Path, composer: ArmComposer) -> dict[str, dict[str, Any]]:
    """claim key -> its verdict (verdicts.json form: status, observed, ci95, arms ...) on the records in `store`."""
    records = with_match_keys(load_records(store))
    with composer:
        keys = arm_match_keys(claims, composer)
    return {claim.key: evaluate_claim(claim, records, {arm: keys[(claim.key, arm)] for arm in claim.arms}).to_json()
            for claim in claims}
