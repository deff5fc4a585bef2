"""Live progress of ``harness run`` and ``harness sweep``: a table of the running and failed runs, read from
the run store while workers (in this process or others) train."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from harness.engine import status as st


def watch(folder: Path, wait: Callable[[], None], procs: list | None = None) -> None:
    """Run ``wait`` (the in-process worker, or waiting for the worker processes) under a live table on a
    terminal, else with the workers' own one-line start/finish messages; report workers that died."""
    if sys.stdout.isatty():
        from rich.live import Live

        with Live(get_renderable=lambda: table(folder), refresh_per_second=1, transient=False) as live:
            wait()
            live.get_renderable = lambda: table(folder, final=True)
            live.refresh()
    else:
        wait()
    for i, p in enumerate(procs or []):
        if p.returncode:
            typer.echo(f"worker {i} (pid {p.pid}) exited with code {p.returncode}")


def table(folder: Path, final: bool = False) -> Any:
    """While running: the running and failed runs. At the end: every run, so the last screen sums up."""
    from rich.table import Table

    record, rows = st.experiment_rows(folder)
    c = st.counts(rows)
    title = f"{folder.name}: {c['done']}/{len(rows)} done, {c['running']} running, {c['failed']} failed"
    out = Table(title=title)
    primary = (record.get("metrics") or {}).get("primary", "metric")
    for col in ("run", "state", "step", "it/s", "ETA", primary):
        out.add_column(col)
    for r in rows:
        if final or r["state"] in ("running", "failed"):
            out.add_row(*cells(r))
    return out


def cells(r: dict) -> list[str]:
    """One run's row: run, state (with its note), step, it/s, ETA, latest primary metric."""
    step = f"{r['iteration']}/{r['total'] or '?'}" + (f" ({r['epochs']} ep)" if r.get("epochs") else "")
    rate = f"{r['it_per_s']:.2f}" if r["it_per_s"] else "-"
    metric = f"{r['metric']:.4g}" if isinstance(r["metric"], int | float) else "-"
    state = r["state"] + (f" ({r['note']})" if r["note"] else "")
    return [r["run"], state, step, rate, st.fmt_seconds(r["eta_s"]), metric]
