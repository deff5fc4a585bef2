"""A sweep on a real PostgreSQL server: two worker processes, one killed with SIGKILL mid-trial.

The fixture starts a throwaway server (initdb + pg_ctl; as the ``postgres`` user, or ``nobody`` where there
is none, when run as root, which initdb refuses) on 127.0.0.1 and a free port, and removes it at the end.
The binaries come from Debian's PostgreSQL (``.ci/run`` installs it), else ``initdb`` on PATH, else the
``pgserver`` pip package (in the ``test`` extra, wheels up to Python 3.12); with none of them the test is
skipped and the summary (``-ra``) says why.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from harness.engine.queue import sql_url
from tests.conftest import POSTGRES_SERVER

ROOT = Path(__file__).resolve().parents[1]
SPEC = """
name = "pg-sweep"
kind = "sweep"
preset = "smoke"
data = "synth:seasons"
seeds = [0]
[sweep]
trials = 4
sampler = "random"
pruner = "none"
[params."loss.lambda_A"]
low = 1.0
high = 30.0
log = true
tie = ["loss.lambda_B"]
[params."loss.lambda_identity"]
low = 0.0
high = 1.0
[[objectives]]
metric = "seasons.l1_AtoB"
direction = "minimize"
"""


def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    which = shutil.which("initdb")
    if which:
        return Path(which).resolve().parent
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.origin is not None:
        return Path(spec.origin).parent / "pginstall" / "bin"
    pytest.skip("no PostgreSQL: no initdb on PATH, no pgserver wheel (pip install pgserver; Python <= 3.12)")


def _server_user() -> str | None:
    """initdb refuses root: run the server as the distribution's ``postgres`` user, else as ``nobody``."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
        return "postgres"
    except KeyError:
        return "nobody"


def _as_server_user(cmd: list[str]) -> list[str]:
    user = _server_user()
    return ["runuser", "-u", user, "--", *cmd] if user else cmd


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url(request):
    bin_dir = _pg_bin()
    request.config.stash[POSTGRES_SERVER] = str(bin_dir)
    root = Path(tempfile.mkdtemp(prefix="pgsweep-"))
    data, sock, log = root / "data", root / "sock", root / "server.log"
    sock.mkdir()
    user = _server_user()
    if user:
        shutil.chown(root, user)
        shutil.chown(sock, user)
    port = _free_port()
    run = lambda cmd: subprocess.run(_as_server_user(cmd), check=True, capture_output=True, text=True)  # noqa: E731
    run([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"])
    run([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-o",
         f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off", "start"])  # fmt: skip
    try:
        run([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "sweeps"])
        yield f"postgresql://postgres@127.0.0.1:{port}/sweeps"
    finally:
        subprocess.run(_as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True)  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


def _harness(*args: str, cwd: Path, **kw) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled", "HARNESS_DATA": str(cwd / "data")}
    return subprocess.Popen([sys.executable, "-m", "harness", *args], cwd=cwd, env=env, **kw)


def test_two_workers_on_postgres_retry_a_killed_trial(postgres_url, tmp_path):
    spec = tmp_path / "sweep-pg.toml"
    spec.write_text(SPEC)
    common = [
        "--storage",
        postgres_url,
        "--store",
        str(tmp_path / "runs"),
        "--wandb",
        "disabled",
        "--threads",
        "1",
    ]
    # The study is created (and its target set) before any worker starts.
    from typer.testing import CliRunner

    from harness.cli import app

    setup = CliRunner().invoke(app, ["sweep", str(spec), "--workers", "0", *common])
    assert setup.exit_code == 0 and "target 4 finished or pruned trials" in setup.output, setup.output
    join = ["sweep", str(spec), "--join", "--heartbeat", "1", "--grace", "3", *common]
    victim_log = open(tmp_path / "victim.log", "w")  # noqa: SIM115
    victim = _harness(*join, "--index", "0", cwd=tmp_path, stderr=victim_log)
    survivor = _harness(*join, "--index", "1", cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    study = optuna.load_study(
        study_name="pg-sweep", storage=optuna.storages.RDBStorage(sql_url(postgres_url))
    )
    # Kill the first worker inside a unit: its trial is RUNNING and its run folder records the attempt.
    deadline, killed = time.time() + 120, None
    while time.time() < deadline and killed is None and victim.poll() is None:
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if not t.user_attrs.get("worker", "").endswith(f":{victim.pid}"):
                continue
            for run_json in (tmp_path / "runs" / "pg-sweep").glob(f"trial-{t.number}-s0-*/run.json"):
                if json.loads(run_json.read_text() or "{}").get("worker", "").endswith(f":{victim.pid}"):
                    os.kill(victim.pid, signal.SIGKILL)
                    killed = t.number
        time.sleep(0.05)
    assert killed is not None, (tmp_path / "victim.log").read_text()[-3000:]
    victim.wait(timeout=30)
    _, err = survivor.communicate(timeout=240)
    assert survivor.returncode == 0, err[-2000:]

    trials = study.get_trials(deepcopy=False)
    counted = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(counted) == 4  # exactly the target
    dead = next(t for t in trials if t.number == killed)
    assert dead.state == TrialState.FAIL  # failed by the heartbeat check...
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == killed]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE  # ...and re-run by the survivor
    assert retry[0].params == dead.params and retry[0].user_attrs["unit"] == killed
    assert retry[0].user_attrs["worker"].endswith(f":{survivor.pid}")
    assert f"trial {killed}: its worker is gone; re-queued" in err

    # No unit ran twice: one run folder per counted trial; only the killed one has a second attempt.
    units = [t.user_attrs["unit"] for t in counted]
    assert len(set(units)) == 4
    folders = sorted((tmp_path / "runs" / "pg-sweep").glob("trial-*"))
    assert len(folders) == 4
    for folder in folders:
        run = json.loads((folder / "run.json").read_text())
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["status"] == "done" and run["status"] == "done"
        assert run["attempt"] == (2 if folder.name.startswith(f"trial-{killed}-") else 1), folder.name
        assert summary["iteration"] == summary["total"] == 12
