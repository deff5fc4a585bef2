"""The experiment engine: specs -> units -> a queue -> workers -> the run store (docs/RUNSTORE.md) and W&B.

A sweep reuses the same pieces: build ``Unit``s with ``unit_for``, enqueue their ``attrs()`` in a
``Queue`` (or run them directly with ``run_unit``), and let ``work`` pull them.
"""

from harness.engine.plan import Plan, Unit, build_plan, run_name, unit_for
from harness.engine.queue import Claim, Queue, worker_alive
from harness.engine.recorder import UnitCallbacks
from harness.engine.spec import Spec, load_spec, resolve_spec_path
from harness.engine.worker import Result, RunBusy, WorkerOptions, is_done, run_unit, work

__all__ = [
    "Claim",
    "Plan",
    "Queue",
    "Result",
    "RunBusy",
    "Spec",
    "Unit",
    "UnitCallbacks",
    "WorkerOptions",
    "build_plan",
    "is_done",
    "load_spec",
    "resolve_spec_path",
    "run_name",
    "run_unit",
    "unit_for",
    "work",
    "worker_alive",
]
