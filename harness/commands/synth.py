"""``harness data synth TASK``: generate (or find) the built-in benchmark with known right answers."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from cyclegan.data.sources import data_home

app = typer.Typer()


@app.command("synth")
def synth(
    task: Annotated[
        str, typer.Argument(help="zebra (horse2zebra analogue) or seasons (summer2winter analogue).")
    ],
    size: Annotated[int, typer.Option(help="Image side in pixels.")] = 32,
    n_train: Annotated[int, typer.Option("--n-train", help="Training images per domain.")] = 500,
    n_test: Annotated[
        int, typer.Option("--n-test", help="Test scenes, each rendered in both domains.")
    ] = 100,
    out: Annotated[
        Path | None,
        typer.Option(help="Data root; the set lands in OUT/synth/ (default: $HARNESS_DATA or ./data)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Scene seed: the same seed gives the same bytes.")] = 0,
) -> None:
    """Generate a synthetic data set (reused when its parameters have not changed) and print where it is."""
    from cyclegan.synth import ensure_dataset_status, read_manifest

    start = time.perf_counter()
    folder, regenerated = ensure_dataset_status(task, size, n_train, n_test, out or data_home(), seed)
    manifest = read_manifest(folder) or {}
    what = "generated" if regenerated else "reused (parameters unchanged)"
    typer.echo(f"{what}: {folder}")
    typer.echo(
        f"  {task}, {size} px, {n_train} train images per domain, {n_test} paired test scenes, seed {seed}; "
        f"content hash {manifest.get('content_hash', '?')[:16]}; {time.perf_counter() - start:.1f} s"
    )
    if seed == 0:  # training runs always use scene seed 0
        env = f"HARNESS_DATA={out} " if out else ""
        typer.echo(
            f"  train on it: {env}harness train --set 'data.dataset=synth:{task} data.synth_size={size} "
            f"data.synth_n_train={n_train} data.synth_n_test={n_test}'"
        )
