"""``harness probe ood``: the seed's cat experiment (the measures live in ``cyclegan.probe``)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Annotated

import typer

from cyclegan.config import parse_set
from harness.options import GeneratorPresetOpt, SetOpt

app = typer.Typer()

probe_app = typer.Typer(
    help="Probe a trained generator outside its training distribution.", no_args_is_help=True
)
app.add_typer(probe_app, name="probe")


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


@probe_app.command("ood")
def ood(
    checkpoint: Annotated[
        Path, typer.Argument(help="Our checkpoint, or a bare reference generator state dict.")
    ],
    images: Annotated[list[Path], typer.Argument(help="Images from neither domain (e.g. cats).")],
    direction: Annotated[str, typer.Option(help="AtoB uses G_A, BtoA uses G_B.")] = "AtoB",
    out: Annotated[Path, typer.Option(help="Folder for ood-grid.png and ood.json.")] = Path("probe-ood"),
    preset: GeneratorPresetOpt = "paper",
    set_: SetOpt = None,
) -> None:
    """Translate out-of-domain images; per image, how much changed overall and in brownish regions."""
    import torch
    from rich.console import Console
    from rich.table import Table
    from torchvision.utils import make_grid, save_image

    from cyclegan.atomic import atomic_write, atomic_write_json
    from cyclegan.checkpoint import CheckpointError
    from cyclegan.config import resolve
    from cyclegan.data.images import load_rgb
    from cyclegan.data.transforms import preprocess
    from cyclegan.probe import BROWN_HUE, BROWN_MIN_SAT, BROWN_VALUE, change_report
    from cyclegan.translate import load_generator

    G, cfg = load_generator(checkpoint, direction, resolve(preset, parse_set(set_)))
    missing = [str(p) for p in images if not p.is_file()]
    if missing:
        raise CheckpointError(f"image not found: {missing[0]}")
    x = torch.stack([preprocess(load_rgb(p), cfg.data, None) for p in images])
    with torch.no_grad():
        y = G(x)
    inputs, outputs = (x * 0.5 + 0.5).clamp(0, 1), (y * 0.5 + 0.5).clamp(0, 1)
    rows = change_report(inputs, outputs)
    table = Table(
        title=f"out-of-domain probe: {checkpoint} ({direction}); change = mean |out - in| on [0, 1]"
    )
    for col in ("image", "change", "brownish share", "change in brownish", "change elsewhere", "ratio"):
        table.add_column(col, justify="left" if col == "image" else "right")
    for path, r in zip(images, rows, strict=True):
        table.add_row(
            path.name,
            _fmt(r["change"]),
            _fmt(r["brown_share"], ".1%"),
            _fmt(r["change_brown"]),
            _fmt(r["change_other"]),
            _fmt(r["brown_over_other"], ".2f"),
        )
    Console().print(table)
    heat = (outputs - inputs).abs().mean(1, keepdim=True).expand(-1, 3, -1, -1)
    grid = make_grid(torch.cat([inputs, outputs, heat]), nrow=len(images), padding=1, pad_value=1.0)
    buf = io.BytesIO()
    save_image(grid, buf, format="png")
    atomic_write(out / "ood-grid.png", lambda f: f.write(buf.getvalue()))
    report = {
        "checkpoint": str(checkpoint),
        "direction": direction,
        "brownish": {"hue_deg": BROWN_HUE, "min_saturation": BROWN_MIN_SAT, "value": BROWN_VALUE},
        "images": [{"path": str(p), **r} for p, r in zip(images, rows, strict=True)],
    }
    atomic_write_json(out / "ood.json", report)
    typer.echo(f"grid (rows: input, output, |change|): {out / 'ood-grid.png'}; numbers: {out / 'ood.json'}")
