"""The experiment engine: specs -> units -> a queue -> workers -> the run store (docs/RUNSTORE.md) and W&B.

An ablation and a sweep share them: one queue (an Optuna study: ``queue``), one worker loop (``work``) that
runs a job's trials (``Ablation``: enqueued runs; ``harness.sweep.worker.Search``: sampled ones), and
``run_unit`` for each run.

Names are imported on first use (PEP 562), so ``harness --help`` and light commands do not pay for torch
and Optuna.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOME = {
    "Plan": "plan", "Unit": "plan", "build_plan": "plan", "run_name": "plan", "unit_for": "plan",
    "Queue": "queue", "worker_alive": "queue",
    "UnitCallbacks": "recorder",
    "Spec": "spec", "load_spec": "spec", "find_spec": "spec",
    "Ablation": "worker", "Result": "worker", "RunBusy": "worker", "WorkerOptions": "worker",
    "is_done": "worker", "run_unit": "worker", "work": "worker",
}  # fmt: skip

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'harness.engine' has no attribute '{name}'")
    return getattr(importlib.import_module(f"harness.engine.{_HOME[name]}"), name)
