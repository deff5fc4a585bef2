"""Commands that drive the library directly: ``info``, ``train`` (one run) and ``translate``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cyclegan.config import Config, parse_set, resolve
from harness.errors import UserError
from harness.options import PresetOpt, SetOpt

app = typer.Typer()

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]


def network_info(cfg: Config) -> dict:
    """Parameter counts, the discriminator's output shape and receptive field at the configured crop."""
    import torch

    from cyclegan.networks import build_discriminator, build_generator, count_parameters, receptive_field

    G, D = build_generator(cfg.model), build_discriminator(cfg.model)
    size = cfg.data.crop_size
    with torch.no_grad():
        D.eval()
        out = tuple(D(torch.zeros(1, 3, size, size)).shape[1:])
    g, d = count_parameters(G), count_parameters(D)
    return {
        "G": {
            "class": type(G).__name__,
            "parameters": g,
            "n_blocks": cfg.model.n_blocks,
            "ngf": cfg.model.ngf,
        },
        "D": {
            "class": type(D).__name__,
            "parameters": d,
            "output_shape": list(out),
            "receptive_field": receptive_field(cfg.model),
            "crop_size": size,
        },
        "total_parameters": 2 * g + 2 * d,
    }


@app.command()
def info(preset: PresetOpt = "paper", set_: SetOpt = None, json_: JsonOpt = False) -> None:
    """Print the resolved config and, per network, its size, D's output shape and receptive field."""
    cfg = resolve(preset, parse_set(set_))
    nets = network_info(cfg)
    if json_:
        typer.echo(json.dumps({"preset": preset, "config": cfg.to_dict(), "networks": nets}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"resolved config (preset {preset}, hash {cfg.digest()})")
    table.add_column("key")
    table.add_column("value")
    for section, values in cfg.to_dict().items():
        for key, value in values.items():
            table.add_row(f"{section}.{key}", repr(value))
    console.print(table)
    g, d = nets["G"], nets["D"]
    console.print(
        f"G_A, G_B: {g['class']} ({g['n_blocks']} blocks, ngf {g['ngf']}), "
        f"{g['parameters']:,} parameters each"
    )
    shape = "x".join(str(s) for s in d["output_shape"])
    console.print(
        f"D_A, D_B: {d['class']}, {d['parameters']:,} parameters each; "
        f"output {shape} at {d['crop_size']} px, receptive field {d['receptive_field']} px"
        + (" (trunk), averaged over the whole image" if cfg.model.netD == "scalar" else "")
    )
    console.print(f"whole model: {nets['total_parameters']:,} parameters")


@app.command()
def train(
    out: Annotated[Path, typer.Option(help="Run folder (checkpoints; resumed when it exists).")] = Path(
        "runs/single"
    ),
    preset: PresetOpt = "cpu",
    set_: SetOpt = None,
) -> None:
    """Train one run without the engine (no tracking, no metrics): the library's loop, for quick checks."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from cyclegan.train import Callbacks
    from cyclegan.train import Progress as TrainProgress
    from cyclegan.train import train as run_training

    cfg = resolve(preset, parse_set(set_))
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(),
    ) as bar:
        task = bar.add_task("training", total=None)

        class Show(Callbacks):
            def on_start(self, model, progress: TrainProgress) -> None:
                bar.update(task, total=progress.total, completed=progress.iteration)

            def on_log(self, progress: TrainProgress, losses: dict[str, float]) -> None:
                text = " ".join(f"{k}={v:.3f}" for k, v in losses.items())
                bar.update(task, completed=progress.iteration, description=f"training  {text}")

        _, progress = run_training(cfg, out, Show())
    typer.echo(
        f"trained {progress.iteration} iterations in {progress.wall_seconds:.1f} s; checkpoint: "
        f"{out / 'checkpoints' / 'latest.pt'}"
    )


def na(value: float | None, spec: str = ".4g") -> str:
    """A number for a table cell, or n/a."""
    return "n/a" if value is None else format(value, spec)


def plan_or_exit(images: list[Path], size: int | None, max_pixels: int | None) -> list:
    """The translation jobs, or one ``error:`` line per unusable image and exit code 2 (nothing written)."""
    from cyclegan.translate import MAX_PIXELS, plan

    if size is not None and size < 4:
        raise UserError(f"--size: {size}; valid: 4 or more (pixels of the shorter side)")
    jobs, problems = plan(images, size, max_pixels or MAX_PIXELS)
    for line in problems:
        typer.echo(f"error: {line}", err=True)
    if problems:
        raise typer.Exit(2)
    return jobs


CheckpointArg = Annotated[
    Path, typer.Argument(help="Our checkpoint, or a bare reference generator state dict.")
]
DirectionOpt = Annotated[str, typer.Option(help="AtoB uses G_A, BtoA uses G_B.")]
SizeOpt = Annotated[
    int | None,
    typer.Option(help="Resize so the shorter side has N pixels (default: each image at its own size)."),
]
MaxPixelsOpt = Annotated[
    int | None,
    typer.Option(
        help="Refuse images that would be translated at more pixels than this (bounds memory; "
        "default 2048 x 2048)."
    ),
]
CONFIG_HELP = (
    " Each image is translated whole at its own size and aspect ratio, each side rounded to a multiple of "
    "4 (the reference test script's --preprocess none), or at --size. The generator's config is the "
    "checkpoint's own (ours carry the training config; a reference state dict is read for ngf, blocks and "
    "norm); no preset or --set applies."
)


@app.command(help="Translate image files with a trained generator." + CONFIG_HELP)
def translate(
    checkpoint: CheckpointArg,
    images: Annotated[list[Path], typer.Argument(help="Image files of any size or mode.")],
    direction: DirectionOpt = "AtoB",
    out: Annotated[
        Path, typer.Option(help="Output folder; NAME.png per input (NAME_EXT.png where names clash).")
    ] = Path("translated"),
    size: SizeOpt = None,
    max_pixels: MaxPixelsOpt = None,
) -> None:
    from cyclegan.translate import load_generator, translate_files

    G, _ = load_generator(checkpoint, direction)
    written = translate_files(G, plan_or_exit(images, size, max_pixels), out)
    typer.echo(f"wrote {len(written)} image(s) to {out}")
