"""A small unpaired data set of real photographs, cut from images that pip packages ship inside their wheels.

The synthetic benchmark is drawn by our own code, so it cannot tell whether a metric or a verdict holds on
real photos. These pairs are real photographs that need no network: scikit-image ships ``grass.png`` and
``gravel.png`` (512 x 512 grayscale texture photos) in ``skimage/data``; scikit-learn ships ``flower.jpg`` and
``china.jpg`` (640 x 427 colour photos) in ``sklearn/datasets/images``. Each domain is one photograph cut into
square patches at random positions; the train patches come from the top 75 % of the rows and the test patches
from the bottom 25 %, so no test pixel was seen in training.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from cyclegan.data.images import load_rgb
from cyclegan.errors import DataError

# pair name -> ((package, path inside the package) for domain A, the same for domain B)
PAIRS: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {
    "grass2gravel": (("skimage", "data/grass.png"), ("skimage", "data/gravel.png")),
    "flower2china": (("sklearn", "datasets/images/flower.jpg"), ("sklearn", "datasets/images/china.jpg")),
}
PIP_NAME = {"skimage": "scikit-image", "sklearn": "scikit-learn"}
TRAIN_SHARE = 0.75  # rows above this share of the height give train patches, rows below give test patches


def source_file(package: str, relative: str) -> Path:
    """The shipped file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"the photo set needs the package '{package}': pip install {PIP_NAME[package]}")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise DataError(f"{PIP_NAME[package]} is installed but does not ship {relative} ({path} missing)")
    return path


def _patches(photo: np.ndarray, size: int, n: int, rows: tuple[int, int], rng: np.random.Generator):
    top, bottom = rows
    if bottom - top < size or photo.shape[1] < size:
        raise DataError(f"patch size {size} does not fit a {bottom - top}-row band of the photo")
    ys = rng.integers(top, bottom - size + 1, n)
    xs = rng.integers(0, photo.shape[1] - size + 1, n)
    return [photo[y : y + size, x : x + size] for y, x in zip(ys, xs, strict=True)]


def build_photo_set(
    root: str | Path,
    pair: str = "grass2gravel",
    size: int = 64,
    n_train: int = 60,
    n_test: int = 12,
    seed: int = 0,
) -> Path:
    """Write ``root``/trainA, trainB, testA, testB (PNG patches) and photos.json; a no-op when ``root``
    already holds the same set. The folder appears whole (built beside it, renamed into place)."""
    if pair not in PAIRS:
        raise DataError(f"unknown photo pair '{pair}'; valid: {', '.join(PAIRS)}")
    if size < 4 or n_train < 1 or n_test < 1:
        raise DataError(f"photo set: size >= 4, n_train >= 1, n_test >= 1 (got {size}, {n_train}, {n_test})")
    root = Path(root)
    sources = [source_file(*src) for src in PAIRS[pair]]
    recipe = {
        "pair": pair,
        "size": size,
        "n_train": n_train,
        "n_test": n_test,
        "seed": seed,
        "sources": [
            {"file": str(p.name), "sha256": hashlib.sha256(p.read_bytes()).hexdigest()} for p in sources
        ],
    }
    manifest = root / "photos.json"
    if manifest.is_file() and json.loads(manifest.read_text()) == recipe:
        return root
    if root.exists() and any(root.iterdir()):
        raise DataError(f"{root} exists and is not this photo set; choose an empty or new folder")
    rng = np.random.default_rng(seed)
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".building", dir=root.parent))
    try:
        for side, path in zip("AB", sources, strict=True):
            photo = np.asarray(load_rgb(path))
            cut = int(photo.shape[0] * TRAIN_SHARE)
            for split, n, rows in (("train", n_train, (0, cut)), ("test", n_test, (cut, photo.shape[0]))):
                folder = staging / f"{split}{side}"
                folder.mkdir()
                for i, patch in enumerate(_patches(photo, size, n, rows, rng)):
                    Image.fromarray(patch).save(folder / f"{i:04d}.png")
        (staging / "photos.json").write_text(json.dumps(recipe, indent=2, sort_keys=True) + "\n")
        if root.exists():
            root.rmdir()
        staging.rename(root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root
