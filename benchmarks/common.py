"""What every benchmark shares: the real config tree, interleaved repetitions, and the final ratio line.

Interleaving (each repetition runs every contender once, in a rotated order) makes machine noise and
slow drift hit all contenders alike; the median over repetitions then drops the odd disturbed one.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable, Iterable, Sequence

import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from optrepro.paths import CONFIG_DIR

# The SAM-family cpu tier's data shape (Fashion-MNIST: 1x28x28, 10 classes, pad-4 crop + flip) as seeded
# synthetic data: pixel values do not change CPU time, and it needs no download. Train size as the tier's subset.
FASHION_MNIST_SHAPED = (
    "dataset=synthetic",
    "dataset.shape=[1,28,28]",
    "dataset.num_classes=10",
    "dataset.num_samples=10000",
    "dataset.num_test=128",
    "++dataset.augment={crop_padding:4,flip:true}",
)


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a seconds-long run that checks the script works")
    return parser.parse_args()


def compose_config(overrides: Sequence[str]) -> DictConfig:
    """The config `python run.py <overrides>` gets."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        return compose(config_name="train", overrides=list(overrides))


def quiet_lightning() -> None:
    """Lightning's per-Trainer banners and hints would bury the figures."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "optrepro"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module=r"lightning(\.|$)")


def describe_machine() -> None:
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads"
    )


def interleaved(contenders: dict[str, Callable[[], float]], repetitions: int) -> dict[str, list[float]]:
    """Call every contender once per repetition, the order rotated each time; returns each one's results."""
    names = list(contenders)
    results: dict[str, list[float]] = {name: [] for name in names}
    for repetition in range(repetitions):
        shift = repetition % len(names)
        for name in names[shift:] + names[:shift]:
            results[name].append(contenders[name]())
    return results


def timed(action: Callable[[], object]) -> float:
    """Seconds `action` takes."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def timed_both_clocks(action: Callable[[], object]) -> tuple[float, float]:
    """Wall seconds and this process's CPU seconds `action` takes."""
    wall, cpu = time.perf_counter(), time.process_time()
    action()
    return time.perf_counter() - wall, time.process_time() - cpu


def median_ratio(numerators: Iterable[float], denominators: Iterable[float]) -> float:
    """Median of the per-repetition ratios: each pair shares one repetition's machine state."""
    return statistics.median(n / d for n, d in zip(numerators, denominators, strict=True))


def print_ratio(label: str, value: float) -> None:
    print(f"RATIO {label}: {value:.3f}")
