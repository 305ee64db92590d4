"""The composed run config as a typed schema (pydantic v2), checked before any run folder, data load or process.

Every key has a type and a range; unknown keys are errors (except where a group passes keyword arguments on, such
as `model`, `optimizer.base`, `dataset`); the rules that tie keys together run once every value is well typed.
A failure becomes one line, `<key>: <problem>; <fix>` (InvalidConfigError); checks that live beside the code they
protect (the batch split, PowerSGD, the task's own block, the loss, the base optimizer) are called from here, so
their messages come before any work too. A new config key needs a field here.

Valid choices come from the modules that define them (imported when a value is checked: many import torch).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import ErrorDetails

from optrepro.errors import InvalidConfigError, OptreproError
from optrepro.paths import import_reproductions

PosInt = Annotated[int, Field(ge=1)]
NonNegInt = Annotated[int, Field(ge=0)]
PosFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
Probability = Annotated[float, Field(ge=0, le=1)]
Fraction = Annotated[float, Field(ge=0, lt=1)]  # 1 would leave nothing (label noise, smoothing, dropout)
Text = Annotated[str, Field(min_length=1)]
SEED_MAX = 2**32 - 1  # numpy's and Lightning's seed range


def choice(source: str) -> AfterValidator:
    """A value that must be one of `module:NAME` (a tuple or a dict's keys), looked up when a value is checked."""

    def check(value: str, info: ValidationInfo) -> str:
        if info.context.get("types_only"):
            return value
        module, name = source.split(":")
        import_reproductions()  # a choice a paper's own module defines
        valid = tuple(getattr(importlib.import_module(module), name))
        if value not in valid:
            raise ValueError(f"unknown value {value!r}; valid choices: {', '.join(sorted(valid))}")
        return value

    return AfterValidator(check)


def step_builder(value: str, info: ValidationInfo) -> str:
    """`optimizer.step`: a registered strategy, or a paper's own builder as `module:function` (imported to check)."""
    if not info.context.get("types_only"):
        from optrepro.optim.factory import resolve_step_builder

        try:
            resolve_step_builder(value)
        except OptreproError as error:
            message = str(error).replace(f"optimizer.step={value!r}: ", "")
            raise ValueError(message.replace("unknown optimizer.step ", "unknown value ")) from None
    return value


class Section(BaseModel):
    """A config block whose keys are all known: a misspelled or invented key is an error, not ignored."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, populate_by_name=True)


class OpenSection(Section):
    """A block that also passes keyword arguments on (model factories, optimizers, dataset loaders)."""

    model_config = ConfigDict(extra="allow")


class Repro(Section):
    paper: str | None = None
    name: str | None = None
    tier: str | None = None
    arm: str | None = None


class Train(Section):
    epochs: PosInt
    batch_size: PosInt
    accumulate: PosInt = 1
    drop_last: bool = False
    grad_clip: PosFloat | None = None
    label_smoothing: Fraction = 0.0
    loss_dtype: Annotated[str, choice("optrepro.losses:LOSS_DTYPES")] | None = None
    eval_every: PosInt = 1
    checkpoint: bool = True
    ckpt_path: Text | None = None


class Limits(Section):
    max_epochs: PosInt | None = None
    train_batches: PosInt | None = None  # a count: the scheduler's steps per epoch are computed from it
    eval_batches: NonNegInt | None = None


class Model(OpenSection):
    name: Text
    target: Text = Field(alias="_target_")
    depth: PosInt | None = None
    width: PosInt | None = None
    widen_factor: PosInt | None = None
    alpha: PosInt | None = None
    hidden: list[PosInt] | None = None
    dropout: Fraction | None = None


class Augment(Section):
    crop_padding: NonNegInt = 0
    flip: bool = False
    cutout: NonNegInt = 0
    pad_mode: Annotated[str, choice("optrepro.data.augment:PAD_MODES")] = "zeros"


class Dataset(OpenSection):
    name: Text  # a product dataset (optrepro.data.registry), or any name with the paper's own `loader`
    loader: Text | None = None
    path: Text | None = None
    label_noise: Fraction = 0.0
    train_subset: PosInt | None = None
    val_fraction: Annotated[float, Field(gt=0, lt=1)] | None = None  # data.validation: evaluate on a held-out part
    augment: Augment = Augment()
    num_workers: NonNegInt | None = None
    num_samples: PosInt | None = None
    num_test: PosInt | None = None
    num_classes: Annotated[int, Field(ge=2)] | None = None
    shape: list[PosInt] | None = None
    modulus: Annotated[int, Field(ge=2)] | None = None
    train_fraction: Annotated[float, Field(gt=0, lt=1)] | None = None
    n_train: PosInt | None = None
    n_test: PosInt | None = None
    noise: NonNegFloat | None = None
    downsample: PosInt | None = None
    label_flip: Probability | None = None
    color_flip_train: list[Probability] | None = None
    color_flip_test: Probability | None = None
    operation: Annotated[str, choice("optrepro.data.modular_data:OPERATIONS")] | None = None
    base: Annotated[str, choice("reproductions.gradient_starvation.colored_digits:BASES")] | None = None


class BaseOptimizer(OpenSection):
    target: Text = Field(alias="_target_")
    partial: bool = Field(False, alias="_partial_")
    lr: PosFloat
    momentum: Probability | None = None
    weight_decay: NonNegFloat | None = None
    betas: Annotated[list[Fraction], Field(min_length=2, max_length=2)] | None = None
    eps: PosFloat | None = None
    epsilon: PosFloat | None = None
    k: Annotated[str, choice("optrepro.optim.lion:K_CHOICES")] | None = None


class Optimizer(OpenSection):
    name: Text
    step: Annotated[str, AfterValidator(step_builder)]
    base: BaseOptimizer
    weight_decay_mode: Annotated[str, choice("optrepro.optim.factory:WEIGHT_DECAY_MODES")] | None = None
    no_decay_norm_and_bias: bool | None = None  # every value below: configs/optimizer/<name>.yaml (SAM's: sam.yaml)
    orthogonal_grad: bool = False
    rho: NonNegFloat | None = None
    adaptive: bool | None = None
    eta: NonNegFloat | None = None
    normalize_bias: bool | None = None
    perturb: Annotated[str, choice("optrepro.optim.factory:PERTURB_CHOICES")] | None = None
    perturbation_sync: Annotated[str, choice("optrepro.optim.two_pass:PERTURBATION_SYNC_CHOICES")] | None = None
    m_sharpness: PosInt | None = None
    weight_decay_in_perturbation: bool | None = None
    reference: Annotated[str, choice("optrepro.optim.saf:TRAJECTORY_REFERENCES")] | None = None
    trajectory_weight: NonNegFloat | None = None
    temperature: PosFloat | None = None
    start_epoch: NonNegInt | None = None
    epochs_ago: PosInt | None = None
    ema_decay: Fraction | None = None
    memory_dtype: Annotated[str, choice("optrepro.optim.saf:MEMORY_DTYPES")] | None = None
    variant: Annotated[str, choice("optrepro.optim.gam:GAM_VARIANTS")] | None = None
    paper: dict[str, NonNegFloat] | None = None
    official_fd: dict[str, NonNegFloat] | None = None


class Scheduler(Section):
    """A product schedule by `name` (optrepro.schedulers.SCHEDULES), or a paper's own: `_target_` names its function
    and the node's other keys are that function's, checked by it (rule `paper_schedule`); `name` is then free."""

    model_config = ConfigDict(extra="allow")
    target: Text | None = Field(None, alias="_target_")
    name: Text
    warmup_epochs: NonNegFloat = 0
    min_lr: NonNegFloat | None = None
    milestones: list[NonNegInt] | None = None
    gamma: PosFloat | None = None

    @model_validator(mode="after")
    def product_or_paper(self, info: ValidationInfo) -> Scheduler:
        if self.target is not None:
            return self
        if self.model_extra:
            key = next(iter(self.model_extra))
            raise InvalidConfigError(
                f"scheduler.{key}",
                "not a key of the product's schedules",
                "check the spelling, or give a paper's schedule function in scheduler._target_",
            )
        if not info.context.get("types_only"):
            from optrepro.schedulers import SCHEDULES

            if self.name not in SCHEDULES:
                raise InvalidConfigError(
                    "scheduler.name",
                    f"unknown value {self.name!r}",
                    f"valid choices: {', '.join(sorted(SCHEDULES))}, or a paper's schedule (scheduler._target_)",
                )
        return self


class Hardware(Section):
    name: Text
    accelerator: Literal["cpu", "gpu"]
    devices: PosInt
    num_nodes: PosInt
    gpus_per_node: NonNegInt
    strategy: Text
    precision: Literal["32-true", "64-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true"]
    channels_last: bool
    compile: bool
    deterministic: bool
    cpu_threads: PosInt | None = None
    sync_batchnorm: bool
    grad_compression: dict[str, Any] | None = None  # checked by optrepro.distributed.check_grad_compression


class Wandb(OpenSection):
    enabled: bool
    project: Text
    entity: Text | None = None
    group: Text | None = None
    tags: list[str] = []
    mode: Literal["auto", "online", "offline", "disabled"]


class Logger(Section):
    wandb: Wandb
    csv: bool


class Paths(Section):
    root_dir: Text
    data_dir: Text
    runs_dir: Text
    run_dir: Text | None = None


class Cluster(Section):
    partition: Text | None = None
    account: Text | None = None
    qos: Text | None = None
    timeout_min: PosInt
    array_parallelism: PosInt
    cpus_per_task: PosInt
    mem_gb: PosInt | None = None
    additional_parameters: dict[str, Any] = {}
    signal_delay_s: NonNegInt
    max_num_timeout: NonNegInt


class RunConfig(Section):
    """The whole config of `python run.py`; the rules across blocks run after every block is valid."""

    seed: Annotated[int, Field(ge=0, le=SEED_MAX)]
    skip_finished: bool
    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.+=-]+$")]  # a folder name of the run
    task: dict[str, Any]  # `_target_` nodes: a paper's own code, checked by the rules below
    loss: dict[str, Any]
    repro: Repro
    train: Train
    limits: Limits
    model: Model
    dataset: Dataset
    optimizer: Optimizer
    scheduler: Scheduler
    hardware: Hardware
    logger: Logger
    paths: Paths
    cluster: Cluster
    structure: dict[str, Any] | None = None  # the structure-learning task's block, checked by that task
    trainer: dict[str, Any] | None = None  # Lightning Trainer options and `_target_` callbacks: open blocks,
    callbacks: dict[str, Any] | None = None  # checked by the trainer_and_callbacks rule

    @model_validator(mode="after")
    def rules(self, info: ValidationInfo) -> RunConfig:
        if not info.context.get("types_only"):
            for rule in RULES:
                rule(info.context["cfg"])
        return self


# ---------------------------------------------------------------------------------------------------- rules
# Each takes the composed DictConfig (every value already well typed) and raises an OptreproError.


def batch_split(cfg: DictConfig) -> None:
    """Global batch over devices and micro-batches, and the full batches' m-sharpness groups (config.py's checks);
    the epoch's short last batch is checked by optrepro.builders once the data's size is known."""
    from optrepro.config import check_epoch_batches

    check_epoch_batches(cfg, num_train=int(cfg.train.batch_size))  # one full batch: no short last one


def gpus_present(cfg: DictConfig) -> None:
    """A GPU preset on a machine without (enough) GPUs stops here instead of inside Lightning after a run folder."""
    if cfg.hardware.accelerator != "gpu":
        return
    found, wanted = gpu_count(), int(cfg.hardware.devices)
    if found == 0:
        gpus = f"{wanted} GPU{'s' if wanted > 1 else ''}"
        raise InvalidConfigError(
            "hardware",
            f"hardware={cfg.hardware.name} runs on {gpus}, but this machine has no CUDA GPU",
            "add hardware=cpu to run on the CPU (or hardware=ddp_cpu for 2 processes), or run on a GPU node",
        )
    if found < wanted:
        raise InvalidConfigError(
            "hardware.devices",
            f"{wanted} GPUs asked for, this machine has {found}",
            f"set hardware.devices={found} (train.batch_size stays the global batch), or run on a larger node",
        )


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def cpu_precision(cfg: DictConfig) -> None:
    if cfg.hardware.accelerator == "cpu" and cfg.hardware.precision in ("16-mixed", "16-true"):
        raise InvalidConfigError(
            "hardware.precision",
            f"{cfg.hardware.precision} (float16) needs a GPU",
            "on the CPU use hardware.precision=bf16-mixed or 32-true",
        )


def epochs_cover_schedule(cfg: DictConfig) -> None:
    if cfg.scheduler.get("warmup_epochs", 0) >= cfg.train.epochs:
        raise InvalidConfigError(
            "scheduler.warmup_epochs",
            f"{cfg.scheduler.warmup_epochs} warm-up epochs fill all train.epochs={cfg.train.epochs}",
            "set warmup_epochs below train.epochs (0: no warm-up)",
        )


def slurm_signal(cfg: DictConfig) -> None:
    if cfg.cluster.signal_delay_s >= cfg.cluster.timeout_min * 60:
        raise InvalidConfigError(
            "cluster.signal_delay_s",
            f"{cfg.cluster.signal_delay_s} s before the time limit is before the job "
            f"starts (cluster.timeout_min={cfg.cluster.timeout_min})",
            "set it well below timeout_min * 60",
        )


def checkpoint_exists(cfg: DictConfig) -> None:
    path = cfg.train.ckpt_path
    if path is not None and not Path(path).is_file():
        raise InvalidConfigError(
            "train.ckpt_path",
            f"no file at {path}",
            "give the path of a .ckpt file, e.g. <run folder>/checkpoints/last.ckpt",
        )


def importable_targets(cfg: DictConfig) -> None:
    from hydra.utils import get_object

    import_reproductions()  # a paper's own code: reproductions.<paper>.<module>
    for key in ("model._target_", "optimizer.base._target_", "task._target_", "loss._target_"):
        target = OmegaConf.select(cfg, key)
        try:
            get_object(target)
        except Exception as exc:  # Hydra wraps import and attribute errors alike
            raise InvalidConfigError(
                key,
                f"cannot import {target!r} ({type(exc).__name__})",
                "give a dotted path to a class or function, e.g. torch.optim.SGD",
            ) from None
    for key in ("model", "loss"):  # a paper's model or loss class checks its own node (DESIGN.md), as callbacks do
        paper_validate(get_object(cfg[key]._target_), cfg[key])


def paper_schedule(cfg: DictConfig) -> None:
    """A paper's schedule (`scheduler._target_`) built once for the run's epochs at one step each: its function
    checks its own keys (optrepro.schedulers.lr_multiplier)."""
    if cfg.scheduler.get("_target_") is None:
        return
    from optrepro.schedulers import lr_multiplier

    lr_multiplier(cfg.scheduler, steps_per_epoch=1, epochs=int(cfg.train.epochs), base_lr=1.0)


def base_optimizer(cfg: DictConfig) -> None:
    """`_partial_`, and the stated weight decay mode against what the base optimizer does (optim.factory); a paper's
    base optimizer class with a `validate(node)` checks its own knobs (reproductions/shampoo4bit)."""
    from optrepro.optim.factory import base_optimizer_factory

    base = base_optimizer_factory(cfg.optimizer)
    paper_validate(getattr(base, "func", base), cfg.optimizer.base)


def training_loss(cfg: DictConfig) -> None:
    """The `loss` node built with its arguments (a paper's loss checks its own, e.g. the SD anneal step)."""
    from optrepro.builders import build_train_loss

    build_train_loss(cfg)


PATH_DATASETS = ("cifar10", "cifar100", "fashion_mnist", "imagenet")  # the product datasets that read dataset.path


def dataset_source(cfg: DictConfig) -> None:
    """A product dataset by name, or a paper's own through `dataset.loader` (optrepro.data.registry); a loader
    function with a `validate(dataset_node)` attribute checks its own keys here, before any data is made."""
    from optrepro.data.registry import DATASET_NAMES, FOLDER_DATASETS, dataset_loader

    if cfg.dataset.get("loader") is not None:
        paper_validate(dataset_loader(cfg.dataset.loader), cfg.dataset)
    elif cfg.dataset.name not in DATASET_NAMES:
        raise InvalidConfigError(
            "dataset.name",
            f"unknown dataset {cfg.dataset.name!r}",
            f"valid choices: {', '.join(sorted(DATASET_NAMES))}",
        )
    elif cfg.dataset.get("val_fraction") and cfg.dataset.name in FOLDER_DATASETS:
        raise InvalidConfigError(
            "dataset.val_fraction",
            f"{cfg.dataset.name} is read from folders, which have no held-out validation split here",
            "remove dataset.val_fraction",
        )
    elif cfg.dataset.get("path") and cfg.dataset.name not in PATH_DATASETS:
        raise InvalidConfigError(
            "dataset.path",
            f"{cfg.dataset.name} reads no files (it ships with a package or is "
            "generated), so the path would be ignored",
            f"remove dataset.path, or choose a dataset that reads one: {', '.join(PATH_DATASETS)}",
        )


def trainer_and_callbacks(cfg: DictConfig) -> None:
    """Trainer options a user may set (the rest is derived) and callbacks that name their class (optrepro.builders)."""
    from optrepro.builders import callback_entries, trainer_options

    trainer_options(cfg)
    callback_entries(cfg)


def grad_compression(cfg: DictConfig) -> None:
    from optrepro.distributed.compression import check_grad_compression

    check_grad_compression(cfg)


def task_config(cfg: DictConfig) -> None:
    """A task whose class has `validate(cfg)` checks its own block (reproductions/notears_topo: `structure`)."""
    from hydra.utils import get_class

    paper_validate(get_class(cfg.task._target_), cfg)


def step_config(cfg: DictConfig) -> None:
    """A paper's step builder with a `validate(cfg)` attribute checks its own optimizer knobs (e.g. cautious_wd)."""
    from optrepro.optim.factory import resolve_step_builder

    paper_validate(resolve_step_builder(cfg.optimizer.step), cfg)


RULES: tuple[Callable[[DictConfig], None], ...] = (
    batch_split,
    cpu_precision,
    epochs_cover_schedule,
    slurm_signal,
    checkpoint_exists,
    importable_targets,
    paper_schedule,
    base_optimizer,
    step_config,
    training_loss,
    dataset_source,
    trainer_and_callbacks,
    grad_compression,
    task_config,
    gpus_present,
)


# ------------------------------------------------------------------------------------------- entry point


def validate_config(cfg: DictConfig) -> RunConfig:
    """Check the whole config; raises InvalidConfigError (one line: key, problem, fix) or the rule's own error."""
    try:
        data = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", "") or "config"
        raise InvalidConfigError(
            key,
            f"cannot be resolved ({str(exc).splitlines()[0]})",
            "fix the ${...} interpolation or the environment variable it reads",
        ) from None
    try:  # types and ranges first: their errors come without importing torch (choices and rules may)
        RunConfig.model_validate(data, context={"cfg": cfg, "types_only": True})
        return RunConfig.model_validate(data, context={"cfg": cfg})
    except ValidationError as exc:
        raise as_config_error(exc.errors(), data, RunConfig) from None


def paper_validate(target: Any, node: DictConfig) -> None:
    """A paper's class or function (model, loss, task, step builder, dataset loader, base optimizer, callback)
    checks its own config through a `validate(node)` attribute, where it has one, before any work."""
    validate = getattr(target, "validate", None)
    if validate is not None:
        validate(node)


def check_node(node: DictConfig | Mapping[str, Any], key: str, schema: type[BaseModel]) -> BaseModel:
    """The config node at dotted `key` (a section, `model`, `optimizer.base`, `callbacks.<name>`) against a paper's
    own schema (declared in its folder): the same types, ranges and one-line messages as every shared key. Call it
    from the paper's validate, which the config check runs before any work, and from a constructor on its keyword
    arguments (a plain mapping: they get the same lines). Returns the typed knobs."""
    container = node if isinstance(node, DictConfig) else OmegaConf.create(dict(node))
    value = OmegaConf.to_container(container, resolve=True)
    data: Any = value
    for part in reversed(key.split(".")):
        data = {part: data}
    try:
        return schema.model_validate(value, context={})
    except ValidationError as exc:
        prefix = tuple(key.split("."))
        errors = [{**e, "loc": (*prefix, *e["loc"])} for e in exc.errors()]
        raise as_config_error(errors, data, schema, skip=len(prefix)) from None


def check_section(cfg: DictConfig, section: str, schema: type[BaseModel]) -> BaseModel:
    """`cfg.<section>` against a paper's schema (e.g. the knobs its step reads, an OpenSection subclass)."""
    return check_node(cfg[section], section, schema)


def callback_key(entry: DictConfig) -> str:
    """`callbacks.<name>` of a callback's node, whatever name the config gives it."""
    return f"callbacks.{entry._key()}"


def check_callback(entry: DictConfig, schema: type[BaseModel]) -> BaseModel:
    """A callback's node against its paper's schema: call it from the callback's validate(entry)."""
    return check_node(entry, callback_key(entry), schema)


def as_config_error(
    errors: list[ErrorDetails], data: dict[str, Any], schema: type[BaseModel] | None = None, *, skip: int = 0
) -> OptreproError:
    """Pydantic's first error as one line that names the key, the problem and the fix (the others only keep an
    unknown key out of the keys a misspelling is told to choose from). ``schema`` (at the error's location less its
    first ``skip`` parts) lets the fix's example respect the field's bounds."""
    error = errors[0]
    ctx = {**error.get("ctx", {}), "example": example_value(schema, error["loc"][skip:], error["type"])}
    if isinstance(ctx.get("error"), OptreproError):  # a rule's own message
        return ctx["error"]
    key = dotted_key(error["loc"], data)
    value = error.get("input")
    kind = error["type"]
    if kind == "extra_forbidden":
        section = OmegaConf.select(OmegaConf.create(data), key.rpartition(".")[0]) if "." in key else data
        unknown = {dotted_key(e["loc"], data) for e in errors if e["type"] == "extra_forbidden"}
        known = sorted(name for name in section if f"{key.rpartition('.')[0]}.{name}".lstrip(".") not in unknown)
        return InvalidConfigError(
            key,
            "not a config key (misspelled, or added with + where nothing reads it)",
            f"check the spelling; the keys here are {', '.join(known)}",
        )
    if kind == "missing":
        return InvalidConfigError(key, "missing", f"add it: +{key}=<value>")
    problem, fix = PROBLEMS.get(kind, (None, None))
    if problem is None:
        message = str(ctx["error"]) if "error" in ctx else error["msg"]
        problem, _, fix = message.partition("; ")
        return InvalidConfigError(
            key,
            f"{value!r}: {problem}" if kind != "value_error" else problem,
            fix or f"see configs/ for the values {key} takes",
        )
    fix = FIXES.get(key, fix)
    ctx = {name: int(v) if isinstance(v, float) and v.is_integer() else v for name, v in ctx.items()}  # 0, not 0.0
    return InvalidConfigError(key, problem.format(value=value, **ctx), fix.format(key=key, value=value, **ctx))


# Fixes that say more than the generic ones of PROBLEMS, for the keys users set most.
FIXES: dict[str, str] = {
    "seed": f"give an integer from 0 to {SEED_MAX}, e.g. seed=0",
    "hardware.devices": "set hardware.devices to the devices per node, 1 or more (train.batch_size stays global)",
    "optimizer.rho": "set optimizer.rho >= 0 (0 is the base optimizer; SAM on CIFAR-10 uses 0.05)",
    "optimizer.base.lr": "give a finite learning rate above 0, e.g. optimizer.base.lr=0.1",
    "optimizer.m_sharpness": "give the samples per perturbation (dividing the per-device micro-batch), or null",
    "train.batch_size": "give the global batch, 1 or more, divisible by hardware.devices x hardware.num_nodes",
}


PROBLEMS: dict[str, tuple[str, str]] = {
    "int_type": ("{value!r} is not a whole number", "give an integer, e.g. {key}={example}"),
    "float_type": ("{value!r} is not a number", "give a number, e.g. {key}={example}"),
    "finite_number": ("{value} is not a finite number", "give a finite number"),
    "bool_type": ("{value!r} is not true or false", "set {key}=true or {key}=false"),
    "string_type": ("{value!r} is not text", "give text; quote digits: {key}='{value}'"),
    "string_too_short": ("is empty", "give a non-empty value"),
    "string_pattern_mismatch": ("{value!r} is not a folder name", "use letters, digits and _ . + = - only"),
    "greater_than_equal": ("must be >= {ge}, got {value}", "set {key} to at least {ge}"),
    "greater_than": ("must be > {gt}, got {value}", "set {key} above {gt}"),
    "less_than_equal": ("must be <= {le}, got {value}", "set {key} to at most {le}"),
    "less_than": ("must be < {lt}, got {value}", "set {key} below {lt}"),
    "literal_error": ("unknown value {value!r}", "valid choices: {expected}"),
    "dict_type": ("{value!r} is not a block of keys", "give a mapping, e.g. {key}={{a: 1}}, or pick a group option"),
    "model_type": (
        "{value!r} is not a block of keys",
        "set the keys inside it ({key}.<key>=<value>) or pick a group option",
    ),
    "list_type": ("{value!r} is not a list", "give a list, e.g. {key}=[1,2]"),
    "too_short": ("has {actual_length} items, needs {min_length}", "give {min_length} items"),
    "too_long": ("has {actual_length} items, at most {max_length}", "give {max_length} items"),
}


# The value a type error's fix shows, unless the field's bounds exclude it (example_value).
EXAMPLES = {"int_type": 1, "float_type": 0.1}


def example_value(schema: type[BaseModel] | None, loc: tuple[int | str, ...], kind: str) -> int | float | None:
    """A value the field at ``loc`` of ``schema`` accepts, for a type error's fix: 1 (or 0.1) moved inside the
    field's bounds, so `clusters >= 2` is told 2, not 1."""
    example = EXAMPLES.get(kind)
    field = field_at(schema, loc) if example is not None else None
    if field is None:
        return example
    whole = kind == "int_type"
    bounds = [*field.metadata, *type_bounds(field.annotation)]
    low, above = (max(bound_values(bounds, name), default=-math.inf) for name in ("ge", "gt"))
    high, below = (min(bound_values(bounds, name), default=math.inf) for name in ("le", "lt"))
    if example < low:
        example = low
    if example <= above:
        example = above + 1 if whole else above + 0.1
    if example > high:
        example = high
    if example >= below:  # a float goes halfway between its lower bound (or 0) and the excluded upper one
        example = below - 1 if whole else (max(low, above, 0.0) + below) / 2
    return example


def bound_values(bounds: list[Any], name: str) -> list[float]:
    """The values of one kind of bound (``ge``, ``gt``, ``le`` or ``lt``) among a field's bound objects."""
    return [getattr(b, name) for b in bounds if getattr(b, name, None) is not None]


def field_at(schema: type[BaseModel] | None, loc: tuple[int | str, ...]):
    """The pydantic FieldInfo at ``loc`` (list indices skipped), or None where the path leaves one typed model."""
    model, field = schema, None
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return None
        field = model.model_fields[part]
        models = [t for t in nested_types(field.annotation) if isinstance(t, type) and issubclass(t, BaseModel)]
        model = models[0] if len(models) == 1 else None  # a union of models: which one applies is not known here
    return field


def nested_types(annotation: Any) -> list[Any]:
    """The types inside an annotation: the members of a union, the item type of a list, the type under Annotated."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return nested_types(get_args(annotation)[0])
    if origin in (Union, UnionType, list, tuple):
        return [t for arg in get_args(annotation) for t in nested_types(arg)]
    return [annotation]


def type_bounds(annotation: Any) -> list[Any]:
    """The bound objects (with .ge, .gt, .le or .lt) inside an annotation: an Optional[Annotated[int, Field(ge=2)]]
    keeps them there, not in the field's own metadata."""
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *extras = get_args(annotation)
        return [b for extra in extras for b in getattr(extra, "metadata", [extra])] + type_bounds(base)
    if origin in (Union, UnionType):
        return [b for arg in get_args(annotation) for b in type_bounds(arg)]
    return []


def dotted_key(loc: tuple[int | str, ...], data: dict[str, Any]) -> str:
    """The config key of an error location (the type names pydantic adds inside a union are not keys: dropped)."""
    parts: list[str] = []
    node: Any = data
    for part in loc:
        if isinstance(node, dict):
            parts.append(str(part))
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and parts:
            parts[-1] += f"[{part}]"
            node = node[part] if part < len(node) else None
    return ".".join(parts) or "config"
