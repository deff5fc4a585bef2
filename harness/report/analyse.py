"""The numbers of a comparison report: per-arm summaries, arm-vs-reference comparisons (the control, plus the
spec's extra `compare` pairs) with family-adjusted Welch intervals, and the verdict each interval gives
(harness.report.sequential explains the error control)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from harness.report import sequential, stats
from harness.report.directions import directions
from harness.report.load import Store

FAMILIES = ("primary", "secondary", "exploratory")


@dataclass
class Analysis:
    metrics: list[str]
    directions: dict[str, str]
    headline: dict[str, pd.DataFrame]  # metric -> one row per arm (stats.describe)
    comparisons: pd.DataFrame  # one row per (arm, vs, metric): family, adjusted interval, p-values, verdict
    primary_verdicts: list[str]
    design: dict[str, Any]  # alpha, start, max_seeds: the sequential design the levels come from


def _signed(x: float) -> str:
    return f"{x:+.3g}" if math.isfinite(x) else "n/a"


def _p(x: float) -> str:
    return f"{x:.2g}" if math.isfinite(x) else "n/a"


def confidence(level: float) -> str:
    """The interval's coverage with enough decimals that a tiny level never rounds to "100%"."""
    decimals = max(1, math.ceil(-math.log10(100 * level)) + 1) if 0 < level < 1 else 1
    return f"{100 * (1 - level):.{decimals}f}%"


def _interval(row: pd.Series) -> str:
    conf = confidence(row["level"])
    return f"{_signed(row['diff'])} [{_signed(row['ci_low'])}, {_signed(row['ci_high'])}] ({conf} interval)"


def sentence(row: pd.Series) -> str:
    """One line per comparison, worded exactly as its verdict: better / worse / equivalent within the margin /
    inconclusive at n seeds (plus the cases with no test at all)."""
    arm, ref, metric, v = row["arm"], row["vs"], row["metric"], row["verdict"]
    seeds = f"{row['n_arm']} vs {row['n_control']} seeds"
    if row["n_arm"] < 2 or row["n_control"] < 2:
        shown = math.isfinite(row["diff"])
        means = f"means {row['mean_arm']:.4g} vs {row['mean_control']:.4g}, " if shown else ""
        return (
            f"{arm} vs {ref} on {metric}: no test, not enough finished runs ({means}{seeds}; a test needs at "
            "least 2 per arm: run more seeds, `--dry-run` shows the seeds the margins need)"
        )
    if v == "identical":
        what = (
            f"every seed of both gave {row['mean_arm']:.4g}; the metric saturates here and cannot tell "
            "the arms apart"
            if row["se"] == 0
            else f"every seed gave exactly {ref}'s value; at this budget the arms trained alike (check that "
            "the changed setting takes effect)"
        )
        return f"{arm} vs {ref} on {metric}: {what}"
    if v == "n/a":
        return (
            f"{arm} vs {ref} on {metric}: {_signed(row['diff'])}; each arm gave one value in every seed "
            "(no variance), so there is no interval"
        )
    p = f"p_adj = {_p(row['p_welch_adj'])}"
    if v in ("better", "worse"):
        return f"{arm} is {v} than {ref} on {metric}: {_interval(row)}, {p}, {seeds}"
    if v == "differs":
        return f"{arm} differs from {ref} on {metric} (direction unknown): {_interval(row)}, {p}, {seeds}"
    if v == "equivalent":
        return (
            f"{arm} is equivalent to {ref} on {metric} within the margin +/-{row['margin']:.3g}: "
            f"{_interval(row)}, TOST p_adj = {_p(row['p_tost_adj'])}, {seeds}"
        )
    margin = (
        f"equivalence needs the interval inside +/-{row['margin']:.3g}"
        if math.isfinite(row["margin"])
        else "no margin is declared, so it cannot be called equivalent"
    )
    return (
        f"{arm} vs {ref} on {metric}: inconclusive at {seeds} ({_interval(row)}, {p}); these seeds detect "
        f"a difference of {_p(row['mde'])} with {stats.POWER:.0%} power; {margin}"
    )


def _identical(store: Store, arm: str, ref: str, metric: str) -> bool:
    """True when every shared seed gave the arm exactly the reference's value (the arms trained alike)."""
    a, c = store.values(arm, metric), store.values(ref, metric)
    shared = a.index.intersection(c.index)
    return len(shared) >= 2 and bool((a.loc[shared] == c.loc[shared]).all())


def design(experiment: dict[str, Any]) -> dict[str, Any]:
    """The error-control design a report's levels follow: alpha per family, first look and max seeds."""
    start = int(experiment.get("first_seeds") or len(experiment.get("seeds") or []) or 1)
    return {"alpha": stats.ALPHA, "start": start, "max_seeds": experiment.get("max_seeds")}


def _arm(store: Store, arm: str, metric: str, threshold: float | None, direction: str) -> dict[str, Any]:
    """One arm's headline row; with per-image scores stored, also the hierarchical bootstrap interval of the
    mean (seeds and test images resampled), NaN without them."""
    lo, hi = stats.hierarchical_bootstrap(store.image_scores(arm, metric))
    return {
        "arm": arm,
        **stats.describe(store.values(arm, metric), threshold=threshold, direction=direction),
        "hb_low": lo,
        "hb_high": hi,
    }


def _family(metric: str, primary: str, secondary: list[str]) -> str:
    return "primary" if metric == primary else "secondary" if metric in secondary else "exploratory"


def _row(store: Store, arm: str, ref: str, metric: str, direction: str, margin: float | None) -> dict:
    x, y = store.values(arm, metric), store.values(ref, metric)
    c = stats.compare(x, y, arm=arm, metric=metric, direction=direction)
    w = stats.welch(x, y)
    return {
        **dataclasses.asdict(c),
        "vs": ref,
        "margin": math.nan if margin is None else float(margin),
        "p_tost": w.tost_p(margin),
        "identical": _identical(store, arm, ref, metric),
        "welch": w,
    }


def _adjusted(p: float, scale: float) -> float:
    """min(1, p x scale); NaN stays NaN (no test), never a misleading 1."""
    return min(1.0, p * scale) if math.isfinite(p * scale) else math.nan


def _decide(row: dict, m: int, dsg: dict[str, Any]) -> dict:
    """The family's level at this look, the interval and verdict read off it, and the adjusted p-values
    (p x alpha / level: below alpha exactly when the interval excludes 0, or lies inside the margin)."""
    n = min(row["n_arm"], row["n_control"])
    if n < 2:
        lvl = math.nan
        d = sequential.Decision(row["diff"], math.nan, math.nan, lvl, "n/a")
    else:
        lvl = sequential.level(n, m, start=dsg["start"], max_seeds=dsg["max_seeds"], alpha=dsg["alpha"])
        margin = row["margin"] if math.isfinite(row["margin"]) else None
        d = sequential.decide(row.pop("welch"), lvl, margin, row["direction"])
    row.pop("welch", None)
    scale = dsg["alpha"] / lvl if math.isfinite(lvl) else math.nan
    smallest = stats.smallest_rank_p(row["n_arm"], row["n_control"])
    verdict = "identical" if row["identical"] and d.verdict in ("n/a", "inconclusive") else d.verdict
    return {
        **row,
        "level": lvl,
        "ci_low": d.low,
        "ci_high": d.high,
        "p_welch_adj": _adjusted(row["p_welch"], scale),
        "p_tost_adj": _adjusted(row["p_tost"], 2 * scale),
        "p_rank_adj": _adjusted(row["p_rank"], scale),
        "rank_can_reject": bool(smallest < lvl) if math.isfinite(lvl) else False,
        "mde": stats.Welch(row["diff"], row["se"], row["df"]).mde(lvl) if math.isfinite(lvl) else math.nan,
        "verdict": verdict,
    }


def analyse(store: Store) -> Analysis:
    """Every statistic the report shows, computed on the done runs only. Three families, each at alpha:
    the primary metric's comparisons, the declared secondary metrics', and every other metric's
    (exploratory): adding a secondary or a diagnostic never dilutes the primary question."""
    exp = store.experiment
    metrics = store.metric_names
    dirs = directions(exp, metrics)
    primary = exp["metrics"]["primary"]
    secondary = [m for m in exp["metrics"].get("secondary", []) or [] if m in metrics and m != primary]
    margins = exp["metrics"].get("margin") or {}
    failure = exp["metrics"].get("failure") or {}
    dsg = design(exp)

    headline = {
        metric: pd.DataFrame([_arm(store, a, metric, failure.get(metric), dirs[metric]) for a in store.arms])
        for metric in [primary, *secondary]
    }
    raw = [
        {"family": _family(m, primary, secondary),
         **_row(store, a, ref, m, dirs[m], margins.get(m))}
        for m in metrics
        for a, ref in store.pairs
    ]  # fmt: skip
    sizes = {f: sum(r["family"] == f for r in raw) for f in FAMILIES}
    rows = [_decide(r, sizes[r["family"]], dsg) for r in raw]
    cols = ["family", "arm", "vs", "metric", "direction", "n_arm", "n_control", "mean_arm", "mean_control",
            "diff", "ci_low", "ci_high", "level", "p_welch", "p_welch_adj", "margin", "p_tost", "p_tost_adj",
            "p_rank", "p_rank_adj", "rank_can_reject", "mde", "p_improve", "se", "df", "identical",
            "verdict"]  # fmt: skip
    comp = pd.DataFrame(rows, columns=cols)
    comp["sentence"] = [sentence(r) for _, r in comp.iterrows()]
    prim = comp[comp["family"] == "primary"]
    primary_verdicts = list(prim["sentence"]) or [f"no arm besides the control {store.control} to compare"]
    return Analysis(metrics, dirs, headline, comp, primary_verdicts, dsg)


def arm_cis(analysis: Analysis) -> dict[str, dict[str, tuple[float, float]]]:
    """metric -> arm -> 95% t interval of the mean, for the strip plots."""
    return {
        m: {r["arm"]: (r["ci_low"], r["ci_high"]) for _, r in df.iterrows()}
        for m, df in analysis.headline.items()
    }
