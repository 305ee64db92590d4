"""lambda_max against 2/eta and the SAM-edge over the steps of every sam_eos run found in the given record stores.

    python -m reproductions.sam_eos.plot results/records/sam_eos runs --out eos.png [--tier cpu]

One panel per (preset, lr, rho): each seed's lambda_max (blue), its SAM-edge (green, from the same step's ||g||) and
2/eta (dashed). Records are read with the product's reader (optrepro.records.record.read_record); nothing is
recomputed.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from optrepro.records.record import read_record


def eos_runs(stores: list[Path], tier: str | None) -> dict[str, list[dict]]:
    """Records of sam_eos runs with lambda_max in their history, grouped by '<preset> lr=<lr> rho=<rho>'; a seed run
    twice (another code version) is drawn once, from its latest run."""
    groups: dict[str, dict[int, dict]] = defaultdict(dict)
    for store in stores:
        for path in sorted(store.rglob("record.json")):
            record = read_record(path)
            repro = record.get("repro") or {}
            if repro.get("paper") != "sam_eos" or (tier and repro.get("tier") != tier):
                continue
            if not any("eos/lambda_max" in row for row in record["history"]):
                continue
            optimizer = record["config"]["optimizer"]
            lr, rho = optimizer["base"]["lr"], optimizer.get("rho", 0.0) if optimizer["name"] == "sam" else 0.0
            seeds = groups[f"{repro.get('name')} lr={lr:g} rho={rho:g}"]
            if record["seed"] not in seeds or record["finished_at"] > seeds[record["seed"]]["finished_at"]:
                seeds[record["seed"]] = record
    return {name: list(seeds.values()) for name, seeds in sorted(groups.items())}


def series(record: dict, key: str) -> tuple[list[int], list[float]]:
    rows = [row for row in record["history"] if key in row]
    return [int(row["step"]) for row in rows], [float(row[key]) for row in rows]


def plot(groups: dict[str, list[dict]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(groups), figsize=(4.5 * len(groups), 3.6), squeeze=False)
    for ax, (name, records) in zip(axes[0], groups.items()):
        for index, record in enumerate(sorted(records, key=lambda r: r["seed"])):
            labels = ("$\\lambda_{max}$", "SAM-edge", "$2/\\eta$") if index == 0 else (None, None, None)
            ax.plot(*series(record, "eos/lambda_max"), color="tab:blue", lw=0.8, label=labels[0])
            ax.plot(*series(record, "eos/sam_edge"), color="tab:green", lw=0.8, label=labels[1])
            ax.plot(*series(record, "eos/two_over_lr"), color="tab:purple", ls="--", lw=1.0, label=labels[2])
        seeds = ", ".join(str(r["seed"]) for r in sorted(records, key=lambda r: r["seed"]))
        ax.set_title(f"{name}\nseeds {seeds}", fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stores", nargs="+", type=Path, help="folders holding record.json files")
    parser.add_argument("--out", type=Path, default=Path("sam_eos_edges.png"))
    parser.add_argument("--tier", default=None, help="only runs of this tier (cpu, full, smoke)")
    args = parser.parse_args(argv)
    groups = eos_runs(args.stores, args.tier)
    if not groups:
        parser.error(f"no sam_eos run with eos/lambda_max under {', '.join(map(str, args.stores))}")
    plot(groups, args.out)
    print(f"wrote {args.out} ({sum(len(r) for r in groups.values())} runs in {len(groups)} panels)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
