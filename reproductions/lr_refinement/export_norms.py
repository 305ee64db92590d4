"""Write a refined-schedule config from a finished run's recorded gradient norms.

    python -m reproductions.lr_refinement.export_norms <run folder> <config name> [--weighting l2|l1]

reads ``<run folder>/grad_norms.json`` (grad_norms.GradNormRecorder) and its ``record.json``, and writes
``reproductions/lr_refinement/configs/scheduler/<config name>.yaml``: the ``refined`` schedule function with the
norms inline, so the schedule is part of the config (and of every run's config hash) and ``scheduler=<config name>``
composes it with any preset. The header names the source run (preset, arm, seed, lr, run id).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from reproductions.lr_refinement.grad_norms import NORMS_FILE
from reproductions.lr_refinement.schedules import WEIGHTINGS

SCHEDULER_DIR = Path(__file__).resolve().parent / "configs" / "scheduler"


def config_text(record: dict, norms: list[float], weighting: str) -> str:
    repro, config = record.get("repro") or {}, record.get("config") or {}
    lr = ((config.get("optimizer") or {}).get("base") or {}).get("lr")
    header = [
        "# Refined schedule (Defazio et al., arXiv 2310.07831): reproductions/lr_refinement/schedules.py `refined`,",
        "# written by python -m reproductions.lr_refinement.export_norms from the per-step gradient norms of run",
        f"# {record['run_id']} ({repro.get('name')}, arm {repro.get('arm')}, seed {record.get('seed')}, lr {lr},",
        f"# config_hash {record.get('config_hash')}): {len(norms)} steps, {weighting} norms (8 significant digits).",
    ]
    values = ", ".join(f"{value:.8g}" for value in norms)
    body = [
        "_target_: reproductions.lr_refinement.schedules.refined",
        "name: refined",
        "warmup_epochs: 0",
        f"weighting: {weighting}   # w_t = G_t^-2 (l2, SGD-type) or G_t^-1 (l1, Adam-type)",
        "tau: 0.1          # median filter width: ~10% of the resolution (official README)",
        "trim: 2           # steps dropped at each end of the recorded sequence",
        "resolution: 10000 # points the schedule is computed on before interpolation to the run's steps",
        f"source: {record['run_id']}",
        f"norms: [{values}]",
    ]
    return "\n".join(header + body) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("name")
    parser.add_argument("--weighting", choices=sorted(WEIGHTINGS), default="l2")
    args = parser.parse_args(argv)
    record = json.loads((args.run_dir / "record.json").read_text())
    if record.get("status") != "finished":
        parser.error(f"{args.run_dir}: the run's status is {record.get('status')!r}, not finished")
    norms = json.loads((args.run_dir / NORMS_FILE).read_text())[args.weighting]
    out = SCHEDULER_DIR / f"{args.name}.yaml"
    out.write_text(config_text(record, norms, args.weighting))
    print(f"wrote {out} ({len(norms)} steps)")


if __name__ == "__main__":
    main()
