"""`results wandb`: compare the arms of each claim in W&B, or locally when offline.

Online, one W&B report per paper: per claim a panel grid with one run set per arm (exactly the
runs the verdict used, selected by W&B run id), a bar chart of the claim's metric and its curves.
Offline (no API key, no network, or runs logged offline), the same comparison is written as a
local HTML page per paper (plus an index) around the RESULTS.md plots, and the steps to publish it:
`wandb sync` of the offline run folders (relative to the runs folder, so they hold wherever the runs
are), then this command again with `--online`. Nothing on the page names a path of the machine.
"""

from __future__ import annotations

import html
import math
import os
import shlex
from collections.abc import Sequence
from pathlib import Path, PurePath
from typing import Any

import pandas as pd

from optrepro.claims.checks import NOT_REPRODUCED, NOT_RUN, REPRODUCED, VERDICTS, ArmResult, Verdict, check_metric, fmt
from optrepro.claims.schema import Reported
from optrepro.claims.units import metric_label
from optrepro.paths import REPO_ROOT
from optrepro.results.report import PaperVerdicts, reported_text

WORKSPACES_HINT = "pip install wandb-workspaces  # W&B's report API (wandb_workspaces.reports.v2)"
INDEX_NAME = "index.html"
RUNS_FOLDER_NOTE = (
    "the runs folder these runs were written to (paths.runs_dir: `runs/` in the repository "
    "unless OPTREPRO_RUNS or configs/local/ sets another)"
)
STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328; margin: 0;
       background: #f6f8fa; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 32px 48px; background: #fff; min-height: 100vh; }
h1 { font-size: 26px; margin: 8px 0 4px; }
h2 { font-size: 19px; margin: 32px 0 6px; border-top: 1px solid #d0d7de; padding-top: 20px; }
.cite { color: #59636e; font-style: italic; margin-top: 0; }
.badge { display: inline-block; font-size: 13px; font-weight: 600; padding: 1px 9px; border-radius: 12px;
         margin-left: 8px; vertical-align: middle; color: #fff; background: #6e7781; }
.reproduced { background: #1a7f37; } .not-reproduced { background: #cf222e; } .not-run { background: #6e7781; }
.statement { margin: 6px 0; } .detail { color: #59636e; margin: 4px 0 10px; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 12px; font-size: 14px; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid #d8dee4; vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; }
code, pre { font: 13px/1.45 ui-monospace, SFMono-Regular, Menlo, monospace; }
td code { background: #eff2f5; padding: 1px 5px; border-radius: 4px; margin-right: 4px; display: inline-block; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; }
.plots img { max-width: calc(50% - 6px); border: 1px solid #d0d7de; border-radius: 6px; }
pre { background: #f6f8fa; border: 1px solid #d0d7de; border-radius: 6px; padding: 12px 14px; overflow-x: auto;
      white-space: pre-wrap; overflow-wrap: anywhere; }
nav { font-size: 14px; } a { color: #0969da; }
"""
BADGE_CLASS = {REPRODUCED: "reproduced", NOT_REPRODUCED: "not-reproduced", NOT_RUN: "not-run"}


def arm_wandb_runs(verdict: Verdict, records: pd.DataFrame) -> dict[str, list[tuple[str, str | None]]]:
    """arm -> (W&B run id, W&B run name or None) of the runs the verdict used, by id (runs without W&B left out)."""
    if "wandb_run_id" not in records:
        return {arm: [] for arm in verdict.arms}
    table = records.set_index("run_id")
    names = table["wandb_name"] if "wandb_name" in table else pd.Series(None, index=table.index, dtype=object)
    return {
        arm: sorted(
            (str(table.at[r, "wandb_run_id"]), names[r] if pd.notna(names[r]) else None)
            for r in result.sample.run_ids
            if r in table.index and pd.notna(table.at[r, "wandb_run_id"])
        )
        for arm, result in verdict.arms.items()
    }


def wandb_ids(verdict: Verdict, records: pd.DataFrame) -> dict[str, list[str]]:
    """arm -> W&B run ids of the runs the verdict used: what the online report's run sets select."""
    return {arm: [run_id for run_id, _ in runs] for arm, runs in arm_wandb_runs(verdict, records).items()}


def run_names(verdict: Verdict, records: pd.DataFrame) -> dict[str, list[str]]:
    """arm -> the name of each run the verdict used, as W&B shows it (`<preset>/<arm>/s<seed>`), by seed; runs
    logged without a W&B name get the same form from their record."""
    table = records.drop_duplicates("run_id").set_index("run_id") if "run_id" in records else pd.DataFrame()

    def known(row, key):
        return row.get(key) if row.get(key) is not None and pd.notna(row.get(key)) else None

    def name(run_id: str, arm: str, seed: int) -> str:
        row = table.loc[run_id] if run_id in table.index else pd.Series(dtype=object)
        preset = known(row, "repro_name") or known(row, "p_name")
        return known(row, "wandb_name") or "/".join(str(part) for part in (preset, arm, f"s{seed}") if part)

    return {
        arm: [name(run_id, arm, seed) for run_id, seed in zip(result.sample.run_ids, result.sample.seeds)]
        for arm, result in verdict.arms.items()
    }


def offline_run_ids(results: Sequence[PaperVerdicts], records: pd.DataFrame) -> list[str]:
    """The W&B ids of the offline runs the verdicts used whose offline folder is on this machine: what
    `wandb sync` can upload (committed records travel without their W&B folders)."""
    needed = {"wandb_run_id", "wandb_dir", "record_path"}
    if not needed <= set(records):
        return []
    used = {run_id for r in results for v in r.verdicts for a in v.arms.values() for run_id in a.sample.run_ids}
    offline = records[records["run_id"].isin(used) & (records.get("wandb_mode") == "offline")]
    present = [
        str(row.wandb_run_id)
        for row in offline.itertuples()
        if pd.notna(row.wandb_dir) and _run_folder(row.record_path).joinpath(str(row.wandb_dir)).is_dir()
    ]
    return sorted(set(present))


def _run_folder(record_path: str) -> Path:
    path = Path(record_path)
    return (path if path.is_absolute() else REPO_ROOT / path).parent


def sync_pattern(run_ids: Sequence[str]) -> str:
    """The offline run folders of `run_ids` as one bash pattern relative to the runs folder: W&B names them
    `<date>/<run name>/<run folder>/wandb/offline-run-<time>-<id>`, so the pattern holds on any machine."""
    ids = [shlex.quote(run_id) for run_id in run_ids]
    return f"*/*/*/wandb/offline-run-*-{ids[0] if len(ids) == 1 else '{' + ','.join(ids) + '}'}"


def publish_instructions(run_ids: Sequence[str], entity: str | None, project: str | None) -> str:
    """What to run to get the comparison into W&B from an offline machine (no path of any machine in it)."""
    target = f"--entity {entity or '<entity>'} --project {project or '<project>'}"
    report = (
        f"build the W&B reports, from the repository: python -m optrepro results wandb --online {target}\n"
        f"    (needs {WORKSPACES_HINT})"
    )
    if not run_ids:
        return (
            "No offline W&B run folder of these runs is on this machine (committed records travel without "
            "theirs; runs you make with `python -m optrepro claims run` or run.py leave one in the runs folder).\n"
            f"Runs already in W&B: {report}"
        )
    return (
        f"To publish: (0) wandb login   # once, with your W&B API key\n"
        f"(1) upload the {len(run_ids)} offline run(s), in bash, from {RUNS_FOLDER_NOTE}:\n"
        f"    wandb sync {target} {sync_pattern(run_ids)}\n"
        f"(2) {report}"
    )


def _page(title: str, body: list[str]) -> str:
    return (
        "\n".join(
            [
                "<!doctype html>",
                "<html lang='en'><head><meta charset='utf-8'>",
                "<meta name='viewport' content='width=device-width, initial-scale=1'>",
                f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body><main>",
                *body,
                "</main></body></html>",
            ]
        )
        + "\n"
    )


def _badge(verdict: Verdict) -> str:
    return f"<span class='badge {BADGE_CLASS.get(verdict.status, 'not-run')}'>{html.escape(verdict.label)}</span>"


def page_order(verdicts: Sequence[Verdict]) -> list[Verdict]:
    """Claims with results first (as the claims file lists them), then those not run."""
    return sorted(verdicts, key=lambda verdict: verdict.status == NOT_RUN)


def ours_text(arm: ArmResult) -> str:
    """e.g. `0.7815 ± 0.02576 (mean ± SD over 3 seeds)`."""
    if not arm.stats.n:
        return "—"
    failed = f", {len(arm.sample.failed_seeds)} diverged" if arm.sample.failed_seeds else ""
    if arm.stats.n == 1:
        return f"{fmt(arm.stats.mean)} (1 seed{failed})"
    return f"{fmt(arm.stats.mean)} ± {fmt(arm.stats.std)} (mean ± SD over {arm.stats.n} seeds{failed})"


def paper_text(verdict: Verdict, arm: str) -> str:
    """The paper's number in our metric's unit where it converts, with its own spread kind and source."""
    number = verdict.claim.reported.get(arm)
    if number is None:
        return "—"
    return reported_text(number, check_metric(verdict.claim)) if isinstance(number, Reported) else f"“{number}”"


def decision_text(verdict: Verdict) -> str:
    """The quantity the verdict was decided on and the 95% CI it used (paired where the arms share seeds)."""
    if verdict.status == NOT_RUN or not math.isfinite(verdict.observed):
        return ""
    return f"decided on {fmt(verdict.observed)}, 95% CI [{fmt(verdict.low)}, {fmt(verdict.high)}] ({verdict.test})"


def write_local_comparison(
    result: PaperVerdicts, records: pd.DataFrame, plots: dict[str, list[Path]], out: Path, publish: str = ""
) -> Path:
    """An HTML page per paper: per claim the verdict, the CI it rests on, each arm's runs (by W&B name) and the
    plots; images are linked relative to the page, and `publish` (the publish steps of this paper's runs) closes it."""
    paper = result.paper
    body = [
        f"<nav><a href='{INDEX_NAME}'>all papers</a></nav>",
        f"<h1>{html.escape(paper.title)}</h1><p class='cite'>{html.escape(paper.citation)}</p>",
    ]
    for verdict in page_order(result.verdicts):
        metric = check_metric(verdict.claim)
        names = run_names(verdict, records)
        body.append(
            f"<h2 id='{html.escape(verdict.claim.id)}'>{html.escape(verdict.claim.key)}{_badge(verdict)}</h2>"
            f"<p class='statement'>{html.escape(verdict.claim.statement)}</p>"
            f"<p class='detail'>{html.escape(decision_text(verdict))}</p>"
            f"<p class='detail'>{html.escape(verdict.detail)}</p>"
        )
        if verdict.arms:
            body.append(
                f"<table><tr><th>arm</th><th>ours: {html.escape(metric_label(metric))}</th>"
                "<th>paper</th><th>runs (W&amp;B names)</th></tr>"
            )
            for arm, arm_result in verdict.arms.items():
                listed = "".join(f"<code>{html.escape(name)}</code>" for name in names[arm]) or "none"
                body.append(
                    f"<tr><td><b>{html.escape(arm)}</b></td><td>{html.escape(ours_text(arm_result))}</td>"
                    f"<td>{html.escape(paper_text(verdict, arm))}</td><td>{listed}</td></tr>"
                )
            body.append("</table>")
        images = [
            Path(os.path.relpath(plot.resolve(), out.parent.resolve())).as_posix()
            for plot in plots.get(verdict.claim.key, [])
        ]
        if images:
            body.append(
                "<div class='plots'>"
                + "".join(f"<img src='{html.escape(src)}' alt='{html.escape(PurePath(src).stem)}'>" for src in images)
                + "</div>"
            )
    if publish:
        body.append(f"<h2>Publish to W&amp;B</h2><pre>{html.escape(publish)}</pre>")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(_page(f"{paper.paper}: arms per claim", body))
    return out


def write_index(results: Sequence[PaperVerdicts], out_dir: Path) -> Path:
    """`index.html`: one line per paper (in the README's order) with its verdict counts, linking the paper pages."""
    rows = []
    for result in results:
        statuses = [verdict.status for verdict in result.verdicts]
        summary = ", ".join(f"{statuses.count(s)} {s}" for s in VERDICTS if statuses.count(s)) or "no claims"
        name = html.escape(result.paper.paper)
        rows.append(
            f"<tr><td><a href='{name}.html'>{name}</a></td>"
            f"<td>{html.escape(result.paper.title)}</td><td>{html.escape(summary)}</td></tr>"
        )
    body = [
        "<h1>Claims, arm by arm</h1><p class='cite'>The runs each verdict used, per arm, with their W&amp;B runs "
        "(generated by <code>python -m optrepro results wandb</code>). Each paper page says how to publish its "
        "runs to W&amp;B.</p>",
        "<table><tr><th>paper</th><th>title</th><th>verdicts</th></tr>",
        *rows,
        "</table>",
    ]
    out = out_dir / INDEX_NAME
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(_page("Claims, arm by arm", body))
    return out


def build_online_report(result: PaperVerdicts, records: pd.DataFrame, entity: str, project: str) -> Any:
    """The W&B report object for one paper (not saved); raises ImportError when wandb-workspaces is missing."""
    import wandb_workspaces.reports.v2 as wr

    blocks: list[Any] = [wr.P(result.paper.citation)]
    for verdict in result.verdicts:
        metric = check_metric(verdict.claim)
        runsets = [
            wr.Runset(entity=entity, project=project, name=arm, filters=f"Metric('ID') in {ids!r}")
            for arm, ids in wandb_ids(verdict, records).items()
            if ids
        ]
        blocks += [wr.H2(f"{verdict.claim.key}: {verdict.label}"), wr.P(f"{verdict.claim.statement} {verdict.detail}")]
        if runsets:
            blocks.append(
                wr.PanelGrid(
                    runsets=runsets,
                    panels=[
                        wr.BarPlot(title=metric, metrics=[metric]),
                        wr.LinePlot(title=metric, x="epoch", y=[metric]),
                    ],
                )
            )
    return wr.Report(project=project, entity=entity, title=f"{result.paper.paper}: claims, arm by arm", blocks=blocks)
