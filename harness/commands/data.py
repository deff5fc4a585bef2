"""``harness data ...`` and ``harness models ...``: data sets and pretrained generators."""

from __future__ import annotations

import typer

from harness.cli import app

data_app = typer.Typer(help="Data sets: the synthetic benchmark, official downloads, checks.", no_args_is_help=True)
models_app = typer.Typer(help="Official pretrained CycleGAN generators.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(models_app, name="models")
