"""Per-image measures on batches of images (N, 3, H, W) in [0, 1]; each returns one value per image.

Kept free of models and files so each can be checked on hand-made images with known answers.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

LUMA = torch.tensor([0.299, 0.587, 0.114])  # Rec. 601


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] network range -> [0, 1]."""
    return (images.float() * 0.5 + 0.5).clamp(0, 1)


def luminance(images: torch.Tensor) -> torch.Tensor:
    return torch.einsum("nchw,c->nhw", images, LUMA.to(images))


def l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x - y).abs().flatten(1).mean(1)


def psnr(x: torch.Tensor, y: torch.Tensor, cap: float = 100.0) -> torch.Tensor:
    """Peak 1; identical images get ``cap`` instead of infinity so the value stays JSON-safe."""
    mse = (x - y).pow(2).flatten(1).mean(1)
    out = 10 * torch.log10(1.0 / mse.clamp_min(1e-30))
    return out.clamp(max=cap)


def _gaussian_window(size: int, sigma: float, channels: int) -> torch.Tensor:
    c = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(c**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(x: torch.Tensor, y: torch.Tensor, window: int = 7, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM (Wang et al. 2004 constants K1=0.01, K2=0.03) over channels and valid window positions."""
    window = min(window, x.shape[-1], x.shape[-2])
    w = _gaussian_window(window, sigma, x.shape[1]).to(x)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, w, groups=x.shape[1])

    c1, c2 = 0.01**2, 0.03**2
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


def rgb_to_lab(images: torch.Tensor) -> torch.Tensor:
    """sRGB [0, 1] -> CIE Lab (D65), channels L*, a*, b*."""
    lin = torch.where(images <= 0.04045, images / 12.92, ((images + 0.055) / 1.055) ** 2.4)
    m = torch.tensor(
        [[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]], dtype=images.dtype
    )
    xyz = torch.einsum("ij,njhw->nihw", m.to(images.device), lin)
    xyz = xyz / torch.tensor([0.95047, 1.0, 1.08883], dtype=images.dtype, device=images.device)[:, None, None]
    d = 6 / 29
    f = torch.where(xyz > d**3, xyz.clamp_min(1e-12) ** (1 / 3), xyz / (3 * d * d) + 4 / 29)
    return torch.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], 1)


def ab_histograms(images: torch.Tensor, bins: int = 12, extent: float = 90.0) -> torch.Tensor:
    """Normalised a*b* histograms (N, bins*bins) over [-extent, extent]^2 (values outside are clamped)."""
    lab = rgb_to_lab(images)
    idx = ((lab[:, 1:] + extent) / (2 * extent) * bins).floor().clamp(0, bins - 1).long()
    flat = (idx[:, 0] * bins + idx[:, 1]).flatten(1)
    n = images.shape[0]
    flat = flat + torch.arange(n, device=flat.device)[:, None] * bins * bins
    counts = torch.bincount(flat.flatten(), minlength=n * bins * bins).view(n, -1).float()
    return counts / counts.sum(1, keepdim=True)


def color_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Chi-square distance 0.5 sum (p - q)^2 / (p + q) of a*b* histograms: 0 same colours, 1 disjoint."""
    p, q = ab_histograms(x), ab_histograms(y)
    s = p + q
    return 0.5 * torch.where(s > 0, (p - q) ** 2 / s.clamp_min(1e-12), torch.zeros_like(s)).sum(1)


def erode(mask: torch.Tensor) -> torch.Tensor:
    """3x3 binary erosion of (N, H, W) bool masks (outside the image counts as background)."""
    inv = (~mask).float().unsqueeze(1)
    return ~(F.max_pool2d(F.pad(inv, (1, 1, 1, 1), value=1.0), 3, 1).squeeze(1) > 0)


def dilate(mask: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(mask.float().unsqueeze(1), 3, 1, padding=1).squeeze(1) > 0


def stripe_energy(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean |luminance difference| between 4-neighbours that both lie in the eroded mask.

    Stripes of any phase give the same energy (it counts edges, not where they are), a plain coat only its
    noise; erosion keeps the silhouette's own outline out. NaN where the eroded mask holds no neighbour pair.
    """
    lum, m = luminance(images), erode(mask)
    dx, mx = (lum[:, :, 1:] - lum[:, :, :-1]).abs(), m[:, :, 1:] & m[:, :, :-1]
    dy, my = (lum[:, 1:] - lum[:, :-1]).abs(), m[:, 1:] & m[:, :-1]
    total = (dx * mx).flatten(1).sum(1) + (dy * my).flatten(1).sum(1)
    pairs = mx.flatten(1).sum(1) + my.flatten(1).sum(1)
    return torch.where(pairs > 0, total / pairs.clamp_min(1), torch.full_like(total, math.nan))


def high_frequency(images: torch.Tensor) -> torch.Tensor:
    """Mean |luminance difference| between 4-neighbours over the whole image: about 0.33 for uniform noise,
    0 for a flat colour, a few hundredths for most photographs."""
    lum = luminance(images)
    dx = (lum[:, :, 1:] - lum[:, :, :-1]).abs().flatten(1).mean(1)
    dy = (lum[:, 1:] - lum[:, :-1]).abs().flatten(1).mean(1)
    return (dx + dy) / 2


def background_change(inputs: torch.Tensor, outputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean |output - input| (channel mean) over pixels outside the dilated mask."""
    outside = ~dilate(mask)
    diff = (outputs - inputs).abs().mean(1)
    return (diff * outside).flatten(1).sum(1) / outside.flatten(1).sum(1).clamp_min(1)


def shape_iou(outputs: torch.Tensor, background: torch.Tensor, mask: torch.Tensor, thresh: float = 0.1):
    """IoU of ``mask`` with the pixels where ``outputs`` differ from the known background by > ``thresh``."""
    fg = (outputs - background).abs().mean(1) > thresh
    inter, union = (fg & mask).flatten(1).sum(1), (fg | mask).flatten(1).sum(1)
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(inter, dtype=torch.float32))


def spread(images: torch.Tensor) -> float:
    """Variance across the set, per pixel and channel, averaged: 0 when every image is the same."""
    return float(images.var(0, unbiased=False).mean()) if len(images) > 1 else 0.0
