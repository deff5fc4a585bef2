"""`harness translate` with our checkpoint and with a bare reference generator state dict."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from typer.testing import CliRunner

from cyclegan.data.photos import source_file
from cyclegan.networks import ResnetGenerator
from cyclegan.translate import plan, read_image
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
    assert Image.open(out / "horse.png").size == (32, 24)  # 31 x 23 at its own size, sides a multiple of 4


def _reference_generator(path: Path, ngf: int = 64, n_blocks: int = 9) -> ResnetGenerator:
    """A generator in the reference's layout (our ResnetGenerator is key-compatible), saved as a bare .pth."""
    torch.manual_seed(0)
    G = ResnetGenerator(ngf, n_blocks).eval()
    torch.save(G.state_dict(), path)
    return G


def _translate(*args: str):
    return runner.invoke(app, ["translate", *args])


def test_reference_generator_on_a_256_photo_equals_the_generator_on_its_tensor(tmp_path: Path) -> None:
    """As the reference's test script (--preprocess none): the 256 x 256 image goes in as it is."""
    G = _reference_generator(tmp_path / "latest_net_G.pth")
    photo = np.asarray(Image.open(source_file("skimage", "data/astronaut.png")).convert("RGB"))[:256, 128:384]
    Image.fromarray(photo).save(tmp_path / "astronaut.png")
    result = _translate(
        str(tmp_path / "latest_net_G.pth"), str(tmp_path / "astronaut.png"), "--out", str(tmp_path / "o")
    )
    assert result.exit_code == 0, result.output
    produced = np.asarray(Image.open(tmp_path / "o" / "astronaut.png"), dtype=np.float64)
    x = torch.from_numpy(photo.copy()).permute(2, 0, 1).float()[None] / 255 * 2 - 1
    with torch.no_grad():
        expected = ((G(x)[0] + 1) / 2 * 255).clamp(0, 255).permute(1, 2, 0).numpy()
    assert produced.shape == (256, 256, 3)
    assert np.abs(produced - expected).mean() < 1.0  # under one 8-bit level (PNG rounding only)
    assert np.abs(produced - expected).max() <= 0.5 + 1e-3


def test_a_451x300_photo_comes_back_452x300_or_at_size(tmp_path: Path) -> None:
    _reference_generator(tmp_path / "g.pth", ngf=8, n_blocks=1)
    chelsea = source_file("skimage", "data/chelsea.png")
    assert Image.open(chelsea).size == (451, 300)
    for extra, expected in (([], (452, 300)), (["--size", "100"], (152, 100))):
        out = tmp_path / f"o{len(extra)}"
        result = _translate(str(tmp_path / "g.pth"), str(chelsea), "--out", str(out), *extra)
        assert result.exit_code == 0, result.output
        assert Image.open(out / "chelsea.png").size == expected


def test_same_stem_inputs_never_overwrite_each_other(tmp_path: Path) -> None:
    _reference_generator(tmp_path / "g.pth", ngf=8, n_blocks=1)
    photo = Image.open(source_file("skimage", "data/chelsea.png")).convert("RGB").resize((40, 28))
    (tmp_path / "a").mkdir()
    photo.save(tmp_path / "chelsea.png")
    photo.save(tmp_path / "chelsea.jpg")
    photo.save(tmp_path / "a" / "chelsea.jpg")
    inputs = [tmp_path / "chelsea.png", tmp_path / "chelsea.jpg", tmp_path / "a" / "chelsea.jpg"]
    result = _translate(str(tmp_path / "g.pth"), *map(str, inputs), "--out", str(tmp_path / "o"))
    assert result.exit_code == 0, result.output
    assert "wrote 3 image(s)" in result.output
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "chelsea_jpg-1.png",
        "chelsea_jpg-2.png",
        "chelsea_png.png",
    ]


def test_unreadable_images_one_line_each_exit_2_nothing_written(tmp_path: Path) -> None:
    _reference_generator(tmp_path / "g.pth", ngf=8, n_blocks=1)
    good = tmp_path / "good.png"
    Image.open(source_file("skimage", "data/chelsea.png")).save(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    out = tmp_path / "o"
    args = [str(Path(sys.executable).with_name("harness")), "translate", str(tmp_path / "g.pth")]
    proc = subprocess.run(
        [*args, str(good), str(truncated), str(text), "--out", str(out)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2 and "Traceback" not in proc.stderr
    assert lines[0].startswith(f"error: {truncated}: ") and "truncated" in lines[0]
    assert lines[1] == f"error: {text}: not an image Pillow can read"
    assert not out.exists()


def test_huge_photo_refused_in_one_line_or_downscaled_without_pillow_warning(tmp_path: Path) -> None:
    big = tmp_path / "big.jpg"
    Image.new("RGB", (10000, 10000), (120, 80, 40)).save(big, quality=80)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning would fail the test
        jobs, problems = plan([big])
        assert jobs == [] and len(problems) == 1
        assert "10000x10000 would be translated at 10000x10000 (100.0 MP)" in problems[0]
        assert "--size" in problems[0]
        (job,), problems = plan([big], size=512)
        assert problems == [] and job.out_size == (512, 512)
        assert read_image(job).size == (512, 512)


def test_old_instance_norm_buffers_are_dropped(tmp_path: Path) -> None:
    """Pretrained generators saved by PyTorch < 0.4 carry InstanceNorm running stats; they still load."""
    from cyclegan.translate import load_generator

    G = ResnetGenerator(8, 2)
    state = G.state_dict()
    state["model.2.running_mean"] = torch.zeros(8)
    state["model.2.running_var"] = torch.ones(8)
    torch.save(state, tmp_path / "old.pth")
    loaded, cfg = load_generator(tmp_path / "old.pth", "AtoB")
    assert cfg.model.norm == "instance" and cfg.model.n_blocks == 2 and cfg.model.ngf == 8
    assert torch.equal(loaded.model[1].weight, G.model[1].weight)
