"""Run units, and the one worker loop: take trials of a study (an ablation's or a sweep's) and run them.

``run_unit`` is independent of where units come from (an ablation's enqueued runs or a sweep's sampler). A
unit's run folder is locked (``flock`` on ``<run>/.lock``) while it trains, so two processes on one
machine can never train the same unit at once, even if a queue hands it out twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import optuna
from optuna.trial import FrozenTrial, TrialState

from cyclegan.atomic import atomic_write_json
from cyclegan.train import Progress, pick_device, train
from harness.engine import remote, reuse, store
from harness.engine.plan import Unit
from harness.engine.queue import SURPLUS, claim, reap, release, requeue, retry_callback
from harness.engine.recorder import Recorder, UnitCallbacks
from harness.engine.tracking import Tracker, new_run_id
from harness.errors import StoreFault, store_fault


class RunBusy(RuntimeError):
    """The unit's run folder is locked by another live process."""


@dataclass
class WorkerOptions:
    store: Path = Path("runs")
    wandb: str = "offline"  # online | offline | disabled (resolved; see tracking.pick_mode)
    project: str = "cyclegan-harness"
    threads: int = 0  # torch CPU threads in this process (0 = leave torch's default)
    evaluate: bool = True
    index: int = 0  # a sweep worker's sampler offset (sampler_seed + index)
    poll_seconds: float = 1.0  # how often a worker with nothing to take looks again
    log: Callable[[str], None] = field(default=lambda line: print(line, flush=True))


@dataclass
class Result:
    status: str  # done | failed | skipped
    summary: dict[str, Any] | None = None
    error: str | None = None


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def is_done(unit: Unit) -> bool:
    """Done = summary.json says done and config.json is this unit's resolved config (same hash)."""
    summary = store.read_json(unit.run_dir / "summary.json") or {}
    config = store.read_json(unit.run_dir / "config.json")
    return summary.get("status") == "done" and config == unit.cfg.to_dict()


class _Lock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def __enter__(self) -> _Lock:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)  # the umask decides
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise RunBusy(f"{self.path.parent.name} is being trained by another process") from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)


def _start_record(unit: Unit, options: WorkerOptions, device: str) -> dict[str, Any]:
    """run.json for a new attempt; earlier attempts (and the W&B id, so W&B resumes the same run) are kept."""
    run = store.read_json(unit.run_dir / "run.json") or {}
    attempts = list(run.get("attempts", []))
    attempts.append({"worker": store.worker_id(), "started": store.now_iso(), "resumed_from": None})
    return {
        "experiment": unit.experiment,
        "arm": unit.arm,
        "seed": unit.seed,
        "config_hash": unit.cfg.digest(),
        "content_key": reuse.attempt_key(run, reuse.content_key(unit.cfg, options.evaluate)),
        "status": "running",
        "attempt": len(attempts),
        "attempts": attempts,
        "error": None,
        "git": store.git_info(),
        "packages": store.package_versions(),
        "host": os.uname().nodename,
        "device": device,
        "started": run.get("started") or attempts[-1]["started"],
        "ended": None,
        "wall_seconds": run.get("wall_seconds"),
        "peak_memory_mb": None,
        "worker": store.worker_id(),
        "heartbeat": None,
        "wandb": {"id": (run.get("wandb") or {}).get("id") or new_run_id(), "mode": options.wandb},
    }


def run_unit(
    unit: Unit,
    options: WorkerOptions,
    inner: UnitCallbacks | None = None,
    wandb: dict[str, Any] | None = None,
) -> Result:
    """Train one unit to its end (resuming from its checkpoint), writing the run store; never raises for a
    training failure (the result says failed, with a one-line error). Raises ``RunBusy`` if locked.

    ``wandb`` may set ``job_type`` and add ``config`` entries (a sweep: "trial" and the trial params)."""
    unit.run_dir.mkdir(parents=True, exist_ok=True)
    with _Lock(unit.run_dir / ".lock"):
        remote.pull(unit.run_dir, run=True)  # a URL store: another machine's checkpoint, to resume from
        if is_done(unit):
            return Result("skipped", store.read_json(unit.run_dir / "summary.json"))
        config_path = unit.run_dir / "config.json"
        if not config_path.exists():
            atomic_write_json(config_path, unit.cfg.to_dict())
        import torch

        # A resumed run keeps the thread count it started with: the sums of a step depend on it.
        threads = (store.read_json(unit.run_dir / "run.json") or {}).get("threads") or options.threads
        if threads:
            torch.set_num_threads(threads)
        device = pick_device(unit.cfg.train.device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        run = {**_start_record(unit, options, store.device_name(device)), "threads": torch.get_num_threads()}
        run_path = unit.run_dir / "run.json"
        atomic_write_json(run_path, run)
        progress_seen = Progress()

        def beat() -> None:
            run["heartbeat"] = time.time()
            atomic_write_json(run_path, run)

        tracker = Tracker(options.wandb)
        tracker.start(
            run_id=run["wandb"]["id"],
            project=options.project,
            group=unit.experiment,
            job_type=(wandb or {}).get("job_type", unit.arm),
            name=f"{unit.arm}-s{unit.seed}",
            config={
                **unit.cfg.to_dict(),
                "arm": unit.arm,
                "seed": unit.seed,
                "run": unit.key,
                **(wandb or {}).get("config", {}),
            },  # fmt: skip
            run_dir=unit.run_dir,
        )
        if tracker.used != options.wandb:  # W&B was unreachable (or refused): say how the run really logged
            run["wandb"].update(mode=tracker.used, asked=options.wandb)
            atomic_write_json(run_path, run)
        recorder = Recorder(unit, tracker, evaluate=options.evaluate, heartbeat=_throttled(beat), inner=inner)
        try:
            _, progress = train(unit.cfg, unit.run_dir, recorder)
        except Exception as exc:  # noqa: BLE001 - a failed run is recorded, the worker goes on
            fault = store_fault(exc, unit.run_dir)
            if fault is not None:  # the disk, not the run: no attempt is used up, the next start resumes
                _interrupted(run, run_path, recorder)
                tracker.finish(failed=True)
                raise fault from None
            error = one_line(exc)
            traceback.print_exc(file=sys.stderr)  # the one line goes to the store; the details to the log
            progress_seen.iteration = _last_iteration(unit)
            summary = recorder.summary("failed", progress_seen, error)
            _finish(run, run_path, unit, summary, "failed", error, recorder)
            tracker.finish(failed=True)
            return Result("failed", summary, error)
        except BaseException:
            _interrupted(run, run_path, recorder)
            tracker.finish(failed=True)
            raise
        status = "pruned" if progress.stopped_early else "done"
        summary = recorder.summary(status, progress)
        _finish(run, run_path, unit, summary, status, None, recorder)
        if status == "done":
            reuse.record_finished(unit.run_dir, run["content_key"])
        tracker.summary({**summary["metrics"], "status": status, "iteration": progress.iteration})
        tracker.finish()
        return Result(status, summary)


def _interrupted(run: dict, run_path: Path, recorder: Recorder) -> None:
    """run.json of an attempt cut short (Ctrl-C, a full disk): pending, so the next start resumes it."""
    run["status"] = "pending"  # contract states only; the attempt record says interrupted
    run["ended"] = store.now_iso()
    run["attempts"][-1].update(ended=run["ended"], status="interrupted", resumed_from=recorder.resumed_from)
    with contextlib.suppress(OSError):  # the disk that stopped the run may refuse this too
        atomic_write_json(run_path, run)


def _throttled(fn: Callable[[], None], seconds: float = 5.0) -> Callable[[], None]:
    last = [0.0]

    def call() -> None:
        if time.monotonic() - last[0] >= seconds:
            last[0] = time.monotonic()
            fn()

    return call


def _last_iteration(unit: Unit) -> int:
    records = store.read_metrics(unit.run_dir / "metrics.jsonl")
    return max((r.get("iteration", 0) for r in records), default=0)


def _finish(
    run: dict, run_path: Path, unit: Unit, summary: dict, status: str, error: str | None, rec
) -> None:
    atomic_write_json(unit.run_dir / "summary.json", summary)
    run.update(
        status=status,
        error=error,
        ended=store.now_iso(),
        wall_seconds=summary["cost"]["wall_seconds"],
        peak_memory_mb=summary["cost"]["peak_memory_mb"],
    )
    run["attempts"][-1].update(ended=run["ended"], status=status, resumed_from=rec.resumed_from, error=error)
    atomic_write_json(run_path, run)
    remote.push(unit.run_dir)


class TrialFailed(Exception):
    """A run of the trial failed; the message is its one-line error (also the trial's user attr ``error``)."""


class Surplus(Exception):
    """The trial is given back unrun (user attr ``surplus``): a race emptied the queue or filled the target,
    or another process is training its run."""


class Job(Protocol):
    """What a worker loop runs: an ablation's enqueued runs or a sweep's sampled trials."""

    retry_failures: bool  # queue a failed trial again (an ablation's run) or let a new one replace it (sweep)
    max_failures_in_a_row: int | None  # stop the worker after this many failed trials in a row

    def next(self, study: optuna.Study) -> str: ...  # "run", "wait" (work running elsewhere) or "stop"

    def objective(self, trial: optuna.Trial, options: WorkerOptions) -> float | list[float]: ...

    def outcome(self, trial: FrozenTrial, retried: bool) -> str: ...  # the log line of a finished trial


def work(study: optuna.Study, job: Job, options: WorkerOptions) -> dict[str, int]:
    """Take trials of ``study`` and run them until ``job`` says stop; returns the trial states this worker
    ended. Each trial goes through ``Study.optimize(n_trials=1)``, so SQL storages get Optuna's heartbeat."""
    done = {"complete": 0, "pruned": 0, "failed": 0}

    def tally(study: optuna.Study, frozen: FrozenTrial) -> None:
        if frozen.user_attrs.get(SURPLUS) or faults:
            return
        key = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned"}.get(frozen.state, "failed")
        done[key] += 1
        retried = key == "failed" and job.retry_failures and _retry(study, frozen)
        options.log(job.outcome(frozen, retried))

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # each trial's outcome is logged by ``tally`` instead
    streak, faults = 0, []
    while True:
        for n in reap(study):
            options.log(f"trial {n}: its worker is gone; re-queued")
        step = job.next(study)
        if step == "stop":
            return done
        if step == "wait":
            time.sleep(options.poll_seconds)
            continue
        failed_before, current = done["failed"], []

        def objective(trial: optuna.Trial, current: list[int] = current) -> float | list[float]:
            current.append(trial.number)
            try:
                return _objective(job, trial, options)
            except StoreFault as exc:
                faults.append(exc)
                raise
            finally:
                release()

        try:
            study.optimize(objective, n_trials=1, catch=(Exception,), callbacks=[tally])
        except KeyboardInterrupt:
            requeue(study, current)
            raise
        except OSError as exc:  # the queue's own file: a trial left running is re-queued by the next reap
            fault = store_fault(exc)
            if fault is None:
                raise
            raise fault from None
        if faults:  # stop: every further run would hit the same disk; the next start resumes this one
            with contextlib.suppress(OSError):
                requeue(study, current)
            raise faults[0]
        streak = streak + 1 if done["failed"] > failed_before else 0
        if job.max_failures_in_a_row and streak >= job.max_failures_in_a_row:
            options.log(
                f"stopping: {streak} trials failed in a row (see the errors above and the run folders)"
            )
            return done


def _objective(job: Job, trial: optuna.Trial, options: WorkerOptions) -> float | list[float]:
    """The job's objective; an unexpected error is recorded on the trial in one line, like a failed run."""
    try:
        return job.objective(trial, options)
    except (optuna.TrialPruned, Surplus, RunBusy, TrialFailed, StoreFault):
        raise
    except Exception as exc:
        fault = store_fault(exc)
        if fault is not None:
            raise fault from None
        trial.set_user_attr("error", one_line(exc))
        raise


def _retry(study: optuna.Study, frozen: FrozenTrial) -> bool:
    """Queue a failed trial again while it has retries left (Optuna's callback keeps its retry history)."""
    before = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
    retry_callback()(study, frozen)
    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,))) > before


class Ablation:
    """An ablation's job: the enqueued runs, each trial one unit whose config the plan wrote to its folder."""

    retry_failures = True
    max_failures_in_a_row = None

    def __init__(self, study: optuna.Study) -> None:
        self.configs = study.user_attrs.get("configs", {})

    def next(self, study: optuna.Study) -> str:
        """Run a queued unit; else wait while others run (a dead worker's unit comes back), else stop."""
        states = {t.state for t in study.get_trials(deepcopy=False)}
        if TrialState.WAITING in states:
            return "run"
        return "wait" if TrialState.RUNNING in states else "stop"

    def objective(self, trial: optuna.Trial, options: WorkerOptions) -> float:
        if "unit" not in trial.user_attrs:  # the queue emptied between ``next`` and the claim
            trial.set_user_attr(SURPLUS, "the queue was empty")
            raise Surplus("the queue was empty")
        claim(trial)
        unit = Unit.load(trial.user_attrs, options.store, self.configs)
        options.log(f"start  {unit.key}")
        try:
            result = run_unit(unit, options)
        except RunBusy as exc:
            trial.set_user_attr(SURPLUS, str(exc))
            raise
        trial.set_user_attr("status", result.status)
        if result.status == "failed":
            trial.set_user_attr("error", result.error)
            raise TrialFailed(result.error)
        return float((result.summary or {}).get("iteration") or 0)  # the value is what it trained

    def outcome(self, trial: FrozenTrial, retried: bool) -> str:
        key = trial.user_attrs["unit"]
        if trial.state == TrialState.FAIL:
            return f"failed {key}: {trial.user_attrs.get('error')}{' (will retry)' if retried else ''}"
        return f"{trial.user_attrs['status']:6} {key}"
