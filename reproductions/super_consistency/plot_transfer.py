"""The cpu tier's two figures in one: training loss against the base lr per width (learning-rate transfer), and the
lambda_max trajectories per width (x N under muP), for muP (top) and NTP (bottom). Means over the seeds found.

    python reproductions/super_consistency/plot_transfer.py [RECORDS_DIR ...] [--seeds 0 1 2] [--out FILE]

Reads every record.json under the folders (default results/records/super_consistency) whose preset is a
super_consistency cpu preset; a diverged run is drawn as a cross at the top of its lr panel.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).resolve().parent
PRESETS = {"sc_fmnist_mup_cpu": "mup", "sc_fmnist_ntp_cpu": "ntp"}
TRAJECTORY_LRS = {"mup": (0.5, 2.0), "ntp": (2.0, 8.0)}
LABELS = {"mup": "muP (N x lambda_max; lr = eta_0 N)", "ntp": "NTP (lambda_max; lr = eta)"}


def load_runs(folders: list[Path], seeds: set[int]) -> list[dict]:
    """One run per (parametrisation, width, lr, seed): the latest, as the claims count a seed run twice once."""
    latest: dict[tuple, tuple[str, dict]] = {}
    for folder in folders:
        for path in sorted(folder.rglob("record.json")):
            record = json.loads(path.read_text())
            preset = (record.get("repro") or {}).get("name")
            if preset in PRESETS and record["seed"] in seeds:
                config = record["config"]
                run = {
                    "param": PRESETS[preset],
                    "width": int(config["model"]["width"]),
                    "lr": float(config["optimizer"]["base"]["lr"]),
                    "status": record["status"],
                    "loss": record["metrics"]["final"].get("train/loss"),
                    "history": record["history"],
                    "init": record["metrics"]["final"].get("sharpness/scaled_init"),
                }
                key = (run["param"], run["width"], run["lr"], record["seed"])
                if key not in latest or record["finished_at"] > latest[key][0]:
                    latest[key] = (record["finished_at"], run)
    return [run for _, run in latest.values()]


def mean(values: list[float]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def plot_lr_curves(ax, runs: list[dict], param: str, colors: dict[int, str]) -> None:
    grouped: dict[tuple[int, float], list[dict]] = defaultdict(list)
    for run in runs:
        if run["param"] == param:
            grouped[run["width"], run["lr"]].append(run)
    for width in sorted({w for w, _ in grouped}):
        lrs = sorted(lr for w, lr in grouped if w == width)
        ok = [(lr, mean([r["loss"] for r in grouped[width, lr] if r["status"] == "finished"])) for lr in lrs]
        ax.plot([lr for lr, _ in ok], [v for _, v in ok], "o-", color=colors[width], label=f"N = {width}")
        failed = [lr for lr in lrs if any(r["status"] != "finished" for r in grouped[width, lr])]
        ax.plot(failed, [2.4] * len(failed), "x", color=colors[width], ms=9)
    ax.set_xscale("log", base=2)
    ax.set_ylim(0, 2.5)
    ax.set_xlabel("base lr (eta_0)" if param == "mup" else "lr (eta)")
    ax.set_ylabel("training loss, last epoch")
    ax.set_title(f"{param.upper() if param == 'ntp' else 'muP'}: lr sweep (x: diverged)")
    ax.legend(fontsize=8)


def plot_trajectories(ax, runs: list[dict], param: str, lr: float, colors: dict[int, str]) -> None:
    for width in sorted({r["width"] for r in runs if r["param"] == param}):
        chosen = [
            r
            for r in runs
            if r["param"] == param and r["width"] == width and r["lr"] == lr and r["status"] == "finished"
        ]
        if not chosen:
            continue
        epochs = len(chosen[0]["history"])
        curve = [mean([r["init"] for r in chosen])]
        curve += [mean([r["history"][e].get("sharpness/scaled") for r in chosen]) for e in range(epochs)]
        ax.plot(range(epochs + 1), curve, color=colors[width], label=f"N = {width} ({len(chosen)} seeds)")
    ax.axhline(2 / lr, color="0.3", ls="--", lw=1, label="2 / lr")
    ax.set_xlabel("epoch (32 steps)")
    ax.set_ylabel("N lambda_max" if param == "mup" else "lambda_max")
    ax.set_title(f"{LABELS[param]}, {'eta_0' if param == 'mup' else 'eta'} = {lr:g}", fontsize=9)
    ax.legend(fontsize=7)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "folders", nargs="*", type=Path, default=[HERE.parents[1] / "results/records/super_consistency"]
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=HERE / "super_consistency_cpu.png")
    args = parser.parse_args()
    runs = load_runs(args.folders, set(args.seeds))
    widths = sorted({r["width"] for r in runs})
    colors = {w: plt.cm.viridis(i / max(1, len(widths) - 1) * 0.85) for i, w in enumerate(widths)}
    fig, axes = plt.subplots(2, 3, figsize=(15, 8), constrained_layout=True)
    for row, param in enumerate(("mup", "ntp")):
        plot_lr_curves(axes[row, 0], runs, param, colors)
        for col, lr in enumerate(TRAJECTORY_LRS[param], start=1):
            plot_trajectories(axes[row, col], runs, param, lr, colors)
    fig.suptitle(f"super consistency, cpu tier (Fashion-MNIST 4096, 2-layer MLP), seeds {args.seeds}")
    fig.savefig(args.out, dpi=110)
    print(args.out)


if __name__ == "__main__":
    main()
