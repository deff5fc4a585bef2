"""Confirm a sweep's winner: the best config and the default, each re-run with the same k fresh seeds.

The best trial of a search is partly luck (its seed, the evaluation noise); re-running it with seeds the
search never saw, beside the default (the paper's lambda 10 / identity 0.5) on those same seeds, turns
"best trial" into a comparison with confidence intervals. Units go through the engine's ``run_unit``, so
they resume, are recorded in the run store and tracked in W&B like any run (arms ``confirm-best`` and
``confirm-default``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna

from cyclegan.atomic import atomic_write_json
from cyclegan.config import apply_overrides
from harness.engine.plan import unit_for
from harness.engine.remote import push
from harness.engine.worker import WorkerOptions, run_unit
from harness.errors import UserError
from harness.sweep import study as S
from harness.sweep.spec import SweepSpec
from harness.sweep.worker import trial_config

CONFIRM_FILE = "confirm.json"


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


def run_confirmation(spec: SweepSpec, study: optuna.Study, store: Path, k: int, opts: WorkerOptions) -> dict:
    """Train best and default on k fresh seeds (resuming what exists); record confirm.json for the report."""
    best = best_trial(study, spec.directions)
    seeds = fresh_seeds(spec, k)
    best_cfg = trial_config(spec, best.params)
    default_cfg = apply_overrides(best_cfg, spec.default)
    record: dict[str, Any] = {
        "best_trial": best.number, "params": best.params,
        "overrides": S.params_to_overrides(spec, best.params), "default": spec.default, "seeds": seeds,
        "runs": {"confirm-best": [], "confirm-default": []},
    }  # fmt: skip
    for arm, cfg in (("confirm-best", best_cfg), ("confirm-default", default_cfg)):
        for seed in seeds:
            unit = unit_for(spec.name, arm, seed, cfg, store)
            opts.log(f"confirm {arm} seed {seed}: {unit.key}")
            result = run_unit(unit, opts, wandb={"job_type": arm, "config": {"trial_params": best.params}})
            if result.status == "failed":
                opts.log(f"confirm {unit.key} failed: {result.error}")
            record["runs"][arm].append(unit.key)
    atomic_write_json(store / spec.name / CONFIRM_FILE, record)
    push(store / spec.name / CONFIRM_FILE)  # a URL store: the report on any machine finds the two arms
    return record
