"""Turn any image file a user has into 8-bit RGB, and tell image files from everything else in a folder.

Policies (chosen so a data set of mixed files trains without surprises):

- Transparency (RGBA, LA, palette images with a transparent colour) is composited on **white**. The colour
  stored under fully transparent pixels is arbitrary (often black, sometimes garbage), so dropping alpha would
  feed the networks whatever the exporting program left there; white is what most viewers and documents show.
- 16-bit grayscale (``I;16*``) and 32-bit integer (``I``) images are scaled, not clipped: a value v in
  [0, 65535] becomes round(v / 257), the exact inverse of the 8 -> 16 bit expansion v8 * 257. An ``I`` image
  whose values exceed 65535 is scaled by its own maximum. Float (``F``) images are read as [0, 1] when their
  maximum is at most 1, else as [0, 255]. 16-bit RGB(A) PNGs Pillow already reduces to 8 bits per channel.
- EXIF orientation is applied, so a phone photo stored sideways is used the right way up.
- Animated files (GIF, WebP) contribute their first frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

IMAGE_SUFFIXES = {
    ".png", ".jpg", ".jpeg", ".jfif", ".bmp", ".webp", ".tif", ".tiff", ".gif",
    ".ppm", ".pgm", ".pbm", ".pnm",
}  # fmt: skip
IGNORED_NAMES = {"thumbs.db", "desktop.ini"}
WHITE = (255, 255, 255)


def is_image_file(path: Path) -> bool:
    """Image suffix, not hidden (covers .DS_Store and ._ resource forks), not a Windows thumbnail cache."""
    name = path.name
    return (
        path.suffix.lower() in IMAGE_SUFFIXES
        and not name.startswith(".")
        and name.lower() not in IGNORED_NAMES
    )


def is_ignored(path: Path) -> bool:
    """Files nobody means as data: hidden files and OS litter. They are skipped silently, never reported."""
    return path.name.startswith(".") or path.name.lower() in IGNORED_NAMES


def list_images(folder: str | Path) -> list[Path]:
    """Sorted image files directly in ``folder`` (sorted: the order, so a seed, means the same everywhere)."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and is_image_file(p))


def _wide_gray_to_l(img: Image.Image) -> Image.Image:
    """16/32-bit integer grayscale -> 8-bit L by scaling (see the module docstring)."""
    values = np.asarray(img).astype(np.float64)
    top = values.max(initial=0.0)
    scale = 257.0 if top <= 65535 else top / 255.0
    return Image.fromarray(np.clip(np.rint(values / scale), 0, 255).astype(np.uint8), mode="L")


def _float_to_l(img: Image.Image) -> Image.Image:
    values = np.nan_to_num(np.asarray(img).astype(np.float64))
    if values.max(initial=0.0) <= 1.0:
        values = values * 255.0
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), mode="L")


def _on_white(img: Image.Image) -> Image.Image:
    rgba = img.convert("RGBA")
    out = Image.new("RGB", rgba.size, WHITE)
    out.paste(rgba, mask=rgba.getchannel("A"))
    return out


def to_rgb(img: Image.Image) -> Image.Image:
    """Any decoded Pillow image -> 8-bit RGB under the policies of the module docstring."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode.startswith("I;16") or mode == "I":
        return _wide_gray_to_l(img).convert("RGB")
    if mode == "F":
        return _float_to_l(img).convert("RGB")
    if mode == "P":
        return _on_white(img) if "transparency" in img.info else img.convert("RGB")
    if mode in ("RGBA", "RGBa", "LA", "La", "PA"):
        return _on_white(img)
    if mode == "L" and "transparency" in img.info:
        return _on_white(img)
    try:
        return img.convert("RGB")  # L, 1, CMYK, YCbCr, ...
    except ValueError as exc:
        raise OSError(f"unsupported image mode {mode}") from exc


def load_rgb(path: str | Path) -> Image.Image:
    """Decode fully (a truncated file raises ``OSError`` here), apply EXIF orientation, return 8-bit RGB."""
    with Image.open(path) as img:
        img.load()
        return to_rgb(ImageOps.exif_transpose(img))  # a new image, still valid once the file is closed
