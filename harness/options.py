"""Options shared by several commands, defined once so their help reads the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cyclegan.config import PRESETS

PresetOpt = Annotated[str, typer.Option("--preset", help=f"Config preset: {', '.join(PRESETS)}.")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Dotted override key=value, repeatable (e.g. --set loss.lambda_identity=0)."),
]
StoreOpt = Annotated[Path, typer.Option("--store", help="Run-store root (docs/RUNSTORE.md).")]
ReportsOpt = Annotated[
    Path, typer.Option("--reports", "--out", help="Reports root; a report goes to REPORTS/NAME/.")
]
StorageOpt = Annotated[
    str | None,
    typer.Option(
        "--storage",
        help="Queue storage: a database URL shared by workers on several machines "
        "(postgresql://user:pw@host/db) or a journal file; default: STORE/NAME/queue.journal (one machine).",
    ),
]
WandbOpt = Annotated[
    str,
    typer.Option(
        "--wandb", help="W&B mode: auto (online with an API key, else offline), online, offline, disabled."
    ),
]
IndexOpt = Annotated[
    int | None,
    typer.Option(
        "--index", help="Worker index: a sweep worker samples with the spec's sampler_seed + index."
    ),
]
HeartbeatOpt = Annotated[
    int | None,
    typer.Option(
        "--heartbeat", min=1, help="SQL storages: seconds between a running trial's heartbeats [20]."
    ),
]
GraceOpt = Annotated[
    int | None,
    typer.Option(
        "--grace", min=1, help="SQL storages: a trial silent this long is failed and re-queued [60]."
    ),
]
