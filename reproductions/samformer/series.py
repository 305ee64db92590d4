"""The paper's real datasets, read from the standard long-horizon forecasting CSVs (one `date` column, then one
column per channel: ETTh1.csv ... traffic.csv of the TSMixer / Autoformer bundles), split and windowed as the
official loader (utils/data_utils.py, from TSMixer; re-implemented): ETTh* 12/4/4 months of hourly rows, ETTm* the
same in 15-minute rows, the others 70/10/20 %; the test rows start `length` rows before their boundary; every
channel is standardised with the training rows' mean and (population) std. The validation split only serves the
official early stopping, which this product does not do (README, deviations), so it is not built.

Windows are strided views of one tensor (no copy on the CPU): inputs B x D x L, targets the next H rows, B x D x H.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from optrepro.data.splits import ArraySplits
from optrepro.errors import DatasetUnavailableError

SOURCES = (
    "ETT*.csv: https://github.com/zhouhaoyi/ETDataset (ETT-small); weather, electricity, traffic, "
    "exchange_rate: the Autoformer bundle (https://github.com/thuml/Autoformer, 'all_six_datasets')"
)
HOURS_PER_MONTH = 30 * 24
ROWS_PER_HOUR = {"ett_hour": 1, "ett_minute": 4}
SPLITS = ("ett_hour", "ett_minute", "ratio")
# Rows of each real CSV (ETTh1.csv: 17420 in the official repo; the others as the TSMixer / Autoformer bundles list
# them, not checked here): only the full-tier test's plan reads them, for the real epoch's short last batch.
REAL_ROWS = {
    "ETTh1.csv": 17420,
    "ETTh2.csv": 17420,
    "ETTm1.csv": 69680,
    "ETTm2.csv": 69680,
    "weather.csv": 52696,
    "electricity.csv": 26304,
    "traffic.csv": 17544,
    "exchange_rate.csv": 7588,
}


def split_rows(rows: int, split: str) -> tuple[int, int, int]:
    """(train_end, val_end, test_end) row indices of the official split."""
    if split in ROWS_PER_HOUR:
        month = HOURS_PER_MONTH * ROWS_PER_HOUR[split]
        return 12 * month, 16 * month, 20 * month
    return int(rows * 0.7), rows - int(rows * 0.2), rows


def windows(values: torch.Tensor, length: int, horizon: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (input, target) pair of a T x D float tensor: (N x D x L, N x D x H) views, N = T - L - H + 1."""
    count = values.shape[0] - length - horizon + 1
    x = values[: count + length - 1].unfold(0, length, 1)
    y = values[length:].unfold(0, horizon, 1)
    return x, y


def csv_path(dataset_cfg, data_dir: str | Path) -> Path:
    """`dataset.path`, else <data_dir>/samformer/<file>; missing: one line saying where to put it and where to
    get it."""
    path = Path(dataset_cfg.path) if dataset_cfg.get("path") else Path(data_dir) / "samformer" / str(dataset_cfg.file)
    if not path.is_file():
        raise DatasetUnavailableError(
            f"{dataset_cfg.name}: {path} does not exist; put {dataset_cfg.file} there or set dataset.path=<file>. "
            f"To get it (internet): {SOURCES}"
        )
    return path


def read_channels(path: Path) -> np.ndarray:
    """T x D float64 values of a CSV whose first column is `date`."""
    with path.open() as handle:
        header = handle.readline().strip().split(",")
    if header[0] != "date":
        raise DatasetUnavailableError(
            f"{path}: the first column is {header[0]!r}, not 'date'; use the standard CSV "
            f"(date, then one column per channel). To get it: {SOURCES}"
        )
    return np.loadtxt(path, delimiter=",", skiprows=1, usecols=range(1, len(header)), dtype=np.float64, ndmin=2)


def load_series(dataset_cfg, data_dir: str | Path) -> ArraySplits:
    """Training and test windows of one CSV (knobs in configs/dataset/<name>.yaml)."""
    values = read_channels(csv_path(dataset_cfg, data_dir))
    length, horizon = int(dataset_cfg.length), int(dataset_cfg.horizon)
    train_end, val_end, test_end = split_rows(len(values), str(dataset_cfg.split))
    train = values[:train_end]
    mean, std = train.mean(axis=0), train.std(axis=0)
    scaled = torch.from_numpy(((values - mean) / np.where(std > 0, std, 1.0)).astype(np.float32))
    x_train, y_train = windows(scaled[:train_end], length, horizon)
    x_test, y_test = windows(scaled[val_end - length : test_end], length, horizon)
    if len(x_train) < 1 or len(x_test) < 1:
        raise DatasetUnavailableError(
            f"{dataset_cfg.name}: {len(values)} rows give no window of {length} + "
            f"{horizon} rows in the training or test split; use the full CSV ({SOURCES})"
        )
    return ArraySplits(x_train, y_train, x_test, y_test, horizon, str(dataset_cfg.name), (0.0,), (1.0,))


def real_train_size(dataset_cfg) -> int:
    """Training windows of the real file (tests/full_tier: the real epoch's short last batch)."""
    train_end, _, _ = split_rows(REAL_ROWS[str(dataset_cfg.file)], str(dataset_cfg.split))
    return train_end - int(dataset_cfg.length) - int(dataset_cfg.horizon) + 1


def write_sample(folder: Path, dataset_cfg, num_train: int) -> Path:
    """A generated CSV in the real format with at least `num_train` training windows and test windows
    (tests/full_tier; the run keeps `num_train` of them with dataset.train_subset)."""
    from reproductions.samformer.tests.csv_sample import write_csv

    length, horizon, split = int(dataset_cfg.length), int(dataset_cfg.horizon), str(dataset_cfg.split)
    rows = (
        20 * HOURS_PER_MONTH * ROWS_PER_HOUR[split]
        if split in ROWS_PER_HOUR
        else math.ceil(max((num_train + length + horizon) / 0.7, horizon / 0.2 + 10))
    )
    channels = 7 if split in ROWS_PER_HOUR else 3
    return write_csv(Path(folder) / str(dataset_cfg.file), rows=rows, channels=channels, seed=0)


load_series.real_train_size = real_train_size
load_series.write_sample = write_sample
