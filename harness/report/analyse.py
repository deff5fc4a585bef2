"""The numbers of a comparison report: per-arm summaries, arm-vs-reference tests (the control, plus the spec's
extra `compare` pairs), Holm, verdicts in words."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import pandas as pd

from harness.report import stats
from harness.report.directions import directions
from harness.report.load import Store


@dataclass
class Analysis:
    metrics: list[str]
    directions: dict[str, str]
    headline: dict[str, pd.DataFrame]  # metric -> one row per arm (stats.describe)
    comparisons: pd.DataFrame  # one row per (arm, metric): stats.Comparison + Holm + power + verdict
    primary_verdicts: list[str]
    min_effect: float | None


def _signed(x: float) -> str:
    return f"{x:+.3g}" if math.isfinite(x) else "n/a"


def _p(x: float) -> str:
    return f"{x:.2g}" if math.isfinite(x) else "n/a"


def verdict(row: pd.Series) -> tuple[str, str]:
    """(short word for tables, one sentence) for one arm-vs-reference comparison."""
    arm, ref, metric, d = row["arm"], row["vs"], row["metric"], row["direction"]
    if row["n_arm"] < 2 or row["n_control"] < 2:
        return "n/a", (
            f"{arm} vs {ref} on {metric}: not enough finished runs ({row['n_arm']} vs "
            f"{row['n_control']}; two per arm needed)"
        )
    if row["identical"] and row["pooled_sd"] == 0:
        return "identical", (
            f"{arm} vs {ref} on {metric}: every seed of both gave {row['mean_arm']:.4g}; the metric "
            "saturates here and cannot tell the arms apart"
        )
    if row["identical"]:
        return "identical", (
            f"{arm} vs {ref} on {metric}: every seed gave exactly {ref}'s value; at this budget "
            "the arms trained alike (check that the changed setting takes effect)"
        )
    ci = f"{_signed(row['diff'])} [{_signed(row['ci_low'])}, {_signed(row['ci_high'])}]"
    if not math.isfinite(row["p_welch_holm"]):
        return "n/a", (
            f"{arm} vs {ref} on {metric}: {ci}; each arm gave one value in every seed (no variance), "
            "so the t-test is undefined"
        )
    if row["p_welch_holm"] < stats.ALPHA:
        if d == "unknown":
            word = "differs"
        else:
            word = "better" if (row["diff"] > 0) == (d == "maximize") else "worse"
        verb = f"differs from {ref}" if word == "differs" else f"is {word} than {ref}"
        return word, f"{arm} {verb} on {metric}: {ci}, p_holm = {_p(row['p_welch_holm'])}"
    n = row["seeds_needed"]
    target = "the stated minimum effect" if row["effect_source"] == "minimum" else "the observed one"
    if row["effect"] == 0:
        power = "the observed difference is zero"
    elif n is None or (isinstance(n, float) and math.isnan(n)):
        power = (
            f"no realistic number of seeds would detect a difference of {_signed(row['effect'])} ({target})"
        )
    else:
        power = (
            f"about {int(n)} seeds per arm would detect a difference of {_signed(row['effect'])} ({target}) "
            f"with {stats.POWER:.0%} power at alpha = {stats.ALPHA}"
        )
    return "no difference detected", (
        f"{arm} vs {ref} on {metric}: no detectable difference with {row['n_arm']} vs {row['n_control']} "
        f"seeds ({ci}, p_holm = {_p(row['p_welch_holm'])}); {power}"
    )


def _identical(store: Store, arm: str, ref: str, metric: str) -> bool:
    """True when every shared seed gave the arm exactly the reference's value (the arms trained alike)."""
    a, c = store.values(arm, metric), store.values(ref, metric)
    shared = a.index.intersection(c.index)
    return len(shared) >= 2 and bool((a.loc[shared] == c.loc[shared]).all())


def analyse(
    store: Store, *, min_effect: float | None = None, n_resamples: int = stats.N_RESAMPLES, seed: int = 0
) -> Analysis:
    """Every statistic the report shows, computed on the done runs only."""
    metrics = store.metric_names
    dirs = directions(store.experiment, metrics)
    arms = store.arms
    primary = store.experiment["metrics"]["primary"]
    secondary = [m for m in store.experiment["metrics"].get("secondary", []) or [] if m in metrics]

    headline = {}
    for metric in [primary, *secondary]:
        rows = [
            {"arm": a, **stats.describe(store.values(a, metric), n_resamples=n_resamples, seed=seed)}
            for a in arms
        ]
        headline[metric] = pd.DataFrame(rows)

    rows = []
    for metric in metrics:
        for arm, ref in store.pairs:
            c = stats.compare(
                store.values(arm, metric),
                store.values(ref, metric),
                arm=arm,
                metric=metric,
                direction=dirs[metric],
                n_resamples=n_resamples,
                seed=seed,
            )
            row = dataclasses.asdict(c)
            rows.append({"arm": arm, "vs": ref, **row, "identical": _identical(store, arm, ref, metric)})
    cols = ["arm", "vs"] + [f.name for f in dataclasses.fields(stats.Comparison) if f.name != "arm"]
    comp = pd.DataFrame(rows, columns=[*cols, "identical"])
    declared = [primary, *secondary]
    comp.insert(0, "family", ["declared" if m in declared else "exploratory" for m in comp["metric"]])
    # Holm over every arm x metric of a family, per test: the spec's declared metrics are the confirmatory
    # family; the rest (per-coat breakdowns, diagnostics) form a separate exploratory family, so that adding
    # diagnostics to the Evaluator never dilutes the power of the question the spec asked.
    for test in ("welch", "mwu"):
        comp[f"p_{test}_holm"] = float("nan")
        for fam in ("declared", "exploratory"):
            mask = comp["family"] == fam
            if mask.any():
                comp.loc[mask, f"p_{test}_holm"] = stats.holm(
                    comp.loc[mask, f"p_{test}"].to_numpy(dtype=float)
                )
    use_min = [min_effect is not None and m == primary for m in comp["metric"]]
    comp["effect_source"] = ["minimum" if u else "observed" for u in use_min]
    comp["effect"] = [
        float(min_effect) if u else d
        for u, d in zip(use_min, comp["diff"].to_numpy(dtype=float), strict=True)
    ]
    comp["seeds_needed"] = [
        stats.seeds_needed(e, s) for e, s in zip(comp["effect"], comp["pooled_sd"], strict=True)
    ]
    comp["seeds_needed"] = comp["seeds_needed"].astype(object)
    words = [verdict(r) for _, r in comp.iterrows()]
    comp["verdict"] = [w for w, _ in words]
    comp["sentence"] = [s for _, s in words]
    prim = comp[comp["metric"] == primary]
    primary_verdicts = list(prim["sentence"]) or [f"no arm besides the control {store.control} to compare"]
    return Analysis(metrics, dirs, headline, comp, primary_verdicts, min_effect)


def arm_cis(analysis: Analysis) -> dict[str, dict[str, tuple[float, float]]]:
    """metric -> arm -> bootstrap CI of the mean, for the strip plots."""
    return {
        m: {r["arm"]: (r["ci_low"], r["ci_high"]) for _, r in df.iterrows()}
        for m, df in analysis.headline.items()
    }
