"""Figures of a comparison report, drawn off-screen (matplotlib's Figure on the Agg canvas; PIL for grids)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageFont

from cyclegan.atomic import atomic_write

LOSS_GROUPS = {
    "G = G_A + G_B": ("G_A", "G_B"),
    "D = D_A + D_B": ("D_A", "D_B"),
    "cycle = cycle_A + cycle_B": ("cycle_A", "cycle_B"),
}
WORDS = {"maximize": "higher is better", "minimize": "lower is better"}


def _label(text: object) -> str:
    """Names from specs shown literally by matplotlib (a '$' would start mathtext)."""
    return str(text).replace("$", r"\$")


def _save(fig: Figure, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write(path, lambda f: f.write(buf.getvalue()))
    return path


def _colors(arms: Sequence[str]) -> dict[str, tuple]:
    palette = [
        "#1f77b4",
        "#d62728",
        "#2ca02c",
        "#ff7f0e",
        "#9467bd",
        "#8c564b",
        "#e377c2",
        "#7f7f7f",
        "#bcbd22",
        "#17becf",
    ]
    return {a: palette[i % len(palette)] for i, a in enumerate(arms)}


def strip_plot(
    values: Mapping[str, Mapping[str, pd.Series]],
    cis: Mapping[str, Mapping[str, tuple[float, float]]],
    arms: Sequence[str],
    control: str,
    directions: Mapping[str, str],
    path: Path,
) -> Path:
    """One panel per metric that has a value: each seed a dot, the mean with its t interval, the control's
    mean dashed. A metric no run has (a task metric on folder data) gets no panel, not empty axes."""
    metrics = [m for m in values if any(s.notna().any() for s in values[m].values())]
    fig = Figure(
        figsize=(max(4.0, 1.1 * len(arms) + 1.5) * min(len(metrics), 3), 3.6 * -(-len(metrics) // 3))
    )
    axes = np.atleast_1d(fig.subplots(-(-len(metrics) // 3), min(len(metrics), 3), squeeze=False)).ravel()
    colors = _colors(arms)
    rng = np.random.default_rng(0)
    for ax, metric in zip(axes, metrics, strict=False):
        for i, arm in enumerate(arms):
            v = values[metric].get(arm, pd.Series([], dtype=float)).to_numpy(dtype=float)
            if v.size:
                ax.scatter(
                    i + rng.uniform(-0.12, 0.12, v.size), v, s=22, color=colors[arm], alpha=0.8, zorder=3
                )
                lo, hi = cis[metric].get(arm, (np.nan, np.nan))
                m = float(np.mean(v))
                if np.isfinite(lo) and np.isfinite(hi):
                    ax.errorbar(
                        i + 0.28, m, yerr=[[m - lo], [hi - m]], fmt="D", color="black", ms=4, capsize=3
                    )
                else:
                    ax.plot(i + 0.28, m, "D", color="black", ms=4)
                if arm == control:
                    ax.axhline(m, color=colors[arm], ls="--", lw=0.8, zorder=1)
        ax.set_xticks(range(len(arms)))
        ax.set_xticklabels(
            [_label(a) + (" (control)" if a == control else "") for a in arms], rotation=20, ha="right"
        )
        ax.set_xlim(-0.5, len(arms) - 0.3)
        ax.set_title(
            _label(f"{metric} ({WORDS.get(directions.get(metric, ''), 'direction unknown')})"), fontsize=10
        )
        ax.grid(axis="y", alpha=0.3)
    for ax in axes[len(metrics) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return _save(fig, path)


def _band(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Mean, min and max over seeds of ``column`` at each iteration (over the seeds that logged it)."""
    return frame.groupby("iteration")[column].agg(["mean", "min", "max", "count"]).sort_index()


def curves(
    frame: pd.DataFrame,
    panels: Mapping[str, Sequence[str]],
    arms: Sequence[str],
    path: Path,
    ylabel: str = "",
) -> Path | None:
    """One panel per entry of ``panels`` (title -> columns summed per run) that has data: mean over seeds,
    min-max band; a series of a single evaluation is drawn as a marker (a line needs two points)."""
    panels = {
        t: cols
        for t, cols in panels.items()
        if all(c in frame.columns for c in cols) and frame[list(cols)].notna().all(axis=1).any()
    }
    if frame.empty or not panels:
        return None
    n = len(panels)
    ncol = min(n, 3)
    fig = Figure(figsize=(5 * ncol, 3.4 * -(-n // 3)))
    axes = np.atleast_1d(fig.subplots(-(-n // 3), ncol, squeeze=False)).ravel()
    colors = _colors(arms)
    for ax, (title, cols) in zip(axes, panels.items(), strict=False):
        df = frame.assign(_y=frame[list(cols)].sum(axis=1, min_count=len(cols)))
        for arm in arms:
            sub = df[df["arm"] == arm]
            if sub["_y"].notna().sum() == 0:
                continue
            band = _band(sub.dropna(subset=["_y"]), "_y")
            marker = "o" if len(band) == 1 else None
            ax.plot(band.index, band["mean"], color=colors[arm], label=_label(arm), lw=1.4, marker=marker)
            ax.fill_between(band.index, band["min"], band["max"], color=colors[arm], alpha=0.18, lw=0)
        ax.set_title(_label(title), fontsize=10)
        ax.set_xlabel("iteration")
        if ylabel:
            ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.tight_layout()
    return _save(fig, path)


def _open(rows: Sequence[tuple[str, Path]]) -> list[tuple[str, Image.Image]]:
    out = []
    for label, png in rows:
        with Image.open(png) as im:
            out.append((label, im.convert("RGB")))
    return out


def _split(im: Image.Image, n: int) -> list[Image.Image] | None:
    """The n image rows of a torchvision make_grid (padding 1) with their padding lines; None if uneven."""
    if n == 0 or (im.height - 1) % n:
        return None
    h = (im.height - 1) // n
    return [im.crop((0, i * h, im.width, i * h + h + 1)) for i in range(n)]


def _draw(
    labelled: Sequence[tuple[str, Image.Image, bool]], path: Path, min_width: int, max_scale: int
) -> Path:
    """Rows of images with a label each (bold-ish header rows when the flag is set), enlarged, one PNG."""
    width = max(im.width for _, im, _ in labelled)
    scale = min(max_scale, max(1, -(-min_width // width)))
    font = ImageFont.load_default(size=14)
    margin = 10 + int(max((font.getlength(label) for label, _, header in labelled if not header), default=0))
    heights = [20 if header else im.height * scale for _, im, header in labelled]
    canvas = Image.new("RGB", (margin + width * scale, sum(heights)), "white")
    draw = ImageDraw.Draw(canvas)
    y = 0
    for (label, im, header), h in zip(labelled, heights, strict=True):
        if header:
            draw.text((4, y + 3), label, fill="black", font=font)
        else:
            canvas.paste(im.resize((im.width * scale, h), Image.Resampling.NEAREST), (margin, y))
            draw.text((4, y + h // 2 - 8), label, fill="#222222", font=font)
        y += h
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    atomic_write(path, lambda f: f.write(buf.getvalue()))
    return path


def sample_grid(
    rows: Sequence[tuple[str, Path]],
    path: Path,
    row_labels: Sequence[str] = (),
    min_width: int = 512,
    max_scale: int = 8,
) -> Path | None:
    """Each arm's output beside the same inputs (and true targets): one PNG from every arm's sample grid.

    ``rows`` = (arm, latest samples/*.png) and ``row_labels`` name the grid's image rows (torchvision
    make_grid, padding 1); rows named ``G_...`` are outputs. When every grid splits into those rows and the
    other rows (inputs, targets) are pixel-identical across arms, the figure shows per direction: the input
    row, one output row per arm, the target row. Otherwise each arm's grid is stacked whole under its name.
    Small grids (16-32 px crops) are enlarged by an integer factor, nearest-neighbour, so pixels stay sharp.
    """
    images = _open(rows)
    if not images:
        return None
    split = [_split(im, len(row_labels)) for _, im in images]
    shared = [i for i, name in enumerate(row_labels) if not name.startswith("G_")]
    aligned = all(s is not None for s in split) and all(
        s[i].tobytes() == split[0][i].tobytes() and s[i].size == split[0][i].size
        for s in split
        for i in shared
    )
    if aligned:
        labelled = []
        for i, name in enumerate(row_labels):
            if name.startswith("G_"):
                labelled += [
                    (f"{arm}: {name}", s[i], False) for (arm, _), s in zip(images, split, strict=True)
                ]
            else:
                labelled.append((name, split[0][i], False))
    else:
        labelled = [x for arm, im in images for x in ((arm, im, True), ("", im, False))]
    return _draw(labelled, path, min_width, max_scale)


VERDICT_COLORS = {
    "better": "#2ca02c",
    "worse": "#d62728",
    "equivalent": "#1f77b4",
    "differs": "#ff7f0e",
    "inconclusive": "#7f7f7f",
    "identical": "#bbbbbb",
    "n/a": "#bbbbbb",
}


def forest_plot(comparisons: pd.DataFrame, directions: Mapping[str, str], path: Path) -> Path | None:
    """The answer at a glance: one panel per declared metric (its own scale), one row per comparison: the
    difference with its family-adjusted interval, coloured by verdict, the margin band shaded around 0."""
    metrics = list(dict.fromkeys(comparisons["metric"]))
    if not metrics:
        return None
    heights = [max(1, int((comparisons["metric"] == m).sum())) for m in metrics]
    fig = Figure(figsize=(7.5, 0.9 + sum(0.42 * h + 0.75 for h in heights)))
    axes = np.atleast_1d(fig.subplots(len(metrics), 1, squeeze=False, height_ratios=heights)).ravel()
    for ax, metric in zip(axes, metrics, strict=True):
        rows = comparisons[comparisons["metric"] == metric].reset_index(drop=True)
        margin = float(rows["margin"].iloc[0])
        if np.isfinite(margin):
            ax.axvspan(-margin, margin, color="#1f77b4", alpha=0.12, lw=0, label=f"margin ±{margin:.3g}")
        ax.axvline(0, color="black", lw=0.8)
        for i, r in rows.iterrows():
            y = len(rows) - 1 - i
            color = VERDICT_COLORS.get(r["verdict"], "#7f7f7f")
            if np.isfinite(r["ci_low"]) and np.isfinite(r["ci_high"]):
                ax.hlines(y, r["ci_low"], r["ci_high"], color=color, lw=2.4)
            if np.isfinite(r["diff"]):
                ax.plot(r["diff"], y, "o", color=color, ms=6)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels(
            [
                _label(f"{a} vs {v}: {w}")
                for a, v, w in zip(rows["arm"], rows["vs"], rows["verdict"], strict=True)
            ][::-1],
            fontsize=9,
        )
        ax.set_ylim(-0.6, len(rows) - 0.4)
        word = WORDS.get(directions.get(metric, ""), "direction unknown")
        ax.set_title(_label(f"{metric}: arm - reference ({word})"), fontsize=10, loc="left")
        ax.grid(axis="x", alpha=0.3)
        if np.isfinite(margin):
            ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return _save(fig, path)
