"""PNG plots for RESULTS.md: paper vs ours per claim, and training curves per arm.

Rendered with matplotlib's Agg backend and no timestamp metadata, so regenerating from the same
records gives the same bytes (RESULTS.md and its plots are checked for exact regeneration).
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from optrepro.claims.checks import NOT_RUN, Verdict, check_metric
from optrepro.claims.schema import ValueCheck

PNG_METADATA = {"Software": None}
NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def reported_number(text: str) -> float | None:
    """The first number of a value as printed in a paper (`2.7±0.1` -> 2.7), or None."""
    match = NUMBER.search(text)
    return float(match.group()) if match else None


def plot_claim(verdict: Verdict, path: Path) -> Path | None:
    """Each arm's seeds, mean and 95% CI next to the paper's number; None when the claim was not run."""
    if verdict.status == NOT_RUN:
        return None
    claim = verdict.claim
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for position, (name, arm) in enumerate(verdict.arms.items()):
        values = arm.sample.values
        offsets = [position - 0.15 + 0.15 * (i - (len(values) - 1) / 2) / max(len(values), 1) for i in range(len(values))]
        ax.scatter(offsets, values, color="tab:blue", alpha=0.5, s=14, label="our seeds" if position == 0 else None)
        if arm.stats.n:
            ci = arm.stats.ci95 if arm.stats.n >= 2 else 0.0
            ax.errorbar([position], [arm.stats.mean], yerr=[ci], color="tab:blue", fmt="o", capsize=4,
                        label="ours: mean, 95% CI" if position == 0 else None)
        paper = _paper_value(verdict, name)
        if paper is not None:
            ax.scatter([position + 0.25], [paper], color="tab:red", marker="D", s=30,
                       label="paper" if position == 0 else None)
    ax.set_xticks(range(len(verdict.arms)), list(verdict.arms))
    ax.set_ylabel(check_metric(claim))
    ax.set_title(f"{claim.key}: {verdict.label}", fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_curves(verdict: Verdict, history: pd.DataFrame, path: Path) -> Path | None:
    """The claim's metric per epoch for each arm (mean over seeds, min-max band); None without history."""
    metric = check_metric(verdict.claim)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    drawn = False
    for name, arm in verdict.arms.items():
        points = history[history["run_id"].isin(arm.sample.run_ids) & (history["metric"] == metric)]
        if points.empty:
            continue
        per_epoch = points.groupby("epoch")["value"].agg(["mean", "min", "max"])
        ax.plot(per_epoch.index, per_epoch["mean"], label=f"{name} (n={points['run_id'].nunique()})")
        ax.fill_between(per_epoch.index, per_epoch["min"], per_epoch["max"], alpha=0.2)
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title(f"{verdict.claim.key}: training curves", fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, path)


def _paper_value(verdict: Verdict, arm: str) -> float | None:
    check = verdict.claim.check
    if isinstance(check, ValueCheck) and check.arm == arm:
        return check.reported
    text = verdict.claim.reported.get(arm)
    return reported_number(text) if text else None


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata=PNG_METADATA)
    plt.close(fig)
    return path
