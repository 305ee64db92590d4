"""The cpu tier in one figure: directional sharpness of each pseudo-update direction per epoch along the Adam
trajectory (transformer, solid; MLP control, dashed), and the training loss per epoch of Adam, SGD and clipped SGD
on the transformer. Means over the seeds found.

    python -m reproductions.directional_sharpness.plot [RECORDS_DIR ...] [--seeds 0 1 2] [--out FILE]

Reads every record.json under the folders (default results/records/directional_sharpness) of this paper's cpu
presets; one run per (preset, lr, seed), the latest.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent
DIRECTIONS = ("sgd", "sgd_clip", "adam", "adam_clip")
COLORS = {"sgd": "tab:red", "sgd_clip": "tab:orange", "adam": "tab:blue", "adam_clip": "tab:cyan"}
SHARPNESS_PRESETS = {"ds_lm_adam_cpu": ("transformer", "-"), "ds_mlp_adam_cpu": ("MLP (digits)", "--")}
LOSS_PRESETS = {
    "ds_lm_adam_cpu": ("Adam", "black"),
    "ds_lm_sgd_cpu": ("SGD", "tab:purple"),
    "ds_lm_sgdclip_cpu": ("SGD + clip 10%", "tab:green"),
}
BAYES_LOSS = 2.876  # entropy of a Zipf(1) row over 32 tokens: the order-1 chain's lowest expected loss


def load_runs(folders: list[Path], seeds: set[int]) -> dict[tuple[str, float], list[list[dict]]]:
    """(preset, lr) -> the histories of its seeds (the latest run of each)."""
    latest: dict[tuple[str, float, int], tuple[str, list[dict]]] = {}
    for folder in folders:
        for path in sorted(folder.rglob("record.json")):
            record = json.loads(path.read_text())
            preset = (record.get("repro") or {}).get("name")
            if (preset in SHARPNESS_PRESETS or preset in LOSS_PRESETS) and record["seed"] in seeds:
                key = (preset, float(record["config"]["optimizer"]["base"]["lr"]), record["seed"])
                if key not in latest or record["finished_at"] > latest[key][0]:
                    latest[key] = (record["finished_at"], record["history"])
    runs: dict[tuple[str, float], list[list[dict]]] = defaultdict(list)
    for (preset, lr, _), (_, history) in sorted(latest.items()):
        runs[preset, lr].append(history)
    return runs


def epoch_means(histories: list[list[dict]], key: str) -> tuple[list[int], list[float]]:
    epochs = sorted({row["epoch"] + 1 for history in histories for row in history if key in row})
    means = []
    for epoch in epochs:
        values = [row[key] for h in histories for row in h if row["epoch"] + 1 == epoch and key in row]
        finite = [v for v in values if math.isfinite(v)]
        means.append(sum(finite) / len(finite) if finite else math.nan)
    return epochs, means


def draw(runs: dict[tuple[str, float], list[list[dict]]], out: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for (preset, lr), histories in runs.items():
        if preset not in SHARPNESS_PRESETS:
            continue
        model, style = SHARPNESS_PRESETS[preset]
        for direction in DIRECTIONS:
            epochs, means = epoch_means(histories, f"ds/{direction}")
            left.plot(epochs, means, style, marker="o", color=COLORS[direction], label=f"{direction}, {model}")
    left.set(
        yscale="log",
        xlabel="epoch (Adam trajectory)",
        ylabel="directional sharpness v'Hv / |v|^2",
        title="pseudo-update directions, epoch means",
    )
    left.legend(fontsize=7, ncol=2)
    for (preset, lr), histories in sorted(runs.items()):
        if preset in LOSS_PRESETS:
            epochs, means = epoch_means(histories, "train/loss")
            label, color = LOSS_PRESETS[preset]
            right.plot(epochs, means, ":" if lr >= 0.3 else "-", marker="o", color=color, label=f"{label}, lr {lr:g}")
    right.axhline(BAYES_LOSS, color="grey", lw=0.8, ls="--", label="lowest expected loss (2.876)")
    for ax in (left, right):
        ax.set_xticks(sorted({e for h in runs.values() for run in h for e in (row["epoch"] + 1 for row in run)}))
    right.set(xlabel="epoch", ylabel="training loss (epoch running mean)", title="transformer, Markov next token")
    right.legend(fontsize=8)
    seeds = max((len(h) for h in runs.values()), default=0)
    fig.suptitle(f"Pan & Li 2023, cpu tier (means over up to {seeds} seeds)")
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records", nargs="*", type=Path, default=[Path("results/records/directional_sharpness")])
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=HERE / "directional_sharpness_cpu.png")
    args = parser.parse_args(argv)
    draw(load_runs(args.records, set(args.seeds)), args.out)
    print(args.out)


if __name__ == "__main__":
    main()
