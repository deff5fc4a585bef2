"""Sweep specs: a ``SpecBase`` (harness/engine/spec.py) plus a search space over config keys, the
objective(s) and the search budget. The format is documented in ``docs/sweeps.md``.

Every problem is one line naming the spec file and the key, raised as ``UserError`` (exit 2), so a typo in a
spec never starts a half-configured sweep.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from cyclegan.config import Config, ConfigError, apply_overrides, resolve
from harness.engine.plan import check_runnable
from harness.engine.spec import (
    Data,
    Direction,
    SpecBase,
    Table,
    no_seed,
    parse,
    read_toml,
    seed_list,
    spec_error,
)
from harness.errors import UserError

PRUNER_OPTIONS = {
    "median": {"n_startup_trials", "n_warmup_steps", "interval_steps", "n_min_trials"},
    "hyperband": {"min_resource", "max_resource", "reduction_factor"},
    "threshold": {"lower", "upper", "n_warmup_steps", "interval_steps"},
    "none": set(),
}
PAPER_DEFAULT = {"loss.lambda_A": 10.0, "loss.lambda_B": 10.0, "loss.lambda_identity": 0.5}
Number = Annotated[float | int, Field(allow_inf_nan=False)]


@dataclass(frozen=True)
class Param:
    """One sampled value (Optuna's parameter ``key``) that sets ``key`` and every key in ``tie``."""

    key: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()
    tie: tuple[str, ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.key, *self.tie)

    def describe(self) -> str:
        if self.type == "categorical":
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        else:
            text = f"{self.type} in [{self.low:g}, {self.high:g}]" + (" log" if self.log else "")
            text += f" step {self.step:g}" if self.step else ""
        return text + (f" (also sets {', '.join(self.tie)})" if self.tie else "")


@dataclass(frozen=True)
class Objective:
    metric: str
    direction: str


class ParamTable(Table):
    type: Literal["float", "int", "categorical"] | None = None
    low: Number | None = None
    high: Number | None = None
    log: bool = False
    step: Number | None = None
    choices: Annotated[list[str | int | float | bool], Field(min_length=1)] | None = None
    tie: Annotated[list[str], BeforeValidator(lambda v: [v] if isinstance(v, str) else v)] = []
    same_as: str | None = None

    def check(self, key: str) -> Param | None:
        """The Param this table samples (None for a ``same_as`` entry); errors name ``params.KEY.*``."""
        where, given = f"params.{key}", self.model_fields_set
        if self.same_as is not None:
            if given != {"same_as"}:
                raise ValueError(f"{where}.same_as: a tied key takes no other settings")
            return None
        kind = self.type or ("categorical" if self.choices is not None else "float")
        if kind == "categorical":
            if self.choices is None:
                raise ValueError(f"{where}.choices: missing")
            for extra in ("low", "high", "log", "step"):
                if extra in given:
                    raise ValueError(f"{where}.{extra}: not used by a categorical parameter (use choices)")
            return Param(key, kind, choices=tuple(self.choices), tie=tuple(self.tie))
        if self.choices is not None:
            raise ValueError(f"{where}.choices: not used by a {kind} parameter (use low/high)")
        for name in ("low", "high", "step"):
            value = getattr(self, name)
            if value is None and name != "step":
                raise ValueError(f"{where}.{name}: missing")
            if kind == "int" and value is not None and not isinstance(value, int):
                raise ValueError(f"{where}.{name}: expected int, got {value!r}")
        low, high, step = self.low, self.high, self.step
        if low > high:
            raise ValueError(f"{where}.low: {low} is above high {high}")
        if self.log and low <= 0:
            raise ValueError(f"{where}.low: a log-scale parameter needs low > 0, got {low}")
        if self.log and step is not None:
            raise ValueError(f"{where}.step: Optuna does not combine step with log = true")
        if step is not None and step <= 0:
            raise ValueError(f"{where}.step: expected a positive step, got {step}")
        return Param(key, kind, low=low, high=high, log=self.log, step=step, tie=tuple(self.tie))


class ObjectiveTable(Table):
    metric: str
    direction: Direction | None = None


class SweepTable(Table):
    trials: Annotated[int, Field(ge=1)] = 20
    sampler: Literal["tpe", "random", "nsga2"] = "tpe"
    sampler_seed: int = 0
    pruner: Literal["median", "hyperband", "threshold", "none"] = "median"
    pruner_options: dict[str, Number | Literal["auto"]] = {}
    confirm_seeds: Annotated[int, Field(ge=0)] = 0
    default: dict[str, Any] = {}  # the reference point a recommendation is compared to


class SweepSpec(SpecBase):
    """A validated sweep spec; every trial trains each of ``seeds`` and its value is the mean over them."""

    kind: str = "sweep"
    data: Data = ""
    seeds: Annotated[list[int], BeforeValidator(seed_list)] = [0]
    search: SweepTable = Field(SweepTable(), alias="sweep")
    param_tables: Annotated[dict[str, ParamTable], Field(min_length=1)] = Field(alias="params")
    objective_tables: Annotated[
        list[ObjectiveTable],
        BeforeValidator(lambda v: [v] if isinstance(v, dict) else v),
        Field(min_length=1),
    ] = Field(alias="objectives")

    @model_validator(mode="after")
    def _consistent(self) -> SweepSpec:
        from cyclegan.metrics import registry

        options = self.search.pruner_options
        for k, v in options.items():
            if k not in PRUNER_OPTIONS[self.search.pruner]:
                valid = ", ".join(sorted(PRUNER_OPTIONS[self.search.pruner])) or "none"
                pruner = self.search.pruner
                raise ValueError(
                    f"sweep.pruner_options.{k}: not an option of the {pruner} pruner; valid: {valid}"
                )
            if v == "auto" and k != "max_resource":
                raise ValueError(f"sweep.pruner_options.{k}: expected a number, got {v!r}")
        if self.search.pruner == "threshold" and not {"lower", "upper"} & set(options):
            raise ValueError("sweep.pruner_options: the threshold pruner needs lower and/or upper")
        tables = {key: t.check(key) for key, t in self.param_tables.items()}
        for key, table in self.param_tables.items():
            if table.same_as is not None and tables.get(table.same_as) is None:
                raise ValueError(
                    f"params.{key}.same_as: '{table.same_as}' is not a sampled parameter of this spec"
                )
        seen: set[str] = set()
        for k in (k for p in self.params for k in p.keys):
            if k in seen:
                raise ValueError(f"params.{k}: set by two parameters")
            seen.add(k)
        names = registry.metric_names(self.dataset)
        for i, o in enumerate(self.objective_tables):
            if o.metric not in names:
                shown = ", ".join(n for n in names if n.count(".") < 2)
                where = f"objectives[{i}].metric"
                raise ValueError(
                    f"{where}: unknown metric {o.metric!r} for data {self.dataset!r}; valid: {shown}"
                )
        if len({o.metric for o in self.objective_tables}) != len(self.objective_tables):
            raise ValueError("objectives: a metric appears twice")
        return self

    @property
    def dataset(self) -> str:
        return self.data or str(self.base.get("data.dataset", "")) or resolve(self.preset).data.dataset

    @property
    def params(self) -> tuple[Param, ...]:
        """The sampled parameters, each ``same_as`` entry folded into its source's ``tie``."""
        out = {key: p for key, t in self.param_tables.items() if (p := t.check(key)) is not None}
        for key, t in self.param_tables.items():
            if t.same_as is not None:
                p = out[t.same_as]
                out[t.same_as] = Param(p.key, p.type, p.low, p.high, p.log, p.step, p.choices, (*p.tie, key))
        return tuple(out.values())

    @property
    def objectives(self) -> tuple[Objective, ...]:
        from cyclegan.metrics import registry

        return tuple(
            Objective(o.metric, o.direction or registry.get(o.metric).direction)
            for o in self.objective_tables
        )

    trials = property(lambda self: self.search.trials)
    sampler = property(lambda self: self.search.sampler)
    sampler_seed = property(lambda self: self.search.sampler_seed)
    pruner_options = property(lambda self: dict(self.search.pruner_options))
    confirm_seeds = property(lambda self: self.search.confirm_seeds)

    @property
    def pruner(self) -> str:
        return "none" if self.multi_objective else self.search.pruner

    @property
    def default(self) -> dict[str, Any]:
        swept = set(self.swept_keys)
        return dict(self.search.default) or {k: v for k, v in PAPER_DEFAULT.items() if k in swept}

    @property
    def multi_objective(self) -> bool:
        return len(self.objective_tables) > 1

    @property
    def directions(self) -> list[str]:
        return [o.direction for o in self.objectives]

    @property
    def metrics(self) -> list[str]:
        return [o.metric for o in self.objective_tables]

    @property
    def swept_keys(self) -> list[str]:
        return [k for p in self.params for k in p.keys]

    def with_preset(self, preset: str | None, overrides: dict[str, Any]) -> SweepSpec:
        """The spec as a command line changes it (``--preset``, ``--set``); checked like the file itself."""
        no_seed("--set", overrides)
        new = self.model_copy(update={"preset": preset or self.preset, "base": {**self.base, **overrides}})
        _check_config(new, "--set" if overrides else "--preset")
        return new

    def to_json(self) -> dict[str, Any]:
        """The part of the spec that experiment.json and the study record."""
        return {
            "params": {
                p.key: {
                    "type": p.type, "low": p.low, "high": p.high, "log": p.log, "step": p.step,
                    "choices": list(p.choices), "tie": list(p.tie),
                }
                for p in self.params
            },
            "objectives": [{"metric": o.metric, "direction": o.direction} for o in self.objectives],
            "trials": self.trials, "sampler": self.sampler, "sampler_seed": self.sampler_seed,
            "pruner": self.pruner, "pruner_options": self.pruner_options, "confirm_seeds": self.confirm_seeds,
            "default": self.default,
        }  # fmt: skip

    def experiment_record(self, command: str, storage: str) -> dict[str, Any]:
        """experiment.json (docs/RUNSTORE.md) with kind "sweep", so status and report tools find the sweep."""
        cfg = base_config(self)
        return {
            "name": self.name, "question": self.question, "kind": "sweep", "spec_path": str(self.path),
            "command": command, "preset": self.preset, "base": self.base, "data": cfg.data.dataset,
            "control": "default", "arms": {}, "seeds": list(self.seeds),
            "budget": {"iterations": cfg.train.max_iters},
            "metrics": {"primary": self.metrics[0], "direction": self.directions[0],
                        "secondary": self.metrics[1:]},
            "sweep": self.to_json(), "storage": storage, "runs": [],
            "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }  # fmt: skip


def find_spec(name: str, root: Path | None = None) -> Path:
    """``lambda``, ``sweep-lambda`` or a path to a TOML file."""
    as_path = Path(name)
    if as_path.suffix == ".toml" or as_path.exists():
        if not as_path.is_file():
            raise UserError(f"sweep spec '{name}' not found")
        return as_path
    folder = (root or Path.cwd()) / "experiments"
    stem = name if name.startswith("sweep-") else f"sweep-{name}"
    path = folder / f"{stem}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("sweep-*.toml")) if folder.is_dir() else []
        raise UserError(
            f"no sweep spec '{name}' (looked for {path}); known sweeps: {', '.join(known) or 'none'}"
        )
    return path


def load_spec(path: Path) -> SweepSpec:
    return parse_spec(read_toml(path), path)


def parse_spec(raw: dict[str, Any], path: Path) -> SweepSpec:
    """Validate a parsed TOML document; every error names ``path`` and the key."""
    spec = parse(SweepSpec, raw, path)
    _check_config(spec, "base")
    return spec


def _check_config(spec: SweepSpec, where: str) -> None:
    """Resolve the base config and both ends of every range so a bad key or bound fails before any trial."""
    path = spec.path
    swept = spec.swept_keys
    for key in spec.base:
        if key in swept:
            raise spec_error(
                path, f"{where}.{key}" if where == "base" else where, f"'{key}' is swept; drop it here"
            )
    base = base_config(spec)
    check_runnable(base, f"{path}: {where}")
    for p in spec.params:
        no_seed(f"{path}: params.{p.key}", p.keys)
        values = list(p.choices) if p.type == "categorical" else [p.low, p.high]
        for k in p.keys:
            for v in values:
                try:
                    apply_overrides(base, {k: v})
                except ConfigError as exc:
                    raise spec_error(path, f"params.{p.key}", str(exc)) from None
    for i, o in enumerate(spec.objectives):
        if "inception" in o.metric and not base.eval.inception_weights:
            raise spec_error(
                path, f"objectives[{i}].metric", f"{o.metric} needs eval.inception_weights in [base]"
            )
    for k, v in spec.default.items():
        try:
            apply_overrides(base, {k: v})
        except ConfigError as exc:
            raise spec_error(path, f"sweep.default.{k}", str(exc)) from None


def base_config(spec: SweepSpec) -> Config:
    """preset < data < base: what every trial starts from before its sampled values."""
    overrides = dict(spec.base)
    if spec.data:
        overrides.setdefault("data.dataset", spec.data)
    try:
        return resolve(spec.preset, overrides)
    except ConfigError as exc:
        raise UserError(f"{spec.path}: base: {exc}") from None
