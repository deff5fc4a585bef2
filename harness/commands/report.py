"""``harness report NAME``: rebuild an experiment's comparison report from the run store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.options import ForceOpt, ReportsOpt, StoreOpt, WandbOpt

app = typer.Typer()


@app.command()
def report(
    name: Annotated[str, typer.Argument(help="Experiment name (a folder under the store).")],
    store: StoreOpt = Path("runs"),
    reports: ReportsOpt = Path("reports"),
    force: ForceOpt = False,
    wandb: WandbOpt = "auto",
) -> None:
    """Write report.md, report.html (self-contained), runs.csv and figures; works on partial stores too."""
    from harness.engine.remote import pull
    from harness.engine.tracking import pick_mode, publish_report
    from harness.report import build_report
    from harness.sweep.report import build_sweep_report, is_sweep

    pull(store / name)  # a URL store: every machine's runs, read from a local copy
    if is_sweep(store, name):  # trials, importances, recommendation: harness/sweep/report.py
        folder = build_sweep_report(store, name, reports)
    else:
        folder = build_report(store, name, reports, force=force)
        line = publish_report(store / name, folder, pick_mode(wandb))
        if line:
            typer.echo(line)
    typer.echo(f"report: {folder / 'report.md'}")
    typer.echo(f"html:   {folder / 'report.html'}")
    typer.echo(f"index:  {Path(reports) / 'index.md'}")
