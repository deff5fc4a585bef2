"""A worker killed with SIGKILL mid-run: the same command resumes it exactly; nothing runs twice or breaks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from harness.engine.plan import build_plan
from harness.engine.runner import worker_threads
from harness.engine.spec import load_spec
from harness.engine.worker import WorkerOptions, run_unit
from tests.conftest import pool_spec

ROOT = Path(__file__).resolve().parents[1]
HARNESS = [sys.executable, "-m", "harness"]
SETS = ["train.max_iters=48", "train.checkpoint_every=4", "train.eval_every=20"]

SPEC = pool_spec("killme", "Does a killed worker resume exactly?", [3])


def _cmd(spec: Path) -> list[str]:
    sets = [x for s in SETS for x in ("--set", s)]
    return [*HARNESS, "run", str(spec), "--workers", "1", "--wandb", "disabled", "--no-report", *sets]


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]  # every line must parse


def test_sigkilled_worker_resumes_exactly(tmp_path, monkeypatch):
    spec = tmp_path / "killme.toml"
    spec.write_text(SPEC)
    env = {
        **os.environ,
        "HARNESS_DATA": str(tmp_path / "data"),
        "OMP_NUM_THREADS": "1",
        "WANDB_SILENT": "true",
    }
    first = subprocess.Popen(
        _cmd(spec), cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    folder = tmp_path / "runs" / "killme"
    plan = build_plan(load_spec(spec), tmp_path / "runs", sets=dict(s.split("=") for s in SETS))
    unit_a = next(u for u in plan.units if u.arm == "a")
    killed_at = None
    deadline = time.monotonic() + 240
    while killed_at is None and time.monotonic() < deadline and first.poll() is None:
        metrics = unit_a.run_dir / "metrics.jsonl"
        run_json = unit_a.run_dir / "run.json"
        if (unit_a.run_dir / "checkpoints" / "latest.pt").exists() and metrics.exists() and run_json.exists():
            iterations = [r["iteration"] for r in _records(metrics) if r["kind"] == "loss"]
            if iterations and iterations[-1] >= 8:
                pid = int(json.loads(run_json.read_text())["worker"].rsplit(":", 1)[1])
                os.kill(pid, signal.SIGKILL)
                killed_at = iterations[-1]
        time.sleep(0.01)
    out = first.communicate(timeout=240)[0].decode()
    assert killed_at is not None and killed_at < 48, out
    assert first.returncode == -signal.SIGKILL, out  # one worker runs in the `harness run` process itself
    summary = json.loads((unit_a.run_dir / "summary.json").read_text())
    assert summary["status"] == "running" and summary["iteration"] < 48

    second = subprocess.run(_cmd(spec), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "2 to run" in second.stdout, second.stdout  # the killed unit (re-queued) and the untouched one

    # The resumed run equals an uninterrupted run of the same unit, trained in-process in another store.
    reference = build_plan(load_spec(spec), tmp_path / "ref", sets=dict(s.split("=") for s in SETS))
    ref_unit = next(u for u in reference.units if u.arm == "a")
    assert ref_unit.key == unit_a.key
    monkeypatch.setenv("HARNESS_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("OMP_NUM_THREADS", env["OMP_NUM_THREADS"])  # as the CLI's worker saw it
    threads = torch.get_num_threads()
    try:  # the same thread count as the CLI's single worker, so the arithmetic is the same
        options = WorkerOptions(store=tmp_path / "ref", wandb="disabled", threads=worker_threads(1))
        result = run_unit(ref_unit, options)
    finally:
        torch.set_num_threads(threads)
    assert result.status == "done"
    resumed = json.loads((unit_a.run_dir / "summary.json").read_text())
    expected = json.loads((ref_unit.run_dir / "summary.json").read_text())
    assert resumed["status"] == "done" and resumed["iteration"] == 48
    assert resumed["metrics"] == expected["metrics"]
    assert resumed["health"] == expected["health"]

    def strip(records: list[dict]) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "time"} for r in records]

    assert strip(_records(unit_a.run_dir / "metrics.jsonl")) == strip(
        _records(ref_unit.run_dir / "metrics.jsonl")
    )

    # Nothing ran twice: the killed unit has two attempts, the second resumed from a checkpoint; b ran once.
    run_a = json.loads((unit_a.run_dir / "run.json").read_text())
    assert run_a["attempt"] == 2 and run_a["status"] == "done"
    assert run_a["attempts"][0]["worker"] != run_a["attempts"][1]["worker"]
    resumed_from = run_a["attempts"][1]["resumed_from"]
    assert resumed_from is not None and 4 <= resumed_from <= killed_at and resumed_from % 4 == 0
    for u in plan.units:
        if u.arm == "b":
            assert json.loads((u.run_dir / "run.json").read_text())["attempt"] == 1
    # No file is truncated or corrupt.
    for path in folder.rglob("*.json"):
        json.loads(path.read_text())
    for path in folder.rglob("metrics.jsonl"):
        _records(path)
