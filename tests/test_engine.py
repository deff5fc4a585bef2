"""`harness run` end to end: 2 arms x 2 seeds on 2 workers, the run store, W&B offline history, status."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.engine import status as st

ROOT = Path(__file__).resolve().parents[1]
HARNESS = [sys.executable, "-m", "harness"]
WANDB = Path(sys.executable).with_name("wandb")
SPEC = ROOT / "experiments" / "ablate-pool.toml"


def env_for(data_home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HARNESS_DATA": str(data_home),
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "OMP_NUM_THREADS": "1",
    }


@pytest.fixture(scope="module")
def pool_run(tmp_path_factory):
    """One real `harness run ablate-pool --preset smoke --seeds 2 --workers 2`, watched while it runs."""
    work = tmp_path_factory.mktemp("engine")
    env = env_for(tmp_path_factory.getbasetemp() / "data")
    cmd = [*HARNESS, "run", str(SPEC), "--preset", "smoke", "--seeds", "2", "--workers", "2"]
    proc = subprocess.Popen(
        cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    folder = work / "runs" / "ablate-pool"
    seen_running = []
    while proc.poll() is None:
        rows = st.experiment_rows(folder)[1]
        if rows:
            c = st.counts(rows)
            assert sum(c.values()) == 4
            if c["running"]:
                seen_running.append(c)
        time.sleep(0.05)
    out = proc.stdout.read()
    return {"dir": work, "folder": folder, "rc": proc.returncode, "out": out, "during": seen_running}


def test_run_finishes_with_complete_run_folders(pool_run):
    assert pool_run["rc"] == 0, pool_run["out"]
    folder = pool_run["folder"]
    experiment = json.loads((folder / "experiment.json").read_text())
    assert experiment["control"] == "pool50" and experiment["seeds"] == [0, 1]
    runs = {r["run"]: r for r in experiment["runs"]}
    assert len(runs) == 4 and {r["arm"] for r in runs.values()} == {"pool50", "pool0"}
    for name, r in runs.items():
        run_dir = folder / name
        config = json.loads((run_dir / "config.json").read_text())
        assert config["train"]["seed"] == r["seed"]
        assert config["train"]["pool_size"] == (50 if r["arm"] == "pool50" else 0)
        run = json.loads((run_dir / "run.json").read_text())
        assert (
            run["status"] == "done" and run["attempt"] == 1 and run["config_hash"] == name.rsplit("-", 1)[1]
        )
        assert run["packages"]["torch"] and run["git"]["commit"] and run["wall_seconds"] > 0
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["status"] == "done" and summary["iteration"] == summary["total"] == 12
        assert 0.0 <= summary["metrics"]["translation_AtoB"] <= 1.0
        assert summary["metrics"]["zebra.stripe_AtoB"] is not None
        assert summary["health"]["diverged"] is False
        records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        losses = [x for x in records if x["kind"] == "loss"]
        evals = [x for x in records if x["kind"] == "eval"]
        assert [x["iteration"] for x in losses] == [2, 4, 6, 8, 10, 12]
        assert [x["iteration"] for x in evals] == [6, 12]
        assert evals[-1]["zebra.stripe_AtoB"] == summary["metrics"]["zebra.stripe_AtoB"]
        assert sorted(p.name for p in (run_dir / "samples").iterdir()) == ["0000006.png", "0000012.png"]
        assert (run_dir / "checkpoints" / "latest.pt").is_file()
    assert "report" in pool_run["out"]


def test_wandb_offline_history_holds_the_logged_losses(pool_run):
    for run_dir in sorted(p for p in pool_run["folder"].iterdir() if p.is_dir()):
        run = json.loads((run_dir / "run.json").read_text())
        logs = list((run_dir / "wandb").glob(f"offline-run-*-{run['wandb']['id']}/run-*.wandb"))
        assert len(logs) == 1
        out = subprocess.run(
            [str(WANDB), "leet", "inspect", "--json", str(logs[0])],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        history = {}
        for line in out.splitlines():
            record = json.loads(line)
            if record.get("type") == "history":
                item = record["history"]["item"]
                history[item["_step"]] = item
        losses = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
        losses = [x for x in losses if x["kind"] == "loss"]
        assert sorted(history) == [x["iteration"] for x in losses]
        for x in losses:
            for key in ("G_A", "G_B", "D_A", "D_B", "cycle_A", "cycle_B", "idt_A", "idt_B"):
                assert history[x["iteration"]][key] == pytest.approx(x[key], rel=1e-12)
        assert history[12]["zebra.stripe_AtoB"] == pytest.approx(
            json.loads((run_dir / "summary.json").read_text())["metrics"]["zebra.stripe_AtoB"]
        )


def test_status_counts_during_and_after(pool_run):
    assert pool_run["during"], "the watcher never saw a running run"
    assert all(c["running"] <= 2 for c in pool_run["during"])  # two workers: at most two at once
    result = CliRunner().invoke(
        app, ["status", "ablate-pool", "--store", str(pool_run["dir"] / "runs"), "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["counts"] == {"done": 4, "running": 0, "failed": 0, "pending": 0}
    assert all(r["iteration"] == 12 and r["total"] == 12 for r in data["runs"])


def test_rerun_skips_finished_runs(pool_run, monkeypatch):
    monkeypatch.chdir(pool_run["dir"])
    monkeypatch.setenv("HARNESS_DATA", str(pool_run["dir"].parent / "data"))
    args = ["run", str(SPEC), "--preset", "smoke", "--seeds", "2", "--wandb", "disabled", "--no-report"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "4 done, 0 to run" in result.output and "4/4 done" in result.output
    for run_dir in (p for p in pool_run["folder"].iterdir() if p.is_dir()):
        assert json.loads((run_dir / "run.json").read_text())["attempt"] == 1


def test_list_shows_specs_with_question_and_progress(pool_run, monkeypatch):
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(app, ["list", "--store", str(pool_run["dir"] / "runs")])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "ablate-pool" in text and "4/4" in text and "ablate-cycle" in text and "0/20" in text


def test_worker_joins_with_only_the_queue_storage(tmp_path, monkeypatch):
    """`harness worker NAME --storage ...` on 'another machine': the spec and plan come from the queue."""
    from harness.engine.plan import build_plan
    from harness.engine.runner import RunOptions, prepare
    from harness.engine.spec import load_spec

    spec = tmp_path / "joined.toml"
    spec.write_text(
        'question = "q?"\npreset = "smoke"\ncontrol = "a"\nseeds = [0]\n'
        '[arms.a]\n"train.pool_size" = 4\n[arms.b]\n"train.pool_size" = 0\n'
    )
    journal = tmp_path / "shared" / "queue.journal"
    plan = build_plan(load_spec(spec), tmp_path / "runs", sets={"train.max_iters": "4"})
    _, state = prepare(
        plan, RunOptions(store=tmp_path / "runs", storage=str(journal), wandb="disabled"), "test"
    )
    assert len(state["queued"]) == 2
    spec.unlink()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HARNESS_DATA", str(tmp_path / "data"))
    args = [
        "worker",
        "joined",
        "--storage",
        str(journal),
        "--store",
        "remote",
        "--wandb",
        "disabled",
        "--no-eval",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "remote" / "joined" / "experiment.json").read_text())
    runs = [{k: r[k] for k in ("arm", "seed", "run")} for r in record["runs"]]
    assert runs == [{"arm": u.arm, "seed": u.seed, "run": u.key} for u in plan.units]
    for u in plan.units:
        summary = json.loads((tmp_path / "remote" / "joined" / u.key / "summary.json").read_text())
        assert summary["status"] == "done" and summary["iteration"] == 4
    assert CliRunner().invoke(app, args).exit_code == 0  # an empty queue: nothing to do, nothing re-run
    rows = st.experiment_rows(tmp_path / "remote" / "joined")[1]
    assert [r["attempt"] for r in rows] == [1, 1]


def test_a_failing_run_is_retried_then_left_failed_with_its_error(tmp_path):
    from cyclegan.config import resolve
    from harness.engine.plan import unit_for
    from harness.engine.queue import MAX_RETRIES, Queue
    from harness.engine.worker import Ablation, WorkerOptions, work

    data = tmp_path / "gone"
    cfg = resolve("smoke", {"data.dataset": str(data)})  # the folder vanished after planning
    unit = unit_for("failing", "a", 0, cfg, tmp_path / "runs")
    queue = Queue("failing", None, tmp_path / "runs" / "failing")
    queue.set_experiment({}, {unit.key: unit.cfg.to_dict()})
    assert queue.sync([unit], done=set())["queued"] == [unit.key]
    lines: list[str] = []
    options = WorkerOptions(store=tmp_path / "runs", wandb="disabled", evaluate=False, log=lines.append)
    assert work(queue.study, Ablation(queue.study), options)["complete"] == 0
    run = json.loads((unit.run_dir / "run.json").read_text())
    assert run["status"] == "failed" and run["attempt"] == 1 + MAX_RETRIES
    assert all("dataset folder not found" in a["error"] for a in run["attempts"])
    summary = json.loads((unit.run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and "dataset folder not found" in summary["error"]
    assert sum(line.startswith("failed") for line in lines) == 1 + MAX_RETRIES
    assert queue.sync([unit], done=set())["failed"] == [unit.key]  # used up its retries
    assert queue.sync([unit], done=set(), retry_failed=True)["queued"] == [unit.key]


def test_unit_callbacks_see_each_evaluation_and_can_prune(tmp_path, monkeypatch):
    """The hook a sweep uses: the recorded metrics after each eval, and a stop that ends the run as pruned."""
    from cyclegan.config import resolve
    from harness.engine.plan import unit_for
    from harness.engine.recorder import UnitCallbacks
    from harness.engine.worker import WorkerOptions, run_unit

    monkeypatch.setenv("HARNESS_DATA", str(tmp_path / "data"))

    class PruneAfterFirstEval(UnitCallbacks):
        seen: list = []

        def on_metrics(self, progress, metrics):
            self.seen.append((progress.iteration, metrics))

        def should_stop(self, progress):
            return bool(self.seen)

    hook = PruneAfterFirstEval()
    unit = unit_for("pruning", "swapped", 0, resolve("smoke", {"data.direction": "BtoA"}), tmp_path / "runs")
    result = run_unit(unit, WorkerOptions(store=tmp_path / "runs", wandb="disabled"), inner=hook)
    assert result.status == "pruned" and result.summary["iteration"] == 6
    [(iteration, metrics)] = hook.seen
    evals = [json.loads(x) for x in (unit.run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = [x for x in evals if x["kind"] == "eval"]
    assert iteration == 6 and [x["iteration"] for x in evals] == [6]
    assert metrics == {k: v for k, v in evals[0].items() if k not in ("kind", "iteration", "time")}
    assert json.loads((unit.run_dir / "summary.json").read_text())["status"] == "pruned"


def test_git_dirty_ignores_the_reports_the_harness_writes(tmp_path):
    from harness.engine.store import git_info

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "index.md").write_text("old\n")
    (tmp_path / "model.py").write_text("x = 1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    (tmp_path / "reports" / "index.md").write_text("new\n")
    assert git_info(tmp_path)["dirty"] is False
    (tmp_path / "model.py").write_text("x = 2\n")
    assert git_info.__wrapped__(tmp_path)["dirty"] is True  # uncached: the tree changed


def test_the_live_table_ends_with_every_run(pool_run, monkeypatch):
    """The last screen of `harness run` on a terminal is a summary of every run, not an empty table."""
    from rich.console import Console

    from harness.commands.progress import table
    from harness.engine import runner

    monkeypatch.chdir(pool_run["dir"])
    plan = runner.plan_from_args(str(SPEC), Path("runs"), "smoke", 2, None, {})
    console = Console(width=150, record=True)
    console.print(table(plan.folder))
    assert not any(r.key in console.export_text() for r in plan.units)  # nothing running, nothing failed
    console.print(table(plan.folder, final=True))
    text = console.export_text()
    assert "4/4 done" in text
    for unit in plan.units:
        assert re.search(rf"{unit.key} +│ done +│ 12/12 ", text), text
