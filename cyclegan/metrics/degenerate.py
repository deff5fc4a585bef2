"""Degenerate outputs a generator can fall into, made from test inputs: yardsticks a metric must rank below
trained runs, and the negatives the domain classifier learns to reject.

- ``noise``: uniform noise in every pixel and channel (a diverged generator);
- ``flat``: each image replaced by its own mean colour (a collapsed one);
- ``blur``: a heavy Gaussian blur of the input, sigma 1/8 of the shorter side (a generator that only smooths).

All take and return (N, 3, H, W) in [-1, 1]; ``noise`` is seeded, so every call gives the same images.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

KINDS = ("noise", "flat", "blur")
BLUR_SIGMA_SHARE = 1 / 8


def noise(images: torch.Tensor, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(images.shape, generator=gen) * 2 - 1


def flat(images: torch.Tensor) -> torch.Tensor:
    return images.mean((2, 3), keepdim=True).expand_as(images).contiguous()


def blur(images: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur with reflected borders (replicated where the image is too small to reflect)."""
    sigma = max(1.0, min(images.shape[-2:]) * BLUR_SIGMA_SHARE)
    radius = int(3 * sigma)
    c = torch.arange(-radius, radius + 1, dtype=images.dtype)
    g = torch.exp(-(c**2) / (2 * sigma**2))
    g = (g / g.sum()).to(images.device)
    n = images.shape[1]
    mode = "reflect" if radius < min(images.shape[-2:]) else "replicate"
    x = F.pad(images, (radius, radius, 0, 0), mode=mode)
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(n, 1, 1, -1), groups=n)
    x = F.pad(x, (0, 0, radius, radius), mode=mode)
    return F.conv2d(x, g.view(1, 1, -1, 1).expand(n, 1, -1, 1), groups=n)


def degenerate(kind: str, images: torch.Tensor, seed: int = 0) -> torch.Tensor:
    if kind == "noise":
        return noise(images, seed)
    if kind == "flat":
        return flat(images)
    if kind == "blur":
        return blur(images)
    raise ValueError(f"unknown degenerate kind '{kind}'; valid: {', '.join(KINDS)}")
