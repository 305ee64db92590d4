"""Fixtures: a tiny config tree, a composer, and a records folder (see tests/claimkit)."""

from claimkit.fixtures import composer, config_dir, records  # noqa: F401
