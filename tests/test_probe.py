"""``harness probe ood``: brownish-region definition, per-image change numbers, grid and JSON, bad input."""

from __future__ import annotations

import colorsys
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from cyclegan import checkpoint
from cyclegan.config import resolve
from cyclegan.model import CycleGAN
from cyclegan.probe import brownish, change_report, hsv


def test_hsv_matches_colorsys() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.random((50, 3))
    h, s, v = hsv(torch.tensor(rgb, dtype=torch.float64).T[None, :, :, None])
    for i, (r, g, b) in enumerate(rgb):
        eh, es, ev = colorsys.rgb_to_hsv(r, g, b)
        assert abs(float(h[0, i, 0]) - eh * 360) < 1e-6
        assert abs(float(s[0, i, 0]) - es) < 1e-9 and abs(float(v[0, i, 0]) - ev) < 1e-9


def _img(*colours) -> torch.Tensor:
    return torch.tensor(colours, dtype=torch.float32).T[None, :, None, :]  # (1, 3, 1, n)


def test_brownish_definition() -> None:
    colours = [
        (0.45, 0.28, 0.15),  # brown coat: yes
        (0.62, 0.33, 0.14),  # chestnut: yes
        (0.30, 0.55, 0.22),  # grass: no (hue ~100 deg)
        (0.93, 0.93, 0.90),  # white: no (unsaturated)
        (1.00, 0.60, 0.00),  # bright orange: no (value 1 > 0.8)
        (0.05, 0.03, 0.02),  # near black: no (value < 0.1)
    ]
    assert brownish(_img(*colours))[0, 0].tolist() == [True, True, False, False, False, False]


def test_change_report_known_values() -> None:
    x = _img((0.45, 0.28, 0.15), (0.45, 0.28, 0.15), (0.3, 0.55, 0.22), (0.3, 0.55, 0.22))
    y = x.clone()
    y[..., :2] += 0.1  # change only the brown half, by 0.1
    (row,) = change_report(x, y)
    assert row["brown_share"] == 0.5
    assert abs(row["change_brown"] - 0.1) < 1e-6 and row["change_other"] == 0.0
    assert abs(row["change"] - 0.05) < 1e-6 and row["brown_over_other"] is None  # nothing changed elsewhere


@pytest.fixture
def smoke_checkpoint(tmp_path: Path) -> Path:
    cfg = resolve("smoke")
    path = tmp_path / "latest.pt"
    checkpoint.save(path, {"config": cfg.to_dict(), "model": CycleGAN(cfg).training_state()})
    return path


def test_cli_probe_writes_table_grid_and_json(smoke_checkpoint: Path, tmp_path: Path) -> None:
    from harness.cli import app

    brown = tmp_path / "brown.png"
    Image.fromarray(np.full((40, 30, 3), (115, 71, 38), np.uint8)).save(brown)  # not square, not 16 px
    blue = tmp_path / "blue.jpg"
    Image.fromarray(np.full((16, 16, 3), (40, 90, 200), np.uint8)).save(blue)
    out = tmp_path / "probe"
    result = CliRunner().invoke(
        app, ["probe", "ood", str(smoke_checkpoint), str(brown), str(blue), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "brown.png" in result.output and "blue.jpg" in result.output
    report = json.loads((out / "ood.json").read_text())
    first, second = report["images"]
    assert first["brown_share"] == 1.0 and first["change_other"] is None and first["change_brown"] > 0
    assert second["brown_share"] == 0.0 and second["change_brown"] is None and second["change"] > 0
    assert report["brownish"]["hue_deg"] == [10.0, 50.0]
    assert [im["size"] for im in report["images"]] == [[32, 40], [16, 16]]  # whole images, sides 4k
    # panels enlarged by whole factors to >= 192 px high (brown x5: 160 x 200, blue x12: 192 x 192), three
    # columns of the widest panel, a header line and a caption line per row (24 px each), 8 px gaps
    assert Image.open(out / "ood-grid.png").size == (
        3 * 192 + 4 * 8,
        24 + (24 + 200 + 8) + (24 + 192 + 8) + 8,
    )


def test_cli_probe_missing_image_exit_2(smoke_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "probe"
    args = [
        sys.executable,
        "-m",
        "harness",
        "probe",
        "ood",
        str(smoke_checkpoint),
        str(tmp_path / "cat.png"),
        "--out",
        str(out),
    ]
    proc = subprocess.run(args, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {tmp_path / 'cat.png'}: not found"]
    assert not out.exists()
