"""The real-photo set: cut from photographs shipped in pip wheels, CycleGAN layout, reproducible."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cyclegan.data.photos import build_photo_set, source_file
from cyclegan.data.sources import DataError


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.png")):
        h.update(p.relative_to(root).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


def test_layout_counts_and_sizes(photo_set: Path) -> None:
    counts = {split: len(list((photo_set / split).glob("*.png"))) for split in ("trainA", "trainB")}
    counts |= {split: len(list((photo_set / split).glob("*.png"))) for split in ("testA", "testB")}
    assert counts == {"trainA": 60, "trainB": 60, "testA": 12, "testB": 12}
    patch = Image.open(photo_set / "testB" / "0000.png")
    assert patch.size == (64, 64) and patch.mode == "RGB"


def test_patches_are_cut_from_the_shipped_photographs(photo_set: Path) -> None:
    """Every test A patch occurs verbatim in the bottom quarter of scikit-image's grass.png."""
    grass = np.asarray(Image.open(source_file("skimage", "data/grass.png")).convert("RGB"))
    patch = np.asarray(Image.open(photo_set / "testA" / "0003.png"))
    windows = np.lib.stride_tricks.sliding_window_view(grass[384:, :, 0], (64, 64))
    hits = np.argwhere((windows == patch[..., 0]).all(axis=(2, 3)))
    assert len(hits) >= 1


def test_rebuild_is_identical_and_a_no_op(photo_set: Path, tmp_path: Path) -> None:
    again = build_photo_set(tmp_path / "again")
    assert _digest(again) == _digest(photo_set)
    before = (photo_set / "trainA" / "0000.png").stat().st_mtime_ns
    build_photo_set(photo_set)
    assert (photo_set / "trainA" / "0000.png").stat().st_mtime_ns == before


def test_refuses_a_foreign_folder_and_unknown_pair(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("x")
    with pytest.raises(DataError, match="not this photo set"):
        build_photo_set(tmp_path / "mine")
    with pytest.raises(DataError, match="valid: grass2gravel, flower2china"):
        build_photo_set(tmp_path / "x", pair="cats")
    assert not (tmp_path / "x").exists()
