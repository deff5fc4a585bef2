"""A JSON copy of a sweep's trials in its run-store folder (``runs/<sweep>/trials.json``).

Reports are pure functions of the run store: when the study lives in a PostgreSQL server that is gone (or not
reachable from the machine building the report) the snapshot still holds every trial, and an in-memory study
rebuilt from it feeds Optuna's plots and importance evaluators.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import distribution_to_json, json_to_distribution
from optuna.trial import TrialState

from cyclegan.atomic import atomic_write_json
from harness.engine.remote import push

SNAPSHOT = "trials.json"


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def trial_record(t: optuna.trial.FrozenTrial) -> dict[str, Any]:
    return {
        "number": t.number, "state": t.state.name, "values": t.values, "params": t.params,
        "distributions": {k: distribution_to_json(d) for k, d in t.distributions.items()},
        "intermediate": {str(k): v for k, v in t.intermediate_values.items()},
        "user_attrs": t.user_attrs, "started": _iso(t.datetime_start), "completed": _iso(t.datetime_complete),
    }  # fmt: skip


def write_snapshot(folder: Path, study: optuna.Study) -> dict[str, Any]:
    record = {
        "study": study.study_name, "directions": [d.name.lower() for d in study.directions],
        "user_attrs": study.user_attrs, "trials": [trial_record(t) for t in study.get_trials(deepcopy=False)],
    }  # fmt: skip
    atomic_write_json(folder / SNAPSHOT, record)
    push(folder / SNAPSHOT)  # a URL store: a machine without the study's storage reports from this copy
    return record


def rebuild(snapshot: dict[str, Any]) -> optuna.Study:
    """An in-memory study with every recorded trial, in the original order (so trial numbers match)."""
    study = optuna.create_study(directions=snapshot["directions"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for t in snapshot["trials"]:
            state = TrialState[t["state"]]
            finished = state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
            study.add_trial(
                optuna.trial.create_trial(
                    state=state if finished else TrialState.FAIL,  # a snapshot cannot hold a live trial
                    values=t["values"] if state == TrialState.COMPLETE else None,
                    params=t["params"],
                    distributions={k: json_to_distribution(d) for k, d in t["distributions"].items()},
                    user_attrs=t["user_attrs"],
                    intermediate_values={int(k): v for k, v in t["intermediate"].items()},
                )
            )
    return study
