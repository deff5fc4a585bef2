"""The one queue of ablations and sweeps: an Optuna study, in a journal file or a database.

An ablation enqueues one fixed trial per run (user attrs ``unit``, ``arm``, ``seed``); a sweep's sampler
proposes its trials. Workers take both the same way: ``Study.optimize(n_trials=1)`` pops a WAITING trial
atomically (compare-and-set WAITING -> RUNNING) and, on SQL storages, runs Optuna's heartbeat thread. A trial
whose worker died is failed and queued again by Optuna's retry callback with its params and user attrs, so it
resumes the same run folders. Storage: ``runs/<name>/queue.journal`` on one machine; a database URL
(``postgresql://...``) for several.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
import time
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from harness.engine.store import worker_id
from harness.errors import UserError

HEARTBEAT_SECONDS = 10  # SQL: Optuna's heartbeat interval; journal: how often a thread stamps "heartbeat"
GRACE_SECONDS = 3 * HEARTBEAT_SECONDS  # SQL: a trial without a heartbeat this long is failed and re-queued
STALE_SECONDS = 3.0 * HEARTBEAT_SECONDS  # journal, another host: a worker silent this long is presumed dead
CONNECT_SECONDS = 10  # PostgreSQL: how long opening the queue waits for the server
MAX_RETRIES = 2  # a trial is queued again at most this often (failed runs, dead workers)
JOURNAL = "queue.journal"
SURPLUS = "surplus"  # user attr of a trial given back unrun (a race emptied the queue or filled the target)

optuna.logging.set_verbosity(logging.WARNING)


def sql_url(url: str) -> str:
    """``postgresql://`` with the installed driver: SQLAlchemy 2.1 means psycopg 3 by it, we ship psycopg2."""
    import importlib.util

    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("postgresql", "postgres") and importlib.util.find_spec("psycopg") is None:
        if importlib.util.find_spec("psycopg2") is not None:
            return f"postgresql+psycopg2://{rest}"
    return url


def journal_path(store: Path, name: str) -> Path:
    return Path(store) / name / JOURNAL


def retry_callback() -> optuna.storages.RetryHeartbeatStaleTrialCallback:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES)


def open_storage(
    url: str | None,
    journal: Path,
    *,
    heartbeat: int = HEARTBEAT_SECONDS,
    grace: int = GRACE_SECONDS,
    parallel: bool = True,
) -> optuna.storages.BaseStorage:
    """A database URL (with heartbeats and stale-trial retry), a journal file path, or (None) ``journal``."""
    if not url or "://" not in url:
        path = Path(url) if url else Path(journal)
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(Journal(str(path)))
    if url.startswith("sqlite") and parallel:
        raise UserError(
            f"--storage {url}: SQLite cannot serve parallel workers; use the default journal file on one "
            "machine or postgresql://user@host/db for several"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            return optuna.storages.RDBStorage(
                sql_url(url),
                engine_kwargs=_connect_timeout(url),
                heartbeat_interval=heartbeat,
                grace_period=grace,
                heartbeat_stale_trial_callback=retry_callback(),
            )
        except ImportError as exc:
            raise UserError(
                f"--storage {url}: database driver missing ({exc}); pip install psycopg2-binary"
            ) from None
        except Exception as exc:  # sqlalchemy's OperationalError and friends: a bad URL or a server down
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"--storage {url}: cannot open the database: {first}") from None


def _connect_timeout(url: str) -> dict[str, Any]:
    """PostgreSQL: a host that does not answer is an error after ``CONNECT_SECONDS``, not a hang (TCP's own
    timeout is minutes)."""
    if url.split("://", 1)[0].split("+")[0] in ("postgresql", "postgres"):
        return {"connect_args": {"connect_timeout": CONNECT_SECONDS}}
    return {}


class Journal(optuna.storages.journal.JournalFileBackend):
    """Optuna's journal file that never keeps a torn record.

    A record cut short (a worker killed mid-write, a full disk) would be glued to the next one and make every
    later read fail with a JSON error. So an append that fails cuts the file back to where it began, and a
    torn tail left by a killed process (no final newline) is cut off, under the journal's lock, before the
    next append and when the file is opened. Only bytes after the last newline are ever removed: records
    that any reader has seen stay as they are."""

    def __init__(self, file_path: str) -> None:
        super().__init__(file_path)
        if _torn_tail(file_path):
            with optuna.storages.journal._file.get_lock_file(self._lock):  # noqa: SLF001
                _cut_torn_tail(file_path)

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs).encode()
        with optuna.storages.journal._file.get_lock_file(self._lock):  # noqa: SLF001
            _cut_torn_tail(self._file_path)
            with open(self._file_path, "ab") as f:
                start = f.tell()
                try:
                    f.write(text)
                    f.flush()
                    os.fsync(f.fileno())
                except BaseException:
                    f.truncate(start)  # frees the space the partial record took; the queue stays readable
                    raise


def _torn_tail(path: str) -> bool:
    with open(path, "rb") as f:
        if f.seek(0, os.SEEK_END) == 0:
            return False
        f.seek(-1, os.SEEK_END)
        return f.read(1) != b"\n"


def _cut_torn_tail(path: str) -> None:
    """Drop the bytes after the last newline (a record whose writer died mid-line), if any."""
    if not _torn_tail(path):
        return
    data = Path(path).read_bytes()
    keep = data.rfind(b"\n") + 1
    with open(path, "r+b") as f:
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    print(f"note: {path}: dropped a torn last record ({len(data) - keep} bytes) left by an interrupted write",
          file=sys.stderr)  # fmt: skip


def describe_storage(url: str | None, journal: Path) -> str:
    """The storage for messages and reports, without a password."""
    if not url:
        return str(journal)
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a journal path or an unparsable URL: show what follows the password
        return url.split("@")[-1]


def pid_alive(pid: int) -> bool:
    """The process exists and is not a zombie (a killed worker its parent has not waited for yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:  # Linux: the state follows the parenthesised command name, which may itself hold spaces
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (macOS): os.kill's answer stands
    return state not in ("Z", "X")


def worker_alive(worker: str | None, heartbeat: float | None) -> bool:
    """Same host: the worker's pid exists (and its heartbeat is not stale); other host: a recent heartbeat."""
    if not worker:
        return False
    host, _, pid = worker.rpartition(":")
    fresh = heartbeat is not None and time.time() - heartbeat < STALE_SECONDS
    if host == socket.gethostname() and pid.isdigit():
        return pid_alive(int(pid)) and (heartbeat is None or fresh)
    return fresh


def reap(study: optuna.Study) -> list[int]:
    """Fail and queue again the trials whose worker is gone: on this host its pid is gone (or a zombie), on
    another its "heartbeat" stamps stopped ``STALE_SECONDS`` ago. Any storage (on SQL, Optuna also fails
    trials whose own heartbeat is older than the grace period, when a worker starts a trial). Returns their
    numbers."""
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker, beat = t.user_attrs.get("worker"), t.user_attrs.get("heartbeat")
        started = t.datetime_start.timestamp() if t.datetime_start else 0.0
        copied = "failed_trial" in t.system_attrs and (beat is None or beat < started)  # a retry's old stamp
        if (worker is None or copied) and time.time() - started < GRACE_SECONDS:
            continue  # claimed a moment ago: its worker has not stamped it yet
        if worker_alive(worker, beat):
            continue
        try:
            study.tell(t.number, state=TrialState.FAIL)
        except (RuntimeError, ValueError):
            continue  # another worker got there first
        retry_callback()(study, study._storage.get_trial(t._trial_id))  # noqa: SLF001
        failed.append(t.number)
    return failed


_BEATS: list[threading.Event] = []  # the stop signals of this process's heartbeat threads


def claim(trial: optuna.Trial) -> None:
    """Stamp a trial as this process's (a retry's copied error cleared) and keep stamping its "heartbeat"
    from a thread until ``release``: a worker busy in one long step is never taken for dead."""
    trial.set_user_attr("worker", worker_id())
    trial.set_user_attr("heartbeat", time.time())
    trial.set_user_attr("error", None)
    stop = threading.Event()
    _BEATS.append(stop)
    threading.Thread(target=_beat, args=(trial, stop), name="heartbeat", daemon=True).start()


def release() -> None:
    """Stop this process's heartbeats (before its trials are told finished)."""
    while _BEATS:
        _BEATS.pop().set()


def _beat(trial: optuna.Trial, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_SECONDS):
        try:
            trial.set_user_attr("heartbeat", time.time())
        except OSError:
            continue  # a full disk now: the next beat may pass
        except Exception:  # noqa: BLE001 - the trial was finished meanwhile: nothing left to keep alive
            return


def requeue(study: optuna.Study, numbers: list[int]) -> None:
    """Ctrl-C: Optuna failed the running trial; queue it again (same params and unit): a rerun resumes it."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        if t.number in numbers and not t.user_attrs.get(SURPLUS):
            retry_callback()(study, t)


def _trained(trial: FrozenTrial) -> bool:
    """A worker (on this machine or another) trained the trial's unit to its end."""
    return trial.state == TrialState.COMPLETE and trial.user_attrs.get("status") in ("done", "skipped")


class Queue:
    """An ablation's runs as enqueued trials of the study named after the experiment."""

    def __init__(
        self,
        experiment: str,
        storage: str | None,
        folder: Path,
        create: bool = True,
        heartbeat: tuple[int | None, int | None] = (None, None),
    ) -> None:
        """``heartbeat``: (interval, grace) in seconds for SQL storages; None takes the defaults above."""
        interval, grace = heartbeat[0] or HEARTBEAT_SECONDS, heartbeat[1] or GRACE_SECONDS
        self.storage = open_storage(storage, Path(folder) / JOURNAL, heartbeat=interval, grace=grace)
        if create:
            self.study = optuna.create_study(study_name=experiment, storage=self.storage, load_if_exists=True)
            return
        try:
            self.study = optuna.load_study(study_name=experiment, storage=self.storage)
        except KeyError:
            raise UserError(f"no queue for experiment '{experiment}' in {storage or folder}") from None

    def set_experiment(self, record: dict[str, Any] | None, configs: dict[str, dict[str, Any]]) -> None:
        """The experiment record and every run's resolved config, for workers whose store is elsewhere
        (``record`` None: runs with no experiment.json of their own, a sweep's confirmation)."""
        if record is not None:
            self.study.set_user_attr("experiment", record)
        self.study.set_user_attr("configs", configs)

    def experiment_record(self) -> dict[str, Any] | None:
        return self.study.user_attrs.get("experiment")

    def by_unit(self) -> dict[str, list[FrozenTrial]]:
        out: dict[str, list[FrozenTrial]] = defaultdict(list)
        for t in self.study.get_trials(deepcopy=False):
            if "unit" in t.user_attrs:
                out[t.user_attrs["unit"]].append(t)
        return out

    def failures(self, trials: list[FrozenTrial]) -> list[str]:
        """Errors of the failed attempts (not abandoned ones, not those reset by --retry-failed)."""
        reset = self.study.user_attrs.get("reset", [])
        return [
            t.user_attrs["error"]
            for t in trials
            if t.state == TrialState.FAIL and t.user_attrs.get("error") and t.number not in reset
        ]

    def sync(self, units: list[Any], done: set[str], retry_failed: bool = False) -> dict[str, list[str]]:
        """Make the queue hold exactly the units still to run; returns unit keys per state.

        Done units (by the run store, or trained to the end by any machine's worker: the queue's record)
        are skipped; a unit claimed by a dead worker is queued again; a unit that failed ``1 + MAX_RETRIES``
        times is left failed unless ``retry_failed``.
        """
        reap(self.study)
        self._drop_stale({u.key for u in units})
        trials = self.by_unit()
        out: dict[str, list[str]] = {"done": [], "queued": [], "running": [], "failed": []}
        for unit in units:
            ts = trials.get(unit.key, [])
            states = {t.state for t in ts}
            if unit.key in done or any(_trained(t) for t in ts):
                state = "done"
            elif TrialState.RUNNING in states:
                state = "running"
            elif TrialState.WAITING in states:
                state = "queued"
            elif retry_failed or len(self.failures(ts)) <= MAX_RETRIES:
                if retry_failed:
                    reset = self.study.user_attrs.get("reset", [])
                    self.study.set_user_attr("reset", [*reset, *(t.number for t in ts)])
                self.study.enqueue_trial(params={}, user_attrs=unit.attrs())
                state = "queued"
            else:
                state = "failed"
            out[state].append(unit.key)
        return out

    def _drop_stale(self, keys: set[str]) -> None:
        """Queued units the current plan no longer has (fewer seeds, a changed config) must not be trained."""
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            if t.user_attrs.get("unit") in keys:
                continue
            try:
                if self.storage.set_trial_state_values(t._trial_id, state=TrialState.RUNNING):
                    self.storage.set_trial_user_attr(t._trial_id, SURPLUS, "not in the current plan")
                    self.storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
