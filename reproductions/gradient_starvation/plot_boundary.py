"""Decision boundaries of cross-entropy vs Spectral Decoupling on the two moons, from real runs' checkpoints.

    python reproductions/gradient_starvation/plot_boundary.py RUN_DIR [RUN_DIR ...] [--out decision_boundary.png]

Each RUN_DIR is a run folder (holding record.json and checkpoints/last.ckpt) of a gradient_starvation two-moons
preset. Runs are grouped by their arm (record.repro.arm); one panel per arm shows the network output (logit of
class 1 minus logit of class 0) averaged over that arm's runs, its zero level set (the boundary, thick black), and
the training points of the first run's dataset. With no RUN_DIR given, the newest finished cpu-tier run of every
(arm, seed) under runs/ is used.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from optrepro.data.registry import load_splits

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def load_net(run_dir: Path) -> tuple[torch.nn.Module, dict]:
    record = json.loads((run_dir / "record.json").read_text())
    cfg = OmegaConf.create(record["config"])
    net = instantiate(cfg.model, num_classes=2, input_shape=(2,))
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    net.load_state_dict({k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")})
    return net.eval(), record


def default_runs() -> list[Path]:
    newest: dict[tuple[str, int], tuple[str, Path]] = {}
    for path in (REPO / "runs").glob("*/gs_moons_*_cpu/*/record.json"):
        rec = json.loads(path.read_text())
        if rec["status"] != "finished" or rec["repro"]["paper"] != "gradient_starvation":
            continue
        key = (rec["repro"]["arm"], rec["seed"])
        if key not in newest or rec["finished_at"] > newest[key][0]:
            newest[key] = (rec["finished_at"], path.parent)
    return [p for _, p in sorted(newest.values(), key=lambda t: str(t[1]))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("runs", nargs="*", type=Path)
    parser.add_argument("--out", type=Path, default=HERE / "decision_boundary.png")
    args = parser.parse_args()
    runs = args.runs or default_runs()
    if not runs:
        raise SystemExit("no run folders given and none found under runs/")
    n = 300
    axis = torch.linspace(-2.0, 2.0, n)
    ga, gb = torch.meshgrid(axis, axis, indexing="ij")
    grid = torch.stack([ga.flatten(), gb.flatten()], dim=1)
    outputs: dict[str, list[torch.Tensor]] = defaultdict(list)
    seeds: dict[str, list[int]] = defaultdict(list)
    margins: dict[str, list[float]] = defaultdict(list)
    first_cfg = None
    for run_dir in runs:
        net, record = load_net(Path(run_dir))
        arm = record["repro"]["arm"]
        with torch.no_grad():
            z = net(grid)
        outputs[arm].append((z[:, 1] - z[:, 0]).reshape(n, n))
        seeds[arm].append(record["seed"])
        margins[arm].append(record["metrics"]["final"].get("test/input_margin", float("nan")))
        first_cfg = first_cfg or OmegaConf.create(record["config"])
    splits = load_splits(first_cfg.dataset, REPO / "data")
    x, y = splits.x_train.numpy(), splits.y_train.numpy()
    arms = sorted(outputs, key=lambda a: (a != "ce", a))
    fig, axes = plt.subplots(1, len(arms), figsize=(4.2 * len(arms), 4.2), squeeze=False)
    titles = {"ce": "cross-entropy", "sd": "Spectral Decoupling"}
    for ax, arm in zip(axes[0], arms):
        mean = torch.stack(outputs[arm]).mean(0).numpy()
        limit = float(abs(mean).max())
        ax.contourf(ga.numpy(), gb.numpy(), mean, levels=20, cmap="RdBu", vmin=-limit, vmax=limit, alpha=0.7)
        ax.contour(ga.numpy(), gb.numpy(), mean, levels=[0.0], colors="k", linewidths=2.0)
        ax.scatter(
            x[:, 0],
            x[:, 1],
            c=y,
            cmap=matplotlib.colors.ListedColormap(["#C82506", "#0365C0"]),
            edgecolors="k",
            linewidths=0.4,
            s=14,
        )
        ax.axvline(0.0, ls="--", lw=0.7, color="k", alpha=0.5)
        mean_margin = sum(margins[arm]) / len(margins[arm])
        ax.set_title(f"{titles.get(arm, arm)}\nseeds {sorted(seeds[arm])}, test margin {mean_margin:.3f}", fontsize=10)
        ax.set_xlabel("feature 0 (linearly separating)")
        ax.set_ylabel("feature 1 (moon shape)")
        ax.set_xlim(-2, 2)
        ax.set_ylim(-2, 2)
    fig.suptitle("Two moons, Delta = +0.1: decision boundary (black), output averaged over seeds", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out} from {len(runs)} runs: " + ", ".join(f"{a}: seeds {sorted(seeds[a])}" for a in arms))


if __name__ == "__main__":
    main()
