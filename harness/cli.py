"""The ``harness`` command line: one Typer app per command module, joined here; nothing imports this back."""

from __future__ import annotations

import sys

import typer

from harness.commands import bench, core, data, evaluate, probe, report, run, sweep
from harness.errors import store_fault, user_error_types
from harness.options import readable_metavars

app = typer.Typer(
    help="Which parts of CycleGAN matter? Train ablations and sweeps, compare them with honest statistics.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for module in (core, run, sweep, report, evaluate, probe, data, bench):
    app.add_typer(module.app)
readable_metavars(app)


def main() -> None:
    """Console entry point: bad input is one line on stderr and exit code 2."""
    usage_error = typer.BadParameter.__mro__[1]  # Typer's (vendored click's) UsageError
    try:
        code = app(standalone_mode=False)
    except usage_error as exc:  # a bad flag or argument: one line naming it, not a usage box
        if not exc.format_message():  # no arguments at all: Typer shows the help
            sys.exit(1)
        typer.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(2)
    except typer.Abort:
        sys.exit(130)
    except OSError as exc:  # a full, read-only or vanished store: one line, not a traceback
        fault = store_fault(exc)
        if fault is None:
            raise
        typer.echo(f"error: {fault}", err=True)
        sys.exit(2)
    except Exception as exc:  # the error types are looked up only now: they import torch
        if not isinstance(exc, user_error_types()):
            raise
        typer.echo(f"error: {exc}{_next_step(exc)}", err=True)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)


def _next_step(exc: Exception) -> str:
    """The command that fixes a library error (the library says what is wrong, the CLI what to run)."""
    from cyclegan.errors import NoImages, NotDownloaded

    if isinstance(exc, NotDownloaded):
        return f"; get it with: harness data download {exc.name}"
    if isinstance(exc, NoImages):
        return f" (check it with: harness data check {exc.root or '...'})"
    return ""
