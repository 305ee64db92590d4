"""PNG plots for RESULTS.md: paper vs ours per claim, and training curves per arm.

Rendered with matplotlib's Agg backend and no timestamp metadata, so regenerating from the same
records gives the same bytes (RESULTS.md and its plots are checked for exact regeneration). Each PNG carries a
digest of what it shows; a PNG whose digest matches is kept rather than drawn again.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from PIL import Image

from optrepro.claims.checks import NOT_RUN, Verdict, check_metric
from optrepro.claims.schema import OrderingCheck, Reported, ValueCheck
from optrepro.claims.units import convert, metric_label, metric_unit

PNG_METADATA = {"Software": None}
INPUTS_KEY = "optrepro-inputs"  # PNG text chunk: digest of what the plot shows; equal digest, the PNG is kept
PAPER_SETTING_TIER = "full"  # only the full tier runs the paper's own setting: other tiers' plots show no paper point
DRAWING_VERSION = 2  # bump when the drawing code below changes, so every kept PNG is redrawn


def plot_claim(verdict: Verdict, path: Path) -> Path | None:
    """Left: each arm's seeds, mean and 95% CI next to the paper's number (where comparable); right: the quantity
    the verdict was decided on with the CI it used (paired where the arms share seeds) against the claim's
    threshold. None when the claim was not run."""
    if verdict.status == NOT_RUN:
        return None
    claim = verdict.claim
    arms = [
        (
            name,
            list(arm.sample.values),
            arm.stats.n,
            arm.stats.mean,
            arm.stats.ci95 if arm.stats.n >= 2 else 0.0,
            paper_value(verdict, name),
        )
        for name, arm in verdict.arms.items()
    ]
    decided = [verdict.observed, verdict.low, verdict.high]
    inputs = {
        "kind": "claim",
        "title": f"{claim.key}: {verdict.label}",
        "metric": metric_label(check_metric(claim)),
        "arms": arms,
        "decided": decided if all(math.isfinite(v) for v in decided) else None,
        "test": verdict.test,
        "threshold": decision_threshold(claim),
    }
    if _kept(path, inputs):
        return path
    fig, (ax, gain) = plt.subplots(1, 2, figsize=(6.4, 3.2), gridspec_kw={"width_ratios": [3, 1.2]})
    for position, (name, values, n, mean, ci, paper) in enumerate(arms):
        offsets = [
            position - 0.15 + 0.15 * (i - (len(values) - 1) / 2) / max(len(values), 1) for i in range(len(values))
        ]
        ax.scatter(offsets, values, color="tab:blue", alpha=0.5, s=14, label="our seeds" if position == 0 else None)
        if n:
            ax.errorbar(
                [position],
                [mean],
                yerr=[ci],
                color="tab:blue",
                fmt="o",
                capsize=4,
                label="ours: mean, 95% CI" if position == 0 else None,
            )
        if paper is not None:
            ax.scatter(
                [position + 0.25], [paper], color="tab:red", marker="D", s=30, label="paper" if position == 0 else None
            )
    ax.set_xticks(range(len(arms)), [name for name, *_ in arms])
    ax.set_ylabel(inputs["metric"], fontsize=8)
    ax.set_title(inputs["title"], fontsize=9)
    ax.legend(fontsize=7)
    _draw_decision(gain, claim, inputs)
    return _save(fig, path, inputs)


def decision_threshold(claim) -> float | list[float] | None:
    """What the decided quantity is held against: a margin, a bound, or the paper's value ± tolerance."""
    check = claim.check
    if isinstance(check, ValueCheck):
        return [check.reported - check.tolerance, check.reported + check.tolerance]
    if isinstance(check, OrderingCheck):
        return check.min_difference
    return getattr(check, "max", None)


def _draw_decision(ax: plt.Axes, claim, inputs: dict) -> None:
    labels = {
        "ordering": f"gain of {getattr(claim.check, 'better', '')}",
        "ratio": "ratio of means",
        "value": "our mean",
        "bound": "our mean",
    }
    ax.set_xticks([0], [labels.get(claim.check.kind, claim.check.kind)], fontsize=7)
    ax.set_xlim(-1, 1)
    threshold = inputs["threshold"]
    for level in threshold if isinstance(threshold, list) else [threshold] if threshold is not None else []:
        ax.axhline(level, color="tab:red", linestyle="--", linewidth=1)
    if inputs["decided"] is not None:
        observed, low, high = inputs["decided"]
        ax.errorbar([0], [observed], yerr=[[observed - low], [high - observed]], color="black", fmt="s", capsize=4)
    ax.set_title("decided on: 95% CI\nvs threshold (dashed)", fontsize=7)
    ax.tick_params(labelsize=7)


def plot_curves(verdict: Verdict, history: pd.DataFrame, path: Path) -> Path | None:
    """The claim's metric per epoch for each arm (mean over seeds, min-max band); None without history."""
    metric = check_metric(verdict.claim)
    curves = []
    for name, arm in verdict.arms.items():
        points = history[history["run_id"].isin(arm.sample.run_ids) & (history["metric"] == metric)]
        if points.empty:
            continue
        per_epoch = points.groupby("epoch")["value"].agg(["mean", "min", "max"])
        curves.append(
            (
                f"{name} (n={points['run_id'].nunique()})",
                per_epoch.index.tolist(),
                *(per_epoch[column].tolist() for column in ("mean", "min", "max")),
            )
        )
    if not curves:
        return None
    inputs = {"kind": "curves", "title": f"{verdict.claim.key}: training curves", "metric": metric, "curves": curves}
    if _kept(path, inputs):
        return path
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for label, epochs, mean, low, high in curves:
        ax.plot(epochs, mean, label=label)
        ax.fill_between(epochs, low, high, alpha=0.2)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric_label(metric), fontsize=8)
    ax.set_title(inputs["title"], fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, path, inputs)


def plot_tuning(claim, record: dict | None, path: Path) -> Path | None:
    """The tuning stage of a claim (claims.tuning): the validation metric per grid value for each tuned arm, mean
    and each seed, the chosen value circled; None for a claim without a tuning record."""
    if record is None:
        return None
    arms = {
        arm: [(entry["value"], entry["mean"], sorted(entry["metric_by_seed"].values())) for entry in data["values"]]
        for arm, data in record["arms"].items()
    }
    chosen = {arm: data["chosen"] for arm, data in record["arms"].items()}
    tuning = claim.tuning
    inputs = {
        "kind": "tuning",
        "title": f"{claim.key}: tuning on the validation split",
        "knob": tuning.knob,
        "metric": tuning.metric,
        "arms": arms,
        "chosen": chosen,
    }
    if _kept(path, inputs):
        return path
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for arm, points in arms.items():
        values = [value for value, _, _ in points]
        line = ax.plot(values, [mean for _, mean, _ in points], marker="o", label=f"{arm} (mean)")[0]
        for value, _, per_seed in points:
            ax.scatter([value] * len(per_seed), per_seed, color=line.get_color(), s=8, alpha=0.5)
        best = next(mean for value, mean, _ in points if value == chosen[arm])
        ax.scatter([chosen[arm]], [best], s=160, facecolors="none", edgecolors=line.get_color(), linewidths=1.5)
    if all(value > 0 for points in arms.values() for value, _, _ in points):
        ax.set_xscale("log")
    ax.set_xlabel(f"{tuning.knob} (circled: chosen)", fontsize=8)
    ax.set_ylabel(metric_label(tuning.metric), fontsize=8)
    ax.set_title(inputs["title"], fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, path, inputs)


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


def _digest(inputs: dict) -> str:
    text = json.dumps([DRAWING_VERSION, matplotlib.__version__, inputs], sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _kept(path: Path, inputs: dict) -> bool:
    """True when `path` already shows exactly `inputs` (drawing ~170 PNGs is most of `results report`'s time)."""
    if not path.exists():
        return False
    try:
        with Image.open(path) as image:
            return image.text.get(INPUTS_KEY) == _digest(inputs)
    except (OSError, ValueError):
        return False


def _save(fig: plt.Figure, path: Path, inputs: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata=PNG_METADATA | {INPUTS_KEY: _digest(inputs)})
    plt.close(fig)
    return path
