"""Options shared by several commands, defined once so their help reads the same everywhere."""

from __future__ import annotations

import inspect
import types
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import typer
from typer.models import ArgumentInfo, OptionInfo, ParameterInfo

from cyclegan.config import PRESETS, Config, ConfigError, apply_overrides, parse_set
from harness.errors import UserError


def _known_preset(value: str | None) -> str | None:
    if value is not None and value not in PRESETS:
        raise UserError(f"--preset: unknown preset '{value}' (valid: {', '.join(PRESETS)})")
    return value


def _valid_sets(items: list[str] | None) -> list[str] | None:
    """Each key and value is checked when the command line is read, so the error names the flag."""
    try:
        apply_overrides(Config(), parse_set(items))
    except ConfigError as exc:
        raise UserError(f"--set: {exc}") from None
    return items


PresetOpt = Annotated[
    str, typer.Option("--preset", callback=_known_preset, help=f"Config preset: {', '.join(PRESETS)}.")
]
SpecPresetOpt = Annotated[
    str | None,
    typer.Option("--preset", callback=_known_preset, help=f"Instead of the spec's: {', '.join(PRESETS)}."),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="KEY=VALUE",
        callback=_valid_sets,
        help="Dotted config override, repeatable (e.g. --set loss.lambda_identity=0).",
    ),
]


_METAVARS: dict[Any, str] = {int: "N", float: "NUMBER", Path: "PATH"}
_NAMED = {"wandb": "MODE", "storage": "URL", "base_url": "URL"}  # where the option's name is not the answer
_typer_option_type = getattr(typer.core.TyperOption, "display_type_rich", None)


def _option_type(self: typer.core.TyperOption, ctx: Any) -> str | None:
    return None if self.is_flag else _typer_option_type(self, ctx)


def readable_metavars(app: typer.Typer) -> None:
    """Give every option and argument without one a metavar a person reads (PATH, N, NAME; none for flags)
    instead of Typer's Python types (<bool>, <list[Path]>, <int range>). Called once, before Typer builds
    the commands. The string annotations (``from __future__ import annotations``) are evaluated once and kept,
    so Typer reads the very objects given a metavar here rather than fresh copies. Typer (0.2x) also prints
    an argument's and a flag's type beside it (<str>, <bool>); the argument's metavar already names it and a
    flag takes no value, so nothing is printed there."""
    if _typer_option_type is not None:
        typer.core.TyperOption.display_type_rich = _option_type
        typer.core.TyperArgument.display_type_rich = lambda self, ctx: None
    for command in app.registered_commands:
        callback = command.callback
        callback.__annotations__ = inspect.get_annotations(callback, eval_str=True)
        for name, hint in callback.__annotations__.items():
            if get_origin(hint) is Annotated:
                kind, *meta = get_args(hint)
                for info in meta:
                    if isinstance(info, ParameterInfo) and info.metavar is None:
                        info.metavar = _metavar(name, kind, info)
    for group in app.registered_groups:
        readable_metavars(group.typer_instance)


def _metavar(name: str, kind: Any, info: ParameterInfo) -> str:
    many = get_origin(kind) is list
    if get_origin(kind) in (Union, types.UnionType):  # X | None
        kind = next(arg for arg in get_args(kind) if arg is not type(None))
        many = get_origin(kind) is list
    if many:
        kind = get_args(kind)[0]
    if isinstance(info, ArgumentInfo):
        return name.strip("_").upper()
    assert isinstance(info, OptionInfo)
    return _METAVARS.get(kind) or _NAMED.get(name) or name.strip("_").upper()


def _store(value: str) -> Path:
    from harness.engine.remote import open_store

    return open_store(value)


# Read as text (a Path would fold s3:// into s3:/), then a local path or a URL's cache folder (engine.remote).
StoreOpt = Annotated[
    Path,
    typer.Option(
        "--store",
        parser=str,
        callback=_store,
        help="Run-store root (docs/RUNSTORE.md): a local or shared folder, or s3://bucket/prefix.",
    ),
]
ReportsOpt = Annotated[Path, typer.Option("--reports", help="Reports root; a report goes to REPORTS/NAME/.")]
ForceOpt = Annotated[
    bool,
    typer.Option("--force", help="Replace a report that another plan (store, preset, data, seeds) wrote."),
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
        "--heartbeat", min=1, help="SQL storages: seconds between a running trial's heartbeats [10]."
    ),
]
GraceOpt = Annotated[
    int | None,
    typer.Option(
        "--grace", min=1, help="SQL storages: a trial silent this long is failed and re-queued [30]."
    ),
]
