"""Experiment specs: TOML data files in ``experiments/``. An ablation spec (``Spec``) describes arms x seeds
of one question; a sweep spec (harness/sweep/spec.py) a search space. Both are pydantic models on
``SpecBase``, read by ``parse``.

A spec is data, never code: it is parsed with ``tomllib`` and every key and value is checked, so a typo is a
one-line error ``<file>: <key>: <what is wrong>`` before anything runs or is written.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args

import pydantic
from pydantic import BeforeValidator, ConfigDict, Field, PrivateAttr, model_validator

from cyclegan.config import PRESETS
from harness.errors import UserError

SPEC_DIR = Path("experiments")
DEFAULT_PROJECT = "cyclegan-harness"
MAX_SEEDS = 1000  # seeds one spec or command line may plan (a typo like 10**9 is not an experiment)
MAX_NAME = 100  # a run folder is <arm>-s<seed>-<hash>: far below any file system's 255
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def spec_error(path: Path, key: str, msg: str) -> UserError:
    """The one error format of every spec: ``<file>: <key>: <what is wrong>``."""
    return UserError(f"{path}: {key}: {msg}")


def safe_name(name: str) -> bool:
    """Arm and experiment names become folder names: no separators, no '..', no leading dot or dash."""
    return bool(_SAFE_NAME.match(name)) and ".." not in name and len(name) <= MAX_NAME


def _name(value: str) -> str:
    if not safe_name(value):
        raise ValueError(
            f"unsafe name '{value}': a folder name needs up to {MAX_NAME} letters, digits, _ . - "
            "(not starting with '.' or '-', no '..')"
        )
    return value


def seed_list(value: Any) -> list[int]:
    """An int N means seeds 0..N-1; a list is taken as given (unique, non-negative integers)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= MAX_SEEDS:
            raise ValueError(f"expected 1 to {MAX_SEEDS} seeds, got {value}")
        return list(range(value))
    if not isinstance(value, list):
        raise ValueError(f"expected an integer N or a list of integers, got {value!r}")
    if not value:
        raise ValueError("the seed list is empty; give an integer N or a list like [0, 1, 2]")
    bad = [s for s in value if not isinstance(s, int) or isinstance(s, bool) or s < 0 or s >= 2**31]
    if bad:
        raise ValueError(f"{bad[0]!r} is not a seed (a non-negative integer below 2^31)")
    if len(set(value)) != len(value) or len(value) > MAX_SEEDS:
        raise ValueError(f"expected up to {MAX_SEEDS} distinct seeds, got {value}")
    return list(value)


def parse_seeds(where: str, value: Any) -> list[int]:
    try:
        return seed_list(value)
    except ValueError as exc:
        raise UserError(f"{where}: {exc}") from None


def no_seed(where: str, keys: Any) -> None:
    """Seeds come from the spec's ``seeds`` (or --seeds), never from an override or a search."""
    if "train.seed" in keys:
        raise UserError(f"{where}: 'train.seed' is set by the spec's `seeds` (or --seeds), not by overrides")


def flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"pool_size": 0}}`` and ``{"train.pool_size": 0}`` mean one override; giving both is an
    error, never a silent choice of one."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        inner = flatten(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value}
        for full, v in inner.items():
            if full in out:
                raise ValueError(f"'{full}' is set twice (as a dotted key and in a nested table)")
            out[full] = v
    return out


def _overrides(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"expected a table of dotted config overrides, got {value!r}")
    flat = flatten(value)
    if "train.seed" in flat:
        raise ValueError("'train.seed' is set by the spec's `seeds` (or --seeds), not by overrides")
    return flat


def check_data_name(where: str, data: str) -> None:
    """Synthetic tasks and official names are resolved later; anything else must be a folder now."""
    try:
        _data(data)
    except ValueError as exc:
        raise UserError(f"{where}: {exc}") from None


def _data(data: str) -> str:
    from cyclegan.data.catalogue import DATASETS

    if data.startswith("synth:"):
        from cyclegan import synth

        try:
            synth.check_task(data.removeprefix("synth:"))
        except KeyError as exc:
            raise ValueError(exc.args[0]) from None
        return data
    if not data or data in DATASETS or Path(data).is_dir():
        return data
    raise ValueError(
        f"folder not found: '{data}' (give 'synth:zebra', 'synth:seasons' or a folder with "
        "trainA/ trainB/ testA/ testB/)"
    )


def _pair(value: Any) -> tuple[str, str]:
    if isinstance(value, list) and len(value) == 2 and all(isinstance(a, str) for a in value):
        return (value[0], value[1])
    raise ValueError(f'expected [arm, reference], e.g. ["batch-b4", "inst-b4"], got {value!r}')


Name = Annotated[str, pydantic.AfterValidator(_name)]
Seeds = Annotated[list[int], BeforeValidator(seed_list)]
Overrides = Annotated[dict[str, Any], BeforeValidator(_overrides)]
Data = Annotated[str, pydantic.AfterValidator(_data)]
Preset = Literal[tuple(PRESETS)]  # type: ignore[valid-type]
Direction = Literal["maximize", "minimize"]
PositiveInt = Annotated[int, Field(ge=1)]


class Table(pydantic.BaseModel):
    """A TOML table: unknown keys are errors and a value must have the TOML type (no 1 for true)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


class SpecBase(Table):
    """What every spec has: a name (folder-safe), the question, preset, ``base`` overrides, data and seeds;
    ``path`` is the file it came from."""

    kind: str = "ablation"
    name: Name
    question: str = ""
    preset: Preset = "cpu"
    base: Overrides = {}
    data: Data = "synth:zebra"
    seeds: Seeds = list(range(5))
    _path: Path = PrivateAttr(default=Path("?"))

    @property
    def path(self) -> Path:
        return self._path


class Metrics(Table):
    primary: str | None = None
    direction: Direction | None = None
    secondary: list[str] = []
    fallback: str | None = None  # used when the data cannot give the primary (a folder of photos)
    margin: dict[str, Annotated[float, Field(gt=0, allow_inf_nan=False)]] = {}
    failure: dict[str, Annotated[float, Field(allow_inf_nan=False)]] = {}


class Spec(SpecBase):
    """One validated ablation spec; ``arms`` maps arm name -> dotted config overrides."""

    question: str
    control: str
    arm_tables: dict[Name, Overrides] = Field(alias="arms")
    compare: list[
        Annotated[tuple[str, str], BeforeValidator(_pair)]
    ] = []  # extra (arm, reference) pairs beside arm-vs-control
    iterations: PositiveInt | None = None
    epochs: PositiveInt | None = None
    budget_in: Literal["iterations", "epochs"] = "iterations"  # what stays fixed when the data size changes
    eval_every: Annotated[int, Field(ge=0)] | None = None
    metric_table: Metrics = Field(Metrics(), alias="metrics")
    project: str = DEFAULT_PROJECT
    max_seeds: Annotated[int, Field(ge=1, le=MAX_SEEDS)] | None = None

    @property
    def arms(self) -> dict[str, dict[str, Any]]:
        return {a: {k: v for k, v in t.items() if k != "note"} for a, t in self.arm_tables.items()}

    @property
    def arm_notes(self) -> dict[str, str]:
        return {a: t["note"] for a, t in self.arm_tables.items() if "note" in t}

    @property
    def budget(self) -> dict[str, int]:
        return {k: v for k in ("iterations", "epochs") if (v := getattr(self, k)) is not None}

    @property
    def primary(self) -> str:
        from cyclegan.metrics import registry

        return self.metric_table.primary or registry.primary_metric(self.data).name

    @property
    def direction(self) -> str:
        from cyclegan.metrics import registry

        return self.metric_table.direction or registry.get(self.primary).direction

    @property
    def secondary(self) -> list[str]:
        return list(self.metric_table.secondary)

    @property
    def fallback(self) -> str | None:
        return self.metric_table.fallback

    @property
    def margins(self) -> dict[str, float]:
        return dict(self.metric_table.margin)

    @property
    def failure_thresholds(self) -> dict[str, float]:
        return dict(self.metric_table.failure)

    @model_validator(mode="after")
    def _consistent(self) -> Spec:
        arms = list(self.arm_tables)
        if len(arms) < 2:
            raise ValueError(f"arms: need at least two [arms.<name>] tables to compare, got {len(arms)}")
        for arm, table in self.arm_tables.items():
            if not isinstance(table.get("note", ""), str):
                raise ValueError(f"arms.{arm}.note: expected a string, got {table['note']!r}")
        if self.control not in arms:
            raise ValueError(f"control: '{self.control}' is not an arm; valid: {', '.join(arms)}")
        if self.iterations is not None and self.epochs is not None:
            raise ValueError("iterations: give either `iterations` or `epochs`, not both")
        if self.max_seeds is not None and self.max_seeds < len(self.seeds):
            raise ValueError(f"max_seeds: {self.max_seeds} is below the {len(self.seeds)} seeds planned")
        for i, (arm, ref) in enumerate(self.compare):
            where = f"compare[{i}]"
            for a in (arm, ref):
                if a not in arms:
                    raise ValueError(f"{where}: '{a}' is not an arm; valid: {', '.join(arms)}")
            if arm == ref:
                raise ValueError(f"{where}: an arm compared with itself ('{arm}')")
            if self.control in (arm, ref):
                raise ValueError(
                    f"{where}: every arm is already compared with the control '{self.control}'; "
                    "list only pairs of two other arms"
                )
            if (arm, ref) in self.compare[:i] or (ref, arm) in self.compare[:i]:
                raise ValueError(f"{where}: {arm} vs {ref} is listed twice")
        check_metrics(self, self.data)
        return self


def check_metrics(spec: Spec, data: str) -> None:
    """Every metric the spec names is a declared one and can be computed on ``data`` (the primary may fall
    back, see ``harness.engine.plan``); margins and failure thresholds name a declared metric."""
    from cyclegan.metrics import registry

    m = spec.metric_table
    known = registry.metric_names(data)
    for key, names in (("fallback", [m.fallback] if m.fallback else []), ("secondary", m.secondary)):
        for name in names:
            if name not in registry.REGISTRY:
                raise ValueError(f"metrics.{key}: '{name}' is not a metric; valid: {', '.join(known)}")
    if m.fallback and registry.get(m.fallback).needs:
        raise ValueError(
            f"metrics.fallback: '{m.fallback}' needs {registry.get(m.fallback).needs}; a fallback must work "
            f"on any data, e.g. {', '.join(registry.agnostic())}"
        )
    if spec.primary not in registry.REGISTRY:
        raise ValueError(f"metrics.primary: '{spec.primary}' is not a metric; valid: {', '.join(known)}")
    for key, table in (("margin", m.margin), ("failure", m.failure)):
        for name in table:
            if name not in registry.REGISTRY:
                raise ValueError(f"metrics.{key}: '{name}' is not a metric; valid: {', '.join(known)}")


def resolve_spec_path(name_or_path: str, spec_dir: Path = SPEC_DIR) -> Path:
    """``ablate-pool``, ``ablate-pool.toml`` or a path to a spec file."""
    candidates = [Path(name_or_path), spec_dir / (name_or_path.removesuffix(".toml") + ".toml")]
    for path in candidates:
        if path.is_file():
            return path
    known = sorted(p.stem for p in spec_dir.glob("*.toml")) if spec_dir.is_dir() else []
    raise UserError(
        f"no experiment spec '{name_or_path}' (looked for {' and '.join(str(c) for c in candidates)}); "
        f"known: {', '.join(known) or 'none'}"
    )


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; a syntax error (including a table declared twice) is one line naming the file."""
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: invalid TOML: {' '.join(str(exc).split())}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read: {exc}") from None


M = TypeVar("M", bound=SpecBase)
COMMANDS = {"ablation": "run", "sweep": "sweep"}


def parse(model: type[M], raw: dict[str, Any], path: Path) -> M:
    """Validate a parsed TOML document as ``model``; every problem is one ``UserError`` line."""
    kind = model.model_fields["kind"].default
    found = raw.get("kind", "sweep" if "sweep" in raw else "ablation")
    if found != kind:
        if found not in COMMANDS:
            raise spec_error(path, "kind", f"bad value {found!r}; valid: {', '.join(COMMANDS)}")
        raise spec_error(
            path,
            "kind",
            f"'{found}' specs run with `harness {COMMANDS[found]}`, not `harness {COMMANDS[kind]}`",
        )
    try:
        spec = model.model_validate({"name": path.stem, **raw})
    except pydantic.ValidationError as exc:
        raise _one_line(path, model, exc) from None
    spec._path = path
    return spec


def _one_line(path: Path, model: type[pydantic.BaseModel], exc: pydantic.ValidationError) -> UserError:
    """pydantic's first error as ``<file>: <key>: <what is wrong>``, naming the valid keys or values."""
    e = exc.errors(include_url=False)[0]
    loc = [p for p in e["loc"] if p != "[key]" and not str(p).startswith(("function-", "tuple["))]
    key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    msg, got = e["msg"].removeprefix("Value error, "), e.get("input")
    if e["type"] == "extra_forbidden":
        valid = _keys(model, loc[:-1])
        msg = f"unknown key '{loc[-1]}'; valid: {', '.join(valid)}"
    elif e["type"] == "missing":
        msg = "missing"
    elif e["type"] == "literal_error":
        msg = f"bad value {got!r}; valid: {e['ctx']['expected']}"
    elif e["type"] != "value_error":
        msg = f"{msg.replace('Input should be', 'expected')}, got {got!r}"
    if not key:  # a check across keys names its key in the message
        return UserError(f"{path}: {msg}")
    return spec_error(path, key, msg)


def _keys(model: Any, loc: list[Any]) -> list[str]:
    """The keys valid at ``loc`` of ``model`` (for "unknown key" errors)."""
    for part in loc:
        if isinstance(model, type) and issubclass(model, pydantic.BaseModel):
            field = next((f for n, f in model.model_fields.items() if (f.alias or n) == part), None)
            model = field.annotation if field else None
        else:
            model = next((a for a in reversed(get_args(model)) if a is not type(None)), None)
    if isinstance(model, type) and issubclass(model, pydantic.BaseModel):
        return [f.alias or n for n, f in model.model_fields.items()]
    return []


def load_spec(path: str | Path) -> Spec:
    """Read and validate one ablation spec; every problem is a ``UserError`` naming the file and key."""
    return parse(Spec, read_toml(Path(path)), Path(path))
