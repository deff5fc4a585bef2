"""Two machines on one ablation: one PostgreSQL queue, one shared store folder, separate working folders.

Machine A runs `harness run NAME --storage URL`, machine B `harness worker NAME --storage URL`. A is killed
with SIGKILL inside a run: B takes the run over and resumes it from its checkpoint (same host here: A's pid
is gone at once; from another host its heartbeat stamps stop: tests/test_faults.py). Every run is trained to
its end exactly once; A's same command, run again, finds everything done (from the queue's record) and
reports all runs; the resumed run equals an uninterrupted one. The PostgreSQL server is the one
tests/test_postgres_sweep.py starts (skipped without one).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from harness.engine import load_spec
from harness.engine.plan import build_plan
from harness.engine.queue import sql_url
from harness.engine.worker import WorkerOptions, run_unit
from tests.test_postgres_sweep import postgres_url  # noqa: F401 - the fixture

SPEC = """
name = "two-machines"
question = "Do two machines share one ablation?"
preset = "smoke"
data = "synth:zebra"
control = "a"
seeds = [0, 1]

[arms.a]
"train.pool_size" = 4

[arms.b]
"train.pool_size" = 0
"""
SETS = {"train.max_iters": "36", "train.checkpoint_every": "6", "train.eval_every": "36"}


def _harness(*args: str, cwd: Path, data: Path, **kw) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled", "HARNESS_DATA": str(data)}
    return subprocess.Popen([sys.executable, "-m", "harness", *args], cwd=cwd, env=env, **kw)


def _running(folder: Path, pid: int) -> Path | None:
    """A run folder machine ``pid`` is training past its first checkpoint."""
    for run_json in folder.glob("*/run.json"):
        try:
            run = json.loads(run_json.read_text())
        except ValueError:
            continue
        if run.get("status") == "running" and run.get("worker", "").endswith(f":{pid}"):
            if (run_json.parent / "checkpoints" / "latest.pt").exists():
                return run_json.parent
    return None


@pytest.mark.slow
def test_two_machines_one_queue_one_store_a_killed_machine_is_taken_over(postgres_url, tmp_path):  # noqa: F811
    shared, data = tmp_path / "shared-store", tmp_path / "data"
    spec = tmp_path / "a" / "two-machines.toml"
    spec.parent.mkdir()
    (tmp_path / "b").mkdir()
    spec.write_text(SPEC)
    sets = [x for k, v in SETS.items() for x in ("--set", f"{k}={v}")]
    run_a = ["run", str(spec), "--storage", postgres_url, "--store", str(shared), "--wandb", "disabled",
             "--reports", str(tmp_path / "a" / "reports"), *sets]  # fmt: skip
    a = _harness(*run_a, cwd=tmp_path / "a", data=data, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    study = None
    deadline = time.monotonic() + 120
    while study is None and time.monotonic() < deadline:  # B joins once A has created the queue
        try:
            study = optuna.load_study(study_name="two-machines", storage=sql_url(postgres_url))
        except KeyError:
            time.sleep(0.2)
    assert study is not None
    worker_b = ["worker", "two-machines", "--storage", postgres_url, "--store", str(shared), "--threads", "1",
                "--wandb", "disabled"]  # fmt: skip
    b = _harness(*worker_b, cwd=tmp_path / "b", data=data, stderr=subprocess.PIPE, text=True)

    folder = shared / "two-machines"
    victim = None
    while victim is None and time.monotonic() < deadline and a.poll() is None:
        victim = _running(folder, a.pid)
        time.sleep(0.02)
    assert victim is not None, a.communicate()[0].decode()[-3000:]
    os.kill(a.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    a.wait()
    taken = None
    while taken is None and time.monotonic() - killed_at < 120:
        run = json.loads((victim / "run.json").read_text() or "{}")
        if len(run.get("attempts", [])) == 2 and run["worker"].endswith(f":{b.pid}"):
            taken = time.monotonic() - killed_at
        time.sleep(0.1)
    _, err = b.communicate(timeout=300)
    assert b.returncode == 0, err[-3000:]
    assert taken is not None and taken < 90, err[-3000:]
    print(f"takeover after {taken:.1f} s (B finishes its own run first)")

    # Every run trained to its end exactly once: one COMPLETE trial per run, a second attempt only for the
    # killed one; A's same command again trains nothing and reports all four.
    trials = study.get_trials(deepcopy=False)
    complete = [t.user_attrs["unit"] for t in trials if t.state == TrialState.COMPLETE]
    assert sorted(complete) == sorted(p.name for p in folder.iterdir() if (p / "run.json").is_file())
    assert len(complete) == 4
    for run_dir in folder.glob("*/run.json"):
        run = json.loads(run_dir.read_text())
        assert run["status"] == "done" and run["attempt"] == (2 if run_dir.parent == victim else 1)
    env = {**os.environ, "WANDB_MODE": "disabled", "HARNESS_DATA": str(data)}
    again = subprocess.run([sys.executable, "-m", "harness", *run_a], cwd=tmp_path / "a", env=env,
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    assert "4 done, 0 to run" in again.stdout and "4/4 done" in again.stdout
    report = (tmp_path / "a" / "reports" / "two-machines" / "runs.csv").read_text()
    assert all(p.name in report for p in folder.iterdir() if (p / "run.json").is_file())

    # The run B resumed equals an uninterrupted run of the same unit (same threads: recorded in run.json).
    plan = build_plan(load_spec(spec), tmp_path / "reference", sets=SETS)
    unit = next(u for u in plan.units if u.key == victim.name)
    os.environ["HARNESS_DATA"] = str(data)
    threads = torch.get_num_threads()
    try:
        recorded = json.loads((victim / "run.json").read_text())["threads"]
        assert run_unit(unit, WorkerOptions(store=tmp_path / "reference", wandb="disabled",
                                            threads=recorded)).status == "done"  # fmt: skip
    finally:
        torch.set_num_threads(threads)
        os.environ.pop("HARNESS_DATA")
    resumed = json.loads((victim / "summary.json").read_text())
    expected = json.loads((unit.run_dir / "summary.json").read_text())
    assert resumed["metrics"] == expected["metrics"] and resumed["iteration"] == 36

    def records(path: Path) -> list[dict]:
        return [
            {k: v for k, v in json.loads(x).items() if k != "time"} for x in path.read_text().splitlines()
        ]

    assert records(victim / "metrics.jsonl") == records(unit.run_dir / "metrics.jsonl")
