"""Silences the third-party messages that every run printed and that say nothing about the run, one by one.

Each filter names one message and why it is noise here; everything else (Lightning's warnings about a real
misconfiguration, e.g. "GPU available but not used") still reaches the user. W&B's `anonymous` deprecation is
fixed at its cause instead (optrepro.tracking starts the W&B run without that argument).
"""

from __future__ import annotations

import logging
import warnings

# Lightning's start-up notices, logged at INFO: the device lines repeat the config (hardware.*), the tip advertises
# a product, the stop line repeats max_epochs; the Tensor Cores advice would change the numbers a preset fixes
# (hardware.precision decides them). The run's own epoch lines and summary say what matters.
# rank_zero_info logs through whichever of Lightning's two rank-zero loggers was imported last: filter both.
RANK_ZERO_NOTICES = (
    "GPU available:",
    "TPU available:",
    "HPU available:",
    "💡 Tip:",
    "`Trainer.fit` stopped:",
    "You are using a CUDA device",
)
LIGHTNING_NOTICES = {
    "lightning.pytorch.utilities.rank_zero": RANK_ZERO_NOTICES,
    "lightning.fabric.utilities.rank_zero": RANK_ZERO_NOTICES,
    "lightning.pytorch.accelerators.cuda": ("LOCAL_RANK:",),
}


class _DropPrefixes(logging.Filter):
    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


_NOTICE_FILTERS = {name: _DropPrefixes(prefixes) for name, prefixes in LIGHTNING_NOTICES.items()}


def silence_third_party_noise() -> None:
    """Install the filters (idempotent)."""
    from lightning.fabric.utilities.warnings import PossibleUserWarning

    # Lightning sees `srun` on a cluster login node and suggests prefixing it; optrepro's SLURM jobs are started
    # by the submitit launcher (which uses srun), and a local `python run.py` is meant to run locally.
    warnings.filterwarnings(
        "ignore",
        message=r"The `srun` command is available on your system but is not used",
        category=PossibleUserWarning,
    )
    # torch deprecated isinstance(x, LeafSpec); Lightning's own pytree helper still uses it (not our call).
    warnings.filterwarnings(
        "ignore",
        message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        module=r"lightning\.pytorch\.utilities\._pytree",
    )
    for name, notice_filter in _NOTICE_FILTERS.items():
        logger = logging.getLogger(name)
        if notice_filter not in logger.filters:
            logger.addFilter(notice_filter)
