"""Adds every `reproductions/<paper>/configs` folder to Hydra's search path.

A paper's presets then live beside its claims file, and `+repro=<name>` finds them
without a central list that each new paper would have to edit.
"""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

from optrepro.paths import reproduction_config_dirs


class OptreproSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        for config_dir in reproduction_config_dirs():
            search_path.append(provider="optrepro", path=f"file://{config_dir}")
