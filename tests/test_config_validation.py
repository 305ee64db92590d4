"""The config checked as a layer (optrepro.config_schema): each bad input stops with one line naming its key, the
problem and the fix; every preset and every documented command passes; run.py fails before making a run folder."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from typing import Annotated

import pytest
from helpers.compose import compose_config
from helpers.rejected import rejected_run
from pydantic import Field

from optrepro import config_schema
from optrepro.config_schema import validate_config
from optrepro.errors import InvalidConfigError, OptreproError
from optrepro.paths import REPO_ROOT, reproduction_config_dirs

# overrides -> the key the message starts with, a fragment of the message. GPUs on this machine: see `gpus`.
BAD_INPUTS: list[tuple[list[str], str, str]] = [
    (["seed=abc"], "seed", "'abc' is not a whole number; give an integer"),
    (
        ["dataset=digits", "dataset.path=/nonexistent/x"],
        "dataset.path",
        "digits reads no files (it ships with a package or is generated), so the path would be ignored; remove",
    ),
    (["dataset=mnist1d", "dataset.path=/data/mnist1d"], "dataset.path", "mnist1d reads no files"),
    (["seed=1.5"], "seed", "1.5 is not a whole number"),
    (["seed=-1"], "seed", "must be >= 0"),
    (["skip_finished=maybe"], "skip_finished", "is not true or false"),
    (["name=a/b"], "name", "'a/b' is not a folder name"),
    (["hardware.devices=0"], "hardware.devices", "must be >= 1, got 0"),
    (["hardware.num_nodes=0"], "hardware.num_nodes", "must be >= 1"),
    (["hardware.precision=fp8"], "hardware.precision", "valid choices: '32-true'"),
    (["hardware.precision=16-mixed"], "hardware.precision", "needs a GPU; on the CPU use hardware.precision=bf16"),
    (["train.epochs=0"], "train.epochs", "must be >= 1, got 0"),
    (["train.batch_size=-8"], "train.batch_size", "must be >= 1"),
    (["train.accumulate=0"], "train.accumulate", "must be >= 1"),
    (
        ["hardware=ddp_cpu", "train.batch_size=127"],
        "train.batch_size",
        "127 does not split evenly over 2 devices (hardware.devices=2 x hardware.num_nodes=1); choose a batch size",
    ),
    (["train.accumulate=3"], "train.accumulate", "per-device batch 128 does not split into 3 micro-batches"),
    (
        ["optimizer=sam", "optimizer.m_sharpness=3"],
        "optimizer.m_sharpness",
        "must divide every per-device micro-batch, but the per-device batch 128 gives micro-batches of 128",
    ),
    (
        ["optimizer=sam", "hardware=ddp_cpu", "train.accumulate=2", "optimizer.m_sharpness=64"],
        "optimizer.m_sharpness",
        "micro-batches of 32 (train.accumulate=2); choose an m dividing 32",
    ),
    (["train.drop_last=yes"], "train.drop_last", "is not true or false"),
    (["optimizer=sam", "optimizer.m_sharpness=0"], "optimizer.m_sharpness", "must be >= 1"),
    (["optimizer=sam", "optimizer.rho=-1"], "optimizer.rho", "must be >= 0"),
    (
        ["optimizer=asam", "~optimizer.eta", "~optimizer.perturb"],
        "optimizer.eta",
        "missing from the two_pass optimizer 'asam' (so are perturb); start the optimizer config with `defaults: [sam",
    ),
    (["optimizer.base.lr=nan"], "optimizer.base.lr", "nan is not a finite number"),
    (["optimizer.base.lr=inf"], "optimizer.base.lr", "is not a finite number"),
    (["optimizer.base.lr=0"], "optimizer.base.lr", "must be > 0"),
    (["optimizer.base.lr=fast"], "optimizer.base.lr", "'fast' is not a number"),
    (["optimizer.base.momentum=1.5"], "optimizer.base.momentum", "must be <= 1"),
    (["optimizer=adam", "optimizer.base.betas=[0.9]"], "optimizer.base.betas", "has 1 items, needs 2"),
    (
        ["optimizer.step=three_pass"],
        "optimizer.step",
        "unknown value 'three_pass'; valid choices: <module>:<function>, gam",
    ),
    (
        ["optimizer.step=reproductions.nowhere:build"],
        "optimizer.step",
        "cannot import 'build' from 'reproductions.nowhere'",
    ),
    (["optimizer.base._target_=torch.optim.Sgd"], "optimizer.base._target_", "cannot import 'torch.optim.Sgd'"),
    (["optimizer.base._partial_=false"], "optimizer.base", "must be a Hydra partial: add `_partial_: true`"),
    (
        ["optimizer=adamw", "optimizer.weight_decay_mode=coupled"],
        "optimizer.weight_decay_mode",
        "AdamW applies decoupled weight decay",
    ),
    (["model.width=0"], "model.width", "must be >= 1"),
    (["model=wrn28_10", "model.widen_factor=-2"], "model.widen_factor", "must be >= 1"),
    (["model=mlp", "model.hidden=[256,0]"], "model.hidden[1]", "must be >= 1, got 0"),
    (["train.label_smoothing=1.0"], "train.label_smoothing", "must be < 1"),
    (["loss._target_=optrepro.losses.Focal"], "loss._target_", "cannot import 'optrepro.losses.Focal'"),
    (["+repro=gs_cdigits_sd_smoke", "loss.anneal_step=-1"], "loss.anneal_step", "must be >= 0, got -1"),
    (["+trainer.max_epochs=3"], "trainer.max_epochs", "is computed by optrepro; set train.epochs"),
    (["+callbacks.lr.logging_interval=step"], "callbacks.lr", "has no _target_"),
    (["+dataset.loader=reproductions.nowhere.load"], "dataset.loader", "cannot import 'reproductions.nowhere.load'"),
    (["train.ckpt_path=no/such/last.ckpt"], "train.ckpt_path", "no file at no/such/last.ckpt"),
    (["+train.epoch=5"], "train.epoch", "not a config key"),
    (["limits.train_batches=0.5"], "limits.train_batches", "0.5 is not a whole number"),
    (["dataset.label_noise=1.2"], "dataset.label_noise", "must be < 1"),
    (["dataset.val_fraction=1.0"], "dataset.val_fraction", "must be < 1"),
    (["dataset.val_fraction=0"], "dataset.val_fraction", "must be > 0"),
    (
        ["dataset=imagenet", "dataset.path=x", "+dataset.val_fraction=0.1"],
        "dataset.val_fraction",
        "no held-out validation split",
    ),
    (["dataset.augment.pad_mode=edge"], "dataset.augment.pad_mode", "valid choices: reflect, zeros"),
    (["+dataset.augment.rotate=10"], "dataset.augment.rotate", "not a config key"),
    (["dataset=modular_addition", "dataset.operation=divide"], "dataset.operation", "valid choices: add, multiply"),
    (["dataset=colored_digits", "dataset.base=cifar10"], "dataset.base", "valid choices: digits, fashion_mnist"),
    (["scheduler.warmup_epochs=5"], "scheduler.warmup_epochs", "fill all train.epochs=2"),
    (["logger.wandb.mode=sometimes"], "logger.wandb.mode", "valid choices: 'auto'"),
    (["cluster.timeout_min=0"], "cluster.timeout_min", "must be >= 1"),
    (["hardware=cpu", "+hardware/compression=powersgd"], "hardware.grad_compression", "is a DDP communication hook"),
    (["task=structure_learning"], "task", "needs a `structure` block"),
    (["+repro=notears_topo_smoke", "structure.d=1"], "structure.d", "must be >= 2"),
    (["+repro=sam_cifar"], "hardware", "no CUDA GPU; add hardware=cpu"),
    (["+repro=sam_cifar", "hardware=ddp"], "hardware.devices", "8 GPUs asked for, this machine has 2"),
    (["paths.runs_dir=${oc.env:OPTREPRO_NO_SUCH_VARIABLE}"], "paths.runs_dir", "cannot be resolved"),
]


@pytest.fixture
def gpus(monkeypatch):
    """The number of CUDA GPUs validation sees: set, so the table means the same on every machine."""

    def set_count(count: int) -> None:
        monkeypatch.setattr(config_schema, "gpu_count", lambda: count)

    return set_count


def error_for(overrides: list[str]) -> OptreproError:
    with pytest.raises(OptreproError) as raised:
        validate_config(compose_config(overrides))
    return raised.value


@pytest.mark.parametrize("overrides,key,fragment", BAD_INPUTS, ids=[" ".join(row[0]) for row in BAD_INPUTS])
def test_bad_input_names_key_problem_and_fix(overrides, key, fragment, gpus):
    gpus(0 if overrides == ["+repro=sam_cifar"] else 2)
    error = error_for(overrides)
    message = str(error)
    assert "\n" not in message
    assert message.startswith(key), message
    assert fragment in message, message
    if isinstance(error, InvalidConfigError):  # the schema's own: exactly `<key>: <problem>; <fix>`
        assert error.key == key and error.problem and error.fix
        assert message == f"{key}: {error.problem}; {error.fix}"


def test_a_misspelling_is_told_only_the_valid_keys_beside_it(gpus):
    """Two unknown keys in one block: the line names the first and offers neither as a key to choose."""
    gpus(0)
    error = error_for(["+train.epoch=5", "+train.batch=3"])
    assert error.key == "train.epoch" and "batch," not in str(error)
    assert error.fix.startswith("check the spelling; the keys here are accumulate, batch_size, ")
    assert ", epoch," not in error.fix and ", batch," not in error.fix


class BoundedKnobs(config_schema.Section):
    """Fields whose bounds exclude the generic examples 1 and 0.1 of a type error's fix."""

    clusters: Annotated[int, Field(ge=2)] = 2
    optional_width: Annotated[int, Field(gt=4)] | None = None
    factor: Annotated[float, Field(ge=1.5)] = 2.0
    fraction: Annotated[float, Field(gt=0, lt=0.05)] = 0.01
    count: int = 3


# knob=bad value -> the fix the line gives: the example moves inside the field's bounds, and stays 1 / 0.1 without any
@pytest.mark.parametrize(
    "knob,value,fix",
    [
        ("clusters", 1.5, "give an integer, e.g. task.clusters=2"),
        ("optional_width", "x", "give an integer, e.g. task.optional_width=5"),
        ("factor", "x", "give a number, e.g. task.factor=1.5"),
        ("fraction", "x", "give a number, e.g. task.fraction=0.025"),
        ("count", 2.5, "give an integer, e.g. task.count=1"),
    ],
)
def test_a_type_errors_example_is_a_value_the_field_accepts(knob, value, fix):
    with pytest.raises(InvalidConfigError) as caught:
        config_schema.check_node({knob: value}, "task", BoundedKnobs)
    assert caught.value.key == f"task.{knob}" and caught.value.fix == fix


def test_table_is_large_enough():
    assert len(BAD_INPUTS) >= 25 and len({" ".join(row[0]) for row in BAD_INPUTS}) == len(BAD_INPUTS)


def repro_presets() -> list[str]:
    return sorted(p.stem for d in reproduction_config_dirs() for p in (d / "repro").glob("*.yaml"))


@pytest.mark.parametrize("preset", repro_presets())
def test_every_preset_passes(preset, gpus):
    gpus(16)  # a GPU node with enough GPUs for the largest preset (multinode: 8 per node)
    validate_config(compose_config([f"+repro={preset}"]))


DOCUMENTED = [REPO_ROOT / "README.md", *sorted(REPO_ROOT.glob("reproductions/*/README.md"))]
COMMAND = re.compile(r"python run\.py ([^#`\n\\]*)")


def first_sweep_value(word: str) -> str:
    """`key=a,b` (a multirun sweep) -> `key=a`; a list value `key=[a,b]` stays whole."""
    value = word.partition("=")[2]
    return word if value.startswith("[") else word.split(",")[0]


def documented_overrides() -> list[list[str]]:
    """The overrides of every `python run.py ...` in the READMEs (a sweep takes its first value; placeholders such as
    <lr> out)."""
    commands = []
    for path in DOCUMENTED:
        for match in COMMAND.finditer(path.read_text()):
            if any(p in match.group(1) for p in ("...", "{", "<", "=S", "--")):
                continue
            words = shlex.split(match.group(1))  # as the shell hands them to run.py: quotes removed
            if words:
                commands.append(
                    [first_sweep_value(w) for w in words if w != "-m" and not w.startswith("hydra/launcher=")]
                )
    return commands


@pytest.mark.parametrize("overrides", documented_overrides(), ids=" ".join)
def test_documented_commands_pass(overrides, gpus):
    gpus(16)
    validate_config(compose_config(overrides))


def test_documented_commands_are_found():
    found = [" ".join(o) for o in documented_overrides()]
    assert "+repro=sam_cifar" in found and "model=wrn28_10 optimizer=sam dataset=cifar100 hardware=gpu seed=1" in found
    assert len(found) >= 15


@pytest.mark.parametrize("override,key", [("seed=abc", "seed"), ("hardware.devices=0", "hardware.devices")])
def test_run_py_prints_one_line_and_makes_no_run_folder(override, key, tmp_path):
    env = os.environ | {"PYTHONPATH": str(REPO_ROOT / "src")}
    stderr = rejected_run([override], tmp_path, timeout=120, env=env)
    assert stderr.startswith(f"optrepro: error: {key}: ") and stderr.count("\n") == 1, stderr


def test_type_and_range_errors_come_without_importing_torch():
    code = (
        "import sys\nfrom helpers.compose import compose_config\n"
        "from optrepro.config_schema import validate_config\n"
        "try: validate_config(compose_config(['seed=abc']))\nexcept Exception as e: print(e)\n"
        "print('torch' in sys.modules)"
    )
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "src"), str(REPO_ROOT / "tests")])}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.splitlines() == [
        "seed: 'abc' is not a whole number; give an integer from 0 to 4294967295, e.g. seed=0",
        "False",
    ], done.stdout + done.stderr
