"""Figure 4's four corners on colored digits: what ERM and SD rely on, from real runs' checkpoints.

    python reproductions/gradient_starvation/plot_colored_digits.py [RUN_DIR ...] [--out colored_digits_corners.png]

Each RUN_DIR is a run folder (record.json + checkpoints/last.ckpt) of a `gs_cdigits_*` preset. Every network is
scored on four versions of its test set (the corners of the official Figure_4_and_table_1 evaluation):
rows "digit" (the image) / "blank" (every pixel set to the mean grey level of the test images), columns
"grayscale" (the grey image spread over both channels at half intensity: no colour) / "colored" (in the channel
of its colour, as trained). Top row of panels: accuracy against the (noisy) test labels; bottom row: mean entropy
of the predicted class probabilities (nats; ln 2 = 0.69 is a coin flip). Values are averaged over each arm's runs.
With no RUN_DIR given, the newest finished cpu-tier run with a checkpoint of every (arm, seed) under runs/ is used.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from optrepro.data.registry import load_splits

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
ROWS, COLUMNS = ("digit", "blank"), ("grayscale", "colored")


def load_run(run_dir: Path) -> tuple[torch.nn.Module, dict, torch.Tensor, torch.Tensor]:
    """(network with the checkpoint's weights, record, uint8 test images, test labels)."""
    record = json.loads((run_dir / "record.json").read_text())
    cfg = OmegaConf.create(record["config"])
    splits = load_splits(cfg.dataset, REPO / "data")
    net = instantiate(cfg.model, num_classes=2, input_shape=tuple(splits.x_test.shape[1:]))
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    net.load_state_dict({k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")})
    return net.eval(), record, splits.x_test, splits.y_test


def corner_inputs(x_test: torch.Tensor) -> dict[tuple[str, str], torch.Tensor]:
    """The four test-set versions as network inputs (pixel / 255: the colored-digits setting does not normalize)."""
    colored = x_test.float() / 255.0
    grey = colored.sum(1, keepdim=True)  # one channel holds the digit, the other is zero
    color_mask = (colored.flatten(2).sum(-1) > 0).float()[:, :, None, None]  # N x 2 x 1 x 1, one-hot colour
    blank = torch.full_like(grey, grey.mean().item())
    return {
        ("digit", "colored"): colored,
        ("digit", "grayscale"): grey.expand_as(colored) / 2,
        ("blank", "colored"): blank * color_mask,
        ("blank", "grayscale"): blank.expand_as(colored) / 2,
    }


@torch.no_grad()
def corner_metrics(net: torch.nn.Module, x_test: torch.Tensor, y_test: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(accuracy, mean entropy), each a 2 x 2 array indexed by (ROWS, COLUMNS)."""
    accuracy, entropy = np.zeros((2, 2)), np.zeros((2, 2))
    for (row, column), inputs in corner_inputs(x_test).items():
        logits = net(inputs)
        logp = torch.log_softmax(logits, dim=-1)
        i, j = ROWS.index(row), COLUMNS.index(column)
        accuracy[i, j] = (logits.argmax(-1) == y_test).float().mean().item()
        entropy[i, j] = -(logp.exp() * logp).sum(-1).mean().item()
    return accuracy, entropy


def default_runs() -> list[Path]:
    newest: dict[tuple[str, int], tuple[str, Path]] = {}
    for path in (REPO / "runs").glob("*/gs_cdigits_*_cpu/*/record.json"):
        rec = json.loads(path.read_text())
        if rec["status"] != "finished" or not (path.parent / "checkpoints" / "last.ckpt").exists():
            continue
        key = (rec["repro"]["arm"], rec["seed"])
        if key not in newest or rec["finished_at"] > newest[key][0]:
            newest[key] = (rec["finished_at"], path.parent)
    return [p for _, p in sorted(newest.values(), key=lambda t: str(t[1]))]


def heatmap(ax, values: np.ndarray, fmt: str, vmax: float, cmap: str) -> None:
    ax.imshow(values, cmap=cmap, vmin=0.0, vmax=vmax)
    ax.set_xticks(range(2), COLUMNS)
    ax.set_yticks(range(2), ROWS)
    ax.tick_params(top=True, bottom=False, labeltop=True, labelbottom=False)
    for i in range(2):
        for j in range(2):
            ax.text(j, i, fmt.format(values[i, j]), ha="center", va="center", fontsize=11)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path)
    parser.add_argument("--out", type=Path, default=HERE / "colored_digits_corners.png")
    args = parser.parse_args()
    runs = args.runs or default_runs()
    if not runs:
        raise SystemExit(
            "no finished gs_cdigits cpu run with checkpoints/last.ckpt under runs/: run "
            "`python run.py +repro=gs_cdigits_erm_cpu train.checkpoint=true` (and _sd_) first"
        )
    by_arm: dict[str, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
    for run_dir in runs:
        net, record, x_test, y_test = load_run(run_dir)
        by_arm[record["repro"]["arm"]].append(corner_metrics(net, x_test, y_test))
    arms = sorted(by_arm)
    fig, axes = plt.subplots(2, len(arms), figsize=(3.4 * len(arms), 6.2), squeeze=False)
    for k, arm in enumerate(arms):
        accuracy = np.mean([a for a, _ in by_arm[arm]], axis=0)
        entropy = np.mean([e for _, e in by_arm[arm]], axis=0)
        heatmap(axes[0, k], 100 * accuracy, "{:.1f} %", 100.0, "RdBu")
        heatmap(axes[1, k], entropy, "{:.2f}", float(np.log(2)), "YlGn_r")
        axes[0, k].set_title(f"{arm.upper()}: accuracy ({len(by_arm[arm])} seeds)", pad=24)
        axes[1, k].set_title(f"{arm.upper()}: entropy (nats)", pad=24)
        print(arm, "accuracy", np.round(accuracy, 4).tolist(), "entropy", np.round(entropy, 4).tolist())
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
