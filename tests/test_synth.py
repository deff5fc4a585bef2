"""The synthetic benchmark: same seed same bytes, unpaired training scenes, paired test scenes, manifest."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from cyclegan import synth
from cyclegan.data.sources import DataError


def _pixels(path: Path) -> np.ndarray:
    return np.array(Image.open(path))


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    a = synth.ensure_dataset("zebra", 16, 12, 5, tmp_path / "one")
    b = synth.ensure_dataset("zebra", 16, 12, 5, tmp_path / "two")
    c = synth.ensure_dataset("zebra", 16, 12, 5, tmp_path / "three", seed=1)
    ha, hb, hc = (json.loads((p / "manifest.json").read_text())["content_hash"] for p in (a, b, c))
    assert ha == hb == synth.content_hash(a)
    assert hc != ha
    for split in synth.SPLITS:
        names = sorted(p.name for p in (a / split).iterdir())
        assert names == sorted(p.name for p in (b / split).iterdir())
        assert all((a / split / n).read_bytes() == (b / split / n).read_bytes() for n in names)


def test_train_domains_are_unpaired_and_test_scenes_paired() -> None:
    for i in range(10):
        sa, sb = synth.render("zebra", 32, 0, "trainA", i), synth.render("zebra", 32, 0, "trainB", i)
        assert not np.array_equal(sa.mask > 0, sb.mask > 0)  # different scenes, not the same scene restyled
    for i in range(10):
        scene = synth.render("zebra", 32, 0, "test", i)
        inside = scene.mask > 0
        assert inside.sum() > 20
        # outside the animal both renderings are the same pixels, and equal the stored background
        assert np.array_equal(scene.A[~inside], scene.B[~inside])
        assert np.array_equal(scene.A[~inside], scene.background[~inside])
        assert not np.array_equal(scene.A[inside], scene.B[inside])
        # the B rendering is black-and-white stripes inside the mask: both tones present
        lum = scene.B[inside].mean(1)
        assert (lum < 60).any() and (lum > 200).any()
        assert scene.info["coat"] in synth.COATS


def test_all_coats_including_white_and_black_appear() -> None:
    coats = {synth.render("zebra", 32, 0, "test", i).info["coat"] for i in range(100)}
    assert coats == set(synth.COATS)


def test_seasons_exact_region_mapping() -> None:
    scene = synth.render("seasons", 32, 0, "test", 3)
    assert set(np.unique(scene.mask)) >= {0, 1, 2}  # ground, sky and trees are all there
    a, b = scene.A.astype(float) / 255, scene.B.astype(float) / 255
    for region in range(len(synth.SEASON_REGIONS)):
        sel = scene.mask == region
        if not sel.any():
            continue
        # same texture in both seasons: the mean difference is the palette difference (to rounding/clipping)
        expected = (synth.WINTER[region] - synth.SUMMER[region]).mean()
        assert abs((b[sel] - a[sel]).mean() - expected) < 0.06


def test_manifest_reuse_and_regeneration(tmp_path: Path) -> None:
    folder, fresh = synth.ensure_dataset_status("seasons", 16, 8, 4, tmp_path)
    assert fresh
    stamp = (folder / "manifest.json").stat().st_mtime_ns
    again, fresh = synth.ensure_dataset_status("seasons", 16, 8, 4, tmp_path)
    assert (again, fresh) == (folder, False)
    assert (folder / "manifest.json").stat().st_mtime_ns == stamp
    other, fresh = synth.ensure_dataset_status("seasons", 16, 8, 5, tmp_path)  # n_test changed
    assert fresh and other != folder and len(list((other / "testA").iterdir())) == 5
    (folder / "trainB" / "00003.png").unlink()  # incomplete folder -> regenerated
    again, fresh = synth.ensure_dataset_status("seasons", 16, 8, 4, tmp_path)
    assert fresh and (again / "trainB" / "00003.png").is_file()
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["version"] = -1  # a stale generator version -> regenerated
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert synth.ensure_dataset_status("seasons", 16, 8, 4, tmp_path)[1]
    assert not [p for p in (tmp_path / "synth").iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_layout_and_test_metadata(tmp_path: Path) -> None:
    folder = synth.ensure_dataset("zebra", 24, 6, 7, tmp_path)
    assert folder == tmp_path / "synth" / "zebra-24px-6-7-s0"
    assert [len(list((folder / s).glob("*.png"))) for s in synth.SPLITS] == [6, 6, 7, 7]
    assert _pixels(folder / "testA" / "00000.png").shape == (24, 24, 3)
    arrays, info = synth.load_test_meta(folder)
    assert arrays["mask"].shape == (7, 24, 24) and arrays["background"].shape == (7, 24, 24, 3)
    assert [s["coat"] for s in info["scenes"]] == [
        synth.render("zebra", 24, 0, "test", i).info["coat"] for i in range(7)
    ]


def test_fast_enough(tmp_path: Path) -> None:
    start = time.perf_counter()
    synth.ensure_dataset("zebra", 32, 500, 100, tmp_path)
    assert time.perf_counter() - start < 20  # about 1 s on an idle core


def test_bad_task_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown synthetic task 'horse'; valid: zebra, seasons"):
        synth.ensure_dataset("horse", 32, 10, 10, tmp_path)


def test_cli_generates_then_reuses(tmp_path: Path) -> None:
    from harness.cli import app

    runner = CliRunner()
    args = [
        "data",
        "synth",
        "zebra",
        "--size",
        "16",
        "--n-train",
        "5",
        "--n-test",
        "3",
        "--out",
        str(tmp_path),
    ]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert first.output.startswith("generated: ") and "zebra-16px-5-3-s0" in first.output
    second = runner.invoke(app, args)
    assert second.exit_code == 0 and second.output.startswith("reused (parameters unchanged): ")


def test_cli_bad_task_one_line_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "data", "synth", "horse", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: unknown synthetic task 'horse'; valid: zebra, seasons (e.g. data.dataset=synth:zebra)"
    ]
    assert not (tmp_path / "synth").exists()
