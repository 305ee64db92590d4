"""The README figure: 2-D loss contours of measured runs side by side, drawn from their records' extra.landscape.

python reproductions/loss_landscape/contour_figure.py OUT.png LABEL=RUN_FOLDER ...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def main(out: str, panels: list[str]) -> None:
    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.4 * columns, 3.3 * rows), squeeze=False)
    for axis, panel in zip(axes.flat, panels):
        label, folder = panel.split("=", 1)
        block = json.loads((Path(folder) / "record.json").read_text())["extra"]["landscape"]
        plane, alphas = block["slice_2d"], block["slice_2d"]["alphas"]
        grid = [list(row) for row in zip(*plane["loss"])]
        low = min(min(row) for row in grid)
        contours = axis.contour(
            alphas, alphas, grid, levels=[low + 5 * (k + 1) / 20 for k in range(20)], cmap="viridis"
        )
        axis.clabel(contours, fontsize=5, fmt="%.1f")
        axis.plot([0], [0], marker="*", color="red")
        eig = block["metrics"]["landscape/hessian_max_eig"]
        axis.set_title(f"{label}\nlambda_max {eig:.3g}", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=80)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
