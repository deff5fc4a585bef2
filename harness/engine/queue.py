"""An Optuna study used as a work queue: one enqueued trial per unit, claimed atomically by workers.

Default storage is a journal file next to the runs (``runs/<experiment>/queue.journal``, safe for several
processes on one machine); a database URL (``postgresql://...``) lets workers on several machines share it.
Trial states mean: WAITING = queued, RUNNING = claimed by a worker, COMPLETE = done, FAIL = failed (user attr
``error``) or abandoned by a dead worker (user attr ``abandoned``). Claiming goes through the storage's
compare-and-set of WAITING -> RUNNING (what ``Study.ask`` does for enqueued trials), never ``ask()``
itself, which would create a fresh trial when the queue is empty.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from harness.errors import UserError

MAX_RETRIES = 2  # a unit that failed 1 + MAX_RETRIES times stays failed until --retry-failed
STALE_SECONDS = 900.0  # a worker on another host silent this long is presumed dead
HEARTBEAT_SECONDS = 20.0
JOURNAL = "queue.journal"

optuna.logging.set_verbosity(logging.WARNING)


def sql_url(url: str) -> str:
    """``postgresql://`` with the installed driver: SQLAlchemy 2.1 means psycopg 3 by it, we ship psycopg2."""
    import importlib.util

    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("postgresql", "postgres") and importlib.util.find_spec("psycopg") is None:
        if importlib.util.find_spec("psycopg2") is not None:
            return f"postgresql+psycopg2://{rest}"
    return url


def storage_for(url: str | None, folder: Path) -> optuna.storages.BaseStorage:
    """A database URL, a journal file path, or (None) ``folder/queue.journal``."""
    if url and "://" in url:
        try:
            return optuna.storages.RDBStorage(sql_url(url))
        except Exception as exc:  # noqa: BLE001 - driver/connection errors vary by backend
            raise UserError(f"--storage {url}: cannot open ({type(exc).__name__}: {exc})") from None
    from optuna.storages.journal import JournalFileBackend

    path = Path(url) if url else Path(folder) / JOURNAL
    path.parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def worker_alive(worker: str | None, heartbeat: float | None) -> bool:
    """Same host: the worker's pid exists (and its heartbeat is not stale); other host: a recent heartbeat."""
    if not worker:
        return False
    host, _, pid = worker.rpartition(":")
    fresh = heartbeat is not None and time.time() - heartbeat < STALE_SECONDS
    if host == socket.gethostname() and pid.isdigit():
        return pid_alive(int(pid)) and (heartbeat is None or fresh)
    return fresh


@dataclass(frozen=True)
class Claim:
    trial_id: int
    attrs: dict[str, Any]


class Queue:
    """The units of one experiment in an Optuna study named after it."""

    def __init__(self, experiment: str, storage: str | None, folder: Path, create: bool = True) -> None:
        self.experiment = experiment
        self.storage = storage_for(storage, folder)
        if create:
            self.study = optuna.create_study(study_name=experiment, storage=self.storage, load_if_exists=True)
        else:
            try:
                self.study = optuna.load_study(study_name=experiment, storage=self.storage)
            except KeyError:
                raise UserError(
                    f"no queue for experiment '{experiment}' in {storage or folder / JOURNAL}; "
                    f"start it with: harness run {experiment}"
                ) from None
        self.study_id = self.study._study_id
        self._beats: dict[int, float] = {}

    # --- the experiment record, for workers on other machines ----------------------------------------------
    def set_experiment(self, record: dict[str, Any]) -> None:
        self.study.set_user_attr("experiment", record)

    def experiment_record(self) -> dict[str, Any] | None:
        return self.study.user_attrs.get("experiment")

    # --- reading -------------------------------------------------------------------------------------------
    def trials(self, states: tuple[TrialState, ...] | None = None) -> list[FrozenTrial]:
        return self.storage.get_all_trials(self.study_id, deepcopy=False, states=states)

    def by_unit(self) -> dict[str, list[FrozenTrial]]:
        out: dict[str, list[FrozenTrial]] = defaultdict(list)
        for t in self.trials():
            if "unit" in t.user_attrs:
                out[t.user_attrs["unit"]].append(t)
        return out

    def failures(self, trials: list[FrozenTrial]) -> list[str]:
        """Errors of the real failed attempts (not abandoned ones, not those reset by --retry-failed)."""
        reset = {k for k in self.study.user_attrs if k.startswith("reset:")}
        return [
            t.user_attrs.get("error", "")
            for t in trials
            if t.state == TrialState.FAIL
            and not t.user_attrs.get("abandoned")
            and f"reset:{t._trial_id}" not in reset
        ]

    # --- writing -------------------------------------------------------------------------------------------
    def enqueue(self, attrs: dict[str, Any]) -> None:
        self.study.enqueue_trial(params={}, user_attrs=attrs)

    def sync(self, units: list[Any], done: set[str], retry_failed: bool = False) -> dict[str, list[str]]:
        """Make the queue hold exactly the units still to run; returns unit keys per state.

        Done units (by the run store) are skipped; a unit claimed by a dead worker is abandoned and re-queued;
        a unit that failed ``1 + MAX_RETRIES`` times is left failed unless ``retry_failed``.
        """
        self.reap()
        self._drop_stale({u.key for u in units})
        trials = self.by_unit()
        out: dict[str, list[str]] = {"done": [], "queued": [], "running": [], "failed": []}
        for unit in units:
            key = unit.key
            ts = trials.get(key, [])
            if key in done:
                out["done"].append(key)
                continue
            states = {t.state for t in ts}
            if TrialState.RUNNING in states:
                out["running"].append(key)
                continue
            if TrialState.WAITING in states:
                out["queued"].append(key)
                continue
            failures = self.failures(ts)
            if failures and retry_failed:
                for t in ts:
                    if t.state == TrialState.FAIL:
                        self._mark_reset(t)
                failures = []
            if len(failures) > MAX_RETRIES:
                out["failed"].append(key)
                continue
            self.enqueue(unit.attrs())
            out["queued"].append(key)
        return out

    def _drop_stale(self, keys: set[str]) -> None:
        """Queued units the current plan no longer has (fewer seeds, a changed config) must not be trained."""
        for t in self.trials((TrialState.WAITING,)):
            if t.user_attrs.get("unit") in keys:
                continue
            try:
                if self.storage.set_trial_state_values(t._trial_id, state=TrialState.RUNNING):
                    self.drop(Claim(t._trial_id, dict(t.user_attrs)), "not in the current plan")
            except optuna.exceptions.UpdateFinishedTrialError:
                continue

    def _mark_reset(self, trial: FrozenTrial) -> None:
        """Finished trials cannot change, so a reset is recorded on the study."""
        self.study.set_user_attr(f"reset:{trial._trial_id}", True)

    def reap(self) -> list[str]:
        """Abandon RUNNING trials whose worker is gone; re-queue them (to resume from the checkpoint)."""
        keys = []
        for t in self.trials((TrialState.RUNNING,)):
            if worker_alive(t.user_attrs.get("worker"), t.user_attrs.get("heartbeat")):
                continue
            if (
                t.user_attrs.get("worker") is None
                and time.time() - t.datetime_start.timestamp() < STALE_SECONDS
            ):
                continue  # claimed a moment ago, worker attrs not written yet
            self.storage.set_trial_user_attr(t._trial_id, "abandoned", True)
            if self.storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                attrs = {k: v for k, v in t.user_attrs.items() if k in _UNIT_ATTRS}
                self.enqueue(attrs)
                keys.append(attrs.get("unit", "?"))
        return keys

    def claim(self, worker: str) -> Claim | None:
        """Take the next queued unit (atomic WAITING -> RUNNING), or None when the queue is empty."""
        for t in self.trials((TrialState.WAITING,)):
            try:
                if not self.storage.set_trial_state_values(t._trial_id, state=TrialState.RUNNING):
                    continue
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
            self.storage.set_trial_user_attr(t._trial_id, "worker", worker)
            self.storage.set_trial_user_attr(t._trial_id, "heartbeat", time.time())
            return Claim(t._trial_id, dict(t.user_attrs))
        return None

    def heartbeat(self, claim: Claim, force: bool = False) -> None:
        last = self._beats.get(claim.trial_id, 0.0)
        if force or time.monotonic() - last >= HEARTBEAT_SECONDS:
            self._beats[claim.trial_id] = time.monotonic()
            self.storage.set_trial_user_attr(claim.trial_id, "heartbeat", time.time())

    def complete(self, claim: Claim, value: float | None) -> None:
        self.storage.set_trial_state_values(
            claim.trial_id, state=TrialState.COMPLETE, values=[_finite(value)]
        )

    def fail(self, claim: Claim, error: str) -> bool:
        """Mark a failed attempt; re-queue it while retries remain. Returns True when re-queued."""
        self.storage.set_trial_user_attr(claim.trial_id, "error", error)
        self.storage.set_trial_state_values(claim.trial_id, state=TrialState.FAIL)
        ts = self.by_unit().get(claim.attrs["unit"], [])
        if len(self.failures(ts)) <= MAX_RETRIES:
            self.enqueue({k: v for k, v in claim.attrs.items() if k in _UNIT_ATTRS})
            return True
        return False

    def release(self, claim: Claim) -> None:
        """Give a claimed unit back (interrupted, or already run by someone else): abandoned + re-queued."""
        self.storage.set_trial_user_attr(claim.trial_id, "abandoned", True)
        self.storage.set_trial_state_values(claim.trial_id, state=TrialState.FAIL)
        self.enqueue({k: v for k, v in claim.attrs.items() if k in _UNIT_ATTRS})

    def drop(self, claim: Claim, why: str) -> None:
        """A duplicate claim of a unit that is running elsewhere: end it without re-queueing."""
        self.storage.set_trial_user_attr(claim.trial_id, "abandoned", True)
        self.storage.set_trial_user_attr(claim.trial_id, "dropped", why)
        self.storage.set_trial_state_values(claim.trial_id, state=TrialState.FAIL)


_UNIT_ATTRS = ("experiment", "unit", "arm", "seed", "config")


def _finite(value: float | None) -> float:
    import math

    return float(value) if value is not None and math.isfinite(value) else float("nan")
