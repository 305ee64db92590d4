"""Silences the third-party messages that every run printed and that say nothing about the run, one by one.

Each filter names one message and why it is noise here; everything else (Lightning's warnings about a real
misconfiguration, e.g. "GPU available but not used") still reaches the user. W&B's `anonymous` deprecation is
fixed at its cause instead (optrepro.tracking starts the W&B run without that argument).
"""
from __future__ import annotations

import logging
import warnings

# Lightning's start-up notices, logged at INFO by its rank-zero helpers: the device line repeats the config
# (hardware.*), the tip advertises a product, the stop line repeats max_epochs; the run's own lines say more.
LIGHTNING_INFO_PREFIXES = (
    "GPU available:", "TPU available:", "HPU available:", "💡 Tip:", "`Trainer.fit` stopped:", "LOCAL_RANK:",
)
LIGHTNING_RANK_ZERO_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")


class _DropPrefixes(logging.Filter):
    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


_NOTICE_FILTER = _DropPrefixes(LIGHTNING_INFO_PREFIXES)


def silence_third_party_noise() -> None:
    """Install the filters (idempotent)."""
    from lightning.fabric.utilities.warnings import PossibleUserWarning

    # Lightning sees `srun` on a cluster login node and suggests prefixing it; optrepro's SLURM jobs are started
    # by the submitit launcher (which uses srun), and a local `python run.py` is meant to run locally.
    warnings.filterwarnings("ignore", message=r"The `srun` command is available on your system but is not used",
                            category=PossibleUserWarning)
    # torch deprecated isinstance(x, LeafSpec); Lightning's own pytree helper still uses it (not our call).
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                            module=r"lightning\.pytorch\.utilities\._pytree")
    for name in LIGHTNING_RANK_ZERO_LOGGERS:
        logger = logging.getLogger(name)
        if _NOTICE_FILTER not in logger.filters:
            logger.addFilter(_NOTICE_FILTER)
