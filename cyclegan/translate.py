"""Translate image files with our checkpoints or a bare reference generator state dict, as the reference's
test script does with ``--preprocess none``: the whole image at its own size and aspect ratio, each side
rounded to a multiple of 4 (bicubic), so a reference generator gives the reference's own output.

Every input is checked (header, pixel count, full decode) before anything is written, so a bad file costs
one line and leaves no output behind; outputs are written atomically under names that never collide.
"""

from __future__ import annotations

import dataclasses
import io
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from cyclegan import checkpoint
from cyclegan.atomic import atomic_write
from cyclegan.config import Config
from cyclegan.data.images import to_rgb
from cyclegan.networks import ResnetGenerator, drop_stale_norm_stats

GENERATOR_OF = {"AtoB": "G_A", "BtoA": "G_B"}
MULTIPLE = 4  # the reference's __make_power_2 base: each side of a translated image is a multiple of it
MAX_PIXELS = 2048 * 2048  # default cap on a translated image: bounds the generator's activation memory
MAX_INPUT_PIXELS = 2 * Image.MAX_IMAGE_PIXELS  # Pillow refuses to decode more (a decompression bomb)
ORIENTATION = 0x0112  # the EXIF tag; values 5 to 8 store the image transposed


def _infer_generator_shape(state: dict[str, torch.Tensor], cfg: Config) -> Config:
    """Read ngf, block count and norm off a reference state dict so it loads without flags."""
    ngf = state["model.1.weight"].shape[0]
    n_blocks = len({k.split(".")[1] for k in state if ".conv_block." in k})
    norm = "batch" if "model.2.weight" in state else "instance"  # only batch norm has affine weights
    return dataclasses.replace(
        cfg, model=dataclasses.replace(cfg.model, ngf=ngf, n_blocks=n_blocks, norm=norm)
    )


def load_generator(path: str | Path, direction: str) -> tuple[ResnetGenerator, Config]:
    """The generator for ``direction`` and its config: our checkpoint's own, or the paper defaults with the
    shape read off a reference state dict."""
    if direction not in GENERATOR_OF:
        raise checkpoint.CheckpointError(f"bad direction '{direction}'; valid: AtoB, BtoA")
    state = checkpoint.load(path)
    if "model" in state and "config" in state:  # our checkpoint
        cfg = Config.from_dict(state["config"])
        weights = state["model"][GENERATOR_OF[direction]]
    elif "model.1.weight" in state:  # a reference generator (one direction only)
        weights = drop_stale_norm_stats(state)
        cfg = _infer_generator_shape(weights, Config())
    else:
        raise checkpoint.CheckpointError(f"{path} is neither a harness checkpoint nor a generator state dict")
    G = ResnetGenerator(cfg.model.ngf, cfg.model.n_blocks, cfg.model.norm, cfg.model.dropout)
    try:
        G.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        raise checkpoint.CheckpointError(
            f"{path} does not fit the generator: {str(exc).splitlines()[0]}"
        ) from None
    return G.eval(), cfg


def _round(v: float) -> int:
    """As the reference: Python's round to the nearest multiple, at least one multiple."""
    return max(MULTIPLE, int(round(v / MULTIPLE) * MULTIPLE))


def output_size(width: int, height: int, size: int | None = None) -> tuple[int, int]:
    """(width, height) a translated image gets: its own, or its shorter side scaled to ``size``; each side
    rounded to a multiple of 4."""
    scale = 1.0 if size is None else size / min(width, height)
    return _round(width * scale), _round(height * scale)


@dataclasses.dataclass(frozen=True)
class Job:
    path: Path
    out_size: tuple[int, int]  # the translated image's
    name: str  # output file name, unique among the jobs


def _open(path: Path) -> Image.Image:
    """Image.open with our own pixel check instead of Pillow's DecompressionBombWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(path)


def _decode(path: Path, side: int) -> tuple[Image.Image, bool]:
    """Decode fully (a JPEG at a reduced scale when much larger than ``side`` x ``side``) and orient; also
    whether the orientation swapped width and height."""
    with _open(path) as img:
        img.draft("RGB", (side, side))  # a no-op except for JPEG, where it bounds the decoded size
        img.load()
        swapped = img.getexif().get(ORIENTATION) in (5, 6, 7, 8)
        return to_rgb(ImageOps.exif_transpose(img)), swapped


def read_image(job: Job) -> Image.Image:
    """The job's input as 8-bit RGB at ``out_size`` (bicubic, as the reference, when it differs)."""
    rgb = _decode(job.path, max(job.out_size))[0]
    return rgb if rgb.size == job.out_size else rgb.resize(job.out_size, Image.BICUBIC)


def _unique_names(paths: list[Path]) -> list[str]:
    """``stem.png``; inputs sharing a stem (chelsea.png, chelsea.jpg) keep their suffix (chelsea_jpg.png);
    anything still shared (same name in two folders) gets a running number."""
    stems = Counter(p.stem for p in paths)
    names = [
        f"{p.stem}.png" if stems[p.stem] == 1 else f"{p.stem}_{p.suffix.lstrip('.').lower()}.png"
        for p in paths
    ]
    counts, seen, out = Counter(names), Counter(), []
    for name in names:
        if counts[name] > 1:
            seen[name] += 1
            name = f"{name.removesuffix('.png')}-{seen[name]}.png"
        out.append(name)
    return out


def plan(
    paths: list[Path], size: int | None = None, max_pixels: int = MAX_PIXELS
) -> tuple[list[Job], list[str]]:
    """(jobs, problems): every readable input as a job, every other one as a line naming file and reason.
    Each input is decoded once here, so a truncated file is caught before anything is written."""
    unique = list(dict.fromkeys(Path(p) for p in paths))
    jobs, problems = [], []
    for path, name in zip(unique, _unique_names(unique), strict=True):
        if not path.is_file():
            problems.append(f"{path}: not found")
            continue
        try:
            with _open(path) as img:
                width, height = img.size  # as stored; the pixel count does not depend on orientation
            ow, oh = output_size(width, height, size)
            if ow * oh > max_pixels:
                raise ValueError(
                    f"{width}x{height} would be translated at {ow}x{oh} ({ow * oh / 1e6:.1f} MP), above the "
                    f"{max_pixels / 1e6:.1f} MP cap that bounds memory; pass --size N (shorter side) "
                    "or raise --max-pixels"
                )
            if _decode(path, max(ow, oh))[1]:  # shown sideways: the output is too
                ow, oh = oh, ow
            job = Job(path, (ow, oh), name)
        except Image.DecompressionBombError:
            problems.append(
                f"{path}: more than {MAX_INPUT_PIXELS:,} pixels, Pillow's decompression-bomb limit; "
                "downscale it with an image editor first"
            )
        except (OSError, SyntaxError, ValueError) as exc:
            reason = "not an image Pillow can read" if isinstance(exc, Image.UnidentifiedImageError) else exc
            problems.append(f"{path}: {reason}")
        else:
            jobs.append(job)
    return jobs, problems


def to_tensor(img: Image.Image) -> torch.Tensor:
    """8-bit RGB -> (1, 3, H, W) in [-1, 1], as the reference's ToTensor + Normalize(0.5, 0.5)."""
    x = torch.from_numpy(np.asarray(img, dtype=np.float32).copy()).permute(2, 0, 1) / 255.0
    return (x * 2.0 - 1.0).unsqueeze(0)


def to_image(y: torch.Tensor) -> Image.Image:
    """(1, 3, H, W) in [-1, 1] -> 8-bit RGB, rounded."""
    unit = (y[0].float() * 0.5 + 0.5).clamp(0, 1)
    return Image.fromarray((unit * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy())


@torch.no_grad()
def translate_image(G: ResnetGenerator, job: Job) -> tuple[torch.Tensor, torch.Tensor]:
    """(input, output) of one job, both (1, 3, H, W) in [-1, 1]."""
    x = to_tensor(read_image(job))
    return x, G(x)


def translate_files(G: ResnetGenerator, jobs: list[Job], out: Path) -> list[Path]:
    """Translate each planned job and write it atomically as ``out``/``job.name``."""
    written = []
    for job in jobs:
        buf = io.BytesIO()
        to_image(translate_image(G, job)[1]).save(buf, format="png")
        target = out / job.name
        atomic_write(target, lambda f, data=buf.getvalue(): f.write(data))
        written.append(target)
    return written
