"""Train one setting: `python run.py +repro=sam_cifar` or any composition of config groups (see README)."""
import sys

import hydra
from omegaconf import DictConfig

from optrepro.errors import OptreproError
from optrepro.train import run


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except OptreproError as exc:
        print(f"optrepro: error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
