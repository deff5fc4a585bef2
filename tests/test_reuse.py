"""One run, many reports (harness.engine.reuse): content keys, a control arm shared by two experiments in one
store, the reports and the index that say so, and ``--no-reuse``."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cyclegan import synth
from cyclegan.config import apply_overrides, resolve
from harness.cli import app
from harness.engine import estimate, reuse
from harness.engine.plan import unit_for
from harness.report.index import write_index
from tests.conftest import make_folder_dataset

# Two arms on the smoke preset at 4 iterations, one evaluation at the end: "ctl" of expb is "a" of expa.
SPEC = """
name = "{name}"
question = "q"
preset = "smoke"
data = "synth:zebra"
control = "{control}"
seeds = {seeds}

[base]
"train.max_iters" = 4
"train.eval_every" = 0

[arms.{control}]
"train.pool_size" = 4

[arms.{other}]
{other_set}
"""


def _run(args: list[str]) -> str:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """expa (seed 0) trained, then expb (seeds 0 and 1) planned and run in the same store: its control's seed
    0 is expa's run of arm a. Its tests are marked slow: 6 smoke runs and a report, 21 s in all at a load of
    6 on 2 cores (the session's classifier cache already warm)."""
    work = tmp_path_factory.mktemp("reuse")
    for name, control, other, other_set, seeds in (
        ("expa", "a", "b", '"train.pool_size" = 0', [0]),
        ("expb", "ctl", "idt0", '"loss.lambda_identity" = 0.0', [0, 1]),
    ):
        text = SPEC.format(name=name, control=control, other=other, other_set=other_set, seeds=seeds)
        (work / f"{name}.toml").write_text(text)
    store, reports = work / "runs", work / "reports"
    common = ["--store", str(store), "--wandb", "disabled"]
    estimated: list[int] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        mp.setenv("HARNESS_DATA", str(tmp_path_factory.getbasetemp() / "data"))  # the session's data cache
        mp.setattr(estimate, "plan_seconds", lambda runs, workers: estimated.append(len(runs)) or 1.0)
        _run(["run", str(work / "expa.toml"), *common, "--no-report"])
        dry = _run(["run", str(work / "expb.toml"), *common, "--dry-run"])
        out = _run(["run", str(work / "expb.toml"), *common, "--reports", str(reports)])
    a0 = next((store / "expa").glob("a-s0-*"))
    ctl0 = next((store / "expb").glob("ctl-s0-*"))
    return {"work": work, "store": store, "reports": reports, "dry": dry, "out": out, "estimated": estimated,
            "a0": a0, "ctl0": ctl0, "common": common}  # fmt: skip


@pytest.mark.slow
def test_the_second_experiment_trains_only_what_it_lacks(shared):
    assert "4 runs: 3 to train, 1 reused from expa, 0 already done" in shared["dry"]
    assert f"reused from expa/{shared['a0'].name}" in shared["dry"]
    assert shared["estimated"] == [3]  # the estimate counts only the runs to train
    assert "0 done, 1 reused from expa, 3 to run" in shared["out"] and "4/4 done" in shared["out"]
    a0, ctl0 = shared["a0"], shared["ctl0"]
    assert json.loads((ctl0 / "reused.json").read_text())["source"] == f"expa/{a0.name}"
    for name in ("summary.json", "metrics.jsonl", "per_image.json", "samples/0000004.png"):
        assert (ctl0 / name).read_bytes() == (a0 / name).read_bytes()
    assert not (ctl0 / "checkpoints").exists()  # it stays with the source
    run = json.loads((ctl0 / "run.json").read_text())
    assert (run["experiment"], run["arm"], run["reused_from"]) == ("expb", "ctl", f"expa/{a0.name}")
    trained = [p for p in (shared["store"] / "expb").iterdir() if (p / "checkpoints").is_dir()]
    assert sorted(p.name.split("-")[0] + p.name.split("-")[1] for p in trained) == [
        "ctls1",
        "idt0s0",
        "idt0s1",
    ]
    status = json.loads(_run(["status", "expb", "--store", str(shared["store"]), "--json"]))
    assert [r["note"] for r in status["runs"] if r["run"] == ctl0.name] == [f"reused from expa/{a0.name}"]
    index = {json.loads(p.read_text())["run"] for p in (shared["store"] / ".runs").glob("*.json")}
    assert f"expa/{a0.name}" in index and f"expb/{ctl0.name}" not in index  # only trained runs are indexed


@pytest.mark.slow
def test_the_report_lists_the_shared_runs_with_the_source_numbers(shared):
    out = shared["reports"] / "expb"
    info = json.loads((out / "report.json").read_text())
    assert info["shared"] == [
        {"run": shared["ctl0"].name, "arm": "ctl", "seed": 0, "from": f"expa/{shared['a0'].name}"}
    ]
    md = (out / "report.md").read_text()
    assert "## Shared runs" in md and f"expa/{shared['a0'].name}" in md and "1 reused from expa" in md
    runs = pd.read_csv(out / "runs.csv").set_index("run")
    source = json.loads((shared["a0"] / "summary.json").read_text())["metrics"]
    assert runs.loc[shared["ctl0"].name, "zebra.stripe_AtoB"] == pytest.approx(
        source["zebra.stripe_AtoB"], abs=0
    )
    assert runs["reused_from"].notna().sum() == 1
    assert (
        "- **shared runs:** 1 from expa (trained there, reused here)"
        in (shared["reports"] / "index.md").read_text()
    )


@pytest.mark.slow
def test_no_reuse_trains_it_here_and_gets_the_same_numbers(shared, tmp_path_factory):
    """Last in this file: it retrains expb's shared run in place (a retrain is what reuse stands in for)."""
    ctl0 = shared["ctl0"]
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(shared["work"])
        mp.setenv("HARNESS_DATA", str(tmp_path_factory.getbasetemp() / "data"))
        out = _run(["run", str(shared["work"] / "expb.toml"), *shared["common"], "--no-reuse", "--no-report"])
    assert "3 done, 1 to run" in out
    assert not (ctl0 / "reused.json").exists() and (ctl0 / "checkpoints" / "latest.pt").is_file()
    retrained = json.loads((ctl0 / "summary.json").read_text())["metrics"]
    assert retrained == json.loads((shared["a0"] / "summary.json").read_text())["metrics"]  # bit for bit
    keys = [json.loads((d / "run.json").read_text())["content_key"] for d in (ctl0, shared["a0"])]
    assert keys[0] == keys[1] is not None


def _key(**overrides) -> str | None:
    return reuse.content_key(apply_overrides(resolve("smoke"), overrides))


def test_labels_and_mechanics_keep_the_key_what_matters_changes_it(monkeypatch):
    base = _key()
    assert base is not None
    cfg = resolve("smoke")
    names = {reuse.content_key(unit_for(e, a, 0, cfg, Path("s")).cfg) for e, a in (("x", "a"), ("y", "ctl"))}
    assert names == {base}  # experiment and arm names are not in the key
    assert _key(**{"train.checkpoint_every": 3, "data.num_workers": 2}) == base
    changes = [{"loss.lambda_identity": 0.0}, {"train.seed": 1}, {"data.synth_n_train": 30},
               {"eval.n_test": 4}, {"train.max_iters": 13}, {"data.dataset": "synth:seasons"}]  # fmt: skip
    for change in changes:
        assert _key(**change) != base, change
    assert reuse.content_key(resolve("smoke"), evaluate=False) != base
    monkeypatch.setattr(synth, "VERSION", synth.VERSION + 1)
    assert _key() != base


def test_a_changed_cyclegan_source_changes_the_key(tmp_path, monkeypatch):
    import cyclegan

    base = _key()
    copy = tmp_path / "cyclegan"
    shutil.copytree(Path(cyclegan.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(cyclegan, "__file__", str(copy / "__init__.py"))
    reuse.code_digest.cache_clear()
    try:
        assert _key() == base  # the same sources
        with open(copy / "losses.py", "a") as f:
            f.write("\n# a change\n")
        reuse.code_digest.cache_clear()
        assert _key() != base
    finally:
        monkeypatch.undo()
        reuse.code_digest.cache_clear()
    assert _key() == base


def test_folder_data_is_identified_by_its_files_not_its_place(tmp_path):
    here = make_folder_dataset(tmp_path / "here", n=3, size=16)
    key = _key(**{"data.dataset": str(here)})
    moved = shutil.copytree(here, tmp_path / "elsewhere")  # copy2: names, sizes and times kept
    assert key is not None and _key(**{"data.dataset": str(moved)}) == key
    (moved / "testB" / "002.png").write_bytes((moved / "testB" / "001.png").read_bytes() + b"\0")
    assert _key(**{"data.dataset": str(moved)}) != key
    st = (here / "trainA" / "000.png").stat()
    os.utime(here / "trainA" / "000.png", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert _key(**{"data.dataset": str(here)}) != key
    assert _key(**{"data.dataset": str(tmp_path / "nowhere")}) is None  # unidentifiable: never reused


def test_a_run_resumed_under_other_content_is_never_indexed():
    assert reuse.attempt_key({}, "k1") == "k1"
    assert reuse.attempt_key({"attempts": [{}], "content_key": "k1"}, "k1") == "k1"
    assert reuse.attempt_key({"attempts": [{}], "content_key": "k0"}, "k1") is None
    assert reuse.attempt_key({"attempts": [{}]}, "k1") is None  # an attempt from before content keys


def test_the_index_names_sharing_both_ways(tmp_path):
    def report(name: str, shared: list[str]) -> None:
        (tmp_path / name).mkdir()
        runs = [{"run": f"r{i}", "arm": "c", "seed": i, "from": s} for i, s in enumerate(shared)]
        (tmp_path / name / "report.json").write_text(json.dumps({"name": name, "shared": runs}))

    report("ablate-pool", [])
    report("ablate-identity", ["ablate-pool/pool50-s0-x", "ablate-pool/pool50-s1-y", "ablate-disc/p-s0-z"])
    text = write_index(tmp_path).read_text()
    assert "- **shared runs:** 1 from ablate-disc, 2 from ablate-pool (trained there, reused here)" in text
    assert "- **runs reused by other reports:** 2 by ablate-identity" in text


def test_an_index_entry_counts_only_while_its_run_says_done_under_that_key(tmp_path):
    run_dir = tmp_path / "store" / "exp" / "a-s0-abc"
    run_dir.mkdir(parents=True)
    (run_dir / "summary.json").write_text(json.dumps({"status": "done"}))
    (run_dir / "run.json").write_text(json.dumps({"content_key": "k1"}))
    reuse.record_finished(run_dir, "k1")
    store = tmp_path / "store"
    assert json.loads(reuse.index_entry(store, "k1").read_text())["run"] == "exp/a-s0-abc"
    assert reuse.find_source(store, "k1") == run_dir
    (run_dir / "run.json").write_text(json.dumps({"content_key": "k2"}))  # retrained under other content
    assert reuse.find_source(store, "k1") is None
    reuse.index_entry(store, "k3").write_text(json.dumps({"run": "../outside/a-s0-abc"}))
    assert reuse.find_source(store, "k3") is None and reuse.find_source(store, "missing") is None
