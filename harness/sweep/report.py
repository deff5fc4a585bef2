"""The sweep report (``reports/<sweep>/``): best trials, search plots, importances, pruning savings and a
recommendation confirmed against the default with fresh seeds. Same formats as the ablation report (shared
rendering and statistics): report.md, a self-contained report.html, trials.csv, runs.csv and PNG figures.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState

from cyclegan.atomic import atomic_write_json, atomic_write_text
from harness.engine import store as engine_store
from harness.errors import UserError
from harness.report import render, sequential, stats
from harness.report.index import write_index
from harness.report.render import Bullets, Code, Figure, KeyValues, Section, Table, Text, fmt
from harness.sweep.confirm import CONFIRM_FILE, best_trial
from harness.sweep.snapshot import SNAPSHOT, rebuild, write_snapshot

TOP = 10  # rows of the best-trials table
MIN_SEEDS = 3  # fewer confirmation seeds per arm: intervals are shown, no better/worse verdict


def _storage_study(folder: Path, name: str, storage: str | None) -> optuna.Study | None:
    """The live study (journal file in the folder, or ``storage``), or None when it cannot be opened."""
    from harness.engine.queue import open_storage

    journal = folder / "queue.journal"
    if storage is None and not journal.is_file():
        return None
    try:
        return optuna.load_study(study_name=name, storage=open_storage(storage, journal, parallel=False))
    except (KeyError, UserError):
        return None


def is_sweep(store: Path, name: str) -> bool:
    """True when runs/<name>/experiment.json says kind "sweep" (``harness report`` dispatches on it)."""
    return (engine_store.read_json(Path(store) / name / "experiment.json") or {}).get("kind") == "sweep"


def load(store: Path, name: str, storage: str | None = None) -> tuple[dict, optuna.Study, dict]:
    """experiment.json, the study and the snapshot (refreshed first when the storage is reachable)."""
    folder = Path(store) / name
    experiment = engine_store.read_json(folder / "experiment.json")
    if not experiment or experiment.get("kind") != "sweep":
        raise UserError(f"no sweep '{name}' in {store} (no sweep experiment.json in {folder})")
    live = _storage_study(folder, name, storage)
    snapshot = write_snapshot(folder, live) if live is not None else engine_store.read_json(folder / SNAPSHOT)
    if snapshot is None:
        raise UserError(f"sweep '{name}': no trials.json in {folder} and the study storage cannot be opened")
    return experiment, rebuild(snapshot), snapshot


def _counted(records: list[dict]) -> list[dict]:
    """Trials that count (surplus ones given back after a race are left out of every table)."""
    return [t for t in records if not t["user_attrs"].get("surplus")]


def trials_frame(records: list[dict], metrics: list[str]) -> pd.DataFrame:
    rows = []
    for t in _counted(records):
        a, cost = t["user_attrs"], t["user_attrs"].get("cost") or {}
        row: dict[str, Any] = {
            "trial": t["number"],
            "state": t["state"].lower(),
            "unit": a.get("unit", t["number"]),
        }
        for i, m in enumerate(metrics):
            row[m] = t["values"][i] if t["values"] and t["state"] == "COMPLETE" else None
        row.update({f"param {k}": v for k, v in t["params"].items()})
        row.update(
            iterations=cost.get("iterations"),
            wall_seconds=cost.get("wall_seconds"),
            pruned_at=(a.get("pruned_at") or {}).get("iteration"),
            error=a.get("error"),
            worker=a.get("worker"),
            runs=" ".join(a.get("runs", [])),
        )
        rows.append(row)
    return pd.DataFrame(rows)


def runs_frame(folder: Path) -> pd.DataFrame:
    rows = []
    for run_dir in sorted(p for p in folder.iterdir() if p.is_dir() and (p / "run.json").is_file()):
        run = engine_store.read_json(run_dir / "run.json") or {}
        summary = engine_store.read_json(run_dir / "summary.json") or {}
        row = {
            "run": run_dir.name,
            "arm": run.get("arm"),
            "seed": run.get("seed"),
            "status": summary.get("status") or run.get("status"),
            "error": summary.get("error") or run.get("error"),
            "attempt": run.get("attempt"),
            "iteration": summary.get("iteration"),
            "total": summary.get("total"),
            "wall_seconds": (summary.get("cost") or {}).get("wall_seconds"),
            "worker": run.get("worker"),
        }
        row.update(summary.get("metrics") or {})
        rows.append(row)
    return pd.DataFrame(rows)


def _save(ax: Any, path: Path) -> Path:
    """Save the figure of an Optuna matplotlib plot (an Axes or an array of them)."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    first = np.ravel(ax)[0] if isinstance(ax, np.ndarray) else ax
    fig = first.figure
    for a in fig.axes:  # Optuna labels log axes at every minor tick too; the labels overlap into a smear
        for axis in (a.xaxis, a.yaxis):
            if axis.get_scale() == "log":
                axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
                axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
                axis.set_minor_formatter(NullFormatter())
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def _plot(caption: str, path: Path, notes: list[str], what: str, draw: Any, kwargs: dict) -> list[Figure]:
    """The figure ``draw(**kwargs)`` saved to ``path`` (one item), or none with a note when it cannot be."""
    import matplotlib

    matplotlib.use("Agg")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return [Figure(_save(draw(**kwargs), path), caption)]
    except Exception as exc:  # noqa: BLE001 - a plot that cannot be drawn (too few trials) is noted, not fatal
        notes.append(f"{what}: not drawn ({type(exc).__name__}: {' '.join(str(exc).split())[:160]})")
        return []


def importances(study: optuna.Study, target: Any, notes: list[str]) -> tuple[dict[str, float], str]:
    """fANOVA (Optuna's default); mean decrease in impurity, then PED-ANOVA (no scikit-learn) as fallbacks."""
    from optuna.importance import (
        FanovaImportanceEvaluator,
        MeanDecreaseImpurityImportanceEvaluator,
        PedAnovaImportanceEvaluator,
    )

    evaluators = (
        FanovaImportanceEvaluator(seed=0),
        MeanDecreaseImpurityImportanceEvaluator(seed=0),
        PedAnovaImportanceEvaluator(),
    )
    for evaluator in evaluators:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return optuna.importance.get_param_importances(
                    study, evaluator=evaluator, target=target
                ), type(evaluator).__name__.replace("ImportanceEvaluator", "")
        except Exception as exc:  # noqa: BLE001 - too few finished trials, or one parameter value only
            notes.append(f"{type(evaluator).__name__}: {' '.join(str(exc).split())[:160]}")
    return {}, "none"


def pruning_savings(records: list[dict], n_seeds: int) -> dict[str, float]:
    """Iterations and time spent by pruned trials vs what they would have cost run to the end."""
    keys = ("iterations", "full_iterations", "seconds", "full_seconds")
    s = dict.fromkeys([f"pruned_{k}" for k in keys] + ["all_iterations", "all_full_iterations"], 0.0)
    for t in _counted(records):
        cost = t["user_attrs"].get("cost") or {}
        it, total = cost.get("iterations") or 0, cost.get("total_iterations") or 0
        if t["state"] not in ("COMPLETE", "PRUNED") or not total:
            continue
        full = total / max(1, len(t["user_attrs"].get("runs", []))) * n_seeds
        s["all_iterations"] += it
        s["all_full_iterations"] += full
        if t["state"] == "PRUNED":
            wall = cost.get("wall_seconds") or 0
            s["pruned_iterations"] += it
            s["pruned_full_iterations"] += full
            s["pruned_seconds"] += wall
            s["pruned_full_seconds"] += wall / it * full if it else 0.0
    return s


EDGE = 0.05  # share of a parameter's range (log scale where sampled so) that counts as its edge


def edge_notes(params: dict[str, dict], best: dict[str, Any]) -> list[str]:
    """A best value at the edge of its searched range says the optimum may lie outside it: the user should
    widen the range rather than trust the recommendation as an optimum."""
    notes = []
    for key, p in params.items():
        if p["type"] not in ("float", "int") or key not in best:
            continue
        lo, hi, v = float(p["low"]), float(p["high"]), float(best[key])
        scale = math.log if p.get("log") else (lambda x: x)
        where = (scale(v) - scale(lo)) / (scale(hi) - scale(lo)) if hi > lo else 0.5
        side = "top" if where >= 1 - EDGE else "bottom" if where <= EDGE else None
        if side:
            notes.append(
                f"{key} = {fmt(v)} is in the {side} {EDGE:.0%} of its range [{fmt(lo)}, {fmt(hi)}]"
                f"{' (log scale)' if p.get('log') else ''}: the optimum may lie outside it; widen the range "
                "before reading this as the best value"
            )
    return notes


def _show(value: Any) -> str:
    """4 significant digits, still a TOML float (``10.0``, not ``10``)."""
    if isinstance(value, float):
        return repr(float(f"{value:.4g}"))
    return str(value).lower() if isinstance(value, bool) else str(value)


def _toml(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else _show(value)


def _verdict(c: stats.Comparison, margin: float | None, alpha: float, name: str, level: str) -> str:
    """The ablation reports' rule (``sequential.verdict``) on the family-adjusted Welch interval: better /
    worse when it excludes 0; equivalent when it lies inside the declared margin, i.e. TOST at half its
    level; else inconclusive; no verdict on too few seeds."""
    if min(c.n_arm, c.n_control) < MIN_SEEDS:
        return (
            f"{c.metric}: too few seeds for a verdict ({c.n_arm} / {c.n_control}; at least {MIN_SEEDS} "
            f"per arm): `harness sweep {name} --confirm 5`"
        )
    v = sequential.verdict(c.ci_low, c.ci_high, margin, c.direction)
    interval = f"[{fmt(c.ci_low)}, {fmt(c.ci_high)}]"
    if v in ("better", "worse"):
        seeds = f"{c.n_arm} fresh seeds"
        return f"{c.metric}: the best config is {v} than the default on {seeds} ({level} {interval})."
    if v == "equivalent":
        p_tost = stats.Welch(c.diff, c.se, c.df).tost_p(margin)
        return (
            f"{c.metric}: the best config is equivalent to the default within the declared margin "
            f"+/-{margin:g} on {c.n_arm} fresh seeds ({level} {interval}; "
            f"TOST p = {fmt(p_tost)} < {alpha / 2:g})."
        )
    why = f"it is not inside the margin +/-{margin:g}" if margin else "no margin is declared"
    return (
        f"{c.metric}: inconclusive at {c.n_arm} fresh seeds: the {level} {interval} contains 0 and {why}; "
        f"more seeds (`harness sweep {name} --confirm N`) would narrow it."
    )


def _confirmation(folder: Path, experiment: dict, notes: list[str]) -> list[Any]:
    conf = engine_store.read_json(folder / CONFIRM_FILE)
    if not conf:
        return [
            Text(
                f"Not confirmed yet: run `harness sweep {experiment['name']} --confirm 5` to re-run the best "
                "config and the default with 5 fresh seeds."
            )
        ]
    metrics = experiment["metrics"]
    objectives = [metrics["primary"], *metrics.get("secondary", [])]
    declared = experiment["sweep"]["objectives"]
    directions = [o["direction"] for o in declared]
    margins = [o.get("margin") for o in declared]
    values: dict[str, dict[str, list[float]]] = {}
    for arm, runs in conf["runs"].items():
        for run in runs:
            summary = engine_store.read_json(folder / run / "summary.json") or {}
            if summary.get("status") != "done":
                notes.append(f"confirmation run {run}: {summary.get('status', 'missing')}")
                continue
            for m in objectives:
                v = (summary.get("metrics") or {}).get(m)
                if v is not None:
                    values.setdefault(m, {}).setdefault(arm, []).append(float(v))
    rows, verdicts = [], []
    n = len(objectives)
    alpha = stats.ALPHA / n  # Bonferroni over the objectives: one family
    confidence = 1 - alpha
    level = f"{100 * confidence:g}% Welch interval of the difference, Bonferroni over {n} objective(s)"
    for m, d, margin in zip(objectives, directions, margins, strict=True):
        best = values.get(m, {}).get("confirm-best", [])
        default = values.get(m, {}).get("confirm-default", [])
        c = stats.compare(best, default, arm="best", metric=m, direction=d, confidence=confidence)
        lo_b, hi_b = stats.t_interval(best)
        lo_d, hi_d = stats.t_interval(default)
        rows.append(
            {
                "metric": m,
                "direction": d,
                "seeds": f"{c.n_arm} / {c.n_control}",
                "best mean": c.mean_arm,
                "best 95% CI": f"[{fmt(lo_b)}, {fmt(hi_b)}]",
                "default mean": c.mean_control,
                "default 95% CI": f"[{fmt(lo_d)}, {fmt(hi_d)}]",
                "best - default": c.diff,
                "diff adjusted CI": f"[{fmt(c.ci_low)}, {fmt(c.ci_high)}]",
                "Welch p": c.p_welch,
                "margin": margin,
                "TOST p": stats.Welch(c.diff, c.se, c.df).tost_p(margin),
                "P(best better)": c.p_improve,
            }
        )
        verdicts.append(_verdict(c, margin, alpha, experiment["name"], level))
    default = ", ".join(f"{k}={v}" for k, v in conf["default"].items())
    seeds = ", ".join(str(s) for s in conf["seeds"])
    return [
        KeyValues([("fresh seeds", seeds), ("best trial", str(conf["best_trial"])), ("default", default)]),
        Table(pd.DataFrame(rows), "Best config vs default re-run with the same fresh seeds"),
        Bullets(verdicts),
    ]


def _summary(experiment: dict, snapshot: dict, states: dict[str, int]) -> Section:
    sweep = experiment["sweep"]
    objectives = sweep["objectives"]
    multi = len(objectives) > 1
    seeds = experiment.get("seeds") or [0]
    off = " (off: Optuna cannot prune several objectives)" if multi else ""
    trials = (
        f"{states['complete']} finished, {states['pruned']} pruned, {states['fail']} failed, "
        f"{states['unfinished']} unfinished"
    )
    search = f"{sweep['sampler']} sampler (seed {sweep['sampler_seed']} + worker index), pruner "
    named = ", ".join(f"{o['metric']} ({o['direction']})" for o in objectives)
    items = [
        ("objective" + ("s" if multi else ""), named),
        ("trials", trials),
        ("target", str(snapshot["user_attrs"].get("target_trials", "?"))),
        ("search", search + sweep["pruner"] + off),
        ("seeds per trial", f"{len(seeds)} (seed{'s' * (len(seeds) > 1)} {', '.join(map(str, seeds))})"),
        ("preset / data", f"{experiment.get('preset')} / {experiment.get('data')}"),
        ("storage", str(experiment.get("storage"))),
        ("command", str(experiment.get("command"))),
    ]
    return Section("Summary", [Text(experiment.get("question") or ""), KeyValues(items)])


def _best_trials(study: optuna.Study, frame: pd.DataFrame, metrics: list[str], directions: list) -> Section:
    if not any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        return Section("Best trials", [Text("No finished trial yet.")])
    shown = frame[frame["state"] == "complete"]
    if len(metrics) > 1:
        front = {t.number for t in study.best_trials}
        shown = shown[shown["trial"].isin(front)]
        head = Text(f"Pareto front: {len(front)} trial(s) that no other trial beats on every objective.")
    else:
        shown = shown.sort_values(metrics[0], ascending=directions[0] == "minimize")
        best = study.best_trial
        values = ", ".join(f"{k} = {fmt(v)}" for k, v in best.params.items())
        head = Text(f"Best trial: {best.number} with {metrics[0]} = {fmt(best.value)} ({values})", bold=True)
    columns = ["trial", *metrics, *_params(frame), "iterations", "wall_seconds"]
    return Section(
        "Best trials", [head, Table(shown[columns].head(TOP), f"Best {min(TOP, len(shown))} finished trials")]
    )


def _recommendation(study: optuna.Study, folder: Path, experiment: dict, notes: list[str]) -> list[Any]:
    """The best config as overrides to paste, its edge notes and its confirmation."""
    sweep = experiment["sweep"]
    best = best_trial(study, [o["direction"] for o in sweep["objectives"]])
    source = {k: key for key, p in sweep["params"].items() for k in [key, *p["tie"]]}  # config key -> param
    overrides = {k: best.params[key] for k, key in source.items() if key in best.params}
    rec: list[Any] = [
        Text(f"Recommended (trial {best.number}); paste into a command, or into a spec:"),
        Code(" ".join(f"--set {k}={_show(v)}" for k, v in overrides.items())),
        Code("\n".join(["[base]", *(f'"{k}" = {_toml(v)}' for k, v in overrides.items())])),
    ]
    edges = edge_notes(sweep["params"], best.params)
    if edges:
        rec.append(Bullets(edges))
    return rec + _confirmation(folder, experiment, notes)


def _search(study: optuna.Study, frame: pd.DataFrame, metrics: list[str], dest: Path, notes: list) -> list:
    """Optuna's plots and parameter importances, per objective."""
    vis = optuna.visualization.matplotlib
    multi, label = len(metrics) > 1, metrics[0]
    targets = [(lambda t, i=i: t.values[i], m) for i, m in enumerate(metrics)] if multi else [(None, label)]
    figs: list[Any] = []
    for target, label in targets:
        slug, on = label.replace("/", "_"), {"study": study, "target": target, "target_name": label}
        figs += _plot(
            f"Optimisation history of {label} (each finished trial; line = best so far)",
            dest / f"history-{slug}.png", notes, "optimisation history", vis.plot_optimization_history, on,
        )  # fmt: skip
        imp, how = importances(study, target, notes)
        if imp:
            imp_frame = pd.DataFrame({"parameter": list(imp), "importance": list(imp.values())})
            figs.append(Table(imp_frame, f"Parameter importance for {label} ({how}; shares sum to 1)"))
        figs += _plot(f"Slice plot: {label} against each parameter", dest / f"slice-{slug}.png", notes,
                      "slice plot", vis.plot_slice, on)  # fmt: skip
        if len(_params(frame)) >= 2:
            figs += _plot(f"Contour of {label} over parameter pairs", dest / f"contour-{slug}.png", notes,
                          "contour plot", vis.plot_contour, on)  # fmt: skip
    trials = study.get_trials(deepcopy=False)
    if multi and any(t.state == TrialState.COMPLETE for t in trials):
        figs += _plot("Pareto front (red/highlighted = not dominated)", dest / "pareto.png", notes, "Pareto",
                      vis.plot_pareto_front, {"study": study, "target_names": metrics})  # fmt: skip
    if any(t.intermediate_values for t in trials):
        figs += _plot(f"Intermediate {metrics[0]} at each evaluation (what the pruner compared)",
                      dest / "intermediate.png", notes, "intermediate", vis.plot_intermediate_values,
                      {"study": study})  # fmt: skip
    return figs or [Text("Not enough finished trials to draw the search yet.")]


def _savings(records: list[dict], n_seeds: int, pruned: int) -> Section:
    s = pruning_savings(records, n_seeds)
    saved, all_full = s["pruned_full_iterations"] - s["pruned_iterations"], s["all_full_iterations"]
    share = saved / all_full if all_full else math.nan
    items = [
        ("pruned trials", str(pruned)),
        ("iterations spent by pruned trials", fmt(s["pruned_iterations"])),
        ("iterations they would have taken", fmt(s["pruned_full_iterations"])),
        ("iterations saved", f"{fmt(saved)} ({fmt(100 * share)}% of the sweep run unpruned)"),
        (
            "time spent by pruned trials",
            f"{fmt(s['pruned_seconds'])} s (estimated {fmt(s['pruned_full_seconds'])} s unpruned, at each "
            "trial's own speed)",
        ),
        ("iterations of the whole sweep", f"{fmt(s['all_iterations'])} of {fmt(all_full)} unpruned"),
    ]
    return Section("Compute saved by pruning", [KeyValues(items)])


def _problems(frame: pd.DataFrame) -> list[str]:
    failed = frame[frame["state"] == "fail"] if len(frame) else frame
    return [f"trial {r.trial}: {r.error}" for r in failed.itertuples()]


def _params(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith("param ")]


def build_sweep_report(store: Path, name: str, out: Path, storage: str | None = None) -> Path:
    """Write reports/<name>/ from the run store (and the live study when reachable); returns the folder."""
    folder = Path(store) / name
    experiment, study, snapshot = load(store, name, storage)
    records = snapshot["trials"]
    metrics = [o["metric"] for o in experiment["sweep"]["objectives"]]
    directions = [o["direction"] for o in experiment["sweep"]["objectives"]]
    dest = Path(out) / name
    dest.mkdir(parents=True, exist_ok=True)
    for stale in dest.glob("*.png"):  # a rebuild must not keep a figure the study no longer supports
        stale.unlink()
    notes: list[str] = []
    frame = trials_frame(records, metrics)
    atomic_write_text(dest / "trials.csv", frame.to_csv(index=False))
    atomic_write_text(dest / "runs.csv", runs_frame(folder).to_csv(index=False))
    states = Counter({"complete": 0, "pruned": 0, "fail": 0, **Counter(frame.get("state", []))})
    states["unfinished"] = states["running"] + states["waiting"]
    complete = any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False))
    rec = _recommendation(study, folder, experiment, notes) if complete else []
    sections = [
        _summary(experiment, snapshot, states),
        _best_trials(study, frame, metrics, directions),
        Section("Recommendation", rec or [Text("Nothing to recommend before a trial finishes.")]),
        Section("Search", _search(study, frame, metrics, dest, notes)),
        _savings(records, len(experiment.get("seeds") or [0]), states["pruned"]),
        Section("Failures and notes", [Bullets(_problems(frame) + notes or ["none"])]),  # after all notes
        Section("All trials", [Table(frame.drop(columns=["runs"], errors="ignore"), "trials.csv")]),
    ]
    title = f"Sweep {name}"
    atomic_write_text(dest / "report.md", render.to_markdown(title, sections, dest))
    atomic_write_text(dest / "report.html", render.to_html(title, sections))
    _index_entry(dest, experiment, len(frame), states, rec)
    write_index(Path(out))
    return dest


def _index_entry(dest: Path, experiment: dict, n_trials: int, states: dict[str, int], rec: list[Any]) -> None:
    """report.json, the ablation report's index record: reports/index.md lists sweeps beside ablations."""
    verdicts = [f"recommended: {b.text}" for b in rec if isinstance(b, Code)]
    verdicts += [item for b in rec if isinstance(b, Bullets) for item in b.items]
    atomic_write_json(
        dest / "report.json",
        {
            "name": experiment["name"],
            "question": experiment.get("question", ""),
            "date": experiment.get("created"),
            "primary": experiment["metrics"]["primary"],
            "kind": "sweep",
            "verdicts": verdicts,
            "runs_text": (
                f"{n_trials} trials: {states['complete']} finished, {states['pruned']} pruned (stopped early "
                f"by the pruner), {states['fail']} failed, {states['unfinished']} unfinished"
            ),
            "runs": {
                "planned": n_trials,
                "done": states["complete"] + states["pruned"],
                "failed": states["fail"],
                "missing": states["unfinished"],
            },
        },
    )
