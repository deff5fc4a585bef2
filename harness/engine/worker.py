"""Run units: one at a time in this process, pulled from the queue until it is empty.

``run_unit`` is independent of where units come from (an ablation's enqueue list or a sweep's sampler). A
unit's run folder is locked (``flock`` on ``<run>/.lock``) while it trains, so two processes on one
machine can never train the same unit at once, even if a queue hands it out twice.
"""

from __future__ import annotations

import fcntl
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cyclegan.atomic import atomic_write_json
from cyclegan.train import Progress, pick_device, train
from harness.engine import store
from harness.engine.plan import Unit
from harness.engine.queue import Claim, Queue
from harness.engine.recorder import Recorder, UnitCallbacks
from harness.engine.tracking import Tracker, new_run_id


class RunBusy(RuntimeError):
    """The unit's run folder is locked by another live process."""


@dataclass
class WorkerOptions:
    store: Path = Path("runs")
    wandb: str = "offline"  # online | offline | disabled (resolved; see tracking.pick_mode)
    project: str = "cyclegan-harness"
    threads: int = 0  # torch CPU threads in this process (0 = leave torch's default)
    evaluate: bool = True
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
    heartbeat: Callable[[], None] | None = None,
    inner: UnitCallbacks | None = None,
    wandb: dict[str, Any] | None = None,
) -> Result:
    """Train one unit to its end (resuming from its checkpoint), writing the run store; never raises for a
    training failure (the result says failed, with a one-line error). Raises ``RunBusy`` if locked.

    ``wandb`` may set ``job_type`` and add ``config`` entries (a sweep: "trial" and the trial params)."""
    unit.run_dir.mkdir(parents=True, exist_ok=True)
    with _Lock(unit.run_dir / ".lock"):
        if is_done(unit):
            return Result("skipped", store.read_json(unit.run_dir / "summary.json"))
        config_path = unit.run_dir / "config.json"
        if not config_path.exists():
            atomic_write_json(config_path, unit.cfg.to_dict())
        import torch

        if options.threads:
            torch.set_num_threads(options.threads)
        device = pick_device(unit.cfg.train.device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        run = _start_record(unit, options, store.device_name(device))
        run_path = unit.run_dir / "run.json"
        atomic_write_json(run_path, run)
        progress_seen = Progress()

        def beat() -> None:
            import time

            run["heartbeat"] = time.time()
            atomic_write_json(run_path, run)
            if heartbeat:
                heartbeat()

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
        recorder = Recorder(unit, tracker, evaluate=options.evaluate, heartbeat=_throttled(beat), inner=inner)
        try:
            _, progress = train(unit.cfg, unit.run_dir, recorder)
        except Exception as exc:  # noqa: BLE001 - a failed run is recorded, the worker goes on
            error = one_line(exc)
            traceback.print_exc(file=sys.stderr)  # the one line goes to the store; the details to the log
            progress_seen.iteration = _last_iteration(unit)
            summary = recorder.summary("failed", progress_seen, error)
            _finish(run, run_path, unit, summary, "failed", error, recorder)
            tracker.finish(failed=True)
            return Result("failed", summary, error)
        except BaseException:
            run["status"] = "pending"  # contract states only; the attempt record says interrupted
            run["ended"] = store.now_iso()
            run["attempts"][-1].update(
                ended=run["ended"], status="interrupted", resumed_from=recorder.resumed_from
            )
            atomic_write_json(run_path, run)
            tracker.finish(failed=True)
            raise
        status = "pruned" if progress.stopped_early else "done"
        summary = recorder.summary(status, progress)
        _finish(run, run_path, unit, summary, status, None, recorder)
        tracker.summary({**summary["metrics"], "status": status, "iteration": progress.iteration})
        tracker.finish()
        return Result(status, summary)


def _throttled(fn: Callable[[], None], seconds: float = 5.0) -> Callable[[], None]:
    import time

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


def work(
    queue: Queue, options: WorkerOptions, inner: Callable[[Unit, Claim], UnitCallbacks] | None = None
) -> int:
    """Pull units from ``queue`` and run them until none is left; returns the number of units trained.

    ``inner`` builds extra callbacks per unit (a sweep's pruning/reporting hook).
    """
    worker = store.worker_id()
    trained = 0
    while True:
        claim = queue.claim(worker)
        if claim is None:
            if queue.reap():  # a unit of a dead worker: resume it here rather than leave it
                continue
            return trained
        unit = Unit.from_attrs(claim.attrs, options.store)
        options.log(f"start  {unit.key}")
        try:
            result = run_unit(
                unit,
                options,
                heartbeat=lambda c=claim: queue.heartbeat(c),
                inner=inner(unit, claim) if inner else None,
            )
        except RunBusy as exc:
            queue.drop(claim, str(exc))
            continue
        except BaseException:
            queue.release(claim)
            raise
        if result.status == "failed":
            retried = queue.fail(claim, result.error or "")
            options.log(f"failed {unit.key}: {result.error}{' (will retry)' if retried else ''}")
        else:
            metrics = (result.summary or {}).get("metrics") or {}
            record = queue.experiment_record() or {}
            primary = (record.get("metrics") or {}).get("primary")
            queue.complete(claim, metrics.get(primary) if primary else None)
            trained += result.status != "skipped"
            options.log(f"{result.status:6} {unit.key}")
    return trained


def main_guard(fn: Callable[[], int]) -> int:
    """Exit code 130 on Ctrl-C without a traceback (the interrupted unit is re-queued by ``work``)."""
    try:
        return fn()
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130
