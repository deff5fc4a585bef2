"""From a spec (and command-line changes) to units of work: a resolved Config and run folder per arm x seed.

Precedence, lowest first: paper defaults < preset < spec ``base`` < spec budget/``eval_every`` < ``--set`` <
the arm's overrides < the seed. ``--set`` may not touch a key an arm sets (that would erase the comparison).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cyclegan.atomic import atomic_write_json
from cyclegan.config import Config, ConfigError, apply_overrides, resolve
from harness.engine.spec import Spec, budget_overrides, no_seed, safe_name
from harness.engine.store import read_json
from harness.errors import UserError


@dataclass(frozen=True)
class Unit:
    """One unit of work: the ablation engine enqueues these, a sweep builds them from a sampler's trials.

    ``key`` is the run folder's name (``<arm>-s<seed>-<hash>``): a changed config is a new key, never a silent
    reuse of an old result.
    """

    experiment: str
    key: str
    arm: str
    seed: int
    cfg: Config
    run_dir: Path

    def attrs(self) -> dict[str, Any]:
        """What travels through the queue: the run key (its config is in the run folder and the study)."""
        return {"experiment": self.experiment, "unit": self.key, "arm": self.arm, "seed": self.seed}

    @classmethod
    def load(cls, attrs: dict[str, Any], store: Path, configs: dict[str, dict[str, Any]]) -> Unit:
        """The unit a queued trial names, with the config the plan wrote to its run folder (written there
        from the study's copy when this worker's store is elsewhere)."""
        key = attrs["unit"]
        if not safe_name(key):
            raise UserError(f"queued unit '{key}' is not a run folder name; was the queue edited?")
        run_dir = experiment_dir(store, attrs["experiment"]) / key
        written = read_json(run_dir / "config.json")
        if written is None:
            written = configs[key]
            atomic_write_json(run_dir / "config.json", written)
        return cls(attrs["experiment"], key, attrs["arm"], attrs["seed"], Config.from_dict(written), run_dir)


def run_name(arm: str, seed: int, cfg: Config) -> str:
    return f"{arm}-s{seed}-{cfg.digest()}"


def experiment_dir(store: Path, experiment: str) -> Path:
    return Path(store) / experiment


def unit_for(experiment: str, arm: str, seed: int, cfg: Config, store: Path) -> Unit:
    """A unit for any resolved config (the sweep's entry point)."""
    cfg = apply_overrides(cfg, {"train.seed": seed})
    key = run_name(arm, seed, cfg)
    return Unit(experiment, key, arm, seed, cfg, experiment_dir(store, experiment) / key)


@dataclass(frozen=True)
class Plan:
    spec: Spec
    preset: str
    data: str
    seeds: list[int]
    sets: dict[str, str]
    units: list[Unit]
    store: Path

    @property
    def folder(self) -> Path:
        return experiment_dir(self.store, self.spec.name)

    def experiment_record(self, command: str) -> dict[str, Any]:
        """experiment.json (docs/RUNSTORE.md)."""
        s = self.spec
        return {
            "name": s.name,
            "question": s.question,
            "kind": "ablation",
            "spec_path": str(s.path),
            "command": command,
            "preset": self.preset,
            "base": {**s.base, **budget_overrides(s.budget), **self.sets},
            "data": self.data,
            "control": s.control,
            "compare": [list(pair) for pair in s.compare],
            "arms": s.arms,
            "arm_notes": s.arm_notes,
            "seeds": self.seeds,
            "budget": s.budget,
            "metrics": {
                "primary": s.primary,
                "direction": s.direction,
                "secondary": s.secondary,
                "margin": s.margins,
                "failure": s.failure_thresholds,
            },
            "first_seeds": len(s.seeds),  # the first look of the sequential design (report.sequential)
            "max_seeds": s.max_seeds,
            "project": s.project,
            "runs": [{"arm": u.arm, "seed": u.seed, "run": u.key} for u in self.units],
            "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


def build_plan(
    spec: Spec,
    store: Path,
    preset: str | None = None,
    seeds: list[int] | None = None,
    data: str | None = None,
    sets: dict[str, str] | None = None,
) -> Plan:
    """Every (arm, seed) unit, seeds interleaved across arms so a partial run is balanced."""
    preset = preset or spec.preset
    data = data or spec.data
    sets = dict(sets or {})
    seeds = list(seeds) if seeds is not None else spec.seeds
    no_seed("--set", sets)
    for key in sets:
        arms = [a for a, o in spec.arms.items() if key in o]
        if arms:
            raise UserError(
                f"--set {key}: arm '{arms[0]}' of {spec.path} sets this key; change the spec instead"
            )
    where = "--set"
    try:
        common = resolve(preset)
        where = f"{spec.path}: base"
        common = apply_overrides(common, {**spec.base, "data.dataset": data})
        common = apply_overrides(common, budget_overrides(spec.budget))
        if spec.eval_every is not None:
            common = apply_overrides(common, {"train.eval_every": spec.eval_every})
        where = "--set"
        common = apply_overrides(common, sets)
    except ConfigError as exc:
        raise UserError(f"{where}: {exc}") from None
    arm_cfgs = {}
    for arm, overrides in spec.arms.items():
        try:
            arm_cfgs[arm] = apply_overrides(common, overrides)
        except ConfigError as exc:
            raise UserError(f"{spec.path}: arms.{arm}: {exc}") from None
    units = [unit_for(spec.name, arm, seed, arm_cfgs[arm], store) for seed in seeds for arm in spec.arms]
    return Plan(spec, preset, data, seeds, sets, units, Path(store))
