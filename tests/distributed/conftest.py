"""The local SLURM cluster fixture of tests/slurm, for the PowerSGD run through SLURM."""

from slurm.conftest import slurm_env  # noqa: F401  (a fixture, used by name)
