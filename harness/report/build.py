"""``build_report``: one experiment of the run store -> ``reports/<experiment>/`` (md, html, csv, figures).

A pure function of the store: no clock, no network, so rebuilding an unchanged store gives identical files.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from cyclegan.atomic import atomic_write_json, atomic_write_text
from harness.report import plots, stats
from harness.report.analyse import Analysis, analyse, arm_cis
from harness.report.directions import definition
from harness.report.index import write_index
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

FIGURES = ("primary_strip.png", "loss_curves.png", "eval_curves.png", "samples.png")
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
    "The verdict above: each arm against the control on the primary metric (difference, 95% CI, "
    "Holm-corrected p).",
    "Headline results: the strip plot (one dot per seed) shows how far seeds scatter beside that difference.",
    "Samples: what the generators actually do to the same test images.",
    "Comparisons repeats the test for every declared metric; the rest is reference material, and the "
    "exploratory metrics (a separate Holm family: leads, not findings) are folded away.",
]
# What a report at a small preset can and cannot show; the shipped experiments' answers are the committed
# cpu-preset reports (reports/FINDINGS.md in the repository).
SCALE_NOTES = {
    "demo": "Demo scale: {iterations} iterations of 8-channel networks at 32 px, a few minutes of CPU. The "
    "generators have only begun to learn, so expect blurry outputs, and with {seeds} seeds per arm only a "
    "large effect can be detected: 'no detectable difference' is the usual verdict here, not an answer. The "
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


def _question(store: Store, an: Analysis) -> Section:
    exp = store.experiment
    primary = exp["metrics"]["primary"]
    return Section(
        "Question and verdict",
        [
            Text(exp.get("question") or "(the spec states no question)", bold=True),
            Bullets(an.primary_verdicts),
            Text(
                f"Primary metric: {primary} ({DIRECTION_WORDS[an.directions[primary]]}); control arm: "
                f"{store.control}. A verdict needs the Holm-corrected Welch p < {stats.ALPHA}."
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
        ("total compute (sum of wall seconds, all runs)", _seconds(float(wall.sum(min_count=1)))),
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
    blocks: list = [
        Text(
            f"Final evaluation of each done run. IQM = interquartile mean (25% trimmed). "
            f"95% CI = {stats.CI_METHOD} bootstrap of the mean, {stats.N_RESAMPLES:,} resamples, seeded; "
            "n/a when an arm has fewer than 2 runs."
        )
    ]
    for metric, df in an.headline.items():
        view = df.rename(columns={"ci_low": "95% CI low", "ci_high": "95% CI high", "iqm": "IQM"})
        view = view[["arm", "n", "mean", "sd", "median", "IQM", "95% CI low", "95% CI high"]]
        blocks.append(Table(view, caption=f"{metric} ({DIRECTION_WORDS[an.directions[metric]]})"))
    values = {m: {a: store.values(a, m) for a in store.arms} for m in an.headline}
    if any(len(v) for per in values.values() for v in per.values()):
        fig = plots.strip_plot(
            values, arm_cis(an), store.arms, store.control, an.directions, out / "primary_strip.png"
        )
        blocks.append(
            Figure(
                fig,
                "Each dot is one seed's final value; black diamond = mean with its 95% bootstrap "
                "CI; dashed line = the control's mean.",
            )
        )
    return Section("Headline results", blocks)


def _comparison_table(c: pd.DataFrame) -> Table:
    return Table(
        pd.DataFrame(
            {
                "arm": c["arm"],
                "vs": c["vs"],
                "metric": c["metric"],
                "direction": c["direction"],
                "n (arm/vs)": [f"{a}/{b}" for a, b in zip(c["n_arm"], c["n_control"], strict=True)],
                "arm - vs": c["diff"],
                "95% CI": [
                    f"[{fmt(lo)}, {fmt(hi)}]" for lo, hi in zip(c["ci_low"], c["ci_high"], strict=True)
                ],
                "p Welch": c["p_welch"],
                "p Welch (Holm)": c["p_welch_holm"],
                "p MWU": c["p_mwu"],
                "p MWU (Holm)": c["p_mwu_holm"],
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
    effect = (
        f"the stated minimum effect ({an.min_effect:g}) for the primary metric and the observed difference "
        "for the others"
        if an.min_effect is not None
        else "the observed difference"
    )
    method = Text(
        "Each arm is compared with the control (vs), plus any pair listed in the spec's compare key. "
        f"Difference = mean(arm) - mean(vs); its 95% CI is a {stats.CI_METHOD} bootstrap of the "
        f"difference of means, the two samples resampled independently ({stats.N_RESAMPLES:,} resamples, "
        "seeded). p-values: Welch's t-test (unequal variances) and the Mann-Whitney U test (MWU), both "
        "two-sided, each Holm-corrected over every arm x metric of its family: the spec's declared metrics "
        "(primary and secondary) form one family, all other metrics a separate exploratory one. "
        "P(improvement) = probability that a random seed of the arm beats a random seed of vs "
        "(ties count half; the Mann-Whitney U / (n1 n2)), blank when the metric's direction is unknown. "
        f"Verdicts use the Holm-corrected Welch p < {stats.ALPHA}. Seeds needed: two-sided two-sample "
        f"t-test power {stats.POWER:.0%} at alpha = {stats.ALPHA} for the observed pooled sd and {effect}."
    )
    declared, other = c[c["family"] == "declared"], c[c["family"] == "exploratory"]
    secs = [
        Section(
            "Comparisons",
            [Bullets(list(declared["sentence"])), _comparison_table(declared), method],
        )
    ]
    if len(other):
        found = other[other["verdict"].isin(["better", "worse", "differs"])]
        secs.append(
            Section(
                "Exploratory metrics",
                [
                    Text(
                        "Metrics the spec did not declare (diagnostics, per-subset breakdowns): a separate "
                        "Holm family; treat a detected difference as a lead, not a finding."
                    ),
                    Bullets(list(found["sentence"])) if len(found) else Text("No difference detected."),
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


def build_report(
    store: Path,
    experiment: str,
    out_root: Path = Path("reports"),
    *,
    min_effect: float | None = None,
    n_resamples: int = stats.N_RESAMPLES,
    seed: int = 0,
) -> Path:
    """Write ``out_root/<experiment>/`` and return it: report.md, report.html, runs.csv, comparisons.csv
    (every comparison at full precision), report.json (for the index) and the figures.

    ``min_effect``: the difference of interest for the primary metric's seeds-needed estimate (default: the
    observed difference). Also rebuilds ``out_root/index.md``.
    """
    st = load_store(Path(store), experiment)  # raises UserError before anything is written
    out = Path(out_root) / experiment
    out.mkdir(parents=True, exist_ok=True)
    for name in FIGURES:  # a rebuild must not show a stale figure the store no longer supports
        (out / name).unlink(missing_ok=True)
    an = analyse(st, min_effect=min_effect, n_resamples=n_resamples, seed=seed)
    sections = [
        _question(st, an),
        *reference_sections(st),
        _setup(st),
        _headline(st, an, out),
        *_comparison(st, an),
        _curves(st, an, out),
        _health(st),
        _samples(st, out),
        _cost(st),
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
            "runs": {
                "planned": int(st.runs["planned"].sum()),
                "done": len(st.done()),
                "failed": len(_failed(st)),
                "missing": len(_missing(st)),
            },
        },
    )
    write_index(Path(out_root))
    return out
