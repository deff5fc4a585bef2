"""Sweep specs: a ``SpecBase`` (harness/engine/spec.py) plus a search space over config keys, the
objective(s) and the search budget (format: ``docs/sweeps.md``). Every problem is one line naming the spec
file and the key, so a typo never starts a half-configured sweep.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from cyclegan.config import Config, ConfigError, apply_overrides, resolve
from harness.engine import spec as base_spec
from harness.engine.spec import (
    Data,
    Direction,
    Finite,
    SpecBase,
    Table,
    no_seed,
    parse,
    read_toml,
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
find_spec = functools.partial(base_spec.find_spec, prefix="sweep-")
_listed = BeforeValidator(lambda v: [v] if isinstance(v, str | dict) else v)  # one item for a list of one


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
    keys = property(lambda self: (self.key, *self.tie))

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
    margin: float | None = None


class ParamTable(Table):
    type: Literal["float", "int", "categorical"] | None = None
    low: Finite | int | None = None
    high: Finite | int | None = None
    log: bool = False
    step: Annotated[Finite | int, Field(gt=0)] | None = None
    choices: Annotated[list[str | int | float | bool], Field(min_length=1)] | None = None
    tie: Annotated[list[str], _listed] = []
    same_as: str | None = None  # this key takes the value sampled for another

    def param(self, key: str) -> Param | None:
        """The Param this table samples (None for a ``same_as`` entry); errors name ``params.KEY.*``."""
        given, kind = self.model_fields_set, self.type or ("categorical" if self.choices else "float")
        unused = given & ({"low", "high", "log", "step"} if kind == "categorical" else {"choices"})
        problems = [
            (self.same_as is not None and given != {"same_as"}, "same_as: a tied key takes nothing else"),
            (bool(unused), f"{min(unused or [''])}: not used by a {kind} parameter"),
            (kind == "categorical" and not self.choices, "choices: missing"),
        ]  # fmt: skip
        if kind != "categorical" and self.same_as is None:
            low, high, step = self.low, self.high, self.step
            ints = [v for v in (low, high, step) if v is not None and not isinstance(v, int)]
            problems += [
                (low is None or high is None, f"{'low' if low is None else 'high'}: missing"),
                (kind == "int" and bool(ints), f"low: expected int, got {ints[:1]}"),
                (low is not None and high is not None and low > high, f"low: {low} is above high {high}"),
                (self.log and (low or 0) <= 0, f"low: a log-scale parameter needs low > 0, got {low}"),
                (self.log and step is not None, "step: Optuna does not combine step with log = true"),
            ]  # fmt: skip
        for bad, message in problems:
            if bad:
                raise ValueError(f"params.{key}.{message}")
        if self.same_as is not None:
            return None
        return Param(
            key, kind, self.low, self.high, self.log, self.step, tuple(self.choices or ()), tuple(self.tie)
        )


class ObjectiveTable(Table):
    metric: str
    direction: Direction | None = None
    margin: Annotated[Finite, Field(gt=0)] | None = None  # smallest difference of interest, for confirmation


class SweepTable(Table):
    trials: Annotated[int, Field(ge=1)] = 20
    sampler: Literal["tpe", "random", "nsga2"] = "tpe"
    sampler_seed: int = 0
    pruner: Literal["median", "hyperband", "threshold", "none"] = "median"
    pruner_options: dict[str, Finite | int | Literal["auto"]] = {}
    confirm_seeds: Annotated[int, Field(ge=0)] = 0
    default: dict[str, Any] = {}  # the reference point a recommendation is compared to


class SweepSpec(SpecBase):
    """A validated sweep spec; every trial trains each of ``seeds`` and its value is the mean over them."""

    kind: str = "sweep"
    data: Data = ""
    seeds: Annotated[list[int], BeforeValidator(base_spec.seed_list)] = [0]
    search: SweepTable = Field(SweepTable(), alias="sweep")
    param_tables: Annotated[dict[str, ParamTable], Field(min_length=1)] = Field(alias="params")
    objective_tables: Annotated[list[ObjectiveTable], _listed, Field(min_length=1)] = Field(
        alias="objectives"
    )

    trials = property(lambda s: s.search.trials)
    sampler = property(lambda s: s.search.sampler)
    sampler_seed = property(lambda s: s.search.sampler_seed)
    pruner_options = property(lambda s: dict(s.search.pruner_options))
    confirm_seeds = property(lambda s: s.search.confirm_seeds)
    pruner = property(lambda s: "none" if s.multi_objective else s.search.pruner)
    multi_objective = property(lambda s: len(s.objective_tables) > 1)
    directions = property(lambda s: [o.direction for o in s.objectives])
    metrics = property(lambda s: [o.metric for o in s.objective_tables])
    swept_keys = property(lambda s: [k for p in s.params for k in p.keys])
    dataset = property(
        lambda s: s.data or str(s.base.get("data.dataset", "")) or resolve(s.preset).data.dataset
    )

    @property
    def default(self) -> dict[str, Any]:
        swept = set(self.swept_keys)
        return dict(self.search.default) or {k: v for k, v in PAPER_DEFAULT.items() if k in swept}

    @property
    def params(self) -> tuple[Param, ...]:
        """The sampled parameters, each ``same_as`` entry folded into its source's ``tie``."""
        out = {key: p for key, t in self.param_tables.items() if (p := t.param(key)) is not None}
        for key, t in self.param_tables.items():
            if t.same_as is not None:
                p = out[t.same_as]
                out[t.same_as] = Param(p.key, p.type, p.low, p.high, p.log, p.step, p.choices, (*p.tie, key))
        return tuple(out.values())

    @property
    def objectives(self) -> tuple[Objective, ...]:
        from cyclegan.metrics import registry

        return tuple(
            Objective(o.metric, o.direction or registry.get(o.metric).direction, o.margin)
            for o in self.objective_tables
        )

    @model_validator(mode="after")
    def _consistent(self) -> SweepSpec:
        from cyclegan.metrics import registry

        pruner, options = self.search.pruner, self.search.pruner_options
        sampled = {key: t.param(key) for key, t in self.param_tables.items()}
        tied = {key: t.same_as for key, t in self.param_tables.items() if t.same_as is not None}
        names = registry.metric_names(self.dataset)
        keys = [k for key, p in sampled.items() if p for k in (key, *p.tie)] + list(tied)
        problems = [
            *((k not in PRUNER_OPTIONS[pruner], f"sweep.pruner_options.{k}: not an option of the {pruner} "
               f"pruner; valid: {', '.join(sorted(PRUNER_OPTIONS[pruner])) or 'none'}") for k in options),
            *((v == "auto" and k != "max_resource", f"sweep.pruner_options.{k}: expected a number, got "
               "'auto'") for k, v in options.items()),
            (pruner == "threshold" and not {"lower", "upper"} & set(options),
             "sweep.pruner_options: the threshold pruner needs lower and/or upper"),
            *((sampled.get(src) is None, f"params.{k}.same_as: '{src}' is not a sampled parameter")
              for k, src in tied.items()),
            *((keys.count(k) > 1, f"params.{k}: set by two parameters") for k in keys),
            *((o.metric not in names, f"objectives[{i}].metric: unknown metric {o.metric!r} for data "
               f"{self.dataset!r}; valid: {', '.join(n for n in names if n.count('.') < 2)}")
              for i, o in enumerate(self.objective_tables)),
            (len({o.metric for o in self.objective_tables}) < len(self.objective_tables),
             "objectives: a metric appears twice"),
        ]  # fmt: skip
        for bad, message in problems:
            if bad:
                raise ValueError(message)
        return self

    def with_preset(self, preset: str | None, overrides: dict[str, Any]) -> SweepSpec:
        """The spec as a command line changes it (``--preset``, ``--set``); checked like the file itself."""
        no_seed("--set", overrides)
        new = self.model_copy(update={"preset": preset or self.preset, "base": {**self.base, **overrides}})
        _check_config(new, "--set" if overrides else "--preset")
        return new

    def to_json(self) -> dict[str, Any]:
        """The part of the spec that experiment.json and the study record."""
        params = {p.key: {"type": p.type, "low": p.low, "high": p.high, "log": p.log, "step": p.step,
                          "choices": list(p.choices), "tie": list(p.tie)} for p in self.params}  # fmt: skip
        keys = ("trials", "sampler", "sampler_seed", "pruner", "pruner_options", "confirm_seeds", "default")
        objectives = [{"metric": o.metric, "direction": o.direction, "margin": o.margin}
                      for o in self.objectives]  # fmt: skip
        return {"params": params, "objectives": objectives, **{k: getattr(self, k) for k in keys}}


def load_spec(path: Path) -> SweepSpec:
    return parse_spec(read_toml(path), path)


def parse_spec(raw: dict[str, Any], path: Path) -> SweepSpec:
    """Validate a parsed TOML document; every error names ``path`` and the key."""
    spec = parse(SweepSpec, raw, path)
    _check_config(spec, "base")
    return spec


def _check_config(spec: SweepSpec, where: str) -> None:
    """Resolve the base config and both ends of every range so a bad key or bound fails before any trial."""
    from harness.engine.plan import check_runnable

    path = spec.path
    for key in set(spec.base) & set(spec.swept_keys):
        raise spec_error(path, f"base.{key}" if where == "base" else where, f"'{key}' is swept; drop it here")
    base = base_config(spec)
    check_runnable(base, f"{path}: {where}")
    tries = [(f"params.{p.key}", k, v) for p in spec.params for k in p.keys
             for v in (p.choices if p.type == "categorical" else (p.low, p.high))]  # fmt: skip
    tries += [(f"sweep.default.{k}", k, v) for k, v in spec.default.items()]
    for key, k, v in tries:
        no_seed(f"{path}: {key}", [k])
        try:
            apply_overrides(base, {k: v})
        except ConfigError as exc:
            raise spec_error(path, key, str(exc)) from None
    for i, o in enumerate(spec.objectives):
        if "inception" in o.metric and not base.eval.inception_weights:
            raise spec_error(
                path, f"objectives[{i}].metric", f"{o.metric} needs eval.inception_weights in [base]"
            )


def base_config(spec: SweepSpec) -> Config:
    """preset < data < base: what every trial starts from before its sampled values."""
    try:
        return resolve(spec.preset, {**({"data.dataset": spec.data} if spec.data else {}), **spec.base})
    except ConfigError as exc:
        raise UserError(f"{spec.path}: base: {exc}") from None
