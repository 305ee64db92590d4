"""`results wandb`: compare the arms of each claim in W&B, or locally when offline.

Online, one W&B report per paper: per claim a panel grid with one run set per arm (exactly the
runs the verdict used, selected by W&B run id), a bar chart of the claim's metric and its curves.
Offline (no API key, no network, or runs logged offline), the same comparison is written as a
local HTML page around the RESULTS.md plots, and the commands to publish it are printed:
`wandb sync` for the offline run folders, then this command again with `--online`.
"""

from __future__ import annotations

import html
import os
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from optrepro.claims.checks import Verdict, check_metric
from optrepro.results.report import PaperVerdicts

WORKSPACES_HINT = "pip install wandb-workspaces  # W&B's report API (wandb_workspaces.reports.v2)"


def wandb_ids(verdict: Verdict, records: pd.DataFrame) -> dict[str, list[str]]:
    """arm -> W&B run ids of the runs the verdict used (runs logged without W&B are left out)."""
    if "wandb_run_id" not in records:
        return {arm: [] for arm in verdict.arms}
    by_run = records.set_index("run_id")["wandb_run_id"]
    return {arm: sorted(str(by_run[r]) for r in result.sample.run_ids if r in by_run and pd.notna(by_run[r]))
            for arm, result in verdict.arms.items()}


def offline_run_dirs(results: Sequence[PaperVerdicts], records: pd.DataFrame) -> list[str]:
    """The W&B folders of offline runs used by any verdict: what `wandb sync` must upload."""
    if "wandb_dir" not in records:
        return []
    used = {run_id for r in results for v in r.verdicts for a in v.arms.values() for run_id in a.sample.run_ids}
    offline = records[records["run_id"].isin(used) & (records.get("wandb_mode") == "offline")]
    return sorted(set(offline["wandb_dir"].dropna()))


def write_local_comparison(result: PaperVerdicts, records: pd.DataFrame, plots: dict[str, list[Path]], out: Path) -> Path:
    """An HTML page per paper: per claim the verdict, the runs of each arm (with W&B ids) and the plots."""
    paper = result.paper
    parts = [f"<!doctype html><meta charset='utf-8'><title>{html.escape(paper.paper)}: arms per claim</title>",
             f"<h1>{html.escape(paper.title)}</h1><p><i>{html.escape(paper.citation)}</i></p>"]
    for verdict in result.verdicts:
        ids = wandb_ids(verdict, records)
        parts.append(f"<h2>{html.escape(verdict.claim.key)}: {html.escape(verdict.label)}</h2>"
                     f"<p>{html.escape(verdict.claim.statement)}</p><p>{html.escape(verdict.detail)}</p><ul>")
        for arm, arm_result in verdict.arms.items():
            parts.append(f"<li><b>{html.escape(arm)}</b>: {html.escape(arm_result.summary())}; W&amp;B runs: "
                         f"{html.escape(', '.join(ids[arm]) or 'none')}</li>")
        parts.append("</ul>")
        for plot in plots.get(verdict.claim.key, []):
            src = Path(os.path.relpath(plot.resolve(), out.parent.resolve())).as_posix()
            parts.append(f"<img src='{html.escape(src)}' alt='{html.escape(plot.stem)}'>")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(parts) + "\n")
    return out


def publish_instructions(run_dirs: Sequence[str], entity: str | None, project: str | None) -> str:
    """What to run to get the comparison into W&B from an offline machine."""
    target = f"--entity {entity or '<entity>'} --project {project or '<project>'}"
    sync = f"wandb sync {shlex.join(run_dirs)}" if run_dirs else "wandb sync <run folder>/wandb/offline-run-*"
    return (f"To publish: (1) upload the offline runs: {sync}\n"
            f"(2) build the W&B reports: python -m optrepro results wandb --online {target}\n"
            f"    (needs a W&B API key and {WORKSPACES_HINT})")


def build_online_report(result: PaperVerdicts, records: pd.DataFrame, entity: str, project: str) -> Any:
    """The W&B report object for one paper (not saved); raises ImportError when wandb-workspaces is missing."""
    import wandb_workspaces.reports.v2 as wr

    blocks: list[Any] = [wr.P(result.paper.citation)]
    for verdict in result.verdicts:
        metric = check_metric(verdict.claim)
        runsets = [
            wr.Runset(entity=entity, project=project, name=arm, filters=f"Metric('ID') in {ids!r}")
            for arm, ids in wandb_ids(verdict, records).items() if ids
        ]
        blocks += [wr.H2(f"{verdict.claim.key}: {verdict.label}"), wr.P(f"{verdict.claim.statement} {verdict.detail}")]
        if runsets:
            blocks.append(wr.PanelGrid(runsets=runsets, panels=[
                wr.BarPlot(title=metric, metrics=[metric]), wr.LinePlot(title=metric, x="epoch", y=[metric]),
            ]))
    return wr.Report(project=project, entity=entity, title=f"{result.paper.paper}: claims, arm by arm", blocks=blocks)
