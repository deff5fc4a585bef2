"""A sweep's job for the engine's worker loop: a trial is sampled, each of its seeds trained as a unit, and
each evaluation reported to the pruner.

Many workers (in this process, other local processes or other machines) share one study. The loop stops
when the study's target is met and waits while running trials elsewhere fill it (one of them may still die
and need a retry).
"""

from __future__ import annotations

import math
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from cyclegan.config import Config, apply_overrides
from cyclegan.train import Progress
from harness.engine.plan import unit_for
from harness.engine.queue import SURPLUS, claim
from harness.engine.recorder import UnitCallbacks
from harness.engine.worker import Result, RunBusy, Surplus, TrialFailed, WorkerOptions, run_unit
from harness.sweep import study as S
from harness.sweep.spec import SweepSpec, base_config


def trial_config(spec: SweepSpec, params: dict[str, Any]) -> Config:
    """base < sampled values (tied keys included); the seed is set per unit."""
    return apply_overrides(base_config(spec), S.params_to_overrides(spec, params))


class _Pruning(UnitCallbacks):
    """Reports the objective at each intermediate evaluation and stops the loop when the pruner says so."""

    def __init__(self, spec: SweepSpec, trial: optuna.Trial, seed_index: int) -> None:
        self.spec, self.trial, self.seed_index = spec, trial, seed_index
        self.prune = False

    def on_metrics(self, progress: Progress, metrics: dict[str, Any]) -> None:
        if self.spec.multi_objective or progress.iteration >= progress.total:
            return  # Optuna cannot prune several objectives; the final evaluation is the trial's value
        value = metrics.get(self.spec.metrics[0])
        if value is None or not math.isfinite(value):
            return
        # One step axis for every trial: seed index * total + iteration.
        self.trial.report(float(value), self.seed_index * progress.total + progress.iteration)
        self.prune = self.trial.should_prune()

    def should_stop(self, progress: Progress) -> bool:
        return self.prune


def _value(metrics: dict[str, Any], metric: str) -> float:
    v = metrics.get(metric)
    if v is None or isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise TrialFailed(f"objective metric '{metric}' is not available (got {v!r})")
    return float(v)


class Search:
    """A sweep's job: sampled trials until the study's target of finished or pruned trials is met."""

    retry_failures = False  # a failed trial is replaced by a new one (it does not count towards the target)
    max_failures_in_a_row: int | None = 3  # ...so a config that always fails must stop the worker

    def __init__(self, spec: SweepSpec) -> None:
        self.spec = spec

    def next(self, study: optuna.Study) -> str:
        trials = study.get_trials(deepcopy=False)
        if S.counted(trials) >= S.target(study):
            return "stop"
        waiting = any(t.state == TrialState.WAITING for t in trials)
        return "wait" if len(S.live(trials)) >= S.target(study) and not waiting else "run"

    def objective(self, trial: optuna.Trial, options: WorkerOptions) -> float | list[float]:
        """One trial: every seed of the spec trained as a unit; the value is the mean over seeds."""
        spec, study = self.spec, trial.study
        if "unit" not in trial.user_attrs:
            trial.set_user_attr("unit", trial.number)
        if S.is_surplus(study, trial.number):
            trial.set_user_attr(SURPLUS, True)
            raise Surplus(f"trial {trial.number}: the study already has {S.target(study)} trials")
        claim(trial)
        params = S.suggest(spec, trial)
        number = S.unit_number(trial)
        cfg = trial_config(spec, params)
        finals: list[dict[str, Any]] = []
        cost = {"iterations": 0, "total_iterations": 0, "wall_seconds": 0.0}
        for i, seed in enumerate(spec.seeds):
            unit = unit_for(spec.name, f"trial-{number}", seed, cfg, options.store)
            options.log(f"trial {trial.number} seed {seed}: {unit.key}")
            tracking = {"job_type": "trial", "config": {"trial": number, "trial_params": params}}
            try:
                result = run_unit(unit, options, _Pruning(spec, trial, i), wandb=tracking)
            except RunBusy as exc:
                result = Result("failed", None, str(exc))
            summary = result.summary or {}
            cost["iterations"] += int(summary.get("iteration") or 0)
            cost["total_iterations"] += int(summary.get("total") or 0)
            cost["wall_seconds"] += float((summary.get("cost") or {}).get("wall_seconds") or 0.0)
            trial.set_user_attr("cost", cost)
            trial.set_user_attr("runs", sorted({*trial.user_attrs.get("runs", []), unit.key}))
            if result.status == "failed":
                trial.set_user_attr("error", result.error)
                raise TrialFailed(result.error or "unit failed")
            if result.status == "pruned":
                trial.set_user_attr("pruned_at", {"seed": seed, "iteration": summary.get("iteration")})
                raise optuna.TrialPruned(f"pruned at iteration {summary.get('iteration')} of seed {seed}")
            finals.append(summary.get("metrics") or {})
        values = []
        for metric in spec.metrics:
            per_seed = [_value(m, metric) for m in finals]
            trial.set_user_attr(f"per_seed.{metric}", per_seed)
            values.append(sum(per_seed) / len(per_seed))
        return values if spec.multi_objective else values[0]

    def outcome(self, trial: FrozenTrial, retried: bool) -> str:
        failed = trial.state == TrialState.FAIL
        return f"trial {trial.number} {trial.state.name.lower()}" + (
            f": {trial.user_attrs.get('error')}" if failed else ""
        )
