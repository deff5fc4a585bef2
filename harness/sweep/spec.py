"""Sweep specs: a ``SpecBase`` (harness/engine/spec.py) plus a search space over config keys, the
objective(s) and the search budget.

Every problem is one line naming the spec file and the key, raised as ``UserError`` (exit 2), so a typo in a
spec never starts a half-configured sweep. The format is documented in ``docs/sweeps.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cyclegan.config import Config, ConfigError, apply_overrides, resolve
from harness.engine.spec import SpecBase, no_seed, read_base, read_toml, spec_error
from harness.errors import UserError

SAMPLERS = ("tpe", "random", "nsga2")
PRUNERS = ("median", "hyperband", "threshold", "none")
DIRECTIONS = ("maximize", "minimize")
PARAM_TYPES = ("float", "int", "categorical")
_TOP_KEYS = ("name", "question", "kind", "preset", "base", "data", "seeds", "sweep", "params", "objectives")
_SWEEP_KEYS = {
    "trials", "sampler", "sampler_seed", "pruner", "pruner_options", "confirm_seeds", "default",
}  # fmt: skip
_PRUNER_OPTIONS = {
    "median": {"n_startup_trials", "n_warmup_steps", "interval_steps", "n_min_trials"},
    "hyperband": {"min_resource", "max_resource", "reduction_factor"},
    "threshold": {"lower", "upper", "n_warmup_steps", "interval_steps"},
    "none": set(),
}
PAPER_DEFAULT = {"loss.lambda_A": 10.0, "loss.lambda_B": 10.0, "loss.lambda_identity": 0.5}


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


@dataclass(frozen=True)
class SweepSpec(SpecBase):
    """A validated sweep spec; every trial trains each of ``seeds`` and its value is the mean over them."""

    params: tuple[Param, ...]
    objectives: tuple[Objective, ...]
    trials: int
    sampler: str
    sampler_seed: int
    pruner: str
    pruner_options: dict[str, Any] = field(default_factory=dict)
    confirm_seeds: int = 0
    default: dict[str, Any] = field(
        default_factory=dict
    )  # the reference point a recommendation is compared to

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def directions(self) -> list[str]:
        return [o.direction for o in self.objectives]

    @property
    def metrics(self) -> list[str]:
        return [o.metric for o in self.objectives]

    @property
    def swept_keys(self) -> list[str]:
        return [k for p in self.params for k in p.keys]

    def with_preset(self, preset: str | None, overrides: dict[str, Any]) -> SweepSpec:
        """The spec as a command line changes it (``--preset``, ``--set``); checked like the file itself."""
        import dataclasses

        new = dataclasses.replace(self, preset=preset or self.preset, base={**self.base, **overrides})
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
            "pruner": self.pruner if not self.multi_objective else "none",
            "pruner_options": self.pruner_options, "confirm_seeds": self.confirm_seeds,
            "default": self.default,
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


_err = spec_error


def _get(
    raw: dict, key: str, types: type | tuple[type, ...], path: Path, where: str, default: Any = None
) -> Any:
    if key not in raw:
        if default is ...:
            raise _err(path, f"{where}{key}", "missing")
        return default
    value = raw[key]
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in _tuple(types))
    if not ok:
        names = "/".join(t.__name__ for t in _tuple(types))
        raise _err(path, f"{where}{key}", f"expected {names}, got {value!r}")
    return value


def _tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def _check_metric(spec_path: Path, where: str, metric: str, dataset: str) -> str | None:
    """The registry's direction for ``metric``; an error when the evaluator never reports it for the data."""
    from cyclegan.metrics import registry

    names = registry.metric_names(dataset)
    if metric not in names:
        shown = ", ".join(n for n in names if n.count(".") < 2)
        raise _err(spec_path, where, f"unknown metric {metric!r} for data {dataset!r}; valid: {shown}")
    return registry.get(metric).direction


def _parse_objectives(raw: dict, path: Path, dataset: str) -> tuple[Objective, ...]:
    items = raw.get("objectives")
    if items is None:
        raise _err(
            path,
            "objectives",
            'missing; e.g. objectives = [{metric = "seasons.l1_AtoB", direction = "minimize"}]',
        )
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list) or not items:
        raise _err(path, "objectives", "expected a non-empty list of {metric, direction} tables")
    out = []
    for i, item in enumerate(items):
        where = f"objectives[{i}]."
        if not isinstance(item, dict):
            raise _err(path, f"objectives[{i}]", "expected a table {metric = ..., direction = ...}")
        unknown = set(item) - {"metric", "direction"}
        if unknown:
            raise _err(path, f"{where}{sorted(unknown)[0]}", "unknown key; valid: metric, direction")
        metric = _get(item, "metric", str, path, where, ...)
        known = _check_metric(path, f"{where}metric", metric, dataset)
        direction = _get(item, "direction", str, path, where, None) or known
        if direction is None:
            raise _err(path, f"{where}direction", "missing and the metric registry does not know it")
        if direction not in DIRECTIONS:
            raise _err(path, f"{where}direction", f"bad value {direction!r}; valid: {', '.join(DIRECTIONS)}")
        out.append(Objective(metric, direction))
    if len({o.metric for o in out}) != len(out):
        raise _err(path, "objectives", "a metric appears twice")
    return tuple(out)


def _number(item: dict, key: str, path: Path, where: str, integer: bool) -> Any:
    types = (int,) if integer else (int, float)
    value = _get(item, key, types, path, where, None)
    if value is not None and not math.isfinite(value):
        raise _err(path, f"{where}{key}", f"expected a finite number, got {value!r}")
    return value


def _parse_param(key: str, item: Any, path: Path) -> Param | tuple[str, str]:
    """A Param, or (key, source key) for a ``same_as`` entry that the caller folds into its source."""
    where = f"params.{key}."
    if not isinstance(item, dict):
        raise _err(path, f"params.{key}", 'expected a table, e.g. {type = "float", low = 1, high = 30}')
    if "same_as" in item:
        if set(item) != {"same_as"}:
            raise _err(path, f"{where}same_as", "a tied key takes no other settings")
        return key, _get(item, "same_as", str, path, where, ...)
    valid = {"type", "low", "high", "log", "step", "choices", "tie"}
    unknown = set(item) - valid
    if unknown:
        raise _err(
            path,
            f"{where}{sorted(unknown)[0]}",
            f"unknown key; valid: {', '.join(sorted(valid | {'same_as'}))}",
        )
    kind = _get(item, "type", str, path, where, "categorical" if "choices" in item else "float")
    if kind not in PARAM_TYPES:
        raise _err(path, f"{where}type", f"bad value {kind!r}; valid: {', '.join(PARAM_TYPES)}")
    tie = _get(item, "tie", (list, str), path, where, [])
    tie = (tie,) if isinstance(tie, str) else tuple(tie)
    if not all(isinstance(t, str) for t in tie):
        raise _err(path, f"{where}tie", "expected config keys as strings")
    if kind == "categorical":
        choices = _get(item, "choices", list, path, where, ...)
        if not choices or not all(isinstance(c, str | int | float | bool) for c in choices):
            raise _err(path, f"{where}choices", "expected a non-empty list of strings, numbers or booleans")
        for extra in ("low", "high", "log", "step"):
            if extra in item:
                raise _err(path, f"{where}{extra}", "not used by a categorical parameter (use choices)")
        return Param(key, kind, choices=tuple(choices), tie=tie)
    if "choices" in item:
        raise _err(path, f"{where}choices", f"not used by a {kind} parameter (use low/high)")
    integer = kind == "int"
    low, high = (_number(item, k, path, where, integer) for k in ("low", "high"))
    if low is None or high is None:
        raise _err(path, f"{where}{'low' if low is None else 'high'}", "missing")
    if low > high:
        raise _err(path, f"{where}low", f"{low} is above high {high}")
    log = _get(item, "log", bool, path, where, False)
    step = _number(item, "step", path, where, integer)
    if log and low <= 0:
        raise _err(path, f"{where}low", f"a log-scale parameter needs low > 0, got {low}")
    if log and step is not None:
        raise _err(path, f"{where}step", "Optuna does not combine step with log = true")
    if step is not None and step <= 0:
        raise _err(path, f"{where}step", f"expected a positive step, got {step}")
    return Param(key, kind, low=low, high=high, log=log, step=step, tie=tie)


def _parse_params(raw: dict, path: Path) -> tuple[Param, ...]:
    table = raw.get("params")
    if not isinstance(table, dict) or not table:
        raise _err(path, "params", 'missing; a sweep needs at least one [params."section.key"] table')
    params: dict[str, Param] = {}
    same: list[tuple[str, str]] = []
    for key, item in table.items():
        parsed = _parse_param(key, item, path)
        if isinstance(parsed, Param):
            params[key] = parsed
        else:
            same.append(parsed)
    for key, source in same:
        if source not in params:
            raise _err(path, f"params.{key}.same_as", f"'{source}' is not a sampled parameter of this spec")
        p = params[source]
        params[source] = Param(p.key, p.type, p.low, p.high, p.log, p.step, p.choices, (*p.tie, key))
    seen: set[str] = set()
    for p in params.values():
        for k in p.keys:
            if k in seen:
                raise _err(path, f"params.{k}", "set by two parameters")
            seen.add(k)
    return tuple(params.values())


def parse_spec(raw: dict[str, Any], path: Path) -> SweepSpec:
    """Validate a parsed TOML document; every error names ``path`` and the key."""
    common = read_base(raw, path, "sweep", _TOP_KEYS, data="", seeds=[0])
    sweep = _get(raw, "sweep", dict, path, "", {})
    unknown = set(sweep) - _SWEEP_KEYS
    if unknown:
        raise _err(
            path, f"sweep.{sorted(unknown)[0]}", f"unknown key; valid: {', '.join(sorted(_SWEEP_KEYS))}"
        )
    trials = _get(sweep, "trials", int, path, "sweep.", 20)
    if trials < 1:
        raise _err(path, "sweep.trials", f"expected at least 1, got {trials}")
    sampler = _get(sweep, "sampler", str, path, "sweep.", "tpe")
    if sampler not in SAMPLERS:
        raise _err(path, "sweep.sampler", f"bad value {sampler!r}; valid: {', '.join(SAMPLERS)}")
    sampler_seed = _get(sweep, "sampler_seed", int, path, "sweep.", 0)
    pruner = _get(sweep, "pruner", str, path, "sweep.", "median")
    if pruner not in PRUNERS:
        raise _err(path, "sweep.pruner", f"bad value {pruner!r}; valid: {', '.join(PRUNERS)}")
    options = dict(_get(sweep, "pruner_options", dict, path, "sweep.", {}))
    for k, v in options.items():
        if k not in _PRUNER_OPTIONS[pruner]:
            valid = ", ".join(sorted(_PRUNER_OPTIONS[pruner])) or "none"
            raise _err(
                path, f"sweep.pruner_options.{k}", f"not an option of the {pruner} pruner; valid: {valid}"
            )
        if (
            isinstance(v, bool)
            or not isinstance(v, int | float)
            and not (k == "max_resource" and v == "auto")
        ):
            raise _err(path, f"sweep.pruner_options.{k}", f"expected a number, got {v!r}")
    if pruner == "threshold" and "lower" not in options and "upper" not in options:
        raise _err(path, "sweep.pruner_options", "the threshold pruner needs lower and/or upper")
    confirm = _get(sweep, "confirm_seeds", int, path, "sweep.", 0)
    if confirm < 0:
        raise _err(path, "sweep.confirm_seeds", f"expected 0 (off) or more, got {confirm}")
    base, preset = common["base"], common["preset"]
    dataset = common["data"] or str(base.get("data.dataset", "")) or resolve(preset).data.dataset
    objectives = _parse_objectives(raw, path, dataset)
    params = _parse_params(raw, path)
    default = dict(_get(sweep, "default", dict, path, "sweep.", {}))
    if not default:
        default = {k: v for k, v in PAPER_DEFAULT.items() if k in {k for p in params for k in p.keys}}
    spec = SweepSpec(
        **common, params=params, objectives=objectives, trials=trials, sampler=sampler,
        sampler_seed=sampler_seed, pruner="none" if len(objectives) > 1 else pruner,
        pruner_options=options, confirm_seeds=confirm, default=default,
    )  # fmt: skip
    _check_config(spec, "base")
    return spec


def _check_config(spec: SweepSpec, where: str) -> None:
    """Resolve the base config and both ends of every range so a bad key or bound fails before any trial."""
    path = spec.path
    swept = spec.swept_keys
    for key in spec.base:
        if key in swept:
            raise _err(
                path, f"{where}.{key}" if where == "base" else where, f"'{key}' is swept; drop it here"
            )
    base = base_config(spec)
    for p in spec.params:
        no_seed(f"{path}: params.{p.key}", p.keys)
        values = list(p.choices) if p.type == "categorical" else [p.low, p.high]
        for k in p.keys:
            for v in values:
                try:
                    apply_overrides(base, {k: v})
                except ConfigError as exc:
                    raise _err(path, f"params.{p.key}", str(exc)) from None
    for i, o in enumerate(spec.objectives):
        if "inception" in o.metric and not base.eval.inception_weights:
            raise _err(path, f"objectives[{i}].metric", f"{o.metric} needs eval.inception_weights in [base]")
    for k, v in spec.default.items():
        try:
            apply_overrides(base, {k: v})
        except ConfigError as exc:
            raise _err(path, f"sweep.default.{k}", str(exc)) from None


def base_config(spec: SweepSpec) -> Config:
    """preset < data < base: what every trial starts from before its sampled values."""
    overrides = dict(spec.base)
    if spec.data:
        overrides.setdefault("data.dataset", spec.data)
    try:
        return resolve(spec.preset, overrides)
    except ConfigError as exc:
        raise UserError(f"{spec.path}: base: {exc}") from None
