"""`results report`: evaluate every claim on the stored records and write RESULTS.md, plots and verdicts.json.

Verdicts come from the evidence policy (claims.policy.decide_claims), as in every other command. RESULTS.md is
a pure function of the claims files and the records in the stores it was given: no dates, stable ordering,
fixed number formatting. That is what lets a test regenerate it and compare bytes, and lets `results check`
trust results/verdicts.json (the machine-readable twin of the tables).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from optrepro.claims.checks import VERDICTS, Verdict, check_metric, fmt
from optrepro.claims.explain import explanation
from optrepro.claims.policy import decide_claims
from optrepro.claims.schema import Claim, PaperClaims, RatioCheck, Reported, ValueCheck
from optrepro.claims.tuning import read_record as read_tuning_record
from optrepro.claims.tuning import tuning_table
from optrepro.claims.units import in_metric_unit, metric_label, metric_unit
from optrepro.forked import forked_map
from optrepro.records.table import history_frame, read_stores, records_to_frame
from optrepro.results.plots import plot_claim, plot_curves, plot_tuning

COMMAND = "python -m optrepro results report"
TIER_ORDER = ("cpu", "full", "smoke")
VERDICTS_FORMAT = 1


@dataclass(frozen=True)
class PaperVerdicts:
    paper: PaperClaims
    verdicts: tuple[Verdict, ...]


def evaluate_papers(papers: Sequence[PaperClaims], records: pd.DataFrame) -> list[PaperVerdicts]:
    """Verdicts for every claim of every paper (claims.policy.decide_claims), grouped by paper."""
    decided = decide_claims([claim for paper in papers for claim in paper.claims], records)
    return [PaperVerdicts(paper, tuple(decided[claim.key] for claim in paper.claims)) for paper in papers]


def verdicts_document(results: Sequence[PaperVerdicts]) -> dict[str, Any]:
    """The content of results/verdicts.json: one entry per claim key."""
    claims = {v.claim.key: v.to_json() for r in results for v in r.verdicts}
    return {"format": VERDICTS_FORMAT, "generated_by": COMMAND, "claims": dict(sorted(claims.items()))}


def write_report(
    papers: Sequence[PaperClaims],
    stores: Sequence[Path],
    out: Path,
    plots_dir: Path,
    verdicts_path: Path,
    tables: tuple[pd.DataFrame, pd.DataFrame] | None = None,
) -> list[PaperVerdicts]:
    """Evaluate, draw, and write RESULTS.md and verdicts.json; stale PNGs in `plots_dir` are removed.

    `tables`: the stores' (records, history) when the caller has read them already (read_tables)."""
    records, history = tables if tables is not None else read_tables(stores)
    results = evaluate_papers(papers, records)
    plots = _draw_plots(results, history, plots_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_markdown(results, records, stores=stores, plots=plots, base=out.parent))
    verdicts_path.parent.mkdir(parents=True, exist_ok=True)
    verdicts_path.write_text(json.dumps(verdicts_document(results), indent=1, sort_keys=True) + "\n")
    return results


def read_tables(stores: Sequence[Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The stores' records and their curves, each record.json read once."""
    pairs = read_stores(stores)
    return records_to_frame(pairs), history_frame(pairs)


def verdict_counts(results: Sequence[PaperVerdicts]) -> dict[str, int]:
    """How many claims have each verdict, in the order reproduced, inconclusive, not reproduced, not run."""
    statuses = [v.status for r in results for v in r.verdicts]
    return {status: statuses.count(status) for status in VERDICTS}


def claim_plot_paths(plots_dir: Path, claim: Claim) -> tuple[Path, Path, Path]:
    """Where a claim's plots go: paper vs ours, training curves, and its tuning stage."""
    folder = plots_dir / claim.paper
    return folder / f"{claim.id}.png", folder / f"{claim.id}_curves.png", folder / f"{claim.id}_tuning.png"


def _draw_plots(results: Sequence[PaperVerdicts], history: pd.DataFrame, plots_dir: Path) -> dict[str, list[Path]]:
    """Each claim's two plots (drawn in forked workers: ~250 PNGs into an empty folder), stale PNGs removed."""

    def draw(verdict: Verdict) -> list[Path]:
        comparison, curves, tuned = claim_plot_paths(plots_dir, verdict.claim)
        drawn = (
            plot_claim(verdict, comparison),
            plot_curves(verdict, history, curves),
            plot_tuning(verdict.claim, read_tuning_record(verdict.claim), tuned),
        )
        return [p for p in drawn if p is not None]

    verdicts = [v for result in results for v in result.verdicts]
    drawn = dict(zip((v.claim.key for v in verdicts), forked_map(draw, verdicts)))
    keep = {p.resolve() for paths in drawn.values() for p in paths}
    for stale in plots_dir.rglob("*.png") if plots_dir.exists() else ():
        if stale.resolve() not in keep:
            stale.unlink()
    return drawn


# --- markdown ---------------------------------------------------------------------------------


def render_markdown(
    results: Sequence[PaperVerdicts],
    records: pd.DataFrame,
    *,
    stores: Sequence[Path],
    plots: dict[str, list[Path]],
    base: Path,
) -> str:
    counts = verdict_counts(results)
    # Only stores that gave a record are named: an absent or empty one (a fresh clone's runs/, or one holding only
    # Hydra's logs) would make the same records give another RESULTS.md.
    sources = [Path(path).resolve() for path in records.get("record_path", ())]
    shown_stores = ", ".join(
        f"`{_relative(store, base)}`"
        for store in stores
        if any(source.is_relative_to(Path(store).resolve()) for source in sources)
    )
    lines = [
        "# Results: paper claims vs our runs",
        "",
        f"<!-- Generated by `{COMMAND}`. Do not edit by hand: change the records or the claims and regenerate. -->",
        "",
        "**" + " · ".join(f"{n} {status}" for status, n in counts.items()) + f"** ({sum(counts.values())} claims)",
        "",
        f"Generated by `{COMMAND}` from the {len(records)} run record(s) in {shown_stores} "
        f"({_commit_range(records)}). Claims are data: `reproductions/<paper>/claims.yaml` "
        "(format and verdict rules: [reproductions/README.md](reproductions/README.md)). "
        "`python -m optrepro results check` fails when a claim that held here no longer holds.",
        "",
        "Ours is mean ± std over seeds (n seeds; diverged seeds counted apart). A verdict is decided by the 95% CI "
        "of the checked quantity against the claim's tolerance, margin or bound (paired by seed where the arms "
        "share initial weights and batch order); each claim names the test that decided it. Runs on different "
        "hardware are never averaged together: each verdict names the hardware class whose runs it used. "
        "Paper numbers carry their unit and [source quality, where read]: paper (camera-ready or arXiv), "
        "submission, repo (official code or README) or secondary (third-party notes); “quoted” ones are notes.",
        "",
    ]
    lines += _overview(results)
    for result in results:
        lines += _paper_section(result, records, plots, base)
    return "\n".join(lines).rstrip() + "\n"


def _overview(results: Sequence[PaperVerdicts]) -> list[str]:
    """One row per paper and tier: its verdict counts, the paper linking to its section below."""
    lines = ["| paper | tier | " + " | ".join(VERDICTS) + " |", "|---|---|" + "---:|" * len(VERDICTS)]
    for result in results:
        tiers = dict.fromkeys(tier for tier in TIER_ORDER if any(v.claim.tier == tier for v in result.verdicts))
        for position, tier in enumerate(tiers):
            statuses = [v.status for v in result.verdicts if v.claim.tier == tier]
            paper = f"[{result.paper.paper}](#{_section_anchor(result.paper)})" if position == 0 else ""
            lines.append(f"| {paper} | {tier} | " + " | ".join(str(statuses.count(s) or "") for s in VERDICTS) + " |")
    return lines + [""]


def _section_heading(paper: PaperClaims) -> str:
    return f"{paper.paper}: {paper.title}"


def _section_anchor(paper: PaperClaims) -> str:
    """The anchor GitHub gives the paper's heading: lower case, punctuation dropped, spaces to hyphens."""
    kept = "".join(ch for ch in _section_heading(paper).lower() if ch.isalnum() or ch in " -_")
    return kept.replace(" ", "-")


def _paper_section(result: PaperVerdicts, records: pd.DataFrame, plots: dict[str, list[Path]], base: Path) -> list[str]:
    paper = result.paper
    lines = [
        f"## {_section_heading(paper)}",
        "",
        f"*{paper.citation}*",
        "",
        "| claim | source | tier | metric (quantity, unit) | paper | ours (mean ± SD over n seeds) | runs | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for verdict in result.verdicts:
        claim = verdict.claim
        cells = [
            f"`{claim.id}`",
            str(claim.source),
            claim.tier,
            metric_label(check_metric(claim)),
            _paper_cell(verdict),
            "<br>".join(f"{name}: {arm.summary()}" for name, arm in verdict.arms.items()) or "—",
            _runs_cell(verdict, records),
            f"**{verdict.label}**",
        ]
        lines.append("| " + " | ".join(_escape(cell) for cell in cells) + " |")
    lines.append("")
    for verdict in result.verdicts:
        lines += _claim_details(verdict, plots.get(verdict.claim.key, []), base)
    return lines


def _paper_cell(verdict: Verdict) -> str:
    claim, check = verdict.claim, verdict.claim.check
    if claim.reported:  # numbers with unit and [source quality, where read]; notes in words are quoted
        return "<br>".join(
            f"{arm}: {reported_text(value, check_metric(claim))}"
            if isinstance(value, Reported)
            else f"{arm}: “{value}”"
            for arm, value in claim.reported.items()
        )
    if isinstance(check, ValueCheck):
        spread = f" ± {check.spread:g} ({check.spread_kind or 'spread'})" if check.spread is not None else ""
        return f"{check.arm}: {check.reported:g}{spread}"
    if isinstance(check, RatioCheck):
        return f"{check.numerator}/{check.denominator} ≤ {check.max:g}"
    return "—"


def reported_text(number: Reported, metric: str) -> str:
    """The paper's number as read, then, where its unit or quantity is not our metric's, the same number in our
    metric's unit (`93.4 % accuracy [paper, Table 4, p. 7] = 0.934 in test/acc`): ours and theirs side by side."""
    ours = in_metric_unit(number.value, number.quantity, number.unit, metric)
    known = metric_unit(metric)
    same = known is not None and known == (number.quantity, number.unit)
    return f"{number}" if ours is None or same else f"{number} = {fmt(ours)} in {metric}"


def _runs_cell(verdict: Verdict, records: pd.DataFrame) -> str:
    """Hardware class and code versions of the runs used, each version with the git commit(s) it ran at (a code
    version is a hash of the source; `git show <commit>` finds the code)."""
    if verdict.hardware is None:
        return "—"
    return f"{verdict.hardware.label()}; code {', '.join(code_versions(verdict, records))}"


def code_versions(verdict: Verdict, records: pd.DataFrame) -> list[str]:
    """e.g. `70071418 (git 2d67083a)` for each code version the verdict's runs used."""
    used = {run_id for arm in verdict.arms.values() for run_id in arm.sample.run_ids}
    rows = records[records["run_id"].isin(used)] if "run_id" in records else records.iloc[0:0]
    versions = []
    for version in sorted({version for arm in verdict.arms.values() for version in arm.sample.versions}):
        git = rows.get("code_git_commit", pd.Series(dtype=object))
        source = rows.get("code_source_hash", pd.Series(dtype=object))
        commits = sorted({str(c)[:8] for c, h in zip(git, source) if pd.notna(c) and (h == version or c == version)})
        versions.append(
            f"{version[:8]} (git {', '.join(commits)})" if commits and commits != [version[:8]] else version[:8]
        )
    return versions


def _claim_details(verdict: Verdict, plots: list[Path], base: Path) -> list[str]:
    claim = verdict.claim
    lines = [
        f"### `{claim.key}`",
        "",
        f"{claim.statement} ({claim.source}; {claim.seeds} seed(s) claimed)",
        "",
        f"- verdict: **{verdict.label}**",
    ]
    lines += [f"- {line}" for line in explanation(verdict)]
    lines.append("")
    if claim.tuning is not None:
        lines += tuning_table(claim)
    if plots:
        lines += [f"![{claim.key}: {path.stem}]({_relative(path, base)})" for path in plots]
        lines.append("")
    return lines


def _commit_range(records: pd.DataFrame) -> str:
    if records.empty or "code_git_commit" not in records:
        return "no code commits recorded"
    ordered = (
        records.assign(_finished=records.get("finished_at", pd.Series(dtype=object)).fillna(""))
        .dropna(subset=["code_git_commit"])
        .groupby("code_git_commit")["_finished"]
        .min()
        .sort_values()
    )
    commits = [c[:8] for c in ordered.index]
    if not commits:
        return "no code commits recorded"
    span = commits[0] if len(commits) == 1 else f"{commits[0]} … {commits[-1]}"
    return f"code commits {span}, {len(commits)} in all"


def _relative(path: Path, base: Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), Path(base).resolve())).as_posix()


def _escape(cell: str) -> str:
    return cell.replace("|", "\\|").replace("\n", " ")
