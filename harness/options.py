"""Options shared by several commands, defined once so their help reads the same everywhere."""

from __future__ import annotations

from typing import Annotated

import typer

from cyclegan.config import PRESETS, parse_set

PresetOpt = Annotated[str, typer.Option("--preset", help=f"Config preset: {', '.join(PRESETS)}.")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Dotted override key=value, repeatable (e.g. --set loss.lambda_identity=0)."),
]


def overrides_from(items: list[str] | None) -> dict[str, str]:
    return parse_set(items)
