"""Finding claims files and selecting claims by the names people type on the command line."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from pathlib import Path

from optrepro.claims.schema import Claim, PaperClaims, parse_claims_text
from optrepro.errors import OptreproError

CLAIMS_FILENAME = "claims.yaml"
README_FOLDER = re.compile(r"^\|[^|]*\|\s*`reproductions/([\w-]+)`", re.MULTILINE)  # a row of README's table


class UnknownClaimError(OptreproError, LookupError):
    """A claim or paper name that matches nothing; the message lists what exists."""


def load_paper_claims(path: Path | str) -> PaperClaims:
    """The claims of one file; its folder name is the paper name the file must declare. A claim with a tuning stage
    gets the values its tuning record chose (claims.tuning), read from the repository that holds the file."""
    from optrepro.claims.tuning import with_tuned_values

    path = Path(path)
    paper = parse_claims_text(path.read_text(), path, expected_paper=path.parent.name)
    tuning_dir = path.resolve().parents[2] / "results" / "tuning"
    return dataclasses.replace(paper, claims=tuple(with_tuned_values(claim, tuning_dir) for claim in paper.claims))


def load_all_claims(reproductions_dir: Path | str, *, mentioning: str | None = None) -> list[PaperClaims]:
    """Every `<reproductions_dir>/<paper>/claims.yaml`, in the order of `paper_order`; with `mentioning`, only the
    files whose text contains it (parsing every file takes most of a second: the end of a run reads only those
    that name its preset)."""
    order = paper_order(Path(reproductions_dir).parent / "README.md")
    files = sorted(
        Path(reproductions_dir).glob(f"*/{CLAIMS_FILENAME}"),
        key=lambda path: (order.get(path.parent.name, len(order)), path.parent.name),
    )
    return [load_paper_claims(path) for path in files if mentioning is None or mentioning in path.read_text()]


def paper_order(readme: Path) -> dict[str, int]:
    """Paper folder -> position in the README's reproductions table (the SAM family first, as readers look for
    it); every command lists papers in this order, papers missing from the table last, by name."""
    text = readme.read_text() if readme.exists() else ""
    folders = dict.fromkeys(README_FOLDER.findall(text))
    return {folder: position for position, folder in enumerate(folders)}


def select_claims(
    papers: Iterable[PaperClaims],
    names: Iterable[str] = (),
    *,
    tier: str | None = None,
) -> list[Claim]:
    """Claims matching any of `names` (`<paper>` or `<paper>/<id>`; all when empty), then by tier."""
    papers = list(papers)
    claims = [claim for paper in papers for claim in paper.claims]
    names = list(names)
    if names:
        by_key = {claim.key: claim for claim in claims}
        chosen: dict[str, Claim] = {}
        for name in names:
            matches = [by_key[name]] if name in by_key else [c for c in claims if c.paper == name]
            if not matches:
                known = ", ".join([p.paper for p in papers] + list(by_key)) or "(no claims files found)"
                raise UnknownClaimError(f"no paper or claim named {name!r}; known: {known}")
            chosen.update((claim.key, claim) for claim in matches)
        claims = list(chosen.values())
    if tier is not None:
        claims = [claim for claim in claims if claim.tier == tier]
    return claims
