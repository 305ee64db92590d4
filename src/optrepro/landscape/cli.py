"""`optrepro landscape <run folder>...`: measure finished runs, write PNGs and landscape.json beside each record."""

from __future__ import annotations

import argparse
from pathlib import Path

from optrepro.landscape.settings import LandscapeSettings

DEFAULTS = LandscapeSettings()


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run_dirs",
        nargs="+",
        type=Path,
        metavar="RUN_FOLDER",
        help="finished run folders (each with record.json and checkpoints/last.ckpt)",
    )
    parser.add_argument(
        "--samples", type=int, default=DEFAULTS.samples, help="training samples evaluated (default: %(default)s)"
    )
    parser.add_argument("--points", type=int, default=DEFAULTS.points, help="1-D grid points (default: %(default)s)")
    parser.add_argument(
        "--points-2d",
        type=int,
        default=DEFAULTS.points_2d,
        help="2-D grid points per axis, 0 for none (default: %(default)s)",
    )
    parser.add_argument(
        "--span", type=float, default=DEFAULTS.span, help="grid covers [-span, span] (default: %(default)s)"
    )
    parser.add_argument(
        "--directions", type=int, default=DEFAULTS.directions, help="1-D directions (default: %(default)s)"
    )
    parser.add_argument(
        "--rise-at",
        type=float,
        default=DEFAULTS.rise_at,
        help="loss_rise_1d is the loss rise at +-this step (default: %(default)s)",
    )
    parser.add_argument(
        "--hessian-iterations", type=int, default=DEFAULTS.hessian_iterations, help="default: %(default)s"
    )
    parser.add_argument(
        "--rho", type=float, default=DEFAULTS.rho, help="adaptive sharpness radius (default: %(default)s)"
    )
    parser.add_argument("--ascent-steps", type=int, default=DEFAULTS.ascent_steps, help="default: %(default)s")
    parser.add_argument(
        "--seed", type=int, default=DEFAULTS.seed, help="seed of the random directions (default: %(default)s)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=500, help="evaluation batch (memory only; default: %(default)s)"
    )
    parser.add_argument("--data-dir", type=Path, help="dataset cache (default: the run's paths.data_dir)")
    parser.add_argument("--device", default="cpu", help="default: %(default)s")
    parser.set_defaults(handler=landscape_command)


def landscape_command(args: argparse.Namespace) -> int:
    from optrepro.landscape.measure import measure
    from optrepro.landscape.plots import plot_1d, plot_2d
    from optrepro.landscape.record_update import write_landscape
    from optrepro.landscape.run_loader import load_run, read_finished_record

    settings = LandscapeSettings(
        samples=args.samples,
        points=args.points,
        points_2d=args.points_2d,
        span=args.span,
        directions=args.directions,
        rise_at=args.rise_at,
        hessian_iterations=args.hessian_iterations,
        rho=args.rho,
        ascent_steps=args.ascent_steps,
        seed=args.seed,
    )
    for run_dir in args.run_dirs:  # check every folder before the first (slow) measurement
        read_finished_record(run_dir)
    for run_dir in args.run_dirs:
        run = load_run(
            run_dir, samples=settings.samples, batch_size=args.batch_size, data_dir=args.data_dir, device=args.device
        )
        results = measure(run, settings)
        name = (run.record.get("repro") or {}).get("name") or run.record["run_id"]
        out = Path(run_dir) / "landscape"
        plot_1d(results["slice_1d"], f"{name} seed {run.record['seed']}: 1-D slices", out / "slice_1d.png")
        if results["slice_2d"] is not None:
            plot_2d(results["slice_2d"], f"{name} seed {run.record['seed']}: 2-D loss contour", out / "slice_2d.png")
        write_landscape(run_dir, results)
        figures = ", ".join(f"{k.split('/', 1)[1]}={v:.4g}" for k, v in results["metrics"].items())
        print(f"{run_dir}: {figures}")
    return 0
