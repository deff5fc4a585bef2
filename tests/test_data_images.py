"""Every image mode a user may have becomes correct RGB, and preprocessing matches the reference's modes."""

from __future__ import annotations

import dataclasses
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan.config import resolve
from cyclegan.data.images import list_images, load_rgb
from cyclegan.data.transforms import preprocess
from cyclegan.seeding import derive_generator

RED = (230, 20, 20)


def write_png16_rgb(path: Path, values: np.ndarray) -> None:
    """A 16-bit-per-channel RGB PNG written by hand (Pillow cannot write one)."""
    h, w, _ = values.shape
    raw = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in values)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    path.write_bytes(png)


def make_every_mode(folder: Path, size: int = 24) -> dict[str, Path]:
    """One file per mode/format of the issue, each size x size."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}

    def save(name: str, img: Image.Image, **kw) -> None:
        files[name] = folder / name
        img.save(files[name], **kw)

    rgb = Image.new("RGB", (size, size), RED)
    save("rgb.png", rgb)
    save("rgb.jpg", rgb, quality=95)
    save("rgb.webp", rgb, lossless=True)
    save("rgb.bmp", rgb)
    save("rgb.tif", rgb)
    save("rgb.gif", rgb.convert("P"))
    rgba = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    rgba.paste((*RED, 255), (0, 0, size // 2, size))
    save("rgba.png", rgba)
    save("la.png", Image.new("LA", (size, size), (40, 128)))
    save("gray.png", Image.new("L", (size, size), 77))
    save("gray16.png", Image.fromarray(np.full((size, size), 40000, dtype=np.uint16)))
    save("int32.tif", Image.fromarray(np.full((size, size), 65535, dtype=np.int32)))
    palette = Image.new("P", (size, size), 0)
    palette.putpalette([0, 0, 0, 0, 200, 0] + [0] * 762)
    palette.paste(1, (0, 0, size, size // 2))
    save("palette.png", palette, transparency=0)
    save("cmyk.jpg", Image.new("CMYK", (size, size), (0, 255, 255, 0)), quality=95)
    save("cmyk.tif", Image.new("CMYK", (size, size), (0, 255, 255, 0)))
    save("bilevel.png", Image.new("1", (size, size), 1))
    save("float.tif", Image.fromarray(np.full((size, size), 0.5, dtype=np.float32)))
    files["rgb16.png"] = folder / "rgb16.png"
    write_png16_rgb(files["rgb16.png"], np.full((size, size, 3), 0x8000, dtype=np.uint16))
    exif = rgb.getexif()
    exif[0x0112] = 6
    save("exif.jpg", rgb, exif=exif)
    return files


@pytest.fixture
def every_mode(tmp_path: Path) -> dict[str, Path]:
    return make_every_mode(tmp_path / "modes")


def test_every_mode_becomes_a_crop_sized_tensor_in_range(every_mode: dict[str, Path]) -> None:
    cfg = resolve("smoke", {"data.load_size": 20, "data.crop_size": 16}).data
    opened = {name: Image.open(path).mode for name, path in every_mode.items()}
    named = ("rgba.png", "la.png", "gray.png", "palette.png", "cmyk.jpg", "float.tif")
    assert [opened[n] for n in named] == ["RGBA", "LA", "L", "P", "CMYK", "F"]
    assert (
        opened["gray16.png"].startswith("I;16")
        and opened["int32.tif"] == "I"
        and opened["bilevel.png"] == "1"
    )
    for name, path in every_mode.items():
        img = load_rgb(path)
        assert img.mode == "RGB", name
        x = preprocess(img, cfg, derive_generator(0, "t", name))
        assert x.shape == (3, 16, 16) and x.dtype == torch.float32, name
        assert -1.0 <= float(x.min()) and float(x.max()) <= 1.0, name


def test_pixel_values_of_each_mode(every_mode: dict[str, Path]) -> None:
    px = {name: load_rgb(path).getpixel((2, 2)) for name, path in every_mode.items()}
    for name in ("rgb.png", "rgb.webp", "rgb.bmp", "rgb.tif"):
        assert px[name] == RED, name
    assert np.abs(np.subtract(px["rgb.jpg"], RED)).max() <= 6
    assert px["gray.png"] == (77, 77, 77)
    assert px["bilevel.png"] == (255, 255, 255)
    assert px["float.tif"] == (128, 128, 128)  # F read as [0, 1]
    assert px["cmyk.tif"] == (255, 0, 0)
    assert np.abs(np.subtract(px["cmyk.jpg"], (255, 0, 0))).max() <= 6


def test_transparency_is_composited_on_white(every_mode: dict[str, Path]) -> None:
    rgba = load_rgb(every_mode["rgba.png"])
    assert rgba.getpixel((2, 2)) == RED  # opaque half keeps its colour
    assert rgba.getpixel((20, 2)) == (255, 255, 255)  # transparent half stored black, shown white
    la = load_rgb(every_mode["la.png"]).getpixel((0, 0))  # gray 40 at alpha 128 over white
    expected = round(40 * 128 / 255 + 255 * (1 - 128 / 255))
    assert abs(la[0] - expected) <= 1 and la[0] == la[1] == la[2]
    palette = load_rgb(every_mode["palette.png"])
    assert palette.getpixel((2, 2)) == (0, 200, 0)  # palette index 1
    assert palette.getpixel((2, 20)) == (255, 255, 255)  # index 0 is the transparent colour


def test_sixteen_bit_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 1000, 257 * 128, 40000, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I;16")
    got = np.asarray(load_rgb(tmp_path / "g16.png"))[0, :, 0]
    assert got.tolist() == [0, 4, 128, 156, 255]  # round(v / 257); clipping would give 255 for all but 0
    Image.fromarray(values.astype(np.int32)).save(tmp_path / "i32.tif")
    assert Image.open(tmp_path / "i32.tif").mode == "I"
    assert np.asarray(load_rgb(tmp_path / "i32.tif"))[0, :, 0].tolist() == [0, 4, 128, 156, 255]
    write_png16_rgb(tmp_path / "rgb16.png", np.array([[[0, 0x8000, 0xFFFF]]], dtype=np.uint16))
    assert load_rgb(tmp_path / "rgb16.png").getpixel((0, 0)) == (0, 128, 255)


def test_exif_orientation_really_rotates(tmp_path: Path) -> None:
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 20, 20))  # left half red as stored
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    img.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    upright = load_rgb(tmp_path / "phone.jpg")
    assert upright.size == (20, 40)
    top, bottom = upright.getpixel((10, 5)), upright.getpixel((10, 35))
    assert top[0] > 200 and top[2] < 60  # the stored left edge is now the top
    assert bottom[2] > 200 and bottom[0] < 60


def test_hidden_litter_and_non_images_are_ignored(tmp_path: Path) -> None:
    Image.new("RGB", (8, 8)).save(tmp_path / "a.PNG")
    Image.new("RGB", (8, 8)).save(tmp_path / "b.jpeg", format="JPEG")
    for name in (".DS_Store", "Thumbs.db", "._a.png", ".hidden.png", "notes.txt", "meta.json"):
        (tmp_path / name).write_bytes(b"\x00\x01")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.PNG", "b.jpeg"]


@pytest.mark.parametrize(
    ("mode", "shape"),
    [
        ("resize_and_crop", (3, 16, 16)),
        ("crop", (3, 16, 16)),
        ("scale_width", (3, 18, 24)),  # width to load 24, height 30 * 24 / 40 = 18 (>= crop 16)
        ("scale_width_and_crop", (3, 16, 16)),
        ("none", (3, 32, 40)),  # sides rounded to multiples of 4
    ],
)
def test_preprocess_modes(mode: str, shape: tuple[int, int, int]) -> None:
    cfg = resolve("smoke", {"data.load_size": 24, "data.crop_size": 16, "data.preprocess": mode}).data
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8))
    assert tuple(preprocess(img, cfg, derive_generator(1, "p")).shape) == shape
    assert tuple(preprocess(img, cfg, None).shape) == shape


def test_crop_and_flip_follow_the_seed_and_match_a_manual_crop() -> None:
    cfg = resolve("smoke", {"data.load_size": 24, "data.crop_size": 16, "data.preprocess": "crop"}).data
    pixels = np.random.default_rng(0).integers(0, 255, (24, 24, 3), dtype=np.uint8)
    img = Image.fromarray(pixels)
    outs = [preprocess(img, cfg, derive_generator(7, "x", i)) for i in range(12)]
    assert torch.equal(outs[3], preprocess(img, cfg, derive_generator(7, "x", 3)))
    full = torch.from_numpy(pixels).permute(2, 0, 1).float() / 255 * 2 - 1
    flips = 0
    for out in outs:  # every output is some 16x16 window of the image, maybe mirrored
        windows = {(y, x): full[:, y : y + 16, x : x + 16] for y in range(9) for x in range(9)}
        plain = any(torch.allclose(out, w, atol=1e-6) for w in windows.values())
        mirrored = any(torch.allclose(out.flip(-1), w, atol=1e-6) for w in windows.values())
        assert plain or mirrored
        flips += mirrored and not plain
    assert 0 < flips < 12
    no_flip = dataclasses.replace(cfg, no_flip=True)
    centre = preprocess(img, no_flip, None)
    assert torch.allclose(centre, full[:, 4:20, 4:20], atol=1e-6)
