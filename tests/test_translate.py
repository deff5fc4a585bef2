"""`harness translate` with our checkpoint and with a bare reference generator state dict."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from typer.testing import CliRunner

from cyclegan.networks import ResnetGenerator
from harness.cli import app

runner = CliRunner()


def _odd_images(folder: Path) -> list[Path]:
    folder.mkdir()
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 255, (23, 31, 3), dtype=np.uint8))
    paths = [folder / "horse.jpg", folder / "gray.png"]
    rgb.save(paths[0])
    rgb.convert("L").save(paths[1])
    return paths


def test_translate_with_trained_checkpoint(folder_dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = runner.invoke(
        app, ["train", "--preset", "smoke", "--out", str(run), "--set", f"data.dataset={folder_dataset}"]
    )
    assert result.exit_code == 0, result.output
    assert "trained 12 iterations" in result.output
    images = _odd_images(tmp_path / "in")
    out = tmp_path / "out"
    ckpt = run / "checkpoints" / "latest.pt"
    result = runner.invoke(
        app, ["translate", str(ckpt), *map(str, images), "--direction", "BtoA", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in out.iterdir())
    assert written == ["gray.png", "horse.png"]
    assert Image.open(out / "horse.png").size == (16, 16)  # the smoke preset's test-time preprocessing


def test_translate_with_bare_reference_generator(tmp_path: Path) -> None:
    torch.manual_seed(0)
    G = ResnetGenerator(8, 3)
    torch.save(G.state_dict(), tmp_path / "latest_net_G.pth")
    images = _odd_images(tmp_path / "in")
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "translate",
            str(tmp_path / "latest_net_G.pth"),
            str(images[0]),
            "--out",
            str(out),
            "--set",
            "data.load_size=32",
            "--set",
            "data.crop_size=32",
        ],
    )
    assert result.exit_code == 0, result.output
    produced = np.asarray(Image.open(out / "horse.png"), dtype=np.float32)
    from cyclegan.config import resolve
    from cyclegan.data.images import load_rgb
    from cyclegan.data.transforms import preprocess

    x = preprocess(
        load_rgb(images[0]), resolve("paper", {"data.load_size": 32, "data.crop_size": 32}).data, None
    )
    with torch.no_grad():
        expected = ((G.eval()(x[None])[0] * 0.5 + 0.5).clamp(0, 1) * 255).permute(1, 2, 0).numpy()
    assert produced.shape == (32, 32, 3)
    assert np.abs(produced - expected).max() <= 1.0  # PNG rounding only


def test_old_instance_norm_buffers_are_dropped(tmp_path: Path) -> None:
    """Pretrained generators saved by PyTorch < 0.4 carry InstanceNorm running stats; they still load."""
    from cyclegan.config import resolve
    from cyclegan.translate import load_generator

    G = ResnetGenerator(8, 2)
    state = G.state_dict()
    state["model.2.running_mean"] = torch.zeros(8)
    state["model.2.running_var"] = torch.ones(8)
    torch.save(state, tmp_path / "old.pth")
    loaded, cfg = load_generator(tmp_path / "old.pth", "AtoB", resolve("paper"))
    assert cfg.model.norm == "instance" and cfg.model.n_blocks == 2 and cfg.model.ngf == 8
    assert torch.equal(loaded.model[1].weight, G.model[1].weight)
