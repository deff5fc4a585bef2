"""Out-of-domain probing: how much a generator changes images from neither domain, overall and in brownish
regions (a horse->zebra generator that learned "brown = horse" paints stripes on brown things).

"Brownish" pixels of the input: HSV hue in [10, 50] degrees (red-orange to orange-yellow), saturation >= 0.2
and value in [0.1, 0.8] - brown is a dark, moderately saturated orange; bright oranges and greys are excluded.
"""

from __future__ import annotations

import torch
from PIL import Image, ImageDraw, ImageFont

BROWN_HUE = (10.0, 50.0)  # degrees
BROWN_MIN_SAT = 0.2
BROWN_VALUE = (0.1, 0.8)


def hsv(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(hue in degrees, saturation, value) of (N, 3, H, W) images in [0, 1]."""
    r, g, b = images.unbind(1)
    v, _ = images.max(1)
    c = v - images.min(1).values
    s = torch.where(v > 0, c / v.clamp_min(1e-12), torch.zeros_like(v))
    safe = c.clamp_min(1e-12)
    h = torch.where(v == r, ((g - b) / safe) % 6, torch.where(v == g, (b - r) / safe + 2, (r - g) / safe + 4))
    return torch.where(c > 0, h * 60.0, torch.zeros_like(h)), s, v


def brownish(images: torch.Tensor) -> torch.Tensor:
    """(N, H, W) bool mask of brownish pixels (see the module docstring for the definition)."""
    h, s, v = hsv(images)
    return (
        (h >= BROWN_HUE[0])
        & (h <= BROWN_HUE[1])
        & (s >= BROWN_MIN_SAT)
        & (v >= BROWN_VALUE[0])
        & (v <= BROWN_VALUE[1])
    )


def change_report(inputs: torch.Tensor, outputs: torch.Tensor) -> list[dict]:
    """Per image: mean |output - input| (channel mean, [0, 1]), overall and in / outside brownish regions."""
    change = (outputs - inputs).abs().mean(1)
    brown = brownish(inputs)
    rows = []
    for d, m in zip(change, brown, strict=True):
        inside = float(d[m].mean()) if m.any() else None
        outside = float(d[~m].mean()) if (~m).any() else None
        ratio = inside / outside if inside is not None and outside else None
        rows.append(
            {
                "change": float(d.mean()),
                "brown_share": float(m.float().mean()),
                "change_brown": inside,
                "change_other": outside,
                "brown_over_other": ratio,
            }
        )
    return rows


PANEL_MIN, PANEL_MAX = 192, 512  # panel heights in the grid: small images enlarged, big ones reduced
FONT_SIZE = 16


def _panel(img: Image.Image) -> Image.Image:
    """Enlarge small images by a whole factor (nearest: pixels stay visible), reduce big ones (bicubic)."""
    h = img.height
    if h < PANEL_MIN:
        k = -(-PANEL_MIN // h)
        return img.resize((img.width * k, h * k), Image.NEAREST)
    if h > PANEL_MAX:
        return img.resize((max(1, round(img.width * PANEL_MAX / h)), PANEL_MAX), Image.BICUBIC)
    return img


def labelled_grid(rows: list[tuple[str, list[Image.Image]]], headers: list[str]) -> Image.Image:
    """One row per (caption, panels); a header line names the columns, a caption line sits above each row.
    Panels are shown at a size read at 100 % zoom: at least 192 and at most 512 pixels high."""
    font = ImageFont.load_default(size=FONT_SIZE)
    line, gap = FONT_SIZE + 8, 8
    rows = [(caption, [_panel(p) for p in panels]) for caption, panels in rows]
    n_cols = len(headers)
    widths = [max(panels[c].width for _, panels in rows) for c in range(n_cols)]
    heights = [max(p.height for p in panels) for _, panels in rows]
    width = sum(widths) + gap * (n_cols + 1)
    height = line + sum(line + h + gap for h in heights) + gap
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    xs = [gap + sum(widths[:c]) + gap * c for c in range(n_cols)]
    for x, header in zip(xs, headers, strict=True):
        draw.text((x, 4), header, fill="black", font=font)
    y = line
    for (caption, panels), h in zip(rows, heights, strict=True):
        draw.text((gap, y + 4), caption, fill="black", font=font)
        for x, panel in zip(xs, panels, strict=True):
            canvas.paste(panel, (x, y + line))
        y += line + h + gap
    return canvas
