"""Adds every `reproductions/<paper>/configs` folder to Hydra's search path, and the `optrepro_root` resolver.

A paper's presets then live beside its claims file, and `+repro=<name>` finds them
without a central list that each new paper would have to edit. Hydra imports plugins before it composes
anything, so the resolver exists wherever a config is composed (run.py, launchers resolving the sweep
folder before a job starts, the claims tools, tests).
"""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin
from omegaconf import OmegaConf

from optrepro.paths import REPO_ROOT, reproduction_config_dirs

OmegaConf.register_new_resolver("optrepro_root", lambda: str(REPO_ROOT), replace=True)


class OptreproSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        for config_dir in reproduction_config_dirs():
            search_path.append(provider="optrepro", path=f"file://{config_dir}")
