"""The built-in benchmark: unpaired image sets whose right answer is known, generated from a seed.

``zebra`` (horse2zebra analogue): animal silhouettes with plain coats (A) or black-and-white stripes (B).
``seasons`` (summer2winter analogue): a region-wise colour change with an exact per-pixel answer both ways.

Train A and train B are drawn from disjoint scene seeds, so training is truly unpaired; every test scene is
rendered in both domains (testA[i] and testB[i] show the same scene) and keeps its masks, which gives the
metrics exact targets. Pixels are drawn with numpy only; a scene is a pure function of (seed, split, index).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from cyclegan.atomic import atomic_write_json, temp_dir
from cyclegan.errors import DataError

VERSION = 1  # bump when a scene's pixels change, so cached folders regenerate
TASKS = ("zebra", "seasons")
SPLITS = ("trainA", "trainB", "testA", "testB")
_SPLIT_CODE = {"trainA": 1, "trainB": 2, "test": 3}

# Zebra palette (RGB in [0, 1]). Coats include white and black: the seed's author saw white horses fail.
COATS: dict[str, tuple[float, float, float]] = {
    "white": (0.93, 0.93, 0.90),
    "black": (0.08, 0.08, 0.08),
    "brown": (0.45, 0.28, 0.15),
    "chestnut": (0.62, 0.33, 0.14),
    "grey": (0.55, 0.55, 0.56),
    "dun": (0.80, 0.68, 0.47),
}
STRIPE_DARK, STRIPE_LIGHT = (0.07, 0.07, 0.07), (0.95, 0.95, 0.93)
_SKIES = ((0.55, 0.72, 0.92), (0.70, 0.80, 0.90), (0.42, 0.60, 0.88), (0.62, 0.75, 0.85))
_GROUNDS = (
    (0.30, 0.55, 0.22),
    (0.22, 0.42, 0.18),
    (0.42, 0.50, 0.24),
    (0.52, 0.46, 0.30),
    (0.36, 0.60, 0.30),
)

# Seasons: region -> colour per season; the trunk is the same in both, a region that must not change.
SEASON_REGIONS = ("ground", "sky", "tree", "trunk")
SUMMER = np.array([(0.35, 0.62, 0.25), (0.45, 0.68, 0.95), (0.10, 0.35, 0.12), (0.40, 0.26, 0.13)])
WINTER = np.array([(0.93, 0.94, 0.96), (0.70, 0.72, 0.75), (0.45, 0.48, 0.47), (0.40, 0.26, 0.13)])


@dataclass(frozen=True)
class Scene:
    """One rendered scene: both domains' pixels (uint8 HxWx3) plus what the metrics need."""

    A: np.ndarray
    B: np.ndarray
    mask: np.ndarray  # uint8 HxW: zebra animal instance labels (0 = background); seasons region ids
    background: np.ndarray  # uint8 HxWx3: zebra scene without animals (same noise); seasons: the A rendering
    info: dict


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [0, 1], as (y, x) arrays of shape (size, size)."""
    c = (np.arange(size) + 0.5) / size
    return np.meshgrid(c, c, indexing="ij")


def _ellipse(y, x, cy, cx, ry, rx, angle=0.0) -> np.ndarray:
    dy, dx = y - cy, x - cx
    ca, sa = np.cos(angle), np.sin(angle)
    u, v = dx * ca + dy * sa, -dx * sa + dy * ca
    return (u / rx) ** 2 + (v / ry) ** 2 <= 1.0


def _to_u8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


def _animal_mask(rng: np.random.Generator, y, x, horizon: float) -> np.ndarray:
    """Body ellipse, neck, head and four legs, with varied size, facing, neck angle and leg stance."""
    a = rng.uniform(0.13, 0.2)  # body half-length
    b = a * rng.uniform(0.45, 0.6)  # body half-height
    leg = b * rng.uniform(0.9, 1.4)
    cx = rng.uniform(0.2, 0.8)
    cy = rng.uniform(max(horizon + 0.05, 0.3), 0.92 - b - leg)
    face = rng.choice((-1.0, 1.0))
    neck_angle = face * rng.uniform(0.3, 0.8)
    m = _ellipse(y, x, cy, cx, b, a)
    nx, ny = cx + face * a * 0.85, cy - b * 0.9
    m |= _ellipse(y, x, ny, nx, b * 0.9, a * 0.22, neck_angle)
    hx, hy = nx + face * a * 0.35, ny - b * 0.85
    m |= _ellipse(y, x, hy, hx, b * 0.35, a * 0.32, face * 0.3)
    width = max(0.045, a * 0.13)
    stride = rng.uniform(-0.1, 0.1) * a
    for off in (-0.65, -0.35, 0.35, 0.65):
        lx = cx + off * a + (stride if off > 0 else -stride)
        m |= (np.abs(x - lx) <= width / 2) & (y >= cy) & (y <= cy + b + leg)
    return m


def _zebra(rng: np.random.Generator, size: int) -> Scene:
    y, x = _grid(size)
    horizon = rng.uniform(0.3, 0.55)
    coat_name = list(COATS)[rng.integers(len(COATS))]
    coat = np.array(COATS[coat_name])
    # A ground tone far enough from the coat that the animal stays visible in both domains.
    grounds = [g for g in _GROUNDS if np.abs(np.array(g) - coat).mean() > 0.15]
    ground = np.array(grounds[rng.integers(len(grounds))]) + rng.uniform(-0.04, 0.04, 3)
    sky = np.array(_SKIES[rng.integers(len(_SKIES))]) + rng.uniform(-0.04, 0.04, 3)
    shade = 1.0 + 0.12 * (y - horizon)[..., None] * rng.uniform(-1, 1)
    bg = np.where((y < horizon)[..., None], sky, ground * shade)
    noise = rng.normal(0.0, 0.03, (size, size, 3))
    n_animals = 1 if rng.random() < 0.7 else 2
    labels = np.zeros((size, size), np.uint8)
    for k in range(n_animals):
        labels[_animal_mask(rng, y, x, horizon) & (labels == 0)] = k + 1
    period = rng.uniform(0.12, 0.18)  # in image widths: 4-6 px at 32 px
    angle = rng.uniform(-0.45, 0.45)
    phase = rng.uniform(0, 2 * np.pi)
    wave = np.sin(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / period + phase)
    stripes = np.where((wave < 0)[..., None], STRIPE_DARK, STRIPE_LIGHT)
    inside = (labels > 0)[..., None]
    img_A = np.where(inside, coat, bg) + noise
    img_B = np.where(inside, stripes, bg) + noise
    info = {
        "coat": coat_name,
        "n_animals": n_animals,
        "stripe_period_px": period * size,
        "stripe_angle": angle,
    }
    return Scene(_to_u8(img_A), _to_u8(img_B), labels, _to_u8(bg + noise), info)


def _seasons(rng: np.random.Generator, size: int) -> Scene:
    y, x = _grid(size)
    h0, amp = rng.uniform(0.3, 0.55), rng.uniform(0.0, 0.08)
    horizon = h0 + amp * np.sin(2 * np.pi * x / rng.uniform(0.5, 1.5) + rng.uniform(0, 2 * np.pi))
    region = np.where(y < horizon, 1, 0).astype(np.uint8)
    for _ in range(rng.integers(2, 6)):
        tx, base = rng.uniform(0.05, 0.95), rng.uniform(h0 + 0.15, 0.95)
        height, half_w = rng.uniform(0.2, 0.4), rng.uniform(0.06, 0.12)
        top = base - height
        trunk = (np.abs(x - tx) <= 0.025) & (y >= base - 0.06) & (y <= base + 0.04)
        crown = (y >= top) & (y <= base - 0.04) & (np.abs(x - tx) <= half_w * (y - top) / height)
        region[trunk] = 3
        region[crown] = 2
    # Shared texture: low-frequency shading and pixel noise, identical in both renderings.
    fy, fx, ph = rng.uniform(1, 4), rng.uniform(1, 4), rng.uniform(0, 2 * np.pi)
    shade = 1.0 + rng.uniform(-0.05, 0.05) + 0.05 * np.sin(2 * np.pi * (fx * x + fy * y) + ph)
    noise = rng.normal(0.0, 0.025, (size, size, 3))
    img_A = SUMMER[region] * shade[..., None] + noise
    img_B = WINTER[region] * shade[..., None] + noise
    u8_A = _to_u8(img_A)
    return Scene(u8_A, _to_u8(img_B), region, u8_A, {"regions": list(SEASON_REGIONS)})


RENDER = {"zebra": _zebra, "seasons": _seasons}


def render(task: str, size: int, seed: int, split: str, index: int) -> Scene:
    """Scene ``index`` of ``split`` ('trainA', 'trainB' or 'test'): a pure function of its arguments."""
    check_task(task)
    rng = np.random.default_rng([seed, _SPLIT_CODE[split], index, VERSION])
    return RENDER[task](rng, size)


def check_task(task: str) -> None:
    if task not in TASKS:
        raise DataError(
            f"unknown synthetic task '{task}'; valid: {', '.join(TASKS)} (e.g. data.dataset=synth:zebra)"
        )


def folder_name(task: str, size: int, n_train: int, n_test: int, seed: int) -> str:
    return f"{task}-{size}px-{n_train}-{n_test}-s{seed}"


def _params(task: str, size: int, n_train: int, n_test: int, seed: int) -> dict:
    return {
        "task": task,
        "size": size,
        "n_train": n_train,
        "n_test": n_test,
        "seed": seed,
        "version": VERSION,
    }


def _save_png(path: Path, pixels: np.ndarray) -> None:
    Image.fromarray(pixels).save(path, format="PNG", compress_level=1)


def content_hash(folder: Path) -> str:
    """sha256 over every file's relative path and bytes (manifest excluded)."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "manifest.json"):
        h.update(path.relative_to(folder).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _generate(folder: Path, task: str, size: int, n_train: int, n_test: int, seed: int) -> None:
    for split in SPLITS:
        (folder / split).mkdir(parents=True)
    for split in ("trainA", "trainB"):
        for i in range(n_train):
            scene = render(task, size, seed, split, i)
            _save_png(folder / split / f"{i:05d}.png", scene.A if split == "trainA" else scene.B)
    masks, backgrounds, infos = [], [], []
    for i in range(n_test):
        scene = render(task, size, seed, "test", i)
        _save_png(folder / "testA" / f"{i:05d}.png", scene.A)
        _save_png(folder / "testB" / f"{i:05d}.png", scene.B)
        masks.append(scene.mask)
        backgrounds.append(scene.background)
        infos.append(scene.info)
    np.savez_compressed(folder / "test_meta.npz", mask=np.stack(masks), background=np.stack(backgrounds))
    (folder / "test_meta.json").write_text(json.dumps({"task": task, "scenes": infos}, indent=1) + "\n")
    manifest = {**_params(task, size, n_train, n_test, seed), "content_hash": content_hash(folder)}
    atomic_write_json(folder / "manifest.json", manifest)


def _complete(folder: Path, params: dict) -> bool:
    """The manifest matches the parameters and every expected file is there."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    if {k: manifest.get(k) for k in params} != params:
        return False
    counts = {"trainA": params["n_train"], "trainB": params["n_train"], "testA": params["n_test"]}
    counts["testB"] = params["n_test"]
    for split, n in counts.items():
        if not (folder / split).is_dir() or len(list((folder / split).glob("*.png"))) != n:
            return False
    return (folder / "test_meta.npz").is_file() and (folder / "test_meta.json").is_file()


def ensure_dataset_status(
    task: str, size: int, n_train: int, n_test: int, root: Path, seed: int = 0
) -> tuple[Path, bool]:
    """Return (folder, regenerated). Generates into a temp folder and renames it into place, so a reader
    never sees a half-written dataset and concurrent workers do not clash."""
    check_task(task)
    if size < 8 or n_train < 1 or n_test < 1:
        raise DataError(
            f"bad synthetic dataset size {size} px / {n_train} train / {n_test} test: need >= 8, 1, 1"
        )
    params = _params(task, size, n_train, n_test, seed)
    base = Path(root) / "synth"
    folder = base / folder_name(task, size, n_train, n_test, seed)
    if _complete(folder, params):
        return folder, False
    base.mkdir(parents=True, exist_ok=True)
    tmp = temp_dir(base, f".{folder.name}.")
    try:
        _generate(tmp, task, size, n_train, n_test, seed)
        if folder.exists():  # stale or incomplete: move it aside first (rename is atomic, rmtree is not)
            if _complete(folder, params):  # another process finished meanwhile
                return folder, False
            trash = temp_dir(base, f".{folder.name}.old.")
            os.replace(folder, trash / "old")
            shutil.rmtree(trash, ignore_errors=True)
        try:
            os.replace(tmp, folder)
        except OSError:
            if not _complete(folder, params):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder, True


def ensure_dataset(task: str, size: int, n_train: int, n_test: int, root: Path, seed: int = 0) -> Path:
    """The dataset folder for these parameters, generated only when missing, changed or incomplete."""
    return ensure_dataset_status(task, size, n_train, n_test, root, seed)[0]


def load_test_meta(folder: Path) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays 'mask' and 'background', json metadata) of a synthetic dataset's test scenes."""
    with np.load(folder / "test_meta.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    return arrays, json.loads((folder / "test_meta.json").read_text())


def read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((Path(folder) / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
