"""Experiment specs: TOML data files in ``experiments/``. An ablation spec describes arms x seeds of one
question; a sweep spec (harness/sweep/spec.py) a search space. Both are a ``SpecBase`` read by ``read_base``.

A spec is data, never code: it is parsed with ``tomllib`` and every key and value is checked, so a typo is a
one-line error ``<file>: <key>: <what is wrong>`` before anything runs or is written.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cyclegan.config import PRESETS
from harness.errors import UserError

SPEC_DIR = Path("experiments")
DEFAULT_DATA = "synth:zebra"
DEFAULT_SEEDS = 5
DEFAULT_PROJECT = "cyclegan-harness"
DEFAULT_PRESET = "cpu"
TOP_KEYS = (
    "name",
    "question",
    "kind",
    "preset",
    "base",
    "data",
    "arms",
    "control",
    "compare",
    "seeds",
    "iterations",
    "epochs",
    "eval_every",
    "metrics",
    "project",
    "max_seeds",
)
METRIC_KEYS = ("primary", "direction", "secondary", "margin", "failure")
DIRECTIONS = ("maximize", "minimize")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class SpecBase:
    """What every spec has: its file, a name (folder-safe), the question, preset, ``base`` overrides, data
    and seeds."""

    path: Path
    name: str
    question: str
    preset: str
    base: dict[str, Any]
    data: str
    seeds: list[int]


def spec_error(path: Path, key: str, msg: str) -> UserError:
    """The one error format of every spec: ``<file>: <key>: <what is wrong>``."""
    return UserError(f"{path}: {key}: {msg}")


def read_base(
    raw: dict[str, Any], path: Path, kind: str, keys: tuple[str, ...], *, data: str, seeds: Any
) -> dict[str, Any]:
    """Check the keys every spec shares (and that no other top-level key is there); ``data`` and ``seeds``
    are this kind's defaults. Returns the ``SpecBase`` fields."""
    found = _expect(path, "kind", raw.get("kind", "sweep" if "sweep" in raw else "ablation"), str, "a kind")
    if found != kind:
        command = {"ablation": "run"}
        raise spec_error(
            path, "kind", f"'{found}' specs run with `harness {command.get(found, found)}`, "
            f"not `harness {command.get(kind, kind)}`",
        )  # fmt: skip
    unknown = [k for k in raw if k not in keys]
    if unknown:
        raise UserError(f"{path}: unknown key '{unknown[0]}'; valid: {', '.join(keys)}")
    name = _expect(path, "name", raw.get("name", path.stem), str, "a string")
    if not safe_name(name):
        raise spec_error(path, "name", f"'{name}' is not a safe folder name (letters, digits, _ . -)")
    if kind == "ablation" and "question" not in raw:
        raise spec_error(path, "question", "missing; say in one sentence what the experiment answers")
    question = _expect(path, "question", raw.get("question", ""), str, "one sentence")
    preset = _expect(path, "preset", raw.get("preset", DEFAULT_PRESET), str, "a preset name")
    if preset not in PRESETS:
        raise spec_error(path, "preset", f"unknown preset '{preset}'; valid: {', '.join(PRESETS)}")
    base = overrides(path, "base", raw.get("base", {}))
    data = _expect(path, "data", raw.get("data", data), str, "'synth:zebra' or a folder path")
    if data:
        check_data_name(f"{path}: data", data)
    seeds = parse_seeds(f"{path}: seeds", raw.get("seeds", seeds))
    return {"path": path, "name": name, "question": question, "preset": preset, "base": base, "data": data,
            "seeds": seeds}  # fmt: skip


def no_seed(where: str, keys: Any) -> None:
    """Seeds come from the spec's ``seeds`` (or --seeds), never from an override or a search."""
    if "train.seed" in keys:
        raise UserError(f"{where}: 'train.seed' is set by the spec's `seeds` (or --seeds), not by overrides")


@dataclass(frozen=True)
class Spec(SpecBase):
    """One validated ablation spec; ``arms`` maps arm name -> dotted config overrides."""

    arms: dict[str, dict[str, Any]]
    control: str
    budget: dict[str, int]
    eval_every: int | None
    primary: str
    direction: str
    secondary: list[str]
    project: str
    arm_notes: dict[str, str] = field(default_factory=dict)
    compare: list[tuple[str, str]] = field(default_factory=list)  # extra (arm, reference) pairs
    margins: dict[str, float] = field(default_factory=dict)  # metric -> smallest effect of interest
    failure_thresholds: dict[str, float] = field(default_factory=dict)  # metric -> a failed run's bound
    max_seeds: int | None = None  # --until-decided adds seeds up to this many per arm


def safe_name(name: str) -> bool:
    """Arm and experiment names become folder names: no separators, no '..', no leading dot."""
    return bool(_SAFE_NAME.match(name)) and ".." not in name


def resolve_spec_path(name_or_path: str, spec_dir: Path = SPEC_DIR) -> Path:
    """``ablate-pool``, ``ablate-pool.toml`` or a path to a spec file."""
    candidates = [Path(name_or_path)]
    if not name_or_path.endswith(".toml"):
        candidates.append(spec_dir / f"{name_or_path}.toml")
    else:
        candidates.append(spec_dir / name_or_path)
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


def flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"pool_size": 0}}`` and ``{"train.pool_size": 0}`` mean one override."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, full + "."))
        else:
            out[full] = value
    return out


def _expect(path: Path, key: str, value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise UserError(f"{path}: {key}: expected {what}, got {value!r}")
    if not isinstance(value, kind):
        raise UserError(f"{path}: {key}: expected {what}, got {value!r}")
    return value


def parse_seeds(where: str, value: Any) -> list[int]:
    """An int N means seeds 0..N-1; a list is taken as given (unique, non-negative integers)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise UserError(f"{where}: need at least one seed, got {value}")
        return list(range(value))
    if isinstance(value, list):
        if not value:
            raise UserError(f"{where}: the seed list is empty; give an integer N or a list like [0, 1, 2]")
        bad = [s for s in value if not isinstance(s, int) or isinstance(s, bool) or s < 0 or s >= 2**31]
        if bad:
            raise UserError(f"{where}: {bad[0]!r} is not a seed (a non-negative integer below 2^31)")
        if len(set(value)) != len(value):
            raise UserError(f"{where}: duplicate seeds in {value}")
        return list(value)
    raise UserError(f"{where}: expected an integer N or a list of integers, got {value!r}")


def overrides(path: Path, where: str, table: Any) -> dict[str, Any]:
    """A table of dotted overrides, flattened; their keys and values are checked once, when the plan (or the
    sweep's base config) resolves them, with errors naming ``where``."""
    _expect(path, where, table, dict, "a table of dotted config overrides")
    flat = flatten(table)
    no_seed(f"{path}: {where}", flat)
    return flat


def _compare(path: Path, raw: Any, arms: dict[str, Any], control: str) -> list[tuple[str, str]]:
    """Planned comparisons besides arm-vs-control, e.g. two norms at the same batch size when the control
    is at another: they join the declared Holm family, so they cost power like any other test."""
    what = 'a list of [arm, reference] pairs, e.g. [["batch-b4", "inst-b4"]]'
    pairs: list[tuple[str, str]] = []
    for i, pair in enumerate(_expect(path, "compare", raw, list, what)):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(a, str) for a in pair)):
            raise UserError(f"{path}: compare[{i}]: expected [arm, reference], got {pair!r}")
        for a in pair:
            if a not in arms:
                raise UserError(f"{path}: compare[{i}]: '{a}' is not an arm; valid: {', '.join(arms)}")
        arm, ref = pair
        if arm == ref:
            raise UserError(f"{path}: compare[{i}]: an arm compared with itself ('{arm}')")
        if control in pair:
            raise UserError(
                f"{path}: compare[{i}]: every arm is already compared with the control '{control}'; "
                "list only pairs of two other arms"
            )
        if (arm, ref) in pairs or (ref, arm) in pairs:
            raise UserError(f"{path}: compare[{i}]: {arm} vs {ref} is listed twice")
        pairs.append((arm, ref))
    return pairs


def _budget(path: Path, raw: dict[str, Any]) -> dict[str, int]:
    if "iterations" in raw and "epochs" in raw:
        raise UserError(f"{path}: give either `iterations` or `epochs`, not both")
    for key in ("iterations", "epochs"):
        if key in raw:
            value = _expect(path, key, raw[key], int, "a positive integer")
            if value < 1:
                raise UserError(f"{path}: {key}: expected a positive integer, got {value}")
            return {key: value}
    return {}


def budget_overrides(budget: dict[str, int]) -> dict[str, Any]:
    """``iterations = N`` caps the run at N iterations; ``epochs = E`` is the paper's schedule shape over E
    epochs (half at the initial rate, half decaying) with no iteration cap."""
    if "iterations" in budget:
        return {"train.max_iters": budget["iterations"]}
    if "epochs" in budget:
        e = budget["epochs"]
        return {"optim.n_epochs": (e + 1) // 2, "optim.n_epochs_decay": e // 2, "train.max_iters": 0}
    return {}


def check_data_name(where: str, data: str) -> None:
    """Synthetic tasks and official names are resolved later; anything else must be a folder now."""
    from cyclegan.data.catalogue import DATASETS

    if data.startswith("synth:"):
        from cyclegan import synth

        try:
            synth.check_task(data.removeprefix("synth:"))
        except (ValueError, KeyError) as exc:
            raise UserError(f"{where}: {exc}") from None
        return
    if data in DATASETS or Path(data).is_dir():
        return
    raise UserError(
        f"{where}: folder not found: '{data}' (give 'synth:zebra', 'synth:seasons' or a folder with "
        "trainA/ trainB/ testA/ testB/)"
    )


def _metrics(path: Path, raw: Any, data: str) -> tuple[str, str, list[str], dict, dict]:
    from cyclegan.metrics import registry

    raw = _expect(path, "metrics", raw if raw is not None else {}, dict, "a table with primary/direction")
    unknown = [k for k in raw if k not in METRIC_KEYS]
    if unknown:
        raise UserError(f"{path}: metrics.{unknown[0]}: unknown key; valid: {', '.join(METRIC_KEYS)}")
    default = registry.primary_metric(data)
    primary = _expect(path, "metrics.primary", raw.get("primary", default.name), str, "a metric name")
    known = registry.metric_names(data)
    if primary not in known:
        raise UserError(
            f"{path}: metrics.primary: '{primary}' is not reported for data '{data}'; "
            f"valid: {', '.join(known)}"
        )
    direction = raw.get("direction", registry.get(primary).direction)
    if direction not in DIRECTIONS:
        raise UserError(f"{path}: metrics.direction: {direction!r}; valid: {', '.join(DIRECTIONS)}")
    secondary = _expect(path, "metrics.secondary", raw.get("secondary", []), list, "a list of metric names")
    for name in secondary:
        if name not in known:
            raise UserError(f"{path}: metrics.secondary: '{name}' is not reported for data '{data}'")
    declared = [primary, *secondary]
    tables = [_per_metric(path, f"metrics.{k}", raw.get(k, {}), declared) for k in ("margin", "failure")]
    for name, value in tables[0].items():
        if value <= 0:
            raise UserError(f"{path}: metrics.margin.{name}: expected a positive number, got {value!r}")
    return primary, direction, list(secondary), *tables


def _per_metric(path: Path, where: str, table: Any, declared: list[str]) -> dict[str, float]:
    """``{ "<metric>" = <number> }`` for declared metrics only (margins and failure thresholds)."""
    _expect(path, where, table, dict, 'a table like { "zebra.stripe_AtoB" = 0.05 }')
    for name, value in table.items():
        if name not in declared:
            valid = ", ".join(declared)
            raise UserError(f"{path}: {where}: '{name}' is not a declared metric; valid: {valid}")
        _expect(path, f"{where}.{name}", value, (int, float), "a number")
    return {k: float(v) for k, v in table.items()}


def load_spec(path: str | Path) -> Spec:
    """Read and validate one ablation spec; every problem is a ``UserError`` naming the file and key."""
    path = Path(path)
    raw = read_toml(path)
    common = read_base(raw, path, "ablation", TOP_KEYS, data=DEFAULT_DATA, seeds=DEFAULT_SEEDS)
    data = common["data"]
    arms_raw = _expect(path, "arms", raw.get("arms", {}), dict, "tables [arms.<name>]")
    if len(arms_raw) < 2:
        raise UserError(
            f"{path}: arms: need at least two [arms.<name>] tables to compare, got {len(arms_raw)}"
        )
    arms: dict[str, dict[str, Any]] = {}
    notes: dict[str, str] = {}
    for arm, table in arms_raw.items():
        if not safe_name(arm):
            raise UserError(
                f"{path}: arms.{arm}: unsafe arm name '{arm}' (allowed: letters, digits, _ . - without a "
                "leading dot or '..')"
            )
        table = dict(_expect(path, f"arms.{arm}", table, dict, "a table of overrides"))
        note = table.pop("note", None)
        if note is not None:
            notes[arm] = _expect(path, f"arms.{arm}.note", note, str, "a string")
        arms[arm] = overrides(path, f"arms.{arm}", table)
    if "control" not in raw:
        raise UserError(f"{path}: control: missing; name the control arm, one of: {', '.join(arms)}")
    control = _expect(path, "control", raw["control"], str, "an arm name")
    if control not in arms:
        raise UserError(f"{path}: control: '{control}' is not an arm; valid: {', '.join(arms)}")
    compare = _compare(path, raw.get("compare", []), arms, control)
    budget = _budget(path, raw)
    eval_every = raw.get("eval_every")
    if eval_every is not None:
        _expect(path, "eval_every", eval_every, int, "a non-negative integer")
        if eval_every < 0:
            raise UserError(f"{path}: eval_every: expected a non-negative integer, got {eval_every}")
    primary, direction, secondary, margins, failure = _metrics(path, raw.get("metrics"), data)
    max_seeds = raw.get("max_seeds")
    seeds = common["seeds"]
    if max_seeds is not None and _expect(path, "max_seeds", max_seeds, int, "an integer") < len(seeds):
        raise UserError(f"{path}: max_seeds: {max_seeds} is below the spec's {len(seeds)} seeds")
    project = _expect(path, "project", raw.get("project", DEFAULT_PROJECT), str, "a W&B project name")
    return Spec(
        **common,
        arms=arms,
        control=control,
        budget=budget,
        eval_every=eval_every,
        primary=primary,
        direction=direction,
        secondary=secondary,
        project=project,
        arm_notes=notes,
        compare=compare,
        margins=margins,
        failure_thresholds=failure,
        max_seeds=max_seeds,
    )
