"""What ``harness run`` and ``harness sweep`` share: workers in this process or in K processes under a live
table of the running and failed runs (read from the run store while they train), the estimate line of a
dry run, and the line an interrupt leaves."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from cyclegan.config import Config
from harness.engine import status as st


def run_workers(folder: Path, workers: int, in_process: Callable, name: str, options, storage) -> None:
    """One worker runs in this process (no start-up cost, and the same numbers as any worker); K run as K
    ``harness worker NAME`` processes."""
    from harness.engine.runner import spawn

    if workers == 1:
        return watch(folder, in_process)
    procs = spawn(name, workers, options, storage)
    watch(folder, lambda: [p.wait() for p in procs], procs)
    if any(p.returncode == 2 for p in procs):  # a store fault: the workers said which, in a line
        raise typer.Exit(2)


def watch(folder: Path, wait: Callable[[], object], procs: list | None = None) -> None:
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


@contextmanager
def resumable(message: str = "interrupted; run the same command again to resume") -> Iterator[None]:
    """Ctrl-C: one line on stderr and exit code 130 (the store and the queue keep what was done)."""
    try:
        yield
    except KeyboardInterrupt:
        typer.echo(message, err=True)
        raise typer.Exit(130) from None


def table(folder: Path, final: bool = False) -> Any:
    """While running: the running and failed runs. At the end: every run, so the last screen sums up."""
    record, rows = st.experiment_rows(folder)
    c = st.counts(rows)
    title = f"{folder.name}: {c['done']}/{len(rows)} done, {c['running']} running, {c['failed']} failed"
    return runs_table(title, record, [r for r in rows if final or r["state"] in ("running", "failed")])


def runs_table(title: str, record: dict, rows: list[dict]) -> Any:
    """A row per run: run, state (with its note), step, it/s, ETA, latest primary metric."""
    from rich.table import Table

    out, primary = Table(title=title), (record.get("metrics") or {}).get("primary", "metric")
    for col in ("run", "state", "step", "it/s", "ETA", primary):
        out.add_column(col)
    for r in rows:
        step = f"{r['iteration']}/{r['total'] or '?'}" + (f" ({r['epochs']} ep)" if r.get("epochs") else "")
        rate = f"{r['it_per_s']:.2f}" if r["it_per_s"] else "-"
        metric = f"{r['metric']:.4g}" if isinstance(r["metric"], int | float) else "-"
        state = r["state"] + (f" ({r['note']})" if r["note"] else "")
        out.add_row(r["run"], state, step, rate, st.fmt_seconds(r["eta_s"]), metric)
    return out


def say_estimate(lead: str, runs: list[tuple[Config, int | None]], workers: int, preset: str | None) -> None:
    """``lead`` and the wall time of ``runs`` (config, iterations) here; a warning past a day."""
    from harness.engine import estimate

    if any(n is None for _, n in runs):
        seconds, how = None, "unknown (cannot count the training images)"
    else:
        seconds, how = estimate.plan_seconds(runs, workers), estimate.how(workers)
    typer.echo(f"{lead}about {st.fmt_seconds(seconds)} ({how})")
    warning = estimate.too_long(seconds or 0, preset)
    if warning:
        typer.echo(warning)
