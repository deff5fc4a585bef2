"""``build_report``: one experiment of the run store -> ``reports/<experiment>/`` (md, html, csv, figures).

A pure function of the store: no clock, no network, so rebuilding an unchanged store gives identical files.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from cyclegan.atomic import atomic_write_json, atomic_write_text
from harness.errors import UserError
from harness.report import plots, stats
from harness.report.analyse import Analysis, analyse, arm_cis
from harness.report.directions import definition
from harness.report.index import describe_reuse, write_index
from harness.report.load import RUN_COLUMNS, Store, load_store
from harness.report.references import reference_sections
from harness.report.render import (
    MISSING,
    Bullets,
    Code,
    Figure,
    KeyValues,
    Section,
    Table,
    Text,
    fmt,
    to_html,
    to_markdown,
)

FIGURES = ("forest.png", "primary_strip.png", "loss_curves.png", "eval_curves.png", "samples.png")
# the rows of cyclegan.metrics.Evaluator.sample_grid (true targets only exist on the synthetic benchmark)
SYNTH_ROWS = ("input A", "G_A(A)", "true B", "input B", "G_B(B)", "true A")
PLAIN_ROWS = ("input A", "G_A(A)", "input B", "G_B(B)")
DIRECTION_WORDS = {
    "maximize": "higher is better",
    "minimize": "lower is better",
    "unknown": "direction unknown",
}


def _seconds(s: float) -> str:
    if not math.isfinite(s):
        return "n/a"
    h, rem = divmod(int(round(s)), 3600)
    m, sec = divmod(rem, 60)
    return f"{s:.0f} s ({h}h {m:02d}m {sec:02d}s)"


def _counted(values: list[Any]) -> str:
    counts = Counter(fmt(v) for v in values if fmt(v) != MISSING)
    return "; ".join(f"{k} ({n} run{'s' * (n != 1)})" for k, n in counts.most_common()) or "not recorded"


def _missing(store: Store) -> pd.DataFrame:
    r = store.runs
    return r[~r["status"].isin(["done", "failed"])]


def _failed(store: Store) -> pd.DataFrame:
    return store.runs[store.runs["status"] == "failed"]


def _status_line(store: Store) -> str:
    r = store.runs
    planned = int(r["planned"].sum())
    return (
        f"{len(store.done())} of {planned} planned runs are done; {len(_failed(store))} failed and "
        f"{len(_missing(store))} missing or unfinished (listed at the end). Statistics use done runs only."
    )


READ_FIRST = [
    "The forest plot and the verdicts above: each declared comparison's difference with its family-adjusted "
    "interval; a verdict is read off that interval and nothing else.",
    "Headline results: the strip plot (one dot per seed) shows how far seeds scatter beside that difference.",
    "Samples: what the generators actually do to the same test images.",
    "Comparisons repeats the test for every declared metric; the rest is reference material, and the "
    "exploratory metrics (a separate family: leads, not findings) are folded away.",
]
# What a report at a small preset can and cannot show; the shipped experiments' answers are the committed
# cpu-preset reports (reports/FINDINGS.md in the repository).
SCALE_NOTES = {
    "demo": "Demo scale: {iterations} iterations of 8-channel networks at 32 px, a few minutes of CPU. The "
    "generators have only begun to learn, so expect blurry outputs, and with {seeds} seeds per arm only a "
    "large effect can be detected: 'inconclusive' is the usual verdict here, not an answer. The "
    "shipped experiments' answers are the committed cpu-preset reports (reports/FINDINGS.md in the "
    "repository).",
    "smoke": "Smoke-test scale: {iterations} iterations of tiny networks, to check the pipeline; the numbers "
    "carry no meaning.",
}
ZEBRA_SCALE_NOTE = (
    "Expected at this scale on the zebra task (see Samples): horse->zebra (G_A) smears stripes over and "
    "around the animal, and zebra->horse (G_B) mostly erases the animal into the background."
)


def _scale_notes(store: Store) -> list:
    exp = store.experiment
    note = SCALE_NOTES.get(str(exp.get("preset")))
    if note is None:
        return []
    totals = pd.to_numeric(store.runs["total"], errors="coerce").dropna()
    iterations = f"{int(totals.max()):,}" if len(totals) else "a few hundred"
    seeds = len(exp.get("seeds", [])) or "a few"
    notes = [note.format(iterations=iterations, seeds=seeds)]
    if exp.get("data") == "synth:zebra" and exp.get("preset") == "demo":
        notes.append(ZEBRA_SCALE_NOTE)
    return [Text("What to expect at this scale:", bold=True), Bullets(notes)]


VERDICT_RULE = (
    "Verdicts (every comparison ends as one): better / worse = the adjusted interval excludes 0 on the "
    "metric's good / bad side; equivalent = it lies inside the spec's margin (only metrics with a declared "
    "margin); otherwise inconclusive at n seeds."
)


def _method(an: Analysis) -> str:
    d = an.design
    seq = (
        f"The spec allows up to {d['max_seeds']} seeds per arm, added in batches of {d['start']} "
        "(harness run --until-decided): each comparison's share of alpha is spent over those looks with the "
        "Lan-DeMets O'Brien-Fleming-type function, and its interval is a repeated confidence interval "
        "(Jennison & Turnbull), valid whenever the seeds stop."
        if d["max_seeds"]
        else "One look at a fixed number of seeds."
    )
    return (
        f"Families: the primary metric's comparisons, the declared secondary metrics' comparisons and all "
        f"other metrics (exploratory) are three separate families, each at alpha = {d['alpha']}; within a "
        "family of m comparisons each gets alpha/m (Bonferroni, chosen over Holm because its intervals are "
        "simultaneous and agree with every verdict). Interval: Welch's t interval of the difference of "
        "means at the comparison's level (its confidence is shown). " + seq + " p_adj = p x alpha / level, "
        "below alpha exactly when the interval excludes 0 (TOST: p_tost x 2 alpha / level, below alpha "
        "exactly when the interval lies inside the margin)."
    )


def _question(store: Store, an: Analysis, out: Path) -> Section:
    exp = store.experiment
    primary = exp["metrics"]["primary"]
    declared = an.comparisons[an.comparisons["family"] != "exploratory"]
    forest = plots.forest_plot(declared, an.directions, out / "forest.png")
    blocks: list = [Text(exp.get("question") or "(the spec states no question)", bold=True)]
    if forest:
        blocks.append(
            Figure(
                forest,
                "Every declared comparison: difference (dot) with its family-adjusted interval (bar), "
                "coloured by verdict (green better, red worse, blue equivalent, grey inconclusive, light "
                "grey no test: identical arms or no variance); shaded: the spec's margin around 0.",
            )
        )
    return Section(
        "Question and verdict",
        [
            *blocks,
            Bullets(an.primary_verdicts),
            Text(
                f"Primary metric: {primary} ({DIRECTION_WORDS[an.directions[primary]]}); control arm: "
                f"{store.control}. {VERDICT_RULE}"
            ),
            *[Text(f"Note: {note}.") for note in exp["metrics"].get("notes", [])],
            Text(_status_line(store)),
            *_scale_notes(store),
            Text("Read first:", bold=True),
            Bullets(READ_FIRST),
        ],
    )


def _setup(store: Store) -> Section:
    exp, runs = store.experiment, store.runs
    commits = [
        f"{c}{' (dirty)' if d is True else ''}" if isinstance(c, str) else None
        for c, d in zip(runs["git_commit"], runs["git_dirty"], strict=True)
    ]
    hardware = [
        f"{h} / {d}" if isinstance(h, str) or isinstance(d, str) else None
        for h, d in zip(runs["host"], runs["device"], strict=True)
    ]
    wall = pd.to_numeric(runs["wall_seconds"], errors="coerce")
    arms = [
        f"{a}: {', '.join(f'{k}={v}' for k, v in (exp['arms'].get(a) or {}).items()) or '(base)'}"
        + (f" - {exp.get('arm_notes', {}).get(a)}" if exp.get("arm_notes", {}).get(a) else "")
        for a in store.arms
        if a in exp["arms"]
    ]
    items = [
        ("experiment", f"{exp['name']} ({exp.get('kind', 'ablation')}, spec {exp.get('spec_path', 'n/a')})"),
        ("data", str(exp.get("data", "n/a"))),
        ("preset", str(exp.get("preset", "n/a"))),
        ("base overrides", ", ".join(f"{k}={v}" for k, v in (exp.get("base") or {}).items()) or "none"),
        ("budget", ", ".join(f"{k}={v}" for k, v in (exp.get("budget") or {}).items()) or "the preset's"),
        ("iterations per run (summary.json total)", _counted(list(runs["total"]))),
        ("seeds", ", ".join(map(str, exp.get("seeds", [])))),
        ("control", store.control),
        ("git commit", _counted(commits)),
        ("hardware (host / device)", _counted(hardware)),
        ("wandb mode (run.json)", _counted(list(runs["wandb"]))),
        ("total compute (sum of wall seconds, all runs)", _seconds(float(wall.sum(min_count=1)))),
        *_shared_items(store, wall),
        ("experiment created", str(exp.get("created", "n/a"))),
    ]
    return Section(
        "Setup",
        [
            KeyValues(items),
            Text("Arms (overrides on top of the base):"),
            Bullets(arms),
            Text("Reproduce with:"),
            Code(str(exp.get("command", "(no command recorded in experiment.json)"))),
        ],
    )


def _headline(store: Store, an: Analysis, out: Path) -> Section:
    failure = store.experiment["metrics"].get("failure") or {}
    blocks: list = [
        Text(
            "Final evaluation of each done run: mean with its 95% t interval (unadjusted; n/a below 2 runs), "
            "median beside it (an arm can be bimodal: some seeds fail, some work), IQM = interquartile mean "
            "(25% trimmed), failure rate = share of runs on the failing side of the spec's threshold. Where "
            "runs stored per-image scores, the seeds+images interval is a hierarchical bootstrap (seeds "
            f"resampled, then each seed's test images; {stats.N_RESAMPLES:,} seeded resamples): it shows "
            "how much test-set noise adds to the seeds' spread. It is not the verdicts' interval: with few "
            "seeds a percentile bootstrap is too narrow (it ignores that the seeds' sd is estimated)."
        )
    ]
    for metric, df in an.headline.items():
        view = df.assign(**{"95% CI seeds+images": [
            f"[{fmt(lo)}, {fmt(hi)}]" for lo, hi in zip(df["hb_low"], df["hb_high"], strict=True)
        ]}).rename(
            columns={"ci_low": "95% CI low", "ci_high": "95% CI high", "iqm": "IQM", "failure_rate": "failed"}
        )  # fmt: skip
        cols = ["arm", "n", "mean", "95% CI low", "95% CI high", "median", "sd", "IQM", "failed"]
        view = view[cols + (["95% CI seeds+images"] if df["hb_low"].notna().any() else [])]
        threshold = failure.get(metric)
        side = "below" if an.directions[metric] == "maximize" else "above"
        where = "" if threshold is None else f"; failed = {side} {threshold:g}"
        caption = f"{metric} ({DIRECTION_WORDS[an.directions[metric]]}{where})"
        blocks.append(Table(view, caption=caption))
    values = {m: {a: store.values(a, m) for a in store.arms} for m in an.headline}
    if any(len(v) for per in values.values() for v in per.values()):
        fig = plots.strip_plot(
            values, arm_cis(an), store.arms, store.control, an.directions, out / "primary_strip.png"
        )
        blocks.append(
            Figure(
                fig,
                "Each dot is one seed's final value; black diamond = mean with its 95% t interval; dashed "
                "line = the control's mean.",
            )
        )
    return Section("Headline results", blocks)


def _rank(c: pd.DataFrame) -> list[str]:
    """The exact rank test's adjusted p, or why it cannot reject at its family's level with these seeds."""
    return [
        fmt(p) if ok else f"cannot reject (smallest p {fmt(stats.smallest_rank_p(a, b))})"
        for p, ok, a, b in zip(c["p_rank_adj"], c["rank_can_reject"], c["n_arm"], c["n_control"], strict=True)
    ]


def _comparison_table(c: pd.DataFrame) -> Table:
    return Table(
        pd.DataFrame(
            {
                "family": c["family"],
                "arm": c["arm"],
                "vs": c["vs"],
                "metric": c["metric"],
                "n (arm/vs)": [f"{a}/{b}" for a, b in zip(c["n_arm"], c["n_control"], strict=True)],
                "arm - vs": c["diff"],
                "adjusted interval": [
                    f"[{fmt(lo)}, {fmt(hi)}]" for lo, hi in zip(c["ci_low"], c["ci_high"], strict=True)
                ],
                "confidence": 1 - c["level"],
                "p Welch (adj.)": c["p_welch_adj"],
                "margin": c["margin"],
                "p TOST (adj.)": c["p_tost_adj"],
                "p rank (adj.)": _rank(c),
                "MDE": c["mde"],
                "P(improvement)": c["p_improve"],
                "verdict": c["verdict"],
            }
        )
    )


def _comparison(store: Store, an: Analysis) -> list[Section]:
    """The declared metrics (primary + secondary) with verdicts, then every other metric as exploratory."""
    c = an.comparisons
    if c.empty:
        return [Section("Comparisons", [Text("No arm besides the control.")])]
    method = Text(
        "Each arm is compared with the control (vs), plus any pair listed in the spec's compare key. "
        "Difference = mean(arm) - mean(vs). " + _method(an) + " p rank: two-sided Mann-Whitney test with "
        "exact p (permutation p when values tie), adjusted like Welch's; where the smallest p its seeds can "
        "give is above the comparison's level it says so instead. MDE = minimum detectable effect: the true "
        f"difference these seeds detect with {stats.POWER:.0%} power at the comparison's level (planning, "
        "not a statement about the observed difference). P(improvement) = probability that a random seed "
        "of the arm beats a random seed of vs (ties count half), blank when the direction is unknown."
    )
    declared, other = c[c["family"] != "exploratory"], c[c["family"] == "exploratory"]
    secs = [
        Section(
            "Comparisons",
            [Bullets(list(declared["sentence"])), _comparison_table(declared), method],
        )
    ]
    if len(other):
        found = other[other["verdict"].isin(["better", "worse", "differs", "equivalent"])]
        secs.append(
            Section(
                "Exploratory metrics",
                [
                    Text(
                        "Metrics the spec did not declare (diagnostics, per-subset breakdowns): a separate "
                        "family; treat a verdict here as a lead, not a finding."
                    ),
                    Bullets(list(found["sentence"])) if len(found) else Text("No comparison decided."),
                    _comparison_table(other),
                ],
                folded=True,
            )
        )
    return secs


def _definitions(an: Analysis) -> Section:
    return Section(
        "Metric definitions",
        [KeyValues([(m, f"{DIRECTION_WORDS[an.directions[m]]}; {definition(m)}") for m in an.metrics])],
    )


def _curves(store: Store, an: Analysis, out: Path) -> Section:
    blocks: list = []
    loss = plots.curves(store.losses, plots.LOSS_GROUPS, store.arms, out / "loss_curves.png", ylabel="loss")
    if loss:
        blocks.append(
            Figure(
                loss, "Training losses from metrics.jsonl: mean over seeds (line), min-max over seeds (band)."
            )
        )
    panels = {m: (m,) for m in an.headline if m in store.evals.columns}  # the spec's declared metrics
    ev = plots.curves(store.evals, panels, store.arms, out / "eval_curves.png")
    if ev:
        blocks.append(
            Figure(ev, "Declared metrics over iterations (every eval record): mean over seeds, min-max band.")
        )
    if not blocks:
        blocks.append(Text("No metrics.jsonl records yet."))
    return Section("Training curves", blocks)


def _health(store: Store) -> Section:
    r = store.runs[store.runs["status"].isin(["done", "failed", "running", "pruned"])]
    cols = ["run", "arm", "seed", "status", "oscillation_G", "oscillation_D", "diverged", "collapsed"]
    bad = r[(r["diverged"] == True) | (r["collapsed"] == True)]  # noqa: E712 - None means not recorded
    line = (
        f"{int((r['diverged'] == True).sum())} run(s) diverged and "  # noqa: E712
        f"{int((r['collapsed'] == True).sum())} collapsed: {', '.join(bad['run'])}."  # noqa: E712
        if len(bad)
        else "No run diverged or collapsed (as far as summary.json records it)."
    )
    return Section("Training health", [Text(line), Table(r[cols])])


def _samples(store: Store, out: Path) -> Section:
    rows, picked = [], []
    for arm in store.arms:
        cands = store.runs[(store.runs["arm"] == arm) & store.runs["run"].isin(list(store.samples))]
        if cands.empty:
            continue
        done = cands[cands["status"] == "done"]
        pick = (done if len(done) else cands).sort_values("seed").iloc[0]
        png = store.samples[pick["run"]]
        rows.append((arm, png))
        picked.append(
            f"{arm}: seed {pick['seed']} ({pick['status']}), iteration {png.stem.lstrip('0') or '0'}"
        )
    synthetic = str(store.experiment.get("data", "")).startswith("synth:")
    labels = SYNTH_ROWS if synthetic else PLAIN_ROWS
    grid = plots.sample_grid(rows, out / "samples.png", labels)
    if not grid:
        return Section("Samples", [Text("No run has written samples yet.")])
    caption = (
        "The same fixed test images for every arm, both directions: each arm's output beside the inputs"
        + (" and the true targets" if synthetic else "")
        + " (latest samples/*.png of the lowest done seed per arm)."
    )
    return Section("Samples", [Figure(grid, caption), Text("Runs shown: " + "; ".join(picked) + ".")])


def _cost(store: Store) -> Section:
    rows = []
    for arm in store.arms:
        r = store.runs[store.runs["arm"] == arm]
        num = {
            c: pd.to_numeric(r[c], errors="coerce") for c in ("wall_seconds", "it_per_s", "peak_memory_mb")
        }
        rows.append(
            {
                "arm": arm,
                "runs with cost": int(num["wall_seconds"].notna().sum()),
                "total wall s": num["wall_seconds"].sum(min_count=1),
                "mean wall s": num["wall_seconds"].mean(),
                "mean it/s": num["it_per_s"].mean(),
                "max peak memory MB": num["peak_memory_mb"].max(),
            }
        )
    return Section("Cost", [Table(pd.DataFrame(rows))])


def _shared_runs(store: Store) -> pd.DataFrame:
    """Runs whose result this experiment reuses from another run of the store (same content key)."""
    r = store.runs
    return r[r["reused_from"].notna()][["run", "arm", "seed", "reused_from"]]


def _shared_items(store: Store, wall: pd.Series) -> list[tuple[str, str]]:
    shared = _shared_runs(store)
    if shared.empty:
        return []

    here = float(wall[store.runs["reused_from"].isna()].sum(min_count=1))
    return [
        ("shared runs", f"{describe_reuse(list(shared['reused_from']))} (see Shared runs)"),
        ("compute trained for this experiment", _seconds(here)),
    ]


def _shared(store: Store) -> list[Section]:
    shared = _shared_runs(store)
    if shared.empty:
        return []
    text = (
        "These runs were not trained for this experiment: their resolved config (apart from checkpoint "
        "spacing and loader workers), data, cyclegan code and numeric packages equal a finished run's in the "
        "same store, so that run's result files were copied into this experiment's run folder (reused.json "
        "names the source; its checkpoint stays there). Reports that list the same source share the run: "
        "their numbers for it are the same files."
    )
    view = shared.rename(columns={"reused_from": "trained in (experiment/run)"})
    return [Section("Shared runs", [Text(text), Table(view)])]


def _config_diff(store: Store) -> Section:
    per_arm: dict[str, dict[str, Any]] = {}
    inside: set[str] = set()
    for arm in store.arms:
        cfgs = [
            store.configs[r] for r in store.runs.loc[store.runs["arm"] == arm, "run"] if r in store.configs
        ]
        if not cfgs:
            continue
        per_arm[arm] = cfgs[0]
        inside |= {k for c in cfgs for k in set(c) | set(cfgs[0]) if c.get(k) != cfgs[0].get(k)}
    keys = sorted(
        {k for c in per_arm.values() for k in c if len({json.dumps(p.get(k)) for p in per_arm.values()}) > 1}
    )
    keys = [k for k in keys if k != "train.seed"]
    blocks: list = []
    if not per_arm:
        blocks.append(Text("No config.json found yet."))
    elif keys:
        blocks.append(
            Table(
                pd.DataFrame(
                    [{"key": k, **{a: json.dumps(c.get(k)) for a, c in per_arm.items()}} for k in keys]
                )
            )
        )
    else:
        blocks.append(Text("The resolved configs of the arms do not differ (apart from train.seed)."))
    inside.discard("train.seed")
    if inside:
        blocks.append(Text(f"Warning: runs of the same arm differ in: {', '.join(sorted(inside))}."))
    return Section("Config difference between arms", blocks)


def _problems(store: Store) -> list[Section]:
    failed, missing = _failed(store), _missing(store)
    secs = [
        Section(
            "Failed runs",
            [Table(failed[["run", "arm", "seed", "error"]].fillna("(no error recorded)"))]
            if len(failed)
            else [Text("No failed runs.")],
        ),
        Section(
            "Missing or unfinished runs",
            [
                Text(
                    "Planned runs with no folder (missing) or not done yet; "
                    "they are left out of the statistics."
                ),
                Table(missing[["run", "arm", "seed", "status", "error"]]),
            ]
            if len(missing)
            else [Text("No missing runs.")],
        ),
    ]
    if store.notes:
        secs.append(Section("Problems reading the store", [Bullets(store.notes)]))
    return secs


def _date(store: Store) -> str:
    ended = [str(e) for e in store.runs["ended"] if isinstance(e, str) and e]
    return max(ended) if ended else str(store.experiment.get("created") or "")


def _runs_csv(store: Store) -> str:
    metrics = store.finals.reindex(index=store.runs["run"], columns=store.metric_names).reset_index(drop=True)
    return pd.concat([store.runs[RUN_COLUMNS].reset_index(drop=True), metrics], axis=1).to_csv(index=False)


def _plan(store: Path, exp: dict[str, Any]) -> dict[str, Any]:
    """What a report came from: another plan written over it needs --force."""
    return {
        "store": str(store),
        "preset": exp.get("preset"),
        "data": exp.get("data"),
        "seeds": exp.get("seeds"),
    }


def plan_conflict(out: Path, plan: dict[str, Any]) -> str | None:
    """Why ``out`` holds the report of another plan (other store, preset or data, or seeds it lacks), or None
    when writing there replaces only the same plan's report (more seeds of it included)."""
    if not (out / "report.json").is_file():
        return None
    try:
        old = json.loads((out / "report.json").read_text()).get("plan")
    except (OSError, ValueError, AttributeError):
        old = None
    if old is None:
        return f"{out} holds a report that records no plan"
    for key in ("store", "preset", "data"):
        if old.get(key) != plan[key]:
            return f"{out} holds the report of {key} {old.get(key)!r}, not {plan[key]!r}"
    missing = sorted(set(old.get("seeds") or []) - set(plan["seeds"] or []))
    if missing:
        return f"{out} holds a report with seeds {missing} that this plan lacks"
    return None


def _withhold(an: Analysis, fooled: set[str], control: str) -> Analysis:
    """A metric that scores a degenerate output as well as the median trained run carries no verdict: its
    comparisons say so instead of better / worse / equivalent."""
    hit = an.comparisons["metric"].isin(fooled)
    if not hit.any():
        return an
    comp = an.comparisons.copy()
    comp.loc[hit, "verdict"] = "not discriminative"
    comp.loc[hit, "sentence"] = [
        f"{r.arm} vs {r.vs} on {r.metric}: no verdict, the metric is not discriminative on this data set"
        for r in comp[hit].itertuples()
    ]
    verdicts = list(comp.loc[comp["family"] == "primary", "sentence"])
    none = [f"no arm besides the control {control} to compare"]
    return replace(an, comparisons=comp, primary_verdicts=verdicts or none)


def check_target(out: Path, plan: dict[str, Any], force: bool) -> None:
    """One line and exit 2 (before anything is written) when ``out`` holds another plan's report."""
    why = None if force else plan_conflict(out, plan)
    if why:
        raise UserError(f"{why}; pass --force to replace it, or --reports DIR to write elsewhere")


def build_report(
    store: Path, experiment: str, out_root: Path = Path("reports"), *, force: bool = False
) -> Path:
    """Write ``out_root/<experiment>/`` and return it: report.md, report.html, runs.csv, comparisons.csv
    (every comparison at full precision), report.json (the plan it came from, for the index) and the figures.
    Also rebuilds ``out_root/index.md``. A folder holding another plan's report needs ``force``."""
    st = load_store(Path(store), experiment)  # raises UserError before anything is written
    out = Path(out_root) / experiment
    plan = _plan(Path(store), st.experiment)
    check_target(out, plan, force)
    out.mkdir(parents=True, exist_ok=True)
    for name in FIGURES:  # a rebuild must not show a stale figure the store no longer supports
        (out / name).unlink(missing_ok=True)
    references, fooled = reference_sections(st)
    an = _withhold(analyse(st), fooled, st.control)
    sections = [
        _question(st, an, out),
        *references,
        _setup(st),
        _headline(st, an, out),
        *_comparison(st, an),
        _curves(st, an, out),
        _health(st),
        _samples(st, out),
        _cost(st),
        *_shared(st),
        _config_diff(st),
        _definitions(an),
        *_problems(st),
    ]
    title = f"{st.experiment['name']}: comparison report"
    atomic_write_text(out / "report.md", to_markdown(title, sections, out))
    atomic_write_text(out / "report.html", to_html(title, sections))
    atomic_write_text(out / "runs.csv", _runs_csv(st))
    atomic_write_text(out / "comparisons.csv", an.comparisons.drop(columns=["sentence"]).to_csv(index=False))
    atomic_write_json(
        out / "report.json",
        {
            "name": st.experiment["name"],
            "question": st.experiment.get("question", ""),
            "date": _date(st),
            "primary": st.experiment["metrics"]["primary"],
            "verdicts": an.primary_verdicts,
            "plan": plan,
            "runs": {
                "planned": int(st.runs["planned"].sum()),
                "done": len(st.done()),
                "failed": len(_failed(st)),
                "missing": len(_missing(st)),
            },
            "shared": [
                {"run": r.run, "arm": r.arm, "seed": r.seed, "from": r.reused_from}
                for r in _shared_runs(st).itertuples()
            ],
        },
    )
    write_index(Path(out_root))
    return out
