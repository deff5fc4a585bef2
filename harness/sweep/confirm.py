"""Confirm a sweep's winner: the best config and the default, each re-run with the same k fresh seeds.

The best trial of a search is partly luck (its seed, the evaluation noise); re-running it with seeds the
search never saw, beside the default (the paper's lambda 10 / identity 0.5) on those same seeds, turns
"best trial" into a comparison with confidence intervals. The 2k runs are an ablation's queue (arms
``confirm-best`` and ``confirm-default``) in the sweep's storage, study ``NAME.confirm``: the same workers,
heartbeats, retries and resume as any ablation, and ``harness worker NAME.confirm`` joins from another
machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna

from cyclegan.atomic import atomic_write_json
from cyclegan.config import apply_overrides
from harness.engine.plan import unit_for, write_configs
from harness.engine.queue import Queue
from harness.engine.remote import push
from harness.engine.worker import is_done
from harness.errors import UserError
from harness.sweep import study as S
from harness.sweep.spec import SweepSpec
from harness.sweep.worker import trial_config

CONFIRM_FILE = "confirm.json"
CONFIRM_SUFFIX = ".confirm"


def fresh_seeds(spec: SweepSpec, k: int) -> list[int]:
    """The k smallest seeds the search did not use."""
    used, out, s = set(spec.seeds), [], 0
    while len(out) < k:
        if s not in used:
            out.append(s)
        s += 1
    return out


def best_trial(study: optuna.Study, directions: list[str]) -> optuna.trial.FrozenTrial:
    """One objective: Optuna's best. Several: the Pareto-optimal trial that is best on the first objective."""
    if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        raise UserError(f"sweep {study.study_name}: no finished trial to confirm yet")
    if len(directions) == 1:
        return study.best_trial
    sign = 1 if directions[0] == "maximize" else -1
    return max(study.best_trials, key=lambda t: sign * t.values[0])


def queue_name(sweep: str) -> str:
    """The confirmation queue's study, beside the sweep's own in the same storage."""
    return sweep + CONFIRM_SUFFIX


def enqueue_confirmation(
    spec: SweepSpec, study: optuna.Study, store: Path, k: int, storage: str | None
) -> tuple[Queue, dict[str, Any]]:
    """Queue best and default on k fresh seeds (what is done stays done); returns the queue for the workers
    to drain and the record that ``write_record`` keeps for the report once they have."""
    best = best_trial(study, spec.directions)
    seeds = fresh_seeds(spec, k)
    best_cfg = trial_config(spec, best.params)
    arms = {"confirm-best": best_cfg, "confirm-default": apply_overrides(best_cfg, spec.default)}
    units = [unit_for(spec.name, arm, seed, cfg, store) for arm, cfg in arms.items() for seed in seeds]
    queue = Queue(queue_name(spec.name), storage, store / spec.name)
    queue.set_experiment(None, write_configs(units))
    queue.sync(units, {u.key for u in units if is_done(u)})
    record: dict[str, Any] = {
        "best_trial": best.number, "params": best.params,
        "overrides": S.params_to_overrides(spec, best.params), "default": spec.default, "seeds": seeds,
        "runs": {arm: [u.key for u in units if u.arm == arm] for arm in arms},
    }  # fmt: skip
    return queue, record


def write_record(folder: Path, record: dict[str, Any]) -> None:
    """confirm.json, which the report reads to find the two arms."""
    atomic_write_json(folder / CONFIRM_FILE, record)
    push(folder / CONFIRM_FILE)  # a URL store: the report on any machine finds them
