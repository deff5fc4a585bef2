"""Experiment specs: TOML data files in ``experiments/``. An ablation spec (``Spec``) describes arms x seeds
of one question; a sweep spec (harness/sweep/spec.py) a search space. Both are pydantic models on
``SpecBase``, read by ``parse``: every key and value is checked, so a typo is one line
``<file>: <key>: <what is wrong>`` before anything runs or is written.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args

import pydantic
from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, PrivateAttr, model_validator

from cyclegan.config import PRESETS
from harness.errors import UserError

SPEC_DIR = Path("experiments")
MAX_SEEDS = 1000  # seeds one spec or command line may plan (a typo like 10**9 is not an experiment)
MAX_NAME = 100  # a run folder is <arm>-s<seed>-<hash>: far below any file system's 255
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_NO_SEED = "'train.seed' is set by the spec's `seeds` (or --seeds), not by overrides"


def spec_error(path: Path, key: str, msg: str) -> UserError:
    """The one error format of every spec: ``<file>: <key>: <what is wrong>``."""
    return UserError(f"{path}: {key}: {msg}")


def safe_name(name: str) -> bool:
    """Arm and experiment names become folder names: no separators, no '..', no leading dot or dash."""
    return bool(_SAFE_NAME.match(name)) and ".." not in name and len(name) <= MAX_NAME


def _name(value: str) -> str:
    if safe_name(value):
        return value
    raise ValueError(
        f"unsafe name '{value}': a folder name needs up to {MAX_NAME} letters, digits, _ . - "
        "(not starting with '.' or '-', no '..')"
    )


def seed_list(value: Any) -> list[int]:
    """An int N means seeds 0..N-1; a list is taken as given (distinct integers in [0, 2^31))."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= MAX_SEEDS:
            raise ValueError(f"expected 1 to {MAX_SEEDS} seeds, got {value}")
        return list(range(value))
    if not isinstance(value, list):
        raise ValueError(f"expected an integer N or a list of integers, got {value!r}")
    if not value:
        raise ValueError("the seed list is empty; give an integer N or a list like [0, 1, 2]")
    bad = [s for s in value if not isinstance(s, int) or isinstance(s, bool) or not 0 <= s < 2**31]
    if bad:
        raise ValueError(f"{bad[0]!r} is not a seed (a non-negative integer below 2^31)")
    if len(set(value)) != len(value) or len(value) > MAX_SEEDS:
        raise ValueError(f"expected up to {MAX_SEEDS} distinct seeds, got {value}")
    return value


def parse_seeds(where: str, value: Any) -> list[int]:
    try:
        return seed_list(value)
    except ValueError as exc:
        raise UserError(f"{where}: {exc}") from None


def no_seed(where: str, keys: Any) -> None:
    """Seeds come from the spec's ``seeds`` (or --seeds), never from an override or a search."""
    if "train.seed" in keys:
        raise UserError(f"{where}: {_NO_SEED}")


def flatten(table: Any, prefix: str = "") -> dict[str, Any]:
    """``{"train": {"pool_size": 0}}`` and ``{"train.pool_size": 0}`` mean one override; giving both is an
    error, never a silent choice of one. ``train.seed`` is the spec's ``seeds``."""
    if not isinstance(table, dict):
        raise ValueError(f"expected a table of dotted config overrides, got {table!r}")
    out: dict[str, Any] = {}
    for key, value in table.items():
        for full, v in (
            flatten(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key: value}
        ).items():
            if full in out:
                raise ValueError(f"'{full}' is set twice (as a dotted key and in a nested table)")
            out[full] = v
    if "train.seed" in out:
        raise ValueError(_NO_SEED)
    return out


def _data(data: str) -> str:
    """Synthetic tasks and official names are resolved later; anything else must be a folder now."""
    from cyclegan.data.catalogue import DATASETS

    if data.startswith("synth:"):
        from cyclegan import synth

        try:
            synth.check_task(data.removeprefix("synth:"))
        except KeyError as exc:
            raise ValueError(exc.args[0]) from None
    elif data and data not in DATASETS and not Path(data).is_dir():
        raise ValueError(
            f"folder not found: '{data}' (give 'synth:zebra', 'synth:seasons' or a folder with "
            "trainA/ trainB/ testA/ testB/)"
        )
    return data


def check_data_name(where: str, data: str) -> None:
    try:
        _data(data)
    except ValueError as exc:
        raise UserError(f"{where}: {exc}") from None


def _metric(name: str) -> str:
    from cyclegan.metrics import registry

    if name not in registry.REGISTRY:
        raise ValueError(f"'{name}' is not a metric; valid: {', '.join(registry.metric_names(''))}")
    return name


def _agnostic(name: str) -> str:
    from cyclegan.metrics import registry

    if registry.get(name).needs:
        raise ValueError(
            f"'{name}' needs {registry.get(name).needs}; a fallback must work on any data, e.g. "
            + ", ".join(registry.agnostic())
        )
    return name


def _pair(value: Any) -> Any:
    if isinstance(value, list) and len(value) == 2 and all(isinstance(a, str) for a in value):
        return tuple(value)
    raise ValueError(f'expected [arm, reference], e.g. ["batch-b4", "inst-b4"], got {value!r}')


Name = Annotated[str, AfterValidator(_name)]
Overrides = Annotated[dict[str, Any], BeforeValidator(flatten)]
Data = Annotated[str, AfterValidator(_data)]
Metric = Annotated[str, AfterValidator(_metric)]
Direction = Literal["maximize", "minimize"]
Positive = Annotated[int, Field(ge=1)]
Finite = Annotated[float, Field(allow_inf_nan=False)]


class Table(pydantic.BaseModel):
    """A TOML table: unknown keys are errors and a value must have the TOML type (no 1 for true)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


class SpecBase(Table):
    """What every spec has: a name (folder-safe), the question, preset, ``base`` overrides, data and seeds;
    ``path`` is the file it came from."""

    kind: str = "ablation"
    name: Name
    question: str = ""
    preset: Literal[tuple(PRESETS)] = "cpu"  # type: ignore[valid-type]
    base: Overrides = {}
    data: Data = "synth:zebra"
    seeds: Annotated[list[int], BeforeValidator(seed_list)] = list(range(5))
    _path: Path = PrivateAttr(default=Path("?"))
    path = property(lambda self: self._path)


class Metrics(Table):
    primary: Metric | None = None  # default: the data's recommended metric
    direction: Direction | None = None  # default: the registry's
    secondary: list[Metric] = []
    fallback: Annotated[Metric, AfterValidator(_agnostic)] | None = None  # when the data cannot give primary
    margin: dict[Metric, Annotated[Finite, Field(gt=0)]] = {}  # smallest effect of interest, metric units
    failure: dict[Metric, Finite] = {}  # a run on the wrong side of this value failed


class Spec(SpecBase):
    """One validated ablation spec; ``arms`` maps arm name -> dotted config overrides."""

    question: str
    control: str
    arm_tables: dict[Name, Overrides] = Field(alias="arms")
    compare: list[Annotated[tuple[str, str], BeforeValidator(_pair)]] = []  # pairs beside arm-vs-control
    iterations: Positive | None = None
    epochs: Positive | None = None
    budget_in: Literal["iterations", "epochs"] = "iterations"  # what stays fixed when the data size changes
    eval_every: Annotated[int, Field(ge=0)] | None = None
    metric_table: Metrics = Field(Metrics(), alias="metrics")
    project: str = "cyclegan-harness"
    max_seeds: Annotated[int, Field(ge=1, le=MAX_SEEDS)] | None = None  # bound for --until-decided

    arms = property(
        lambda s: {a: {k: v for k, v in t.items() if k != "note"} for a, t in s.arm_tables.items()}
    )
    arm_notes = property(lambda s: {a: t["note"] for a, t in s.arm_tables.items() if "note" in t})
    budget = property(lambda s: {k: v for k in ("iterations", "epochs") if (v := getattr(s, k)) is not None})
    direction = property(lambda s: s.metric_table.direction or _registry().get(s.primary).direction)
    primary = property(lambda s: s.metric_table.primary or _registry().primary_metric(s.data).name)
    secondary = property(lambda s: list(s.metric_table.secondary))
    fallback = property(lambda s: s.metric_table.fallback)
    margins = property(lambda s: dict(s.metric_table.margin))
    failure_thresholds = property(lambda s: dict(s.metric_table.failure))

    @model_validator(mode="after")
    def _consistent(self) -> Spec:
        arms = list(self.arm_tables)
        notes = {a: n for a, t in self.arm_tables.items() if not isinstance(n := t.get("note", ""), str)}
        problems = [
            (len(arms) < 2, f"arms: need at least two [arms.<name>] tables to compare, got {len(arms)}"),
            *((True, f"arms.{a}.note: expected a string, got {n!r}") for a, n in notes.items()),
            (self.control not in arms, f"control: '{self.control}' is not an arm; valid: {', '.join(arms)}"),
            (bool(self.iterations and self.epochs), "iterations: give `iterations` or `epochs`, not both"),
            ((self.max_seeds or MAX_SEEDS) < len(self.seeds), f"max_seeds: {self.max_seeds} is below the "
             f"{len(self.seeds)} seeds planned"),
        ]  # fmt: skip
        for i, pair in enumerate(self.compare):
            unknown = [a for a in pair if a not in arms] + [""]
            problems += [
                (len(unknown) > 1, f"compare[{i}]: '{unknown[0]}' is not an arm; valid: {', '.join(arms)}"),
                (pair[0] == pair[1], f"compare[{i}]: an arm compared with itself ('{pair[0]}')"),
                (self.control in pair, f"compare[{i}]: every arm is already compared with the control "
                 f"'{self.control}'; list only pairs of two other arms"),
                (bool({pair, pair[::-1]} & set(self.compare[:i])), f"compare[{i}]: {pair} is listed twice"),
            ]  # fmt: skip
        declared = [self.primary, *self.secondary, *([self.fallback] if self.fallback else [])]
        for key in ("margin", "failure"):
            odd = [m for m in getattr(self.metric_table, key) if m not in declared] + [""]
            problems.append((len(odd) > 1, f"metrics.{key}: '{odd[0]}' is not a declared metric; valid: "
                             f"{', '.join(declared)}"))  # fmt: skip
        for bad, message in problems:
            if bad:
                raise ValueError(message)
        return self


def _registry():
    from cyclegan.metrics import registry

    return registry


def find_spec(name: str, prefix: str = "") -> Path:
    """``ablate-pool``, ``ablate-pool.toml`` or a path to a spec file (``prefix`` "sweep-": ``lambda``)."""
    stem = name.removesuffix(".toml")
    candidates = [
        Path(name),
        SPEC_DIR / f"{stem}.toml",
        SPEC_DIR / f"{prefix}{stem.removeprefix(prefix)}.toml",
    ]
    for path in candidates:
        if path.is_file():
            return path
    known = sorted(p.stem for p in SPEC_DIR.glob(f"{prefix}*.toml")) if SPEC_DIR.is_dir() else []
    raise UserError(
        f"no {'sweep' if prefix else 'experiment'} spec '{name}' (looked for "
        f"{' and '.join(dict.fromkeys(map(str, candidates)))}); known: {', '.join(known) or 'none'}"
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
    kind, found = (
        model.model_fields["kind"].default,
        raw.get("kind", "sweep" if "sweep" in raw else "ablation"),
    )
    if found not in COMMANDS:
        raise spec_error(path, "kind", f"bad value {found!r}; valid: {', '.join(COMMANDS)}")
    if found != kind:
        raise spec_error(path, "kind", f"'{found}' specs run with `harness {COMMANDS[found]}`, not `harness "
                         f"{COMMANDS[kind]}`")  # fmt: skip
    try:
        spec = model.model_validate({"name": path.stem, **raw})
    except pydantic.ValidationError as exc:
        e = exc.errors(include_url=False)[0]
        loc = [p for p in e["loc"] if p != "[key]" and not str(p).startswith(("function-", "tuple["))]
        key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
        msg, got = e["msg"].removeprefix("Value error, "), e.get("input")
        if e["type"] == "extra_forbidden":
            msg = f"unknown key '{loc[-1]}'; valid: {', '.join(_keys(model, loc[:-1]))}"
        elif e["type"] in ("missing", "literal_error"):
            msg = "missing" if e["type"] == "missing" else f"bad value {got!r}; valid: {e['ctx']['expected']}"
        elif e["type"] == "too_short":
            msg = f"expected at least {e['ctx']['min_length']} entry, got none"
        elif e["type"] != "value_error":
            msg = f"{msg.replace('Input should be', 'expected')}, got {got!r}"
        raise (spec_error(path, key, msg) if key else UserError(f"{path}: {msg}")) from None
    spec._path = path
    return spec


def _keys(model: Any, loc: list[Any]) -> list[str]:
    """The keys valid at ``loc`` of ``model`` (for "unknown key" errors)."""
    for part in loc:
        if isinstance(model, type) and issubclass(model, pydantic.BaseModel):
            model = next(
                (f.annotation for n, f in model.model_fields.items() if (f.alias or n) == part), None
            )
        else:
            model = next((a for a in reversed(get_args(model)) if a is not type(None)), None)
    fields = model.model_fields if isinstance(model, type) and issubclass(model, pydantic.BaseModel) else {}
    return [f.alias or n for n, f in fields.items()]


def load_spec(path: str | Path) -> Spec:
    """Read and validate one ablation spec; every problem is a ``UserError`` naming the file and key."""
    return parse(Spec, read_toml(Path(path)), Path(path))
