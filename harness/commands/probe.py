"""``harness probe ood``: the seed's cat experiment (the measures live in ``cyclegan.probe``)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Annotated

import typer

from harness.commands import core

app = typer.Typer()

probe_app = typer.Typer(
    help="Probe a trained generator outside its training distribution.", no_args_is_help=True
)
app.add_typer(probe_app, name="probe")


@probe_app.command(
    "ood",
    help="Translate out-of-domain images; per image, how much changed overall and in "
    "brownish regions." + core.CONFIG_HELP,
)
def ood(
    checkpoint: core.CheckpointArg,
    images: Annotated[list[Path], typer.Argument(help="Images from neither domain (e.g. cats).")],
    direction: core.DirectionOpt = "AtoB",
    out: Annotated[Path, typer.Option(help="Folder for ood-grid.png and ood.json.")] = Path("probe-ood"),
    size: core.SizeOpt = None,
    max_pixels: core.MaxPixelsOpt = None,
) -> None:
    from rich.console import Console
    from rich.table import Table

    from cyclegan.atomic import atomic_write, atomic_write_json
    from cyclegan.metrics.pixels import to_unit
    from cyclegan.probe import BROWN_HUE, BROWN_MIN_SAT, BROWN_VALUE, change_report, labelled_grid
    from cyclegan.translate import load_generator, to_image, translate_image

    G, _ = load_generator(checkpoint, direction)
    jobs = core.plan_or_exit(images, size, max_pixels)
    rows, panels = [], []
    for job in jobs:
        x, y = translate_image(G, job)
        (row,) = change_report(to_unit(x), to_unit(y))
        rows.append(row)
        change = (to_unit(y) - to_unit(x)).abs().mean(1, keepdim=True).expand(-1, 3, -1, -1) * 2 - 1
        caption = (
            f"{job.path.name} ({job.out_size[0]}x{job.out_size[1]}): change {core.na(row['change'], '.3f')}, "
            f"brownish {core.na(row['brown_share'], '.1%')}, "
            f"brownish/other {core.na(row['brown_over_other'], '.2f')}"
        )
        panels.append((caption, [to_image(x), to_image(y), to_image(change)]))
    table = Table(
        title=f"out-of-domain probe: {checkpoint} ({direction}); change = mean |out - in| on [0, 1]"
    )
    for col in ("image", "change", "brownish share", "change in brownish", "change elsewhere", "ratio"):
        table.add_column(col, justify="left" if col == "image" else "right")
    for job, r in zip(jobs, rows, strict=True):
        table.add_row(
            job.path.name,
            core.na(r["change"], ".3f"),
            core.na(r["brown_share"], ".1%"),
            core.na(r["change_brown"], ".3f"),
            core.na(r["change_other"], ".3f"),
            core.na(r["brown_over_other"], ".2f"),
        )
    Console().print(table)
    grid = labelled_grid(panels, ["input", "output", "|output - input| (black 0, white 1)"])
    buf = io.BytesIO()
    grid.save(buf, format="png")
    atomic_write(out / "ood-grid.png", lambda f: f.write(buf.getvalue()))
    report = {
        "checkpoint": str(checkpoint),
        "direction": direction,
        "brownish": {"hue_deg": BROWN_HUE, "min_saturation": BROWN_MIN_SAT, "value": BROWN_VALUE},
        "images": [
            {"path": str(j.path), "size": list(j.out_size), **r} for j, r in zip(jobs, rows, strict=True)
        ],
    }
    atomic_write_json(out / "ood.json", report)
    typer.echo(f"labelled grid: {out / 'ood-grid.png'}; numbers: {out / 'ood.json'}")
