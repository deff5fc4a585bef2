"""``harness data ...`` and ``harness models ...``: data sets and pretrained generators."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from cyclegan.config import resolve
from cyclegan.data.catalogue import (
    BASE_ENV,
    DATASETS,
    DEFAULT_BASE,
    MODEL_BYTES,
    MODELS,
    NOT_REDISTRIBUTABLE,
    dataset_url,
    model_url,
)
from cyclegan.data.sources import DataError, data_home
from cyclegan.data.validate import FolderReport, scan

app = typer.Typer()


data_app = typer.Typer(
    help="Data sets: the synthetic benchmark, official downloads, checks.", no_args_is_help=True
)
models_app = typer.Typer(help="Official pretrained CycleGAN generators.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(models_app, name="models")

RootOpt = Annotated[
    Path | None, typer.Option("--root", help="Folder for data sets (default: $HARNESS_DATA or ./data).")
]
BaseOpt = Annotated[
    str | None,
    typer.Option(
        "--base-url", help=f"Mirror of the authors' server (default: ${BASE_ENV} or {DEFAULT_BASE})."
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", help="No progress bar.")]


def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def _disk_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _remote_size(url: str) -> str:
    """Content-Length from a HEAD request; '?' when the server does not say or cannot be reached."""
    import urllib.request

    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=10) as response:
            length = response.headers.get("Content-Length")
    except OSError:
        return "?"
    return _mib(int(length)) if length else "?"


def _listing(title: str, rows: list[tuple[str, Path, Path, str]], remote: bool) -> None:
    """A row per name: where it would live, whether it is there (and its size) and, asked, the remote size."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in ("name", "local", "size", "path") + (("remote size",) if remote else ()):
        table.add_column(column)
    for name, path, part, url in rows:
        if path.exists():
            state, size = "present", _mib(_disk_size(path))
        elif part.exists():
            state, size = "partial", _mib(part.stat().st_size)
        else:
            state, size = "-", ""
        table.add_row(name, state, size, str(path), *((_remote_size(url),) if remote else ()))
    Console(width=200).print(table)


@data_app.command("list")
def data_list(
    root: RootOpt = None,
    base_url: BaseOpt = None,
    remote: Annotated[bool, typer.Option("--remote", help="Ask the server for each archive's size.")] = False,
) -> None:
    """The official CycleGAN data sets and which of them are here."""
    root = root or data_home()
    rows = [(name, root / name, root / f"{name}.zip.part", dataset_url(name, base_url)) for name in DATASETS]
    _listing(f"official data sets (root {root})", rows, remote)
    for note in NOT_REDISTRIBUTABLE.values():
        typer.echo(f"note: {note}")


def _say_fetched(name: str, fetched, hint: str) -> None:
    """One line for what a download did (nothing, when it was already there), then how to use it."""
    if not fetched.downloaded:
        typer.echo(f"{name} is already there: {fetched.path} (nothing downloaded)")
        return
    typer.echo(f"downloaded {name} ({_mib(fetched.bytes_fetched)} fetched) to {fetched.path}")
    typer.echo(hint)


@data_app.command("download")
def data_download(
    name: Annotated[str, typer.Argument(help=f"One of: {', '.join(DATASETS)}.")],
    root: RootOpt = None,
    base_url: BaseOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Download and extract an official data set (resumes a partial download; a second call does nothing)."""
    from cyclegan.data.download import download_dataset

    fetched = download_dataset(name, root, base_url, show_progress=not quiet)
    _say_fetched(name, fetched, f"train on it with: --set data.dataset={fetched.path}")


@data_app.command("photos")
def data_photos(
    root: Annotated[Path, typer.Argument(help="Folder to create (trainA/ trainB/ testA/ testB/).")],
    pair: Annotated[str, typer.Option(help="grass2gravel (scikit-image) or flower2china (scikit-learn).")] = (
        "grass2gravel"
    ),
    size: Annotated[int, typer.Option(help="Patch side in pixels.")] = 64,
    n_train: Annotated[int, typer.Option(help="Train patches per domain.")] = 60,
    n_test: Annotated[int, typer.Option(help="Test patches per domain.")] = 12,
    seed: Annotated[int, typer.Option(help="Seed of the patch positions.")] = 0,
) -> None:
    """A small real-photo unpaired set cut from photographs that scikit-image / scikit-learn ship."""
    from cyclegan.data.photos import build_photo_set

    build_photo_set(root, pair, size, n_train, n_test, seed)
    typer.echo(f"{pair}: {n_train} + {n_train} train, {n_test} + {n_test} test patches, {size} px, in {root}")
    typer.echo(f"train on it with: --set data.dataset={root}")


def _size_text(folder: FolderReport) -> str:
    span = folder.size_range()
    if span is None:
        return "-"
    (w0, h0), (w1, h1) = span
    return f"{w0}x{h0}" if span[0] == span[1] else f"{w0}x{h0} .. {w1}x{h1}"


@data_app.command("check")
def data_check(
    path: Annotated[
        str, typer.Argument(help="Data set folder with trainA/ trainB/ testA/ testB/, or an official name.")
    ],
    crop_size: Annotated[int, typer.Option("--crop-size", help="Crop the run will use.")] = 256,
    load_size: Annotated[
        int | None, typer.Option("--load-size", help="Resize before cropping (default: max(286, crop)).")
    ] = None,
    preprocess: Annotated[
        str,
        typer.Option(
            "--preprocess", help="resize_and_crop, crop, scale_width, scale_width_and_crop or none."
        ),
    ] = "resize_and_crop",
    full: Annotated[
        bool, typer.Option("--full", help="Decode every image (slow) instead of reading headers.")
    ] = False,
) -> None:
    """Check a data set as training would (exit code 2 and one error line when it has problems)."""
    from rich.console import Console
    from rich.table import Table

    overrides = {
        "data.dataset": path,
        "data.crop_size": crop_size,
        "data.load_size": load_size if load_size is not None else max(286, crop_size),
        "data.preprocess": preprocess,
    }
    report = scan(resolve("paper", overrides).data, full=full)
    table = Table(
        title=f"data check of {report.root} ({'full decode' if full else 'headers'}, crop {crop_size})"
    )
    for column in ("folder", "files", "images", "usable", "bad", "other files", "sizes", "modes", "problems"):
        table.add_column(column)
    for f in report.folders:
        if not f.exists:
            table.add_row(
                f.name, "", "", "", "", "", "", "", "missing" if f.required else "absent (optional)"
            )
            continue
        modes = ", ".join(f"{m} {n}" for m, n in f.modes.most_common())
        kinds = Counter(p.kind.replace("_", " ") for p in f.bad)
        problems = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
        if not f.n_files:
            problems = "empty"
        elif not f.images:
            problems = "no supported images"
        table.add_row(
            f.name, str(f.n_files), str(len(f.images)), str(len(f.kept)), str(len(f.bad)),
            str(len(f.other_files)), _size_text(f), modes or "-", problems or "-",
        )  # fmt: skip
    Console(width=200).print(table)
    kinds = Counter(p.kind for f in report.folders for p in f.bad)
    total = sum(len(f.images) for f in report.folders)
    detail = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in sorted(kinds.items()))
    usable = sum(len(f.kept) for f in report.folders)
    typer.echo(f"{total} image(s): {usable} usable, {sum(kinds.values())} bad"
               + (f" ({detail})" if detail else ""))  # fmt: skip
    if report.problems:
        raise DataError("; ".join(report.problems))
    typer.echo("ok")


@data_app.command("synth")
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


ModelsRootOpt = Annotated[
    Path | None, typer.Option("--root", help="Folder for models (default: <data home>/models).")
]


@models_app.command("list")
def models_list(
    root: ModelsRootOpt = None,
    base_url: BaseOpt = None,
    remote: Annotated[bool, typer.Option("--remote", help="Ask the server for each file's size.")] = False,
) -> None:
    """The official pretrained generators (one direction each) and which are here."""
    from cyclegan.data.download import models_home

    root = root or models_home()
    rows = [
        (name, root / f"{name}.pth", root / f"{name}.download.part", model_url(name, base_url))
        for name in MODELS
    ]
    _listing(f"official pretrained generators (root {root}; each about {_mib(MODEL_BYTES)})", rows, remote)


FID_INCEPTION = "fid-inception"


@models_app.command("download")
def models_download(
    name: Annotated[str, typer.Argument(help=f"One of: {', '.join(MODELS)}, or {FID_INCEPTION}.")],
    root: ModelsRootOpt = None,
    base_url: BaseOpt = None,
    sha256: Annotated[
        str | None, typer.Option(help=f"{FID_INCEPTION} only: refuse the file unless it has this sha256.")
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Download an official generator (for ``harness translate``) or, as fid-inception, the FID Inception
    weights that evaluation then uses automatically for fid_inception_* and kid_inception_*."""
    from cyclegan.data.download import download_fid_inception, download_model

    if name == FID_INCEPTION:
        fetched = download_fid_inception(root, base_url, sha256, show_progress=not quiet)
        _say_fetched(name, fetched, "evaluation now reports fid_inception_* and kid_inception_* with it")
        return
    if sha256 is not None:
        raise DataError(f"--sha256 applies to {FID_INCEPTION} only, not to '{name}'")
    fetched = download_model(name, root, base_url, show_progress=not quiet)
    _say_fetched(name, fetched, f"use it with: harness translate {fetched.path} IMAGES... --out translated")
