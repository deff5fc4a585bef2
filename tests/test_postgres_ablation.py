"""Two machines on one ablation: one PostgreSQL queue, one shared store (an S3 bucket served by moto, started
here), separate working folders.

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
from collections.abc import Iterator
from pathlib import Path

import fsspec
import optuna
import pytest
import torch
from optuna.trial import TrialState

from harness.engine.plan import build_plan
from harness.engine.queue import sql_url
from harness.engine.spec import load_spec
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


@pytest.fixture(scope="module")
def s3_store() -> Iterator[str]:
    """An S3-compatible server (moto's, in this process) with an empty bucket; the AWS variables point the
    harness processes at it."""
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{server.get_host_and_port()[1]}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        fsspec.filesystem("s3", skip_instance_cache=True).mkdir("shared")
        yield "s3://shared/store"
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
        server.stop()


class Shared:
    """The experiment's folder in the shared store as any machine sees it: a folder, or objects at a URL."""

    def __init__(self, store: str, name: str) -> None:
        self.fs, root = fsspec.core.url_to_fs(store, use_listings_cache=False, skip_instance_cache=True)
        self.root = f"{root}/{name}"

    def text(self, *parts: str) -> str:
        try:
            return self.fs.cat_file("/".join([self.root, *parts])).decode()
        except FileNotFoundError:
            return ""

    def exists(self, *parts: str) -> bool:
        return self.fs.exists("/".join([self.root, *parts]))

    def runs(self) -> list[str]:
        """Run folders with a run.json."""
        return sorted(p.rsplit("/", 2)[-2] for p in self.fs.glob(f"{self.root}/*/run.json"))

    def run(self, name: str) -> dict:
        try:
            return json.loads(self.text(name, "run.json") or "{}")
        except ValueError:  # a folder store's file being replaced
            return {}


def _running(shared: Shared, pid: int) -> str | None:
    """A run machine ``pid`` is training past its first checkpoint."""
    for name in shared.runs():
        run = shared.run(name)
        if run.get("status") == "running" and run.get("worker", "").endswith(f":{pid}"):
            if shared.exists(name, "checkpoints", "latest.pt"):
                return name
    return None


@pytest.mark.slow
def test_two_machines_one_queue_one_store_a_killed_machine_is_taken_over(postgres_url, s3_store, tmp_path):  # noqa: F811
    """The store is an S3 bucket: each machine trains in its own cache folder and uploads. (A folder both
    machines mount is the local store's code path, which the rest of the suite covers; ``Shared`` reads
    either, so ``store = str(tmp_path / "shared")`` runs this test on one.)"""
    store, name, data = s3_store, "two-machines", tmp_path / "data"
    spec = tmp_path / "a" / f"{name}.toml"
    spec.parent.mkdir()
    (tmp_path / "b").mkdir()
    spec.write_text(SPEC)
    sets = [x for k, v in SETS.items() for x in ("--set", f"{k}={v}")]
    run_a = ["run", str(spec), "--storage", postgres_url, "--store", store, "--wandb", "disabled",
             "--reports", str(tmp_path / "a" / "reports"), *sets]  # fmt: skip
    a = _harness(*run_a, cwd=tmp_path / "a", data=data, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    study = None
    deadline = time.monotonic() + 120
    while study is None and time.monotonic() < deadline:  # B joins once A has created the queue
        try:
            study = optuna.load_study(study_name=name, storage=sql_url(postgres_url))
        except KeyError:
            time.sleep(0.2)
    assert study is not None
    worker_b = ["worker", name, "--storage", postgres_url, "--store", store, "--threads", "1",
                "--wandb", "disabled"]  # fmt: skip
    b = _harness(*worker_b, cwd=tmp_path / "b", data=data, stderr=subprocess.PIPE, text=True)

    shared = Shared(store, name)
    victim = None
    while victim is None and time.monotonic() < deadline and a.poll() is None:
        victim = _running(shared, a.pid)
        time.sleep(0.02)
    assert victim is not None, a.communicate()[0].decode()[-3000:]
    os.kill(a.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    a.wait()
    taken = None
    while taken is None and time.monotonic() - killed_at < 120:
        run = shared.run(victim)
        if len(run.get("attempts", [])) == 2 and run["worker"].endswith(f":{b.pid}"):
            taken = time.monotonic() - killed_at
        time.sleep(0.1)
    _, err = b.communicate(timeout=300)
    assert b.returncode == 0, err[-3000:]
    assert taken is not None and taken < 90, err[-3000:]
    print(f"takeover seen in the store after {taken:.1f} s (B finishes its own run first)")

    # Every run trained to its end exactly once: one COMPLETE trial per run, a second attempt only for the
    # killed one; A's same command again trains nothing and reports all four.
    trials = study.get_trials(deepcopy=False)
    complete = [t.user_attrs["unit"] for t in trials if t.state == TrialState.COMPLETE]
    assert sorted(complete) == shared.runs() and len(complete) == 4
    for run_name in shared.runs():
        run = shared.run(run_name)
        assert run["status"] == "done" and run["attempt"] == (2 if run_name == victim else 1)
        assert json.loads(shared.text(run_name, "summary.json"))["status"] == "done"
    env = {**os.environ, "WANDB_MODE": "disabled", "HARNESS_DATA": str(data)}
    again = subprocess.run([sys.executable, "-m", "harness", *run_a], cwd=tmp_path / "a", env=env,
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    assert "4 done, 0 to run" in again.stdout and "4/4 done" in again.stdout
    report = (tmp_path / "a" / "reports" / name / "runs.csv").read_text()
    assert all(run_name in report for run_name in shared.runs())

    # The run B resumed equals an uninterrupted run of the same unit (same threads: recorded in run.json).
    plan = build_plan(load_spec(spec), tmp_path / "reference", sets=SETS)
    unit = next(u for u in plan.units if u.key == victim)
    os.environ["HARNESS_DATA"] = str(data)
    threads = torch.get_num_threads()
    try:
        recorded = shared.run(victim)["threads"]
        assert run_unit(unit, WorkerOptions(store=tmp_path / "reference", wandb="disabled",
                                            threads=recorded)).status == "done"  # fmt: skip
    finally:
        torch.set_num_threads(threads)
        os.environ.pop("HARNESS_DATA")
    resumed = json.loads(shared.text(victim, "summary.json"))
    expected = json.loads((unit.run_dir / "summary.json").read_text())
    assert resumed["metrics"] == expected["metrics"] and resumed["iteration"] == 36

    def records(text: str) -> list[dict]:
        return [{k: v for k, v in json.loads(x).items() if k != "time"} for x in text.splitlines()]

    reference = (unit.run_dir / "metrics.jsonl").read_text()
    assert records(shared.text(victim, "metrics.jsonl")) == records(reference)
