"""Comparison reports from a hand-written run store (docs/RUNSTORE.md), independent of the engine."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import UserError
from harness.report import build_report
from harness.report.load import load_store

EVIL = "<script>alert(1)</script>"
PRIMARY = "zebra.stripe_AtoB"
SECONDARY = "translation_AtoB"
OTHER = "cycle_l1_A"
ARMS = {
    "pool50": {"train.pool_size": 50},
    "pool0": {"train.pool_size": 0},
    "idt0": {"loss.lambda_identity": 0},
}
SEEDS = [0, 1, 2, 3, 4]
FAILED = ("pool0", 4)
MISSING = ("idt0", 4)
ERROR = "RuntimeError: NaN in G_A loss at iteration 350"
# arm means on the primary metric: pool0 clearly worse, idt0 indistinguishable from the control
MEANS = {"pool50": 0.62, "pool0": 0.45, "idt0": 0.615}


def _json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))


def _config(arm: str, seed: int) -> dict:
    from cyclegan.config import resolve

    return resolve("smoke", {"train.pool_size": 50, **ARMS[arm], "train.seed": seed}).to_dict()


def _grid(path: Path, shade: int) -> None:
    """Like Evaluator.sample_grid: rows input A, G_A(A), true B, input B, G_B(B), true A; 2 images, 16 px."""
    import torch
    from torchvision.utils import make_grid, save_image

    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 3, 16, 16, generator=g), torch.rand(2, 3, 16, 16, generator=g)  # same for every arm
    out = torch.full((2, 3, 16, 16), shade / 255)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(make_grid(torch.cat([a, out, b, b, 1 - out, a]), nrow=2, padding=1, pad_value=1.0), path)


def make_store(
    root: Path,
    name: str = "ablate-pool",
    question: str = "Does the image pool matter?",
    arms: dict | None = None,
) -> Path:
    """A realistic partial store: 3 arms x 5 seeds, one failed run, one planned run with no folder."""
    arms = arms or ARMS
    arm_names = list(arms)
    control = arm_names[0]
    folder = root / name
    runs = []
    rng = np.random.default_rng(123)
    for a_i, arm in enumerate(arm_names):
        for seed in SEEDS:
            cfg = _config(list(ARMS)[a_i], seed)
            run = f"{arm}-s{seed}-{a_i:012d}"
            runs.append({"arm": arm, "seed": seed, "run": run})
            key = (list(ARMS)[a_i], seed)
            if key == MISSING:
                continue
            rdir = folder / run
            _json(rdir / "config.json", cfg)
            failed = key == FAILED
            status = "failed" if failed else "done"
            mean = MEANS[list(ARMS)[a_i]]
            final = {
                PRIMARY: float(mean + rng.normal(0, 0.02)),
                SECONDARY: float(0.3 + rng.normal(0, 0.01)),
                OTHER: float(0.1 + 0.01 * a_i + rng.normal(0, 0.005)),
                "kid_AtoB": None,
                "custom_score": float(rng.normal(1.0, 0.1)),
            }
            wall = 100.0 + 10 * a_i + seed
            _json(
                rdir / "run.json",
                {
                    "experiment": name,
                    "arm": arm,
                    "seed": seed,
                    "config_hash": f"{a_i:012d}",
                    "status": status,
                    "attempt": 1,
                    "error": ERROR if failed else None,
                    "git": {"commit": "3173c7b", "dirty": False},
                    "packages": {"torch": "2.14.1"},
                    "host": "testhost",
                    "device": "cpu",
                    "started": "2026-11-28T01:00:00Z",
                    "ended": f"2026-11-28T02:0{seed}:00Z",
                    "wall_seconds": wall,
                    "peak_memory_mb": 300.0 + a_i,
                    "worker": "testhost:1",
                    "wandb": {"id": run, "mode": "offline", **({"asked": "online"} if seed == 0 else {})},
                },
            )
            lines = []
            last = 350 if failed else 500
            for it in range(50, last + 1, 50):
                g = 4.0 * np.exp(-it / 300) + 1 + 0.1 * a_i
                lines.append(
                    {
                        "kind": "loss",
                        "iteration": it,
                        "epoch": 1,
                        "time": it / 5,
                        "lr": 2e-4,
                        "G_A": g / 2,
                        "G_B": g / 2,
                        "cycle_A": g / 4,
                        "cycle_B": g / 4,
                        "idt_A": 0.1,
                        "idt_B": 0.1,
                        "D_A": 0.25,
                        "D_B": 0.25,
                    }
                )
                if it % 250 == 0:
                    lines.append(
                        {
                            "kind": "eval",
                            "iteration": it,
                            "time": it / 5,
                            **{k: (v * it / 500 if v is not None else None) for k, v in final.items()},
                        }
                    )
            with open(rdir / "metrics.jsonl", "w") as f:
                f.writelines(json.dumps(rec) + "\n" for rec in lines)
                if failed:
                    f.write('{"kind": "loss", "iterat')  # half-written line of a crash
            if not failed:
                _grid(rdir / "samples" / "0000250.png", 10)
                _grid(rdir / "samples" / "0000500.png", 60 + 80 * a_i)
            _json(
                rdir / "summary.json",
                {
                    "status": status,
                    "iteration": last,
                    "total": 500,
                    "metrics": final if not failed else {},
                    "health": {
                        "oscillation_G": 0.05 + 0.01 * seed,
                        "oscillation_D": 0.02,
                        "diverged": failed,
                        "collapsed": False,
                    },
                    "cost": {
                        "wall_seconds": wall,
                        "train_seconds": wall - 5,
                        "it_per_s": last / wall,
                        "peak_memory_mb": 300.0 + a_i,
                    },
                    "error": ERROR if failed else None,
                },
            )
    _json(
        folder / "experiment.json",
        {
            "name": name,
            "question": question,
            "kind": "ablation",
            "spec_path": f"experiments/{name}.toml",
            "command": f"harness run {name} --preset smoke",
            "preset": "smoke",
            "base": {"train.max_iters": 500},
            "data": "synth:zebra",
            "control": control,
            "arms": arms,
            "arm_notes": {arm_names[1]: "no history"},
            "seeds": SEEDS,
            "budget": {"iterations": 500},
            "metrics": {"primary": PRIMARY, "direction": "maximize", "secondary": [SECONDARY]},
            "runs": runs,
            "created": "2026-11-28T01:00:00Z",
        },
    )
    return root


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("report")
    store = make_store(tmp / "runs")
    return store, build_report(store, "ablate-pool", tmp / "reports")


def test_report_files_and_verdicts(built) -> None:
    store, out = built
    for name in (
        "report.md",
        "report.html",
        "runs.csv",
        "report.json",
        "primary_strip.png",
        "loss_curves.png",
        "eval_curves.png",
        "samples.png",
    ):
        assert (out / name).is_file(), name
    md = (out / "report.md").read_text()
    info = json.loads((out / "report.json").read_text())
    # pool0 is 0.17 below the control with sd 0.02: detected; idt0 differs by ~0.005: not detected
    assert info["verdicts"][0].startswith(r"pool0 is worse than pool50 on zebra.stripe_AtoB: -0.1")
    assert "idt0 vs pool50 on zebra.stripe_AtoB: inconclusive at 4 vs 5 seeds" in info["verdicts"][1]
    assert re.search(r"these seeds detect a difference of [0-9.]+ with 80% power", info["verdicts"][1])
    assert "would detect" not in md and "no detectable" not in md  # no post-hoc power
    assert info["plan"] == {"store": str(store), "preset": "smoke", "data": "synth:zebra", "seeds": SEEDS}
    assert info["runs"] == {"planned": 15, "done": 13, "failed": 1, "missing": 1}
    assert r"pool0 is worse than pool50 on zebra.stripe\_AtoB" in md
    assert "harness run ablate-pool --preset smoke" in md  # the reproduce command
    assert "3173c7b (14 runs)" in md and "testhost / cpu (14 runs)" in md
    modes = "offline (11 runs); offline (fallback: online failed) (3 runs)"  # run.json's wandb, counted
    assert f"**wandb mode (run.json):** {modes}" in md
    assert f"<strong>wandb mode (run.json):</strong> {modes}" in (out / "report.html").read_text()
    # every figure is linked relatively and exists
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert sorted(links) == [
        "eval_curves.png",
        "forest.png",
        "loss_curves.png",
        "primary_strip.png",
        "samples.png",
    ]
    assert links[0] == "forest.png"  # the answer at a glance opens the report
    with Image.open(
        out / "samples.png"
    ) as im:  # input, 3 arms' outputs, truth; both directions; 18 px rows x8
        assert im.height == 2 * (1 + 3 + 1) * 18 * 8
    index = (out.parent / "index.md").read_text()
    assert "[ablate-pool](ablate-pool/report.md)" in index and "Does the image pool matter?" in index
    assert "pool0 is worse" in index


def test_failed_and_missing_runs_listed(built) -> None:
    _, out = built
    md = (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    for text in (md, page):
        assert "Failed runs" in text and "Missing or unfinished runs" in text
        assert "RuntimeError: NaN in G\\_A loss" in text or "RuntimeError: NaN in G_A loss" in text
        assert "pool0-s4-000000000001" in text and "idt0-s4-000000000002" in text
    failed_sec = page.split("<h2>Failed runs</h2>")[1].split("</section>")[0]
    missing_sec = page.split("<h2>Missing or unfinished runs</h2>")[1].split("</section>")[0]
    assert "pool0-s4-000000000001" in failed_sec and ERROR in failed_sec
    assert "idt0-s4-000000000002" in missing_sec and "<td>missing</td>" in missing_sec
    assert "skipped 1 unreadable line" in md  # the half-written metrics.jsonl line is reported, not hidden


def test_runs_csv_one_row_per_planned_run(built) -> None:
    _, out = built
    df = pd.read_csv(out / "runs.csv")
    assert len(df) == 15
    assert set(df["status"]) == {"done", "failed", "missing"}
    assert {"arm", "seed", "status", "error", PRIMARY, SECONDARY, OTHER}.issubset(df.columns)
    done = df[df["status"] == "done"]
    assert done[PRIMARY].notna().all() and df.loc[df["status"] != "done", PRIMARY].isna().all()
    assert df.loc[df["status"] == "failed", "error"].iloc[0] == ERROR


def test_headline_and_comparison_numbers_match_scipy(built) -> None:
    """The numbers in the report are the store's numbers run through scipy (spot check one arm)."""
    from scipy import stats

    store, out = built
    st = load_store(store, "ablate-pool")
    x = st.values("pool0", PRIMARY).to_numpy()
    y = st.values("pool50", PRIMARY).to_numpy()
    assert len(x) == 4 and len(y) == 5
    md = (out / "report.md").read_text()
    assert f"{np.mean(x) - np.mean(y):.4g}".lstrip("-") in md
    p = stats.ttest_ind(x, y, equal_var=False).pvalue
    assert f"{min(1.0, 2 * p):.4g}" in md  # Bonferroni-adjusted within the primary family of two
    assert f"{stats.trim_mean(y, 0.25):.4g}" in md


def test_comparisons_equal_an_independent_computation(built) -> None:
    """Read summary.json files directly, recompute with statsmodels and scipy, compare to comparisons.csv:
    three families (primary, secondary, exploratory), each comparison a Welch interval at alpha / m."""
    from scipy import stats
    from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

    store, out = built
    values: dict[tuple[str, str], list[float]] = {}
    for run_json in sorted((store / "ablate-pool").glob("*/run.json")):
        info = json.loads(run_json.read_text())
        if info["status"] != "done":
            continue
        summary = json.loads((run_json.parent / "summary.json").read_text())
        for metric, v in summary["metrics"].items():
            if v is not None:
                values.setdefault((info["arm"], metric), []).append(v)
    got = pd.read_csv(out / "comparisons.csv")
    assert len(got) == 2 * 4  # 2 arms x 4 metrics with values (kid_AtoB is always None)
    names = {PRIMARY: "primary", SECONDARY: "secondary"}
    assert list(got["family"]) == [names.get(m, "exploratory") for m in got["metric"]]
    for _, row in got.iterrows():
        x = np.array(values[(row["arm"], row["metric"])])  # folders sort by seed: the report's order
        y = np.array(values[("pool50", row["metric"])])
        m = int((got["family"] == row["family"]).sum())
        assert row["level"] == pytest.approx(0.05 / m, rel=1e-9)  # one look: Bonferroni within the family
        p = stats.ttest_ind(x, y, equal_var=False).pvalue
        assert row["p_welch"] == pytest.approx(p, rel=1e-9)
        assert row["p_welch_adj"] == pytest.approx(min(1, p * m), rel=1e-9)
        assert row["diff"] == pytest.approx(x.mean() - y.mean(), rel=0, abs=1e-12)
        ci = CompareMeans(DescrStatsW(x), DescrStatsW(y)).tconfint_diff(alpha=0.05 / m, usevar="unequal")
        np.testing.assert_allclose([row["ci_low"], row["ci_high"]], ci, rtol=1e-9)
        if len(set(x) | set(y)) == len(x) + len(y):
            assert row["p_rank"] == pytest.approx(stats.mannwhitneyu(x, y, method="exact").pvalue, rel=1e-12)
        # the verdict is read off the interval: better / worse exactly when it excludes 0
        excludes = row["ci_low"] > 0 or row["ci_high"] < 0
        assert (row["verdict"] in ("better", "worse")) == excludes == (row["p_welch_adj"] < 0.05)


def test_margins_give_equivalence_and_failure_rates(tmp_path) -> None:
    """With a declared margin an inconclusive-looking arm becomes 'equivalent' (TOST); without one it never
    can; the headline shows the failure rate against the spec's threshold and the median."""
    from statsmodels.stats.weightstats import ttost_ind

    store = make_store(tmp_path / "runs")
    path = store / "ablate-pool" / "experiment.json"
    exp = json.loads(path.read_text())
    exp["metrics"] = {**exp["metrics"], "margin": {PRIMARY: 0.1}, "failure": {PRIMARY: 0.5}}
    path.write_text(json.dumps(exp))
    out = build_report(store, "ablate-pool", tmp_path / "rep")
    got = pd.read_csv(out / "comparisons.csv")
    row = got[(got["arm"] == "idt0") & (got["metric"] == PRIMARY)].iloc[0]
    assert row["verdict"] == "equivalent" and -0.1 < row["ci_low"] and row["ci_high"] < 0.1
    st = load_store(store, "ablate-pool")
    x, y = st.values("idt0", PRIMARY).to_numpy(), st.values("pool50", PRIMARY).to_numpy()
    assert row["p_tost"] == pytest.approx(ttost_ind(x, y, -0.1, 0.1, usevar="unequal")[0], rel=1e-9)
    assert row["p_tost_adj"] < 0.05
    assert (got.loc[got["metric"] == SECONDARY, "verdict"] != "equivalent").all()  # no margin declared
    md = (out / "report.md").read_text()
    assert r"idt0 is equivalent to pool50 on zebra.stripe\_AtoB within the margin +/-0.1" in md
    assert "failed = below 0.5" in md


def test_per_image_scores_give_a_hierarchical_interval(tmp_path) -> None:
    """Runs that stored per_image.json get a seeds+images interval (a hierarchical bootstrap) in the table."""
    from harness.report import stats

    store = make_store(tmp_path / "runs")
    rng = np.random.default_rng(0)
    for summary in (store / "ablate-pool").glob("*/summary.json"):
        value = (json.loads(summary.read_text()).get("metrics") or {}).get(PRIMARY)
        if value is None:
            continue
        scores = (value + rng.normal(0, 0.2, 40)).tolist()
        _json(summary.parent / "per_image.json", {"iteration": 200, "scores": {PRIMARY: scores}})
    st = load_store(store, "ablate-pool")
    per_seed = st.image_scores("pool50", PRIMARY)
    assert len(per_seed) == 5 and all(len(s) == 40 for s in per_seed)
    out = build_report(store, "ablate-pool", tmp_path / "rep")
    md = (out / "report.md").read_text()
    assert "95% CI seeds+images" in md
    lo, hi = stats.hierarchical_bootstrap(per_seed)
    assert f"{lo:.4g}" in md and f"{hi:.4g}" in md
    assert lo < np.mean([s.mean() for s in per_seed]) < hi


def test_next_seeds_follows_the_sequential_design(tmp_path, monkeypatch) -> None:
    """--until-decided's step: the next planned look while a declared comparison is undecided, then stop."""
    from harness.report import planning
    from harness.report.planning import next_seeds

    store = make_store(tmp_path / "runs")
    path = store / "ablate-pool" / "experiment.json"
    exp = json.loads(path.read_text())
    path.write_text(json.dumps({**exp, "first_seeds": 5, "max_seeds": 15}))
    more, why = next_seeds(store, "ablate-pool")
    assert more == 10 and "undecided at 5 seeds per arm; going to 10" in why
    got = pd.read_csv(build_report(store, "ablate-pool", tmp_path / "rep") / "comparisons.csv")
    primary = got[got["family"] == "primary"]
    # the first of three looks spends little of alpha / 2: a narrower-than-Bonferroni level
    assert (primary["level"] < 0.05 / 2 / 10).all()
    path.write_text(json.dumps({**exp, "first_seeds": 5, "max_seeds": 5}))
    more, why = next_seeds(store, "ablate-pool")
    assert more is None and why.startswith("max_seeds (5) reached")
    # A metric the reference rows flag as not discriminative gets no verdict at any n: it asks for no seeds.
    path.write_text(json.dumps({**exp, "first_seeds": 5, "max_seeds": 15}))
    monkeypatch.setattr(planning, "reference_sections", lambda st: ([], {PRIMARY, SECONDARY}))
    more, why = next_seeds(store, "ablate-pool")
    blind = ", ".join(sorted([PRIMARY, SECONDARY]))
    assert more is None and why == (
        f"every declared comparison is decided at 5 seeds per arm (no verdict on {blind}: "
        "not discriminative on this data set)"
    )


def test_another_plan_does_not_overwrite_a_report(tmp_path) -> None:
    """A report records its plan; another store's (or preset's) report over it needs --force."""
    store = make_store(tmp_path / "runs")
    rep = tmp_path / "rep"
    build_report(store, "ablate-pool", rep)
    other = make_store(tmp_path / "other")
    with pytest.raises(UserError, match="pass --force"):
        build_report(other, "ablate-pool", rep)
    before = (rep / "ablate-pool" / "report.json").read_text()
    cmd = [
        sys.executable,
        "-m",
        "harness",
        "report",
        "ablate-pool",
        "--store",
        str(other),
        "--reports",
        str(rep),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 2 and res.stderr.strip().count("\n") == 0 and "pass --force" in res.stderr
    assert (rep / "ablate-pool" / "report.json").read_text() == before  # nothing written
    build_report(other, "ablate-pool", rep, force=True)
    assert json.loads((rep / "ablate-pool" / "report.json").read_text())["plan"]["store"] == str(other)


def test_spec_compare_pairs_join_the_declared_family(tmp_path) -> None:
    """A `compare` pair (two non-control arms) is tested like arm-vs-control and joins its family."""
    from scipy import stats

    store = make_store(tmp_path / "runs")
    path = store / "ablate-pool" / "experiment.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "compare": [["idt0", "pool0"]]}))
    out = build_report(store, "ablate-pool", tmp_path / "rep")
    got = pd.read_csv(out / "comparisons.csv")
    assert list(got[got["metric"] == PRIMARY][["arm", "vs"]].itertuples(index=False, name=None)) == [
        ("pool0", "pool50"),
        ("idt0", "pool50"),
        ("idt0", "pool0"),
    ]
    row = got[(got["arm"] == "idt0") & (got["vs"] == "pool0") & (got["metric"] == PRIMARY)].iloc[0]
    finals = {}
    for run_json in sorted((store / "ablate-pool").glob("*/run.json")):
        info = json.loads(run_json.read_text())
        if info["status"] == "done":
            summary = json.loads((run_json.parent / "summary.json").read_text())
            finals.setdefault(info["arm"], []).append(summary["metrics"][PRIMARY])
    x, y = np.array(finals["idt0"]), np.array(finals["pool0"])
    assert row["diff"] == pytest.approx(x.mean() - y.mean(), rel=0, abs=1e-12)
    assert row["p_welch"] == pytest.approx(stats.ttest_ind(x, y, equal_var=False).pvalue, abs=1e-12)
    assert (got[got["metric"] == PRIMARY]["family"] == "primary").sum() == 3  # three pairs in the family
    assert row["level"] == pytest.approx(0.05 / 3, rel=1e-9)
    # idt0 (0.615) is clearly above pool0 (0.45): the sentence names the reference
    md = (out / "report.md").read_text()
    assert r"idt0 is better than pool0 on zebra.stripe\_AtoB" in md
    assert "| idt0 | pool0 |" in md


def test_html_is_self_contained(built) -> None:
    _, out = built
    page = (out / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == 5  # forest, strip, loss, eval curves, samples
    assert not re.search(r'(src|href)="(?!data:|#)', page)  # nothing fetched: no external src or link
    assert "<style>" in page


def test_rebuild_is_identical(built, tmp_path) -> None:
    """A report is a pure function of the store."""
    store, out = built
    again = build_report(store, "ablate-pool", tmp_path)
    for name in ("report.md", "report.html", "runs.csv", "report.json"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name


def test_untrusted_names_are_escaped(tmp_path) -> None:
    arms = {
        EVIL: {"train.pool_size": 50},
        "a|b*_[x](y)": {"train.pool_size": 0},
        "c": {"loss.lambda_identity": 0},
    }
    store = make_store(tmp_path / "runs", name="evil", question=EVIL, arms=arms)
    out = build_report(store, "evil", tmp_path / "reports")
    page = (out / "report.html").read_text()
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    md = (out / "report.md").read_text()
    assert "<script>" not in md.replace("```", "")  # only the fenced command could hold raw text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    assert r"a\|b\*\_\[x\](y)" in md  # no table-breaking pipe, no link, no emphasis
    assert "<script>" not in (tmp_path / "reports" / "index.md").read_text()


def test_cli_prints_where_the_report_is(tmp_path) -> None:
    store = make_store(tmp_path / "runs")
    res = CliRunner().invoke(
        app,
        [
            "report",
            "ablate-pool",
            "--store",
            str(store),
            "--reports",
            str(tmp_path / "rep"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert str(tmp_path / "rep" / "ablate-pool" / "report.md") in res.output
    info = json.loads((tmp_path / "rep" / "ablate-pool" / "report.json").read_text())
    assert "inconclusive at 4 vs 5 seeds" in info["verdicts"][1]


def test_cli_unknown_experiment_is_one_line_exit_2(tmp_path) -> None:
    store = make_store(tmp_path / "runs")
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "report",
            "nope",
            "--store",
            str(store),
            "--reports",
            str(tmp_path / "rep"),
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "experiments there: ablate-pool" in res.stderr
    assert not (tmp_path / "rep").exists()  # no partial output


def test_sweep_and_broken_experiment_json_are_user_errors(tmp_path) -> None:
    from harness.errors import UserError

    store = make_store(tmp_path / "runs")
    path = store / "ablate-pool" / "experiment.json"
    exp = json.loads(path.read_text())
    path.write_text(json.dumps({**exp, "kind": "sweep"}))
    with pytest.raises(UserError, match="kind is 'sweep'"):
        build_report(store, "ablate-pool", tmp_path / "rep")
    path.write_text(json.dumps({**exp, "control": "nope"}))
    with pytest.raises(UserError, match="control 'nope' is not one of the arms: pool50, pool0, idt0"):
        build_report(store, "ablate-pool", tmp_path / "rep")
    path.write_text("{")
    with pytest.raises(UserError, match="experiment.json: cannot read"):
        build_report(store, "ablate-pool", tmp_path / "rep")
    with pytest.raises(UserError, match="not a plain folder name"):
        build_report(store, "../ablate-pool", tmp_path / "rep")
    assert not (tmp_path / "rep").exists()


def test_partial_store_without_any_done_run(tmp_path) -> None:
    """Right after `harness run` writes experiment.json: every run missing, the report still builds."""
    store = make_store(tmp_path / "runs")
    for d in (store / "ablate-pool").iterdir():
        if d.is_dir():
            shutil.rmtree(d)
    out = build_report(store, "ablate-pool", tmp_path / "rep")
    info = json.loads((out / "report.json").read_text())
    assert info["runs"] == {"planned": 15, "done": 0, "failed": 0, "missing": 15}
    assert "not enough finished runs" in info["verdicts"][0]
    assert "No run has written samples yet." in (out / "report.md").read_text()


def test_sample_grid_falls_back_to_stacking_when_inputs_differ(tmp_path) -> None:
    from harness.report.build import SYNTH_ROWS
    from harness.report.plots import sample_grid

    _grid(tmp_path / "a.png", 10)
    _grid(tmp_path / "b.png", 200)
    rows = [("a", tmp_path / "a.png"), ("b", tmp_path / "b.png")]
    with Image.open(sample_grid(rows, tmp_path / "aligned.png", SYNTH_ROWS)) as im:
        assert im.height == (2 + 2 * 2 + 2) * 18 * 8  # shared rows once, output rows per arm
    with Image.open(tmp_path / "b.png") as im:
        arr = np.asarray(im).copy()
    arr[5, 5] = 0  # b's input differs: the rows cannot be shared
    Image.fromarray(arr).save(tmp_path / "b.png")
    with Image.open(sample_grid(rows, tmp_path / "stacked.png", SYNTH_ROWS)) as im:
        assert im.height == 2 * (20 + 103 * 8)  # each grid whole (6 x 17 + 1 px) under a 20 px header


def test_arms_that_trained_alike_are_called_identical(tmp_path) -> None:
    """A setting with no effect at this budget (e.g. a pool never filled) gives seed-for-seed equal runs."""
    store = make_store(tmp_path / "runs")
    folder = store / "ablate-pool"
    for seed in range(4):
        control = json.loads((folder / f"pool50-s{seed}-000000000000" / "summary.json").read_text())
        target = folder / f"idt0-s{seed}-000000000002" / "summary.json"
        target.write_text(json.dumps({**json.loads(target.read_text()), "metrics": control["metrics"]}))
    out = build_report(store, "ablate-pool", tmp_path / "rep")
    verdicts = json.loads((out / "report.json").read_text())["verdicts"]
    assert verdicts[1].startswith("idt0 vs pool50 on zebra.stripe_AtoB: every seed gave exactly pool50's")


def test_a_saturated_metric_is_called_saturated_not_a_setting_without_effect(tmp_path) -> None:
    store = make_store(tmp_path / "runs")
    for path in (store / "ablate-pool").glob("*/summary.json"):
        summary = json.loads(path.read_text())
        path.write_text(json.dumps({**summary, "metrics": {**summary["metrics"], SECONDARY: 1.0}}))
    out = build_report(store, "ablate-pool", tmp_path / "rep")
    md = (out / "report.md").read_text()
    assert r"idt0 vs pool50 on translation\_AtoB: every seed of both gave 1; the metric saturates" in md


def test_running_and_unreadable_runs_are_listed_with_reasons(tmp_path) -> None:
    store = make_store(tmp_path / "runs")
    running = store / "ablate-pool" / "idt0-s3-000000000002"
    (running / "summary.json").unlink()
    info = json.loads((running / "run.json").read_text())
    (running / "run.json").write_text(json.dumps({**info, "status": "running", "ended": None}))
    broken = store / "ablate-pool" / "idt0-s2-000000000002"
    (broken / "summary.json").unlink()
    (broken / "run.json").write_text('{"status": "do')
    out = build_report(store, "ablate-pool", tmp_path / "rep")
    df = pd.read_csv(out / "runs.csv").set_index("run")
    assert df.loc["idt0-s3-000000000002", "status"] == "running"
    assert df.loc["idt0-s2-000000000002", "status"] == "unreadable"
    assert "run.json unreadable" in df.loc["idt0-s2-000000000002", "error"]
    page = (out / "report.html").read_text()
    missing_sec = page.split("<h2>Missing or unfinished runs</h2>")[1].split("</section>")[0]
    assert "<td>running</td>" in missing_sec and "<td>unreadable</td>" in missing_sec
    assert "inconclusive at 2 vs 5 seeds" in json.loads((out / "report.json").read_text())["verdicts"][1]


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian's chromium is not installed")
def test_report_renders_in_chromium(built, tmp_path) -> None:
    """Headless chromium opens the offline page and paints its embedded figures (a non-blank screenshot)."""
    _, out = built
    shot = tmp_path / "shot.png"
    subprocess.run(
        ["bash", "scripts/screenshot-report.sh", str(out / "report.html"), str(shot)],
        check=True,
        timeout=120,
        capture_output=True,
    )
    with Image.open(shot) as im:
        arr = np.asarray(im.convert("RGB"))
    assert arr.shape[0] >= 2000 and arr.std() > 10  # not a blank page
    # the forest plot that opens the report paints pool0's "worse" row in its verdict colour (#d62728)
    assert (np.abs(arr.astype(int) - [214, 39, 40]).sum(axis=2) < 30).sum() > 50


def test_no_tmp_leftovers(built) -> None:
    _, out = built
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_a_newcomer_reads_the_answer_first_and_exploratory_last(built) -> None:
    """Verdict and reading guide open the report; exploratory tables are folded (HTML) or last (Markdown)."""
    _, out = built
    md = (out / "report.md").read_text()
    headings = re.findall(r"^## (.+)$", md, flags=re.M)
    assert headings[0] == "Question and verdict" and headings[-1] == "Exploratory metrics"
    first = md.split("## Setup")[0]
    assert r"pool0 is worse than pool50 on zebra.stripe\_AtoB" in first and "Read first:" in first
    assert "Smoke-test scale:" in first and "Demo scale" not in first
    page = (out / "report.html").read_text()
    assert page.count("<details>") == 1
    assert "<details><summary><h2>Exploratory metrics</h2></summary>" in page
    folded = page.split("<details>")[1].split("</details>")[0]
    assert OTHER in folded and "Training health" not in folded
    assert page.index("<h2>Comparisons</h2>") < page.index("<h2>Exploratory metrics</h2>")


def test_a_demo_report_says_what_to_expect_at_that_scale(tmp_path) -> None:
    store = make_store(tmp_path / "runs")
    record = store / "ablate-pool" / "experiment.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "preset": "demo"}))
    md = (build_report(store, "ablate-pool", tmp_path / "rep") / "report.md").read_text()
    first = md.split("## Setup")[0]
    assert "Demo scale: 500 iterations" in first and "with 5 seeds per arm" in first
    assert "zebra-&gt;horse (G\\_B) mostly erases the animal" in first


def test_one_seed_per_arm_shows_the_numbers_and_says_no_test(tmp_path) -> None:
    """`harness run SPEC --seeds 1`: each arm's numbers and "no test" with what to run; at 2 seeds the tests
    run, also where both arms gave one value twice (no variance). A tie between single values once crashed
    the rank test (scipy's permutation test needs two values per sample)."""
    store = make_store(tmp_path / "runs")
    folder = store / "ablate-pool"
    exp = json.loads((folder / "experiment.json").read_text())
    for path in folder.glob("*/summary.json"):  # a tie in every pair, zero variance in every arm
        summary = json.loads(path.read_text())
        path.write_text(json.dumps({**summary, "metrics": {**summary["metrics"], SECONDARY: 1.0}}))
    for seeds in ([0, 1], [0]):
        for run in folder.glob("*-s*-*"):
            if int(run.name.split("-s")[1].split("-")[0]) not in seeds:
                shutil.rmtree(run)
        runs = [r for r in exp["runs"] if r["seed"] in seeds]
        (folder / "experiment.json").write_text(json.dumps({**exp, "seeds": seeds, "runs": runs}))
        out = build_report(store, "ablate-pool", tmp_path / f"rep{len(seeds)}")
        info = json.loads((out / "report.json").read_text())
        assert info["runs"] == {"planned": 3 * len(seeds), "done": 3 * len(seeds), "failed": 0, "missing": 0}
        if len(seeds) == 2:  # both arms gave 1.0 twice: said, and the primary metric is tested
            md = (out / "report.md").read_text()
            assert r"idt0 vs pool50 on translation\_AtoB: every seed of both gave 1" in md
            assert "inconclusive at 2 vs 2 seeds" in info["verdicts"][1]
    first = info["verdicts"][0]
    means = [float(m) for m in re.findall(r"means ([0-9.]+) vs ([0-9.]+)", first)[0]]
    assert first.startswith("pool0 vs pool50 on zebra.stripe_AtoB: no test, not enough finished runs")
    assert means[0] < 0.5 < means[1] and "1 vs 1 seeds; a test needs at least 2 per arm" in first
    assert "`--dry-run` shows the seeds the margins need" in first


def test_interval_coverage_never_rounds_to_100_percent() -> None:
    """A first sequential look tests at tiny levels; its interval must still say what it covers."""
    from harness.report.analyse import confidence

    assert confidence(0.05) == "95.0%"
    assert confidence(0.0154) == "98.5%"
    assert confidence(0.00069) == "99.931%"
    assert confidence(2.3e-5) == "99.9977%"
