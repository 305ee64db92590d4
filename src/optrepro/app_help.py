"""`python run.py --help`: what run.py does, the commands users need, and the config groups.

Printed by run.py before Hydra starts: Hydra's own help page lists its config groups by composing the config
once per group (about 2 s here), while the folders below name the same options in milliseconds.
Hydra's flags stay behind `--hydra-help`.
"""

from __future__ import annotations

from pathlib import Path

from optrepro.paths import CONFIG_DIR, reproduction_config_dirs

USAGE = """\
python run.py [group=option ...] [key=value ...]

Trains and evaluates one setting of an optimization-for-deep-learning paper and writes its run record
(runs/<date>/<name>/<run>/record.json: final and best metrics, the resolved config and its hashes).
The config is checked before any work: a bad value stops with one line that names the key and the fix.

Commands (an example each):
  python run.py +repro=sam_fmnist_cpu                 a paper preset (SAM, CPU tier: minutes on 2 cores)
  python run.py model=wrn28_10 optimizer=sam dataset=cifar10 hardware=gpu seed=1
                                                      compose config groups freely
  python run.py optimizer=sam optimizer.rho=0.1 train.epochs=30
                                                      override any key (a key not in the config: +key=value)
  python run.py +repro=sam_fmnist_cpu debug=smoke     3 batches end to end: does the setting run?
  python run.py +repro=sam_cifar hardware=cpu         a GPU preset on a machine without a GPU
  python run.py -m seed=0,1,2                         a local sweep, one run after another
  python run.py -m hydra/launcher=slurm +repro=sam_cifar seed=0,1,2,3,4
                                                      the same sweep as one SLURM job array
  python run.py +repro=sam_cifar --cfg job            print the composed config; run nothing
  python -m optrepro claims run sam --tier cpu        only the missing runs of a paper's claims
  python -m optrepro --help                           the claims, results and landscape tools
"""

FOOTER = """\
More: README.md (composing a run, what a run leaves, clusters). Hydra's own flags: python run.py --hydra-help
Shell completion (bash): eval "$(python run.py -sc install=bash)"
"""


def config_groups(config_dirs: list[Path]) -> dict[str, list[str]]:
    """Group -> options, from the config folders as Hydra searches them (Hydra's own `hydra/` groups left out)."""
    groups: dict[str, set[str]] = {}
    for config_dir in config_dirs:
        for path in config_dir.rglob("*.yaml"):
            group = path.parent.relative_to(config_dir).as_posix()
            if group != "." and not group.startswith("hydra"):
                groups.setdefault(group, set()).add(path.stem)
    return {group: sorted(options) for group, options in sorted(groups.items())}


def app_help() -> str:
    """The whole help page."""
    groups = config_groups([CONFIG_DIR, *reproduction_config_dirs()])
    lines = [f"  {group}: {', '.join(options)}" for group, options in groups.items()]
    heading = "Config groups (group=option; paper presets: +repro=<name>):"
    return f"{USAGE}\n{heading}\n" + "\n".join(lines) + f"\n\n{FOOTER}"
