"""The claims file format (`reproductions/<paper>/claims.yaml`) as dataclasses, with validation.

A claim is data: the setting that answers it (Hydra overrides per arm), the metric, the paper's
numbers and the check that decides whether our runs reproduce it. Validation collects every
problem in the file and reports each with its line, field, what is wrong and what is allowed,
because authors fix these files by hand and one error per run is a slow loop.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Union

import yaml

from optrepro.claims.yaml_lines import LineDict, LineList, load_with_lines
from optrepro.errors import OptreproError

TIERS = ("full", "cpu", "smoke")
CHECK_KINDS = ("value", "ordering", "ratio", "bound")
DIRECTIONS = ("lower", "higher")
# What an ordering concludes when every seed of its reference arm (`than`) diverged: `loses`, the blow-up is the
# reference failing at what the claim measures (its error, its gradient norm); `no_evidence`, the metric has no
# value to compare (a diagnostic of the update, say), so the claim stays undecided.
REFERENCE_DIVERGENCE = ("no_evidence", "loses")
SPENDING = ("obf", "pocock")  # alpha spending of sequential looks (claims.sequential)
EXACT_TESTS = ("sign", "boschloo")  # exact tests of an ordering (claims.exact)
MEASURES = ("runs", "side_by_side")  # where a ratio's numbers come from: the training runs, or claims.timing
METRIC_SOURCES = ("final", "best")
SPREAD_KINDS = ("std", "sem", "ci95", "range", "unstated")
# Units of a paper's number; plots convert between them where a conversion exists (claims.units).
UNITS = ("percent", "fraction", "seconds_per_step", "images_per_second", "count", "ratio", "score", "bytes_ratio")
QUANTITIES = ("accuracy", "error", "time", "throughput", "other")
# How far a number is from the paper's own final text: camera-ready/arXiv, a submission version, the
# official code or README, or a third party's notes.
SOURCE_QUALITIES = ("paper", "submission", "repo", "secondary")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
NAME_ALLOWED = "letters, digits, '_', '.', '-' (not starting with '.' or '-')"


@dataclass(frozen=True)
class Source:
    """Where the paper states the claim."""

    where: str
    page: int | None = None

    def __str__(self) -> str:
        return f"{self.where}, p. {self.page}" if self.page is not None else self.where


@dataclass(frozen=True)
class Reported:
    """A number the paper reports for one arm, as data: value, unit, spread and where it was read."""

    value: float
    quantity: str
    unit: str
    source: str
    where: str | None = None
    spread: float | None = None
    spread_kind: str | None = None

    def __str__(self) -> str:
        spread = f" ± {self.spread:g} ({self.spread_kind})" if self.spread is not None else ""
        where = f", {self.where}" if self.where else ""
        quantity = "" if self.quantity == "other" else f" {self.quantity}"
        return f"{self.value:g}{spread} {UNIT_SYMBOLS[self.unit]}{quantity} [{self.source}{where}]"


UNIT_SYMBOLS = {
    "percent": "%",
    "fraction": "(fraction)",
    "seconds_per_step": "s/step",
    "images_per_second": "img/s",
    "count": "(count)",
    "ratio": "(ratio)",
    "score": "(score)",
    "bytes_ratio": "(bytes ratio)",
}


@dataclass(frozen=True)
class Arm:
    """One configuration compared by a claim: Hydra overrides applied on top of the claim's setting."""

    name: str
    overrides: tuple[str, ...]


# --- value validators: (predicate, description of what is allowed) --------------------------


def _is_str(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(_is_str(item) for item in value)


def _is_scalar_text(value: Any) -> bool:
    return _is_str(value) or _is_number(value)


STRING = (_is_str, "a non-empty string")
INTEGER = (_is_int, "an integer")
NUMBER = (_is_number, "a number")
INTEGER_LIST = (lambda value: isinstance(value, list) and all(_is_int(item) for item in value), "a list of integers")
STRING_LIST = (_is_str_list, "a list of strings (Hydra overrides), e.g. [optimizer=sam, optimizer.rho=0.05]")
TEXT_OR_NUMBER = (_is_scalar_text, "a string or a number, as printed in the paper")

Validator = tuple[Callable[[Any], bool], str]


@dataclass(frozen=True)
class Choice:
    """A check field read as one of `choices`."""

    choices: tuple[str, ...]


ARM_NAME = "an arm of the claim"  # a check field naming one of the claim's arms
NON_NEGATIVE = "a number >= 0"  # a check field read as a number >= 0


def read(how: Any, *, default: Any = MISSING, required: bool | None = None) -> Any:
    """A check field, declared once: the dataclass field, how claims.yaml's value is read (a Validator, a Choice,
    ARM_NAME or NON_NEGATIVE) and whether the file must give it (by default: when the field has no default)."""
    required = default is MISSING if required is None else required
    return field(default=default, metadata={"read": how, "required": required})


@dataclass(frozen=True)
class ValueCheck:
    """Our mean of `arm` lies within `tolerance` of the paper's `reported` value."""

    arm: str = read(ARM_NAME)
    reported: float = read(NUMBER)
    tolerance: float = read(NON_NEGATIVE)
    tolerance_reason: str = read(STRING)
    spread: float | None = read(NUMBER, default=None)
    spread_kind: str | None = read(Choice(SPREAD_KINDS), default=None)
    kind: str = "value"

    @property
    def arms(self) -> tuple[str, ...]:
        return (self.arm,)


@dataclass(frozen=True)
class OrderingCheck:
    """Arm `better` beats arm `than` on the claim's metric by more than `min_difference`.

    A negative `min_difference` states non-inferiority: `better` is worse than `than` by less than its size
    (e.g. SAF's error is at most 0.5 points above SAM's). `reference_divergence` (REFERENCE_DIVERGENCE) says what
    a reference arm that diverged on every seed means for the claim.
    """

    better: str = read(ARM_NAME)
    than: str = read(ARM_NAME)
    direction: str = read(Choice(DIRECTIONS))
    min_difference: float = read(NUMBER, default=0.0)
    reference_divergence: str = read(Choice(REFERENCE_DIVERGENCE), default="no_evidence")
    exact: str | None = read(Choice(EXACT_TESTS), default=None)  # an exact test instead of the t interval
    kind: str = "ordering"

    @property
    def arms(self) -> tuple[str, ...]:
        return (self.better, self.than)


@dataclass(frozen=True)
class RatioCheck:
    """mean(numerator) / mean(denominator) of `metric` is at most `max` (e.g. time per step)."""

    numerator: str = read(ARM_NAME)
    denominator: str = read(ARM_NAME)
    metric: str = read(STRING, required=False)  # default: the claim's
    max: float = read(NUMBER)
    measure: str = read(Choice(MEASURES), default="runs")  # side_by_side: one interleaved timing (claims.timing)
    kind: str = "ratio"

    @property
    def arms(self) -> tuple[str, ...]:
        return (self.numerator, self.denominator)


@dataclass(frozen=True)
class BoundCheck:
    """The mean of `metric` for `arm` stays at most `max`."""

    arm: str = read(ARM_NAME)
    metric: str = read(STRING, required=False)  # default: the claim's
    max: float = read(NUMBER)
    kind: str = "bound"

    @property
    def arms(self) -> tuple[str, ...]:
        return (self.arm,)


Check = Union[ValueCheck, OrderingCheck, RatioCheck, BoundCheck]


@dataclass(frozen=True)
class Tuning:
    """A claim's tuning stage (claims.tuning): `knob` picked per arm from `grid[arm]` by the mean of `metric` over
    `seeds` runs per value that evaluate on a validation split (`val_fraction` of the training set), best by
    `direction`. Arms without a grid run as their overrides say (the paper fixes their knobs)."""

    knob: str
    grid: dict[str, tuple[float, ...]]
    val_fraction: float
    metric: str
    direction: str
    seeds: int
    source: str

    def value_overrides(self, value: float) -> tuple[str, ...]:
        """The overrides of one grid point: the knob's value, evaluated on the validation split."""
        return (f"{self.knob}={value!r}", f"++dataset.val_fraction={self.val_fraction!r}")


@dataclass(frozen=True)
class Claim:
    """One claim of a paper; `key` (`<paper>/<id>`) names it everywhere (CLI, RESULTS.md, CI)."""

    paper: str
    id: str
    source: Source
    statement: str
    tier: str
    seeds: int
    metric: str
    metric_source: str
    arms: dict[str, Arm]
    setting: tuple[str, ...]
    check: Check
    reported: dict[str, Reported | str] = field(default_factory=dict)
    line: int = 0
    looks: tuple[int, ...] = ()  # pre-registered sequential looks (seeds per arm); seeds is the last one
    spending: str = "obf"  # their alpha spending (claims.sequential)
    tuning: Tuning | None = None
    tuned: tuple[tuple[str, float], ...] = ()  # (arm, chosen value) from the claim's tuning record (claims.tuning)
    to_decide: str = ""  # what would decide it where its registered seeds cannot: shown beside an inconclusive verdict

    @property
    def key(self) -> str:
        return f"{self.paper}/{self.id}"

    @property
    def seed_values(self) -> tuple[int, ...]:
        """The seeds that answer the claim: 0 .. seeds-1 (fixed up front, so no seed is cherry-picked)."""
        return tuple(range(self.seeds))

    @property
    def tuning_pending(self) -> bool:
        """A tuning stage whose choice is not recorded yet: the arms' settings are not known, so no run answers."""
        return self.tuning is not None and not self.tuned

    def arm_overrides(self, arm: str) -> list[str]:
        chosen = dict(self.tuned)
        tuned = [f"{self.tuning.knob}={chosen[arm]!r}"] if arm in chosen else []
        return [*self.setting, *self.arms[arm].overrides, *tuned]


@dataclass(frozen=True)
class PaperClaims:
    """The contents of one claims.yaml."""

    paper: str
    title: str
    citation: str
    claims: tuple[Claim, ...]
    path: Path
    cpu_cost: str = ""  # why its cpu tier needs more than claims.cost.PAPER_MINUTES one-core minutes, where it does


@dataclass(frozen=True)
class SchemaIssue:
    """One problem in a claims file, located and explained."""

    line: int
    field: str
    problem: str
    allowed: str

    def __str__(self) -> str:
        return f"line {self.line}, {self.field}: {self.problem}; allowed: {self.allowed}"


class ClaimsFileError(OptreproError, ValueError):
    """A claims file that does not follow the schema; lists every problem found."""

    def __init__(self, path: Path | str, issues: list[SchemaIssue]) -> None:
        self.path = Path(path)
        self.issues = sorted(issues, key=lambda issue: issue.line)
        lines = "\n".join(f"  {issue}" for issue in self.issues)
        super().__init__(
            f"{path}: {len(issues)} problem(s) in the claims file (format: reproductions/README.md):\n{lines}"
        )


_MISSING = object()


class _Reader:
    """Reads fields out of line-aware mappings, recording a SchemaIssue for each problem."""

    def __init__(self) -> None:
        self.issues: list[SchemaIssue] = []

    def issue(self, line: int, field_name: str, problem: str, allowed: str) -> None:
        self.issues.append(SchemaIssue(line, field_name, problem, allowed))

    def fields(self, mapping: LineDict, where: str, known: dict[str, bool]) -> None:
        """Report unknown keys (typos) and missing required ones; `known` maps key -> required."""
        for key in mapping:
            if key not in known:
                self.issue(mapping.lines[key], _join(where, key), "unknown field", ", ".join(known))
        for key, required in known.items():
            if required and key not in mapping:
                self.issue(mapping.line, _join(where, key), "missing required field", f"{key}: <value>")

    def get(self, mapping: LineDict, key: str, where: str, validator: Validator, default: Any = _MISSING) -> Any:
        """The value of `key` if present and valid; else `default` (missing keys were reported by fields())."""
        if key not in mapping:
            return None if default is _MISSING else default
        value = mapping[key]
        is_valid, allowed = validator
        if not is_valid(value):
            self.issue(mapping.lines[key], _join(where, key), f"{value!r} is not {allowed}", allowed)
            return None
        return value

    def choice(self, mapping: LineDict, key: str, where: str, choices: tuple[str, ...], default: Any = _MISSING) -> Any:
        if key not in mapping:
            return None if default is _MISSING else default
        value = mapping[key]
        if value not in choices:
            self.issue(
                mapping.lines[key], _join(where, key), f"{value!r} is not one of the choices", ", ".join(choices)
            )
            return None
        return value

    def name(self, mapping: LineDict, key: str, where: str) -> Any:
        value = self.get(mapping, key, where, STRING)
        if value is not None and not NAME_PATTERN.match(value):
            self.issue(mapping.lines[key], _join(where, key), f"{value!r} is not a valid name", NAME_ALLOWED)
            return None
        return value

    def arm_ref(self, mapping: LineDict, key: str, where: str, arms: dict[str, Arm]) -> Any:
        """An arm name used by the check; it must be one of the claim's arms."""
        value = self.get(mapping, key, where, STRING)
        if value is not None and arms and value not in arms:
            self.issue(
                mapping.lines[key], _join(where, key), f"arm {value!r} is not defined in `arms`", ", ".join(arms)
            )
            return None
        return value

    def mapping(self, value: Any, line: int, where: str) -> LineDict | None:
        if not isinstance(value, LineDict):
            self.issue(line, where, f"{value!r} is not a mapping", "a mapping (key: value)")
            return None
        return value


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


# --- parsing ----------------------------------------------------------------------------------

TOP_FIELDS = {"paper": True, "title": True, "citation": True, "claims": True, "cpu_cost": False}
CLAIM_FIELDS = {
    "id": True,
    "source": True,
    "statement": True,
    "tier": True,
    "seeds": True,
    "metric": True,
    "metric_source": False,
    "arms": True,
    "setting": False,
    "check": True,
    "reported": False,
    "tuning": False,
    "to_decide": False,
}
TUNING_FIELDS = {
    "knob": True,
    "grid": True,
    "val_fraction": True,
    "metric": True,
    "direction": True,
    "seeds": True,
    "source": True,
}
SOURCE_FIELDS = {"where": True, "page": False}
ARM_FIELDS = {"overrides": True}
CHECK_CLASSES = {cls.kind: cls for cls in (ValueCheck, OrderingCheck, RatioCheck, BoundCheck)}
CHECK_FIELDS = {  # kind -> {field: required in claims.yaml}, from the check dataclasses
    kind: {"kind": True, **{f.name: f.metadata["required"] for f in fields(cls) if "read" in f.metadata}}
    for kind, cls in CHECK_CLASSES.items()
}
REPORTED_FIELDS = {
    "value": True,
    "quantity": True,
    "unit": True,
    "source": True,
    "where": False,
    "spread": False,
    "spread_kind": False,
}


def parse_claims_text(text: str, path: Path | str, *, expected_paper: str | None = None) -> PaperClaims:
    """Validate and build the claims of one file; raises ClaimsFileError listing every problem."""
    path = Path(path)
    reader = _Reader()
    try:
        document = load_with_lines(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else 0
        raise ClaimsFileError(
            path, [SchemaIssue(line, "(file)", f"invalid YAML: {err.problem}", "YAML syntax")]
        ) from err
    top = reader.mapping(document, 1, "(file)")
    if top is None:
        raise ClaimsFileError(path, reader.issues)
    reader.fields(top, "", TOP_FIELDS)
    paper = reader.name(top, "paper", "")
    if paper is not None and expected_paper is not None and paper != expected_paper:
        reader.issue(top.lines["paper"], "paper", f"{paper!r} differs from the folder name", repr(expected_paper))
    claims = []
    raw_claims = top.get("claims")
    if "claims" in top and not (isinstance(raw_claims, LineList) and raw_claims):
        reader.issue(top.lines["claims"], "claims", "expected a non-empty list of claims", "a list of mappings")
    elif raw_claims:
        seen: dict[str, int] = {}
        for index, (raw, line) in enumerate(zip(raw_claims, raw_claims.lines)):
            claim = _parse_claim(reader, raw, line, f"claims[{index}]", paper or "?")
            if claim is None:
                continue
            if claim.id in seen:
                reader.issue(
                    claim.line,
                    f"claims[{index}].id",
                    f"duplicate id {claim.id!r} (first on line {seen[claim.id]})",
                    "ids unique within the paper",
                )
                continue
            seen[claim.id] = claim.line
            claims.append(claim)
    cpu_cost = reader.get(top, "cpu_cost", "", STRING, default="")
    if reader.issues:
        raise ClaimsFileError(path, reader.issues)
    return PaperClaims(paper, top["title"], top["citation"], tuple(claims), path, cpu_cost)


def _parse_claim(reader: _Reader, raw: Any, line: int, where: str, paper: str) -> Claim | None:
    mapping = reader.mapping(raw, line, where)
    if mapping is None:
        return None
    before = len(reader.issues)
    reader.fields(mapping, where, CLAIM_FIELDS)
    claim_id = reader.name(mapping, "id", where)
    source = _parse_source(reader, mapping, where)
    statement = reader.get(mapping, "statement", where, STRING)
    tier = reader.choice(mapping, "tier", where, TIERS)
    seeds, looks, spending = _parse_seeds(reader, mapping, where)
    metric = reader.get(mapping, "metric", where, STRING)
    metric_source = reader.choice(mapping, "metric_source", where, METRIC_SOURCES, default="final")
    arms = _parse_arms(reader, mapping, where)
    setting = reader.get(mapping, "setting", where, STRING_LIST, default=[])
    check = _parse_check(reader, mapping, where, arms, metric)
    if looks and getattr(check, "exact", None):
        reader.issue(
            mapping.lines["seeds"],
            f"{where}.seeds",
            f"looks with the exact {check.exact} test",
            "a fixed seed count (seeds: N): the exact tests are fixed-n",
        )
    reported = _parse_reported(reader, mapping, where, arms)
    tuning = _parse_tuning(reader, mapping, where, arms)
    to_decide = reader.get(mapping, "to_decide", where, STRING, default="")
    if len(reader.issues) > before:
        return None
    return Claim(
        paper=paper,
        id=claim_id,
        source=source,
        statement=statement,
        tier=tier,
        seeds=seeds,
        metric=metric,
        metric_source=metric_source,
        arms=arms,
        setting=tuple(setting),
        check=check,
        reported=reported,
        line=line,
        looks=looks,
        spending=spending,
        tuning=tuning,
        to_decide=to_decide,
    )


def _parse_tuning(reader: _Reader, claim: LineDict, where: str, arms: dict[str, Arm]) -> Tuning | None:
    """`tuning: {knob, grid: {arm: [values]}, val_fraction, metric, direction, seeds, source}` (claims.tuning)."""
    if "tuning" not in claim:
        return None
    where = f"{where}.tuning"
    mapping = reader.mapping(claim["tuning"], claim.lines["tuning"], where)
    if mapping is None:
        return None
    before = len(reader.issues)
    reader.fields(mapping, where, TUNING_FIELDS)
    knob = reader.get(mapping, "knob", where, STRING)
    fraction = reader.get(mapping, "val_fraction", where, NUMBER)
    if fraction is not None and not 0 < fraction < 1:
        reader.issue(
            mapping.lines["val_fraction"],
            f"{where}.val_fraction",
            f"{fraction} leaves no validation or no training samples",
            "a fraction strictly between 0 and 1, e.g. 0.1 (SAM: 10% of training)",
        )
    seeds = reader.get(mapping, "seeds", where, INTEGER)
    if seeds is not None and seeds < 1:
        reader.issue(mapping.lines["seeds"], f"{where}.seeds", f"{seeds} seeds per grid value", "an integer >= 1")
    grid = _parse_grid(reader, mapping, where, arms)
    tuning = Tuning(
        knob,
        grid,
        fraction,
        reader.get(mapping, "metric", where, STRING),
        reader.choice(mapping, "direction", where, DIRECTIONS),
        seeds,
        reader.get(mapping, "source", where, STRING),
    )
    return tuning if len(reader.issues) == before else None


def _parse_grid(reader: _Reader, tuning: LineDict, where: str, arms: dict[str, Arm]) -> dict[str, tuple[float, ...]]:
    """arm -> its grid; every tuned arm gets as many values as the others (one tuning budget for all)."""
    if "grid" not in tuning:
        return {}
    where = f"{where}.grid"
    mapping = reader.mapping(tuning["grid"], tuning.lines["grid"], where)
    if mapping is None:
        return {}
    grid: dict[str, tuple[float, ...]] = {}
    for arm, values in mapping.items():
        line = mapping.lines[arm]
        if arm not in arms:
            reader.issue(line, f"{where}.{arm}", f"arm {arm!r} is not defined in `arms`", ", ".join(arms))
        elif not (
            isinstance(values, list)
            and values
            and all(_is_number(v) for v in values)
            and len(set(values)) == len(values)
        ):
            reader.issue(line, f"{where}.{arm}", f"{values!r} is not a list of distinct numbers", "e.g. [0.05, 0.1]")
        else:
            grid[arm] = tuple(values)
    if not mapping:
        reader.issue(mapping.line, where, "no arm to tune", "arm: [values], e.g. sam: [0.01, 0.02, 0.05]")
    if len({len(values) for values in grid.values()}) > 1:
        reader.issue(
            mapping.line,
            where,
            f"arms tuned with grids of different sizes ({', '.join(f'{a}: {len(v)}' for a, v in grid.items())})",
            "the same number of values for every tuned arm (one tuning budget for all arms)",
        )
    return grid


SEEDS_FIELDS = {"looks": True, "spending": False}


def _parse_seeds(reader: _Reader, claim: LineDict, where: str) -> tuple[int | None, tuple[int, ...], str]:
    """`seeds: N` (fixed), or `seeds: {looks: [5, 10, 20], spending: obf}` (sequential, claims.sequential)."""
    if not isinstance(claim.get("seeds"), LineDict):
        seeds = reader.get(claim, "seeds", where, INTEGER)
        if seeds is not None and seeds < 1:
            reader.issue(claim.lines["seeds"], f"{where}.seeds", f"{seeds} seeds", "an integer >= 1")
        return seeds, (), "obf"
    where = f"{where}.seeds"
    mapping = claim["seeds"]
    reader.fields(mapping, where, SEEDS_FIELDS)
    spending = reader.choice(mapping, "spending", where, SPENDING, default="obf")
    looks = reader.get(mapping, "looks", where, INTEGER_LIST)
    if looks is None:
        return None, (), spending or "obf"
    if len(looks) < 2 or looks[0] < 2 or any(b <= a for a, b in zip(looks, looks[1:])):
        reader.issue(
            mapping.lines["looks"],
            f"{where}.looks",
            f"{looks} is not two or more increasing seed counts from 2 up",
            "e.g. looks: [5, 10, 20] (each look's seeds per arm; the last is the most ever run)",
        )
        return None, (), spending or "obf"
    return looks[-1], tuple(looks), spending or "obf"


def _parse_source(reader: _Reader, claim: LineDict, where: str) -> Source | None:
    if "source" not in claim:
        return None
    where = f"{where}.source"
    mapping = reader.mapping(claim["source"], claim.lines["source"], where)
    if mapping is None:
        return None
    reader.fields(mapping, where, SOURCE_FIELDS)
    return Source(reader.get(mapping, "where", where, STRING), reader.get(mapping, "page", where, INTEGER))


def _parse_arms(reader: _Reader, claim: LineDict, where: str) -> dict[str, Arm]:
    if "arms" not in claim:
        return {}
    where = f"{where}.arms"
    mapping = reader.mapping(claim["arms"], claim.lines["arms"], where)
    if mapping is None:
        return {}
    if not mapping:
        reader.issue(mapping.line, where, "no arms", "at least one arm: <name>: {overrides: [...]}")
    arms = {}
    for name, raw in mapping.items():
        arm_where = f"{where}.{name}"
        if not (isinstance(name, str) and NAME_PATTERN.match(name)):
            reader.issue(mapping.lines[name], arm_where, f"{name!r} is not a valid arm name", NAME_ALLOWED)
            continue
        arm = reader.mapping(raw, mapping.lines[name], arm_where)
        if arm is None:
            continue
        reader.fields(arm, arm_where, ARM_FIELDS)
        overrides = reader.get(arm, "overrides", arm_where, STRING_LIST)
        if overrides is not None:
            arms[name] = Arm(name, tuple(overrides))
    return arms


def _parse_check(
    reader: _Reader, claim: LineDict, where: str, arms: dict[str, Arm], metric: str | None
) -> Check | None:
    if "check" not in claim:
        return None
    where = f"{where}.check"
    mapping = reader.mapping(claim["check"], claim.lines["check"], where)
    if mapping is None:
        return None
    if "kind" not in mapping:
        reader.issue(mapping.line, f"{where}.kind", "missing required field", ", ".join(CHECK_KINDS))
        return None
    kind = reader.choice(mapping, "kind", where, CHECK_KINDS)
    if kind is None:
        return None
    reader.fields(mapping, where, CHECK_FIELDS[kind])
    values = {}
    for spec in fields(CHECK_CLASSES[kind]):
        if "read" in spec.metadata:
            default = metric if spec.name == "metric" else (_MISSING if spec.default is MISSING else spec.default)
            values[spec.name] = _read_check_field(
                reader, mapping, where, spec.name, spec.metadata["read"], arms, default
            )
    if kind == "ordering" and values["better"] is not None and values["better"] == values["than"]:
        reader.issue(
            mapping.lines["than"],
            f"{where}.than",
            f"the same arm as `better` ({values['better']!r})",
            "another arm: " + ", ".join(a for a in arms if a != values["better"]),
        )
    if kind == "ratio" and values["measure"] == "side_by_side" and not str(values["metric"]).startswith("timing/"):
        reader.issue(
            mapping.lines["measure"],
            f"{where}.measure",
            f"side_by_side on {values['metric']!r}",
            "a timing/<name> metric: only time per step is measured side by side",
        )
    return CHECK_CLASSES[kind](**values)


def _read_check_field(
    reader: _Reader, mapping: LineDict, where: str, key: str, how: Any, arms: dict[str, Arm], default: Any
) -> Any:
    """One check field as its dataclass field declares it (read())."""
    if how is ARM_NAME:
        return reader.arm_ref(mapping, key, where, arms)
    if how is NON_NEGATIVE:
        return _non_negative(reader, mapping, key, where, default=default)
    if isinstance(how, Choice):
        return reader.choice(mapping, key, where, how.choices, default=default)
    return reader.get(mapping, key, where, how, default=default)


def _non_negative(reader: _Reader, mapping: LineDict, key: str, where: str, default: Any = _MISSING) -> Any:
    value = reader.get(mapping, key, where, NUMBER, default=default)
    if value is not None and value < 0:
        reader.issue(mapping.lines[key], f"{where}.{key}", f"{value} is negative", "a number >= 0")
        return None
    return value


def _parse_reported(reader: _Reader, claim: LineDict, where: str, arms: dict[str, Arm]) -> dict[str, Reported | str]:
    """arm -> a Reported number (a mapping: value, unit, source, ...) or a note as printed (a string: shown in
    tables, never read as a number)."""
    if "reported" not in claim:
        return {}
    where = f"{where}.reported"
    mapping = reader.mapping(claim["reported"], claim.lines["reported"], where)
    if mapping is None:
        return {}
    reported: dict[str, Reported | str] = {}
    for arm in mapping:
        if arms and arm not in arms:
            reader.issue(mapping.lines[arm], f"{where}.{arm}", f"arm {arm!r} is not defined in `arms`", ", ".join(arms))
            continue
        if isinstance(mapping[arm], LineDict):
            number = _parse_number(reader, mapping[arm], f"{where}.{arm}")
            if number is not None:
                reported[arm] = number
            continue
        value = reader.get(mapping, arm, where, TEXT_OR_NUMBER)
        if value is not None:
            reported[arm] = str(value)
    return reported


def _parse_number(reader: _Reader, mapping: LineDict, where: str) -> Reported | None:
    before = len(reader.issues)
    reader.fields(mapping, where, REPORTED_FIELDS)
    value = reader.get(mapping, "value", where, NUMBER)
    quantity = reader.choice(mapping, "quantity", where, QUANTITIES)
    unit = reader.choice(mapping, "unit", where, UNITS)
    source = reader.choice(mapping, "source", where, SOURCE_QUALITIES)
    place = reader.get(mapping, "where", where, STRING, default=None)
    spread = _non_negative(reader, mapping, "spread", where, default=None)
    spread_kind = reader.choice(mapping, "spread_kind", where, SPREAD_KINDS, default=None)
    if (spread is None) != (spread_kind is None) and len(reader.issues) == before:
        reader.issue(mapping.line, where, "spread and spread_kind go together", "both or neither")
    if len(reader.issues) > before:
        return None
    return Reported(float(value), quantity, unit, source, place, spread, spread_kind)
