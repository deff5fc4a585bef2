"""Seeds ahead of time: how many seeds the spec's margins need (``harness run --dry-run``) and how many to add
next while comparisons are undecided (``harness run --until-decided``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import UserError
from harness.report import sequential, stats
from harness.report.analyse import analyse
from harness.report.load import load_store
from harness.report.references import reference_sections


def _sd(folder: Path, metric: str) -> tuple[float, int]:
    """Pooled within-arm sd of ``metric`` over the experiment's done runs, and how many runs it rests on."""
    try:
        st = load_store(folder.parent, folder.name)
    except UserError:
        return math.nan, 0
    groups = [st.values(a, metric).to_numpy() for a in st.arms]
    groups = [g for g in groups if g.size >= 2]
    dof = sum(g.size - 1 for g in groups)
    if dof == 0:
        return math.nan, 0
    return math.sqrt(sum(np.var(g, ddof=1) * (g.size - 1) for g in groups) / dof), sum(g.size for g in groups)


def margin_lines(spec: Any, folder: Path, primary: str, secondary: list[str]) -> list[str]:
    """``spec``: an ablation spec (harness.engine.spec.Spec; reports do not import the engine); ``primary``
    and ``secondary``: the metrics the plan picked for its data. Per planned metric with a margin: seeds per
    arm for an 80%-power decision at the margin, at the family's final-look level, using the sd of runs
    already in the store (else per sd in margin units)."""
    pairs = len(spec.arms) - 1 + len(spec.compare)
    sizes = {primary: pairs, **{m: pairs * len(secondary) for m in secondary}}
    lines = []
    for metric, margin in spec.margins.items():
        if metric not in sizes:  # a fallback this data does not need
            continue
        lvl = sequential.level(
            spec.max_seeds or len(spec.seeds), sizes[metric], start=len(spec.seeds), max_seeds=spec.max_seeds
        )
        sd, runs = _sd(folder, metric)
        head = f"  {metric}: margin {margin:g}, level {lvl:.3g} per comparison (family of {sizes[metric]})"
        if runs:
            n = stats.seeds_for_margin(margin, sd, lvl)
            need = f"{n} seeds per arm" if n else "more than 1000 seeds per arm"
            lines.append(f"{head}: {need} (sd {sd:.3g} from {runs} done runs)")
        else:
            ratios = ", ".join(
                f"{r:g} sd: {stats.seeds_for_margin(r, 1.0, lvl) or '>1000'}" for r in (0.5, 1.0, 2.0)
            )
            lines.append(f"{head}: no done runs to estimate the sd; seeds per arm if the margin is {ratios}")
    if not lines:
        lines.append("  no metric declares a margin (metrics.margin): nothing can be called equivalent")
    return [f"seeds for an {stats.POWER:.0%}-power decision at each margin:", *lines]


def next_seeds(store: Path, name: str) -> tuple[int | None, str]:
    """(seeds per arm for the next batch, or None to stop; why) from the experiment's current report
    numbers: stop when every declared comparison is decided or max_seeds is reached. A comparison on a metric
    that is not discriminative on this data set carries no verdict at any n (as in the report), so it does
    not ask for seeds."""
    st = load_store(store, name)
    an = analyse(st)
    fooled = reference_sections(st)[1]
    declared = an.comparisons[an.comparisons["family"] != "exploratory"]
    n = len(st.experiment.get("seeds") or [])
    open_ = [
        f"{r.arm} vs {r.vs} on {r.metric}"
        for r in declared.itertuples()
        if r.verdict not in sequential.DECIDED and r.metric not in fooled
    ]
    if not open_:
        blind = sorted(fooled & set(declared["metric"]))
        aside = f" (no verdict on {', '.join(blind)}: not discriminative on this data set)" if blind else ""
        return None, f"every declared comparison is decided at {n} seeds per arm{aside}"
    later = [p for p in sequential.schedule(an.design["start"], an.design["max_seeds"]) if p > n]
    if not later:
        return (
            None,
            f"max_seeds ({an.design['max_seeds'] or n}) reached; {len(open_)} undecided: {'; '.join(open_)}",
        )
    return later[0], f"{len(open_)} comparison(s) undecided at {n} seeds per arm; going to {later[0]}"
