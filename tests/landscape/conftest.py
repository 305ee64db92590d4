"""The claims test kit's fixtures (tiny config tree, records folder) for the not-measured verdicts."""

from claimkit.fixtures import config_dir, records  # noqa: F401
