"""The reference's preprocessing, with every random choice passed in so a seed fixes it.

Modes as in the reference (base_dataset.get_transform): ``resize_and_crop`` resizes to load_size x load_size
(bicubic) then crops; ``crop`` crops the raw image; ``scale_width`` sets the width to load_size keeping the
aspect ratio (height at least crop_size); ``scale_width_and_crop`` also crops; ``none`` only rounds both sides
to a multiple of 4. Then an optional horizontal flip and scaling to [-1, 1]. Without a generator (test time)
the crop is centred and nothing is flipped, where the reference would still crop at random. An image smaller
than the crop comes out padded with black; ``cyclegan.data.validate`` reports such images before a run.
"""

from __future__ import annotations

import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from cyclegan.config import DataConfig


def _scale_width(img: Image.Image, target_width: int, crop_size: int) -> Image.Image:
    w, h = img.size
    if w == target_width and h >= crop_size:
        return img
    new_h = int(max(target_width * h / w, crop_size))
    return img.resize((target_width, new_h), Image.BICUBIC)


def _make_power_2(img: Image.Image, base: int = 4) -> Image.Image:
    w, h = img.size
    nw, nh = max(base, int(round(w / base) * base)), max(base, int(round(h / base) * base))
    return img if (nw, nh) == (w, h) else img.resize((nw, nh), Image.BICUBIC)


def preprocess(img: Image.Image, cfg: DataConfig, gen: torch.Generator | None) -> torch.Tensor:
    """PIL RGB -> float tensor (3, H, W) in [-1, 1]. ``gen`` None means no randomness (test time: no flip,
    centre crop)."""
    mode = cfg.preprocess
    if mode == "resize_and_crop":
        img = TF.resize(img, [cfg.load_size, cfg.load_size], interpolation=InterpolationMode.BICUBIC)
    elif mode.startswith("scale_width"):
        img = _scale_width(img, cfg.load_size, cfg.crop_size)
    if "crop" in mode:
        w, h = img.size
        c = cfg.crop_size
        if gen is None:
            x, y = max(0, (w - c) // 2), max(0, (h - c) // 2)
        else:
            x = int(torch.randint(0, max(0, w - c) + 1, (), generator=gen))
            y = int(torch.randint(0, max(0, h - c) + 1, (), generator=gen))
        img = img.crop((x, y, x + c, y + c))
    if mode == "none":
        img = _make_power_2(img)
    tensor = TF.to_dtype(TF.pil_to_tensor(img), torch.float32, scale=True)
    if gen is not None and not cfg.no_flip and torch.rand((), generator=gen).item() < 0.5:
        tensor = TF.horizontal_flip(tensor)
    return tensor * 2.0 - 1.0
