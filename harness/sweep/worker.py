"""The sweep worker loop: take a trial, train each of its seeds as a unit, report evaluations to the pruner.

Many worker processes (local, or on other machines) share one study. Each loop: fail and re-queue trials
whose worker died, stop when the study's target is met, wait while running trials elsewhere fill the target
(one of them may still die and need a retry), else run one trial through ``study.optimize(n_trials=1)`` so
Optuna's heartbeat thread covers it on SQL storages.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from cyclegan.config import Config, apply_overrides
from cyclegan.train import Progress
from harness.engine import store as engine_store
from harness.engine.plan import unit_for
from harness.engine.recorder import UnitCallbacks
from harness.engine.worker import Result, RunBusy, run_unit
from harness.engine.worker import WorkerOptions as EngineOptions
from harness.sweep import study as S
from harness.sweep.spec import SweepSpec, base_config

MAX_FAILURES_IN_A_ROW = 3  # failed trials are replaced, so a config that always fails must stop the worker
HEARTBEAT_SECONDS = 20.0  # journal storage: how often a running trial's user attr "heartbeat" is refreshed


class SurplusTrial(Exception):
    """A race put this trial past the target; it is given back (failed with user attr ``surplus``)."""


class TrialFailed(Exception):
    """A unit of the trial failed; the message is its one-line error."""


@dataclass
class WorkerOptions:
    store: Path
    threads: int = 0  # torch threads per unit (0 = torch's default)
    wandb_mode: str = "disabled"
    wandb_project: str = "cyclegan-harness"
    poll_seconds: float = 1.0
    log: Callable[[str], None] = print
    overrides: dict[str, Any] = field(default_factory=dict)  # extra config overrides (e.g. train.device)

    def engine(self) -> EngineOptions:
        return EngineOptions(store=self.store, wandb=self.wandb_mode, project=self.wandb_project,
                             threads=self.threads, log=self.log)  # fmt: skip


def trial_config(spec: SweepSpec, params: dict[str, Any], opts: WorkerOptions) -> Config:
    """base < sampled values (tied keys included) < worker overrides; the seed is set per unit."""
    return apply_overrides(base_config(spec), {**S.params_to_overrides(spec, params), **opts.overrides})


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


def _heartbeat(study: optuna.Study, trial: optuna.Trial) -> Callable[[], None]:
    """Journal storage: a fresh "heartbeat" user attr lets other hosts see the worker is alive."""
    last = [0.0]

    def beat() -> None:
        if time.monotonic() - last[0] >= HEARTBEAT_SECONDS:
            last[0] = time.monotonic()
            trial.set_user_attr("heartbeat", time.time())

    return beat


def objective(spec: SweepSpec, opts: WorkerOptions, trial: optuna.Trial) -> float | list[float]:
    """One trial: every seed of the spec trained as a unit; the value is the mean over seeds."""
    study = trial.study
    if "unit" not in trial.user_attrs:
        trial.set_user_attr("unit", trial.number)
    if S.is_surplus(study, trial.number):
        trial.set_user_attr(S.SURPLUS, True)
        raise SurplusTrial(f"trial {trial.number}: the study already has {S.target(study)} trials")
    trial.set_user_attr("worker", engine_store.worker_id())
    trial.set_user_attr("heartbeat", time.time())
    params = S.suggest(spec, trial)
    number = S.unit_number(trial)
    cfg = trial_config(spec, params, opts)
    finals: list[dict[str, Any]] = []
    cost = {"iterations": 0, "total_iterations": 0, "wall_seconds": 0.0}
    for i, seed in enumerate(spec.seeds):
        unit = unit_for(spec.name, f"trial-{number}", seed, cfg, opts.store)
        pruning = _Pruning(spec, trial, i)
        opts.log(f"trial {trial.number} seed {seed}: {unit.key}")
        tracking = {"job_type": "trial", "config": {"trial": number, "trial_params": params}}
        try:
            result: Result = run_unit(unit, opts.engine(), _heartbeat(study, trial), pruning, wandb=tracking)
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


def _requeue(study: optuna.Study, numbers: list[int]) -> None:
    """Ctrl-C: Optuna failed the running trial; queue it again (same params and unit): a rerun resumes it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=S.MAX_RETRY)
    for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        if t.number in numbers and not t.user_attrs.get(S.SURPLUS):
            retry(study, t)


def run_worker(spec: SweepSpec, study: optuna.Study, opts: WorkerOptions) -> dict[str, int]:
    """Work until the study's target is met; returns what this worker did (trial states it ended)."""
    done = {"complete": 0, "pruned": 0, "failed": 0}

    def tally(study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> None:
        if frozen.user_attrs.get(S.SURPLUS):
            return
        key = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned"}.get(frozen.state, "failed")
        done[key] += 1
        opts.log(f"trial {frozen.number} {frozen.state.name.lower()}"
                 + (f": {frozen.user_attrs.get('error')}" if key == "failed" else ""))  # fmt: skip

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # each trial's outcome is logged by ``tally`` instead
    streak = 0
    while True:
        for n in S.fail_dead(study):
            opts.log(f"trial {n}: its worker is gone; re-queued")
        trials = study.get_trials(deepcopy=False)
        if S.counted(trials) >= S.target(study):
            return done
        waiting = any(t.state == TrialState.WAITING for t in trials)
        if len(S.live(trials)) >= S.target(study) and not waiting:
            # The rest is running elsewhere: stay, to retry it if its worker dies.
            time.sleep(opts.poll_seconds)
            continue
        failed_before = done["failed"]
        current: list[int] = []
        try:
            study.optimize(
                lambda t, seen=current: seen.append(t.number) or objective(spec, opts, t),
                n_trials=1, catch=(Exception,), callbacks=[tally],
            )  # fmt: skip
        except KeyboardInterrupt:
            _requeue(study, current)
            raise
        streak = streak + 1 if done["failed"] > failed_before else 0
        if streak >= MAX_FAILURES_IN_A_ROW:
            opts.log(f"stopping: {streak} trials failed in a row (see the errors above and the run folders)")
            return done
