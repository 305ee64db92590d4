"""PNG plots for RESULTS.md: paper vs ours per claim, and training curves per arm.

Rendered with matplotlib's Agg backend and no timestamp metadata, so regenerating from the same
records gives the same bytes (RESULTS.md and its plots are checked for exact regeneration).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from optrepro.claims.checks import NOT_RUN, Verdict, check_metric
from optrepro.claims.schema import Reported, ValueCheck
from optrepro.claims.units import convert, metric_unit

PNG_METADATA = {"Software": None}
PAPER_SETTING_TIER = "full"  # only the full tier runs the paper's own setting: other tiers' plots show no paper point


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
        paper = paper_value(verdict, name)
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


def paper_value(verdict: Verdict, arm: str) -> float | None:
    """The paper's number for `arm` in our metric's unit: the value check's own number, or a `reported` number of
    the paper's setting that converts to our unit (a note in words is never read as a number)."""
    claim = verdict.claim
    if isinstance(claim.check, ValueCheck) and claim.check.arm == arm:
        return claim.check.reported
    number = claim.reported.get(arm)
    if not isinstance(number, Reported) or claim.tier != PAPER_SETTING_TIER:
        return None
    return convert(number.value, number.quantity, number.unit, metric_unit(check_metric(claim)))


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata=PNG_METADATA)
    plt.close(fig)
    return path
