"""The Optuna side of a sweep: sampler, pruner, the study, and how many trials are still owed (its storage,
heartbeats, retries and reaping are the engine queue's: harness/engine/queue.py).

Trial count: the study records a target (user attr ``target_trials``); a worker only starts a trial while the
trials that count (finished, pruned, running or queued) are below it, and gives back a trial that a race
pushed past it (failed with user attr ``surplus``). A failed trial does not count, so it is replaced; a
retried trial counts once because its dead original is FAIL.
"""

from __future__ import annotations

import warnings
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from harness.engine.queue import SURPLUS
from harness.errors import UserError
from harness.sweep.spec import SweepSpec, base_config

COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)
LIVE = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)


def worker_seed(spec: SweepSpec, worker_index: int, existing: int = 0) -> int:
    """Sampler seed of one worker: two workers with one seed would propose the same trials, and so would a
    rerun of the command; hence ``sampler_seed + worker index + 1000 x trials already in the study``."""
    return spec.sampler_seed + worker_index + 1000 * existing


def make_sampler(spec: SweepSpec, seed: int) -> optuna.samplers.BaseSampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if spec.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if spec.sampler == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(50, spec.trials // 2)))
        # Optuna 5: multivariate TPE with the constant liar is the default: what parallel workers need.
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(2, spec.trials // 3)))


def make_pruner(spec: SweepSpec) -> optuna.pruners.BasePruner:
    """Pruning needs one objective: Optuna's pruners compare one intermediate value per step."""
    if spec.multi_objective or spec.pruner == "none":
        return optuna.pruners.NopPruner()
    pruners = {"median": optuna.pruners.MedianPruner, "hyperband": optuna.pruners.HyperbandPruner}
    return pruners.get(spec.pruner, optuna.pruners.ThresholdPruner)(**dict(spec.pruner_options))


def create_or_load(
    spec: SweepSpec, storage: optuna.storages.BaseStorage, seed: int, adopt: bool = False
) -> optuna.Study:
    """Create the study once (before any parallel worker starts), or load it; refuse a changed objective.
    ``adopt``: no --preset/--set was given, so the study's own base config is taken (``adopt_recorded``)."""
    sampler, pruner = make_sampler(spec, seed), make_pruner(spec)
    study = optuna.create_study(
        storage=storage, study_name=spec.name, sampler=sampler, pruner=pruner,
        directions=spec.directions, load_if_exists=True,
    )  # fmt: skip
    recorded = study.user_attrs.get("spec")
    mine = {
        **spec.to_json(),
        "base_config": base_config(spec).digest(),
        "preset": spec.preset,
        "base": spec.base,
        "path": str(spec.path),
    }
    if recorded is None:
        study.set_user_attr("spec", mine)
    else:
        for key, what in (
            ("params", "search space"),
            ("objectives", "objectives"),
            ("base_config", "base config"),
        ):
            if recorded.get(key) != mine[key] and not (adopt and key == "base_config"):
                raise UserError(
                    f"{spec.path}: the {what} differs from the study '{spec.name}' already in the storage "
                    "(--preset/--set/spec changed); rename the sweep (name = ...) or use another "
                    "--store/--storage"
                )
    return study


def load_study(spec: SweepSpec, storage: optuna.storages.BaseStorage, worker_index: int) -> optuna.Study:
    """A worker joins an existing study (created by ``harness sweep``); it never creates one."""
    try:
        study = optuna.load_study(study_name=spec.name, storage=storage, pruner=make_pruner(spec))
    except KeyError:
        raise UserError(
            f"no study '{spec.name}' in the storage; start it with `harness sweep {spec.name} --storage ...`"
        ) from None
    existing = len(study.get_trials(deepcopy=False))
    study.sampler = make_sampler(spec, worker_seed(spec, worker_index, existing))
    return study


def adopt_recorded(spec: SweepSpec, study: optuna.Study) -> SweepSpec:
    """A joining worker trains what the study was created with (its --preset/--set), not its own defaults."""
    recorded = study.user_attrs.get("spec") or {}
    if not recorded or recorded.get("base_config") == base_config(spec).digest():
        return spec
    adopted = spec.model_copy(update={"preset": recorded["preset"], "base": dict(recorded["base"])})
    if (
        base_config(adopted).digest() != recorded["base_config"]
        or recorded["params"] != spec.to_json()["params"]
    ):
        raise UserError(
            f"{spec.path}: this spec differs from the one study '{spec.name}' was created with; "
            "use the same spec file on every machine"
        )
    return adopted


def counted(trials: list[FrozenTrial]) -> int:
    """Finished or pruned trials: what the target counts."""
    return sum(t.state in COUNTED for t in trials)


def live(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """Trials that hold a slot of the target (surplus ones never do)."""
    return [t for t in trials if t.state in LIVE and not t.user_attrs.get(SURPLUS)]


def target(study: optuna.Study) -> int:
    return int(study.user_attrs.get("target_trials", 0))


def add_to_target(study: optuna.Study, n: int) -> int:
    """Running ``harness sweep`` again adds ``n`` trials to those finished or pruned now."""
    new = counted(study.get_trials(deepcopy=False)) + n
    study.set_user_attr("target_trials", new)
    return new


def is_surplus(study: optuna.Study, number: int) -> bool:
    """True when the trials before ``number`` already fill the target (a race between two workers)."""
    before = [t for t in live(study.get_trials(deepcopy=False)) if t.number < number]
    return len(before) >= target(study)


def unit_number(trial: optuna.trial.BaseTrial) -> int:
    """The trial's first number: a retried trial keeps its run folders (and resumes their checkpoints)."""
    return int(trial.user_attrs.get("unit", trial.number))


def params_to_overrides(spec: SweepSpec, params: dict[str, Any]) -> dict[str, Any]:
    """Sampled values -> dotted overrides, one value setting every key tied to it."""
    out: dict[str, Any] = {}
    for p in spec.params:
        if p.key in params:
            for k in p.keys:
                out[k] = params[p.key]
    return out


def suggest(spec: SweepSpec, trial: optuna.trial.BaseTrial) -> dict[str, Any]:
    """Ask the trial for every parameter of the search space; returns Optuna's params (one per Param)."""
    values: dict[str, Any] = {}
    for p in spec.params:
        if p.type == "categorical":
            values[p.key] = trial.suggest_categorical(p.key, list(p.choices))
        elif p.type == "int":
            values[p.key] = trial.suggest_int(
                p.key, int(p.low), int(p.high), step=int(p.step or 1), log=p.log
            )
        else:
            values[p.key] = trial.suggest_float(p.key, float(p.low), float(p.high), step=p.step, log=p.log)
    return values
