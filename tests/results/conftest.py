"""Fixtures: a tiny config tree and a records folder (see tests/claimkit)."""

from claimkit.fixtures import config_dir, records  # noqa: F401
