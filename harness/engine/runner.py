"""``harness run``: plan, check, enqueue, start K local workers, show progress, then build the report.

Everything that can be wrong with the input (spec, flags, data) is found before the first file is written.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.engine import reuse
from harness.engine.plan import Plan, Unit, build_plan, write_configs, write_experiment
from harness.engine.queue import Queue
from harness.engine.remote import pull, push, shown
from harness.engine.spec import find_spec, load_spec
from harness.engine.worker import WorkerOptions, is_done


@dataclass
class RunOptions:
    store: Path = Path("runs")
    workers: int = 1
    storage: str | None = None
    wandb: str = "offline"  # resolved mode
    retry_failed: bool = False
    evaluate: bool = True
    reports: Path = Path("reports")
    reuse: bool = True  # a unit whose content key a finished run of the store has is copied, not trained


def plan_from_args(
    name: str,
    store_root: Path,
    preset: str | None = None,
    seeds: int | None = None,
    data: str | None = None,
    sets: dict[str, str] | None = None,
    primary: str | None = None,
    secondary: list[str] | None = None,
) -> Plan:
    from harness.engine.spec import check_data_name, parse_seeds

    spec = load_spec(find_spec(name))
    seed_list = None if seeds is None else parse_seeds(f"--seeds {seeds}", seeds)
    if data is not None:
        check_data_name("--data", data)
    return build_plan(spec, store_root, preset, seed_list, data, sets, primary, secondary)


def check_data(plan: Plan) -> None:
    """Validate each distinct data set the plan trains on (generating the synthetic benchmark if needed)."""
    from cyclegan.data.validate import check_data as check

    for data_cfg in {u.cfg.data for u in plan.units}:
        check(data_cfg)


def warm_evaluators(units: list[Unit], threads: int) -> None:
    """Build each distinct Evaluator once here, so parallel workers find the domain classifier cached. With a
    worker's thread share, as the run-time probe measures it: on a machine that other work loads, more torch
    threads than free cores spin at their barriers (training the classifier of the synthetic benchmark at
    32 px took 124-127 s at 2 threads against 16-20 s at 1, 2 cores at load average 5-6)."""
    import torch

    from cyclegan.metrics import Evaluator

    seen, saved = set(), torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for u in units:
            key = (u.cfg.data, u.cfg.eval)
            if key not in seen:
                seen.add(key)
                Evaluator(u.cfg, "cpu")
    finally:
        torch.set_num_threads(saved)


def worker_threads(workers: int) -> int:
    """The cores split between the workers; an explicit OMP_NUM_THREADS caps the cores the run may use."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    cap = os.environ.get("OMP_NUM_THREADS", "")
    if cap.isdigit() and int(cap) > 0:
        cores = min(cores, int(cap))
    return max(1, cores // max(1, workers))


def child_env(threads: int) -> dict[str, str]:
    """The environment of a worker process: ours with its thread share, minus ``WANDB_SERVICE`` (the socket
    of a W&B service this process may have started; a child that inherits it tries to reach that service
    instead of starting its own, and logs nothing once it is gone)."""
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    env["OMP_NUM_THREADS"] = str(threads)
    env.setdefault("WANDB_SILENT", "true")
    return env


def spawn(name: str, workers: int, options: WorkerOptions, storage: str | None) -> list[subprocess.Popen]:
    """K ``harness worker NAME`` processes (an ablation's or a sweep's), each with its share of the cores."""
    threads = options.threads or worker_threads(workers)
    procs = []
    for i in range(workers):
        cmd = [sys.executable, "-m", "harness", "worker", name, "--index", str(i),
               "--store", shown(options.store), "--threads", str(threads),
               "--wandb", options.wandb, "--project", options.project]  # fmt: skip
        cmd += ["--storage", storage] if storage else []
        cmd += [] if options.evaluate else ["--no-eval"]
        out = subprocess.DEVNULL if sys.stdout.isatty() else None
        procs.append(
            subprocess.Popen(cmd, env=child_env(threads), stdout=out, preexec_fn=_die_with(os.getpid()))
        )
    return procs


def _die_with(parent: int) -> Callable[[], None] | None:
    """Linux: a worker gets SIGTERM when the process that started it dies (however it dies), so a killed
    ``harness run`` leaves no orphan workers; their runs are free again at once (their pids are gone)."""
    if not sys.platform.startswith("linux"):
        return None

    def in_child() -> None:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the line above
            os._exit(1)

    return in_child


def prepare(plan: Plan, options: RunOptions, command: str) -> tuple[Queue, dict[str, list[str]]]:
    """Write experiment.json and each run's resolved config (the one validation), and make the queue hold
    every unit still to run; the queue carries run keys, workers read the written configs. The queue is
    opened first: a database that cannot be reached is one line before anything is written."""
    queue = Queue(plan.spec.name, options.storage, plan.folder)
    pull(plan.folder)  # a URL store: what every machine has written, so done runs are not trained again
    plan.folder.mkdir(parents=True, exist_ok=True)
    record = plan.experiment_record(command)
    write_experiment(plan.folder, record)
    push(plan.folder / "experiment.json")
    queue.set_experiment(record, write_configs(plan.units))
    done = adopt_or_release(plan, options.reuse)
    state = queue.sync(plan.units, done, retry_failed=options.retry_failed)
    state["reused"] = [origin for u in plan.units if (origin := reuse.reused_from(u.run_dir))]
    return queue, state


def adopt_or_release(plan: Plan, reusing: bool) -> set[str]:
    """The keys of the units done after reuse: with ``reusing``, units whose content a finished run of the
    store has take its result (harness.engine.reuse); without, results adopted earlier are released so
    those units train here."""
    if not reusing:
        for u in plan.units:
            if reuse.reused_from(u.run_dir):
                reuse.release(u.run_dir)
    done = {u.key for u in plan.units if is_done(u)}
    if reusing:
        units = {u.key: u for u in plan.units}
        for key, (source, content_key) in reuse.sources(plan.units, plan.store, done).items():
            reuse.adopt(units[key], source, content_key)
            done.add(key)
    return done
