"""The ``harness`` command line: builds validated configs and hands them to the library and the engine."""

from __future__ import annotations

import sys

import typer

from harness.errors import user_error_types

app = typer.Typer(
    help="Which parts of CycleGAN matter? Train ablations and sweeps, compare them with honest statistics.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    """Attach every command module (each defines its commands on ``app`` or a sub-app)."""
    from harness.commands import bench, core, data, evaluate, probe, report, run, sweep, synth  # noqa: F401
    from harness.options import readable_metavars

    readable_metavars(app)


def main() -> None:
    """Console entry point: bad input is one line on stderr and exit code 2."""
    _register()
    try:
        app()
    except Exception as exc:  # the error types are looked up only now: they import torch
        if not isinstance(exc, user_error_types()):
            raise
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
