"""Train one setting: `python run.py +repro=sam_cifar` or any composition of config groups (see README).

Only Hydra loads at start-up, so `--help`, `--cfg job` and shell completion never import torch or Lightning;
the config is checked (optrepro.config_schema) before the training code is imported.
"""

import sys

import hydra
from omegaconf import DictConfig

from optrepro.errors import OptreproError


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> None:
    from optrepro.config_schema import validate_config

    try:
        validate_config(cfg)
        from optrepro.train import run  # torch and Lightning load here, once a run starts

        run(cfg)
    except OptreproError as exc:
        print(f"optrepro: error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    if {"--help", "-h"} & set(sys.argv[1:]):
        from optrepro.app_help import app_help

        print(app_help(), end="")
        sys.exit(0)
    main()
