"""Training-loop callbacks that write a run's metrics.jsonl, samples and summary.json, and mirror them to W&B.

Evaluation runs with the global RNG saved and restored, so evaluating (or building the evaluator, which may
train the domain classifier) never changes the training trajectory: a resumed run stays bit-exact.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cyclegan.atomic import atomic_write_json
from cyclegan.seeding import rng_state, set_rng_state
from cyclegan.train import Callbacks, Progress
from harness.engine import remote, store
from harness.engine.metric_names import dataset_names
from harness.engine.plan import Unit
from harness.engine.tracking import Tracker


def make_evaluator(unit: Unit, device: Any) -> Any:
    """The metrics package's Evaluator for this run's data (its classifier is cached per data set)."""
    from cyclegan.metrics import Evaluator

    return Evaluator(unit.cfg, device)


class UnitCallbacks(Callbacks):
    """Extra per-unit hooks (a sweep's reporting and pruning): ``on_metrics`` gets each evaluation's metrics,
    under the names the store records, after they are written; ``should_stop`` True ends the run as pruned."""

    def on_metrics(self, progress: Progress, metrics: dict[str, Any]) -> None: ...


class Recorder(Callbacks):
    """Store + W&B writer for one run; ``inner`` callbacks (e.g. a sweep's pruning) are called after it."""

    def __init__(
        self,
        unit: Unit,
        tracker: Tracker,
        *,
        evaluate: bool = True,
        heartbeat: Callable[[], None] | None = None,
        inner: UnitCallbacks | None = None,
    ) -> None:
        self.unit, self.tracker, self.evaluate = unit, tracker, evaluate
        self.heartbeat = heartbeat or (lambda: None)
        self.inner = inner or UnitCallbacks()
        self.dir = unit.run_dir
        self.metrics_path = self.dir / "metrics.jsonl"
        self.model: Any = None
        self.evaluator: Any = None
        self.metrics: dict[str, Any] = {}
        self.resumed_from: int | None = None
        self.t0 = time.perf_counter()

    def _time(self) -> float:
        return round(time.perf_counter() - self.t0, 3)

    def on_start(self, model, progress: Progress) -> None:
        self.model = model
        self.resumed_from = progress.resumed_from
        self.t0 = time.perf_counter() - progress.wall_seconds
        # Records past the checkpoint we resume from (or all, on a fresh start) will be written again.
        store.repair_metrics(self.metrics_path, progress.resumed_from or 0)
        evals = [r for r in store.read_metrics(self.metrics_path) if r.get("kind") == "eval"]
        if evals:
            self.metrics = {k: v for k, v in evals[-1].items() if k not in ("kind", "iteration", "time")}
        if self.evaluate:
            state = rng_state()
            try:
                self.evaluator = make_evaluator(self.unit, model.device)
            finally:
                set_rng_state(state)
        atomic_write_json(self.dir / "summary.json", self.summary("running", progress))
        self.heartbeat()
        self.inner.on_start(model, progress)

    def on_log(self, progress: Progress, losses: dict[str, float]) -> None:
        record = {
            "kind": "loss",
            "iteration": progress.iteration,
            "epoch": progress.epoch,
            "time": self._time(),
        }
        record["lr"] = self.model.lr if self.model is not None else None
        record.update(losses)
        store.append_metric(self.metrics_path, record)
        self.tracker.log({**losses, "lr": record["lr"], "epoch": progress.epoch}, step=progress.iteration)
        self.heartbeat()
        self.inner.on_log(progress, losses)

    def on_eval(self, model, progress: Progress) -> None:
        if self.evaluator is not None:
            state = rng_state()
            try:
                raw = self.evaluator(model)
                grid = self.dir / "samples" / f"{progress.iteration:07d}.png"
                grid.parent.mkdir(parents=True, exist_ok=True)
                self.evaluator.sample_grid(model, grid)
            finally:
                set_rng_state(state)
            self.metrics = dataset_names(raw, self.unit.cfg.data.direction)
            scores = dataset_names(self.evaluator.per_image, self.unit.cfg.data.direction)
            per_image = {"iteration": progress.iteration, "scores": scores}
            atomic_write_json(self.dir / "per_image.json", per_image)
            record = {"kind": "eval", "iteration": progress.iteration, "time": self._time(), **self.metrics}
            store.append_metric(self.metrics_path, record)
            self.tracker.log(self.metrics, step=progress.iteration)
            if grid.exists():
                self.tracker.image(
                    "samples", grid, progress.iteration, f"{self.unit.arm} seed {self.unit.seed}"
                )
            atomic_write_json(self.dir / "summary.json", self.summary("running", progress))
            self.inner.on_metrics(progress, self.metrics)
        self.heartbeat()
        self.inner.on_eval(model, progress)

    def on_checkpoint(self, progress: Progress, path: Path) -> None:
        remote.push(self.dir)  # a URL store: a run taken over on another machine resumes from here
        self.heartbeat()
        self.inner.on_checkpoint(progress, path)

    def should_stop(self, progress: Progress) -> bool:
        return self.inner.should_stop(progress)

    def summary(self, status: str, progress: Progress, error: str | None = None) -> dict[str, Any]:
        """summary.json (docs/RUNSTORE.md) from what the run has recorded so far."""
        from cyclegan.metrics import health

        losses = [r for r in store.read_metrics(self.metrics_path) if r.get("kind") == "loss"]
        device = self.model.device if self.model is not None else "cpu"
        return {
            "status": status,
            "iteration": progress.iteration,
            "total": progress.total,
            "metrics": self.metrics,
            "health": health(losses, self.metrics),
            "cost": {
                "wall_seconds": round(progress.wall_seconds or self._time(), 3),
                "train_seconds": round(progress.train_seconds, 3),
                "it_per_s": round(progress.iteration / progress.train_seconds, 3)
                if progress.train_seconds
                else None,
                "peak_memory_mb": round(store.peak_memory_mb(device), 1),
            },
            "error": error,
        }
