"""The state of an experiment's runs, read from the run store only (so it works for remote workers too)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.engine import store
from harness.engine.queue import worker_alive

STATES = ("done", "running", "failed", "pending")


def _rate(records: list[dict[str, Any]]) -> float | None:
    """Iterations per second over the latest contiguous stretch of loss records."""
    losses = [r for r in records if r.get("kind") == "loss" and isinstance(r.get("time"), int | float)]
    if len(losses) < 2:
        return None
    a, b = losses[max(0, len(losses) - 20)], losses[-1]
    dt, di = b["time"] - a["time"], b["iteration"] - a["iteration"]
    return di / dt if dt > 0 and di > 0 else None


def _cached_estimate(run_dir: Path, total: int, evaluations_done: int) -> tuple[float | None, float]:
    """(iterations per second, seconds of evaluations still to come) from this machine's cached probe of the
    run's config (``harness.engine.estimate``; status never probes); (None, 0.0) when nothing is cached."""
    from cyclegan.config import Config
    from harness.engine import estimate

    config = store.read_json(run_dir / "config.json")
    cfg = Config.from_dict(config) if config else None
    entry = estimate.throughput(cfg, measure=False) if cfg else None
    if not entry:
        return None, 0.0
    left = max(0, estimate.evaluations(cfg, total) - evaluations_done) * (entry.get("eval_seconds") or 0.0)
    return 1 / estimate.iteration_seconds(entry, cfg), left


def run_row(folder: Path, key: str, primary: str | None = None) -> dict[str, Any]:
    """One run's state, steps, speed, ETA and latest primary metric."""
    run_dir = Path(folder) / key
    summary = store.read_json(run_dir / "summary.json") or {}
    run = store.read_json(run_dir / "run.json") or {}
    records = store.read_metrics(run_dir / "metrics.jsonl")
    state = summary.get("status") if summary.get("status") in ("done", "failed", "pruned") else None
    note = ""
    if state is None:
        if run.get("status") == "running" and worker_alive(run.get("worker"), run.get("heartbeat")):
            state = "running"
        else:
            state = "pending"
            if run:
                note = f"interrupted (attempt {run.get('attempt', '?')})"
    if state == "failed":
        note = summary.get("error") or run.get("error") or ""
    if state == "pruned":
        state, note = "done", "pruned"
    if state == "done" and run.get("reused_from"):  # harness.engine.reuse: trained in another experiment
        note = f"reused from {run['reused_from']}"
    iteration = max([r.get("iteration", 0) for r in records] + [summary.get("iteration") or 0])
    total = summary.get("total")
    rate = _rate(records) if state == "running" else (summary.get("cost") or {}).get("it_per_s")
    evals = [r for r in records if r.get("kind") == "eval"]
    eta = None
    if state == "running" and total:
        probed_rate, evals_left = _cached_estimate(run_dir, total, len(evals))
        rate = rate or probed_rate  # before the run has logged twice
        eta = (total - iteration) / rate + evals_left if rate else None
    metric = (summary.get("metrics") or (evals[-1] if evals else {})).get(primary) if primary else None
    return {
        "run": key,
        "arm": run.get("arm"),
        "seed": run.get("seed"),
        "state": state,
        "iteration": iteration,
        "total": total,
        "it_per_s": rate,
        "eta_s": eta,
        "metric": metric,
        "worker": run.get("worker") if state == "running" else None,
        "attempt": run.get("attempt"),
        "note": note,
    }


def experiment_rows(folder: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(experiment.json, one row per planned run); an experiment never started has no experiment.json."""
    record = store.read_json(Path(folder) / "experiment.json")
    if record is None:
        return {}, []
    primary = (record.get("metrics") or {}).get("primary")
    planned = {r["run"]: r for r in record.get("runs", [])}
    keys = list(planned)
    if record.get("kind") == "sweep":  # a sweep plans no runs: every run folder its workers made
        keys = sorted(p.name for p in Path(folder).iterdir() if (p / "run.json").is_file())
    rows = [run_row(folder, key, primary) for key in keys]
    for row in rows:  # the plan's budget: iterations, and the epochs they make on this data set
        row["epochs"] = planned.get(row["run"], {}).get("epochs")
        row["total"] = row["total"] or planned.get(row["run"], {}).get("iterations")
    return record, rows


def counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    out = {s: 0 for s in STATES}
    for r in rows:
        out[r["state"]] += 1
    return out


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "-"
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
