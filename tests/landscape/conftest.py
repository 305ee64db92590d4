"""The claims test kit's fixtures (tiny config tree, composer, records folder) for the not-measured verdicts."""

from claimkit.fixtures import composer, config_dir, records  # noqa: F401
