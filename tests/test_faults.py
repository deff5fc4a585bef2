"""Bad days cost nothing but time: a torn queue record, a full or read-only store, a dead worker (killed,
a zombie, on another host), a killed parent, an unreachable W&B server, a hostile checkpoint or archive."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from cyclegan.config import resolve
from harness.engine import queue as q
from harness.engine import status as st
from harness.engine.plan import unit_for
from harness.engine.queue import Queue
from harness.engine.worker import Ablation, WorkerOptions, run_unit, work
from harness.errors import StoreFault
from tests.conftest import IDENTITY_SWEEP_TAIL, pool_spec

HARNESS = [sys.executable, "-m", "harness"]
SPEC = pool_spec("bad-day", "Does a bad day cost only time?", [0])
SETS = ["--set", "train.max_iters=8", "--set", "train.eval_every=8"]


@pytest.fixture(autouse=True)
def data_home(tmp_path_factory, monkeypatch) -> Path:
    """One data home for every test here (the synthetic set is generated once), never the user's."""
    home = tmp_path_factory.getbasetemp() / "faults-data"
    monkeypatch.setenv("HARNESS_DATA", str(home))
    return home


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a `harness` subprocess (HARNESS_DATA comes from the fixture above)."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_SILENT": "true", **extra}


def _harness(tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*HARNESS, *args], cwd=tmp_path, env=env or _env(tmp_path), capture_output=True,
                          text=True, timeout=180)  # fmt: skip


def _run_args(tmp_path: Path, store: Path, *more: str) -> list[str]:
    spec = tmp_path / "bad-day.toml"
    spec.write_text(SPEC)
    return ["run", str(spec), "--store", str(store), "--wandb", "disabled", "--no-report", *SETS, *more]


def _journal_parses(path: Path) -> None:
    for line in path.read_bytes().split(b"\n")[:-1]:
        json.loads(line)
    assert path.read_bytes().endswith(b"\n")


def _queue_with_one_unit(tmp_path: Path, name: str = "faults"):
    cfg = resolve("smoke", {"train.max_iters": "4"})
    unit = unit_for(name, "a", 0, cfg, tmp_path / "runs")
    queue = Queue(name, None, tmp_path / "runs" / name)
    queue.set_experiment({}, {unit.key: unit.cfg.to_dict()})
    queue.sync([unit], done=set())
    return queue, unit


# --- the queue journal -------------------------------------------------------------------------------


def test_a_torn_last_record_is_dropped_and_the_queue_reads_on(tmp_path, capsys):
    queue, unit = _queue_with_one_unit(tmp_path)
    journal = tmp_path / "runs" / "faults" / q.JOURNAL
    before = journal.read_bytes()
    with open(journal, "ab") as f:  # a worker killed in the middle of a record
        f.write(b'{"op_code":5,"worker_id":"x","trial_id":0,"user_attr":{"heart')
    again = Queue("faults", None, tmp_path / "runs" / "faults", create=False)
    assert "dropped a torn last record" in capsys.readouterr().err
    assert journal.read_bytes() == before
    assert [t.user_attrs["unit"] for t in again.study.get_trials()] == [unit.key]
    with open(journal, "ab") as f:  # torn again, and this time another process appends next
        f.write(b'{"op_code":5,"wor')
    queue.study.set_user_attr("after", 1)  # the open study's own append cuts the tail first
    _journal_parses(journal)
    fresh = optuna.load_study(study_name="faults", storage=q.open_storage(None, journal))
    assert fresh.user_attrs["after"] == 1


def test_an_append_that_fails_leaves_no_partial_record(tmp_path, monkeypatch):
    queue, _ = _queue_with_one_unit(tmp_path)
    journal = tmp_path / "runs" / "faults" / q.JOURNAL
    before = journal.read_bytes()

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(q.os, "fsync", full)  # the record reached the file, the disk refused to keep it
    with pytest.raises(OSError, match="No space"):
        queue.study.set_user_attr("big", "x" * 1000)
    monkeypatch.undo()
    assert journal.read_bytes() == before
    queue.study.set_user_attr("later", 2)
    _journal_parses(journal)


# --- store faults: one line, exit 2, the next run resumes --------------------------------------------


def test_disk_full_during_a_run_is_a_store_fault_and_the_run_is_requeued(tmp_path, monkeypatch):
    """Simulated at the checkpoint write (works on any machine; the tmpfs test below uses a real disk)."""
    import cyclegan.checkpoint as ckpt

    queue, unit = _queue_with_one_unit(tmp_path)
    real_save = ckpt.save

    def full(path, state):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(ckpt, "save", full)
    options = WorkerOptions(store=tmp_path / "runs", wandb="disabled", evaluate=False, log=lambda line: None)
    with pytest.raises(StoreFault) as fault:
        work(queue.study, Ablation(queue.study), options)
    assert str(fault.value).startswith(
        f"{unit.run_dir / 'checkpoints' / 'latest.pt'}: No space left on device"
    )
    run = json.loads((unit.run_dir / "run.json").read_text())
    assert run["status"] == "pending" and run["attempts"][-1]["status"] == "interrupted"
    waiting = queue.study.get_trials(states=(TrialState.WAITING,))
    assert [t.user_attrs["unit"] for t in waiting] == [unit.key]  # queued again, no retry used up
    assert not queue.failures(queue.by_unit()[unit.key])
    monkeypatch.setattr(ckpt, "save", real_save)
    assert work(queue.study, Ablation(queue.study), options)["complete"] == 1


def _mount_tmpfs(folder: Path, size: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True).returncode == 0  # fmt: skip


@pytest.fixture
def small_disk(tmp_path):
    """A 300 KiB tmpfs (root only; a container may refuse it too: then the test is skipped)."""
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "300k"):
        pytest.skip("cannot mount a tmpfs here (needs root); the simulated disk-full test covers the logic")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.mark.slow
def test_full_disk_then_read_only_store_one_line_exit_2_then_resume(tmp_path, small_disk):
    args = _run_args(tmp_path, small_disk)
    full = _harness(tmp_path, *args)
    assert full.returncode == 2, full.stdout + full.stderr
    errors = [line for line in full.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "Traceback" not in full.stderr, full.stderr
    assert errors[0].startswith(f"error: {small_disk}/bad-day/") and "No space left on device" in errors[0]
    _journal_parses(small_disk / "bad-day" / q.JOURNAL)

    subprocess.run(["mount", "-o", "remount,size=20m", str(small_disk)], check=True)
    resumed = _harness(tmp_path, *args)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "2/2 done" in resumed.stdout
    for run in (small_disk / "bad-day").glob("*/run.json"):
        assert json.loads(run.read_text())["status"] == "done"

    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    again = _harness(tmp_path, *_run_args(tmp_path, small_disk, "--seeds", "2"))
    assert again.returncode == 2, again.stdout + again.stderr
    assert again.stderr.count("\n") == 1 and "Read-only file system" in again.stderr, again.stderr
    assert st.counts(st.experiment_rows(small_disk / "bad-day")[1])["done"] == 2  # still readable


def test_read_only_store_without_root(tmp_path):
    """chmod makes a store read-only for a normal user (root ignores it: the tmpfs test covers root)."""
    if os.geteuid() == 0:
        pytest.skip("root writes through chmod; the tmpfs test remounts read-only instead")
    store = tmp_path / "store"
    store.mkdir()
    store.chmod(0o555)
    try:
        result = _harness(tmp_path, *_run_args(tmp_path, store))
    finally:
        store.chmod(0o755)
    assert (
        result.returncode == 2 and "Permission denied" in result.stderr and "Traceback" not in result.stderr
    )


# --- dead workers ------------------------------------------------------------------------------------


def test_a_zombie_is_not_alive():
    child = subprocess.Popen(["true"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # exited but not waited for: a zombie
        state = Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2].split()[0]
        if state == "Z":
            break
        time.sleep(0.01)
    assert not q.pid_alive(child.pid)
    assert q.pid_alive(os.getpid())
    child.wait()
    assert not q.pid_alive(child.pid)


def _claimed_by(queue: Queue, worker: str, beat: float) -> optuna.Trial:
    trial = queue.study.ask()  # takes the queued unit, as a worker's optimize would
    trial.set_user_attr("worker", worker)
    trial.set_user_attr("heartbeat", beat)
    return trial


def test_a_dead_workers_run_is_free_again_at_once_or_after_three_beats(tmp_path):
    queue, unit = _queue_with_one_unit(tmp_path)
    zombie = subprocess.Popen(["true"])
    time.sleep(0.2)
    _claimed_by(queue, f"{os.uname().nodename}:{zombie.pid}", time.time())
    assert q.reap(queue.study) == [0]  # same host: a dead (or zombie) pid frees its run at once
    zombie.wait()
    assert [t.user_attrs["unit"] for t in queue.study.get_trials(states=(TrialState.WAITING,))] == [unit.key]

    other, _ = _queue_with_one_unit(tmp_path, "faults-elsewhere")
    trial = _claimed_by(other, "another-host:123", time.time() - q.STALE_SECONDS + 2)
    assert q.reap(other.study) == []  # another host: alive while it beats
    assert q.STALE_SECONDS == 3 * q.HEARTBEAT_SECONDS
    trial.set_user_attr("heartbeat", time.time() - q.STALE_SECONDS - 1)
    assert q.reap(other.study) == [trial.number]  # three beats missed: free again


def test_a_busy_worker_keeps_its_run_with_a_heartbeat_thread(tmp_path, monkeypatch):
    monkeypatch.setattr(q, "HEARTBEAT_SECONDS", 0.05)
    queue, _ = _queue_with_one_unit(tmp_path)
    trial = queue.study.ask()
    q.claim(trial)
    first = queue.study.get_trials()[0].user_attrs["heartbeat"]
    time.sleep(0.5)  # the main thread is "in a long step"; the thread stamps meanwhile
    assert queue.study.get_trials()[0].user_attrs["heartbeat"] > first
    q.release()
    queue.study.tell(trial, 1.0)


def _running_workers(folder: Path) -> list[int]:
    pids = []
    for run in folder.glob("*/run.json"):
        record = json.loads(run.read_text())
        if record.get("status") == "running":
            pids.append(int(record["worker"].rsplit(":", 1)[1]))
    return pids


@pytest.mark.slow
def test_killing_the_parent_stops_its_workers_and_the_same_command_resumes(tmp_path):
    store = tmp_path / "runs"
    args = _run_args(tmp_path, store, "--workers", "2", "--set", "train.max_iters=40")
    parent = subprocess.Popen([*HARNESS, *args], cwd=tmp_path, env=_env(tmp_path),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    folder = store / "bad-day"
    deadline = time.monotonic() + 120
    while len(_running_workers(folder)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    workers = _running_workers(folder)
    assert len(workers) == 2
    parent.kill()
    parent.wait()
    t0 = time.monotonic()
    while any(q.pid_alive(p) for p in workers) and time.monotonic() - t0 < 10:
        time.sleep(0.05)
    assert not any(q.pid_alive(p) for p in workers)  # no orphans
    again = _harness(tmp_path, *_run_args(tmp_path, store, "--set", "train.max_iters=40"))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "0 running" in again.stdout and "2/2 done" in again.stdout  # free at once: nothing waits
    for run in folder.glob("*/run.json"):
        record = json.loads(run.read_text())
        assert record["status"] == "done" and record["attempt"] == 2  # the killed attempt, then the resume


# --- resume, W&B, checkpoints, archives ---------------------------------------------------------------


def test_a_resumed_run_keeps_the_thread_count_it_started_with(tmp_path):
    from harness.engine.recorder import UnitCallbacks

    _, unit = _queue_with_one_unit(tmp_path)
    seen: list[int] = []

    class Threads(UnitCallbacks):
        def on_start(self, model, progress) -> None:
            seen.append(torch.get_num_threads())

    unit.run_dir.mkdir(parents=True)
    (unit.run_dir / "run.json").write_text(json.dumps({"threads": 1, "attempts": []}))
    before = torch.get_num_threads()
    try:
        options = WorkerOptions(store=tmp_path / "runs", wandb="disabled", evaluate=False, threads=2)
        assert run_unit(unit, options, inner=Threads()).status == "done"
    finally:
        torch.set_num_threads(before)
    assert seen == [1]
    assert json.loads((unit.run_dir / "run.json").read_text())["threads"] == 1


def test_unreachable_wandb_falls_back_to_offline_in_seconds(tmp_path, monkeypatch):
    import socket

    import wandb

    from harness.engine.tracking import Tracker

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    wandb.teardown()
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("WANDB_API_KEY", "0123456789abcdef0123456789abcdef01234567")
    monkeypatch.setenv("WANDB_INIT_TIMEOUT", "2")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setattr(Tracker, "_unreachable", False)
    cfg = resolve("smoke", {"train.max_iters": "2"})
    units = [unit_for("wandb-down", "a", seed, cfg, tmp_path / "runs") for seed in (0, 1)]
    options = WorkerOptions(store=tmp_path / "runs", wandb="online", evaluate=False)
    started = time.monotonic()
    try:
        for unit in units:
            assert run_unit(unit, options).status == "done"
    finally:
        wandb.teardown()
    assert time.monotonic() - started < 30  # one short wait, not 90 s per run
    for unit in units:
        run = json.loads((unit.run_dir / "run.json").read_text())
        assert run["wandb"]["mode"] == "offline" and run["wandb"]["asked"] == "online"  # the fallback, said
        assert list((unit.run_dir / "wandb").glob(f"offline-run-*-{run['wandb']['id']}"))


def test_a_refused_checkpoint_says_why_and_never_suggests_unsafe_loading(tmp_path):
    from cyclegan.checkpoint import load
    from cyclegan.errors import CheckpointError

    class Payload:
        def __reduce__(self):
            return (os.system, ("echo owned",))

    torch.save({"model": Payload()}, tmp_path / "evil.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    for name, reason in (("evil.pt", "holds the Python object posix.system"), ("junk.pt", "not a file")):
        with pytest.raises(CheckpointError) as exc:
            load(tmp_path / name)
        assert reason in str(exc.value) and "weights_only" not in str(exc.value)


def test_an_archive_that_unpacks_beyond_the_cap_is_refused(tmp_path):
    from cyclegan.data.download import DownloadError, extract_zip

    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("bomb/trainA/zeros.bin", b"\0" * (4 << 20))  # 4 MiB that compress to a few KiB
    assert archive.stat().st_size < 64 << 10
    with pytest.raises(DownloadError, match=r"unpack to 4,194,304 bytes, over the cap of 1,048,576"):
        extract_zip(archive, tmp_path / "bomb", cap=1 << 20)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb.zip"]
    extract_zip(archive, tmp_path / "bomb", cap=8 << 20)
    assert (tmp_path / "bomb" / "trainA" / "zeros.bin").stat().st_size == 4 << 20


def test_store_fault_line_names_path_and_cause():
    from harness.errors import store_fault

    line = str(store_fault(OSError(errno.EROFS, "Read-only file system", "/s/x.json")))
    assert line.startswith("/s/x.json: Read-only file system; make it writable, then run the same command")
    assert str(store_fault(OSError(errno.ENOSPC, "No space left on device"), "/s")).startswith("/s: No space")
    assert store_fault(ValueError("x")) is None and store_fault(FileNotFoundError(2, "gone", "/x")) is None


SWEEP = (
    """
name = "sweep-tiny"
question = "Which identity weight?"
kind = "sweep"
preset = "cpu"
data = "synth:seasons"
seeds = [0]
[sweep]
trials = 1
pruner = "none"
"""
    + IDENTITY_SWEEP_TAIL
)


def test_confirm_and_later_commands_take_the_config_the_study_was_created_with(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from harness.cli import app

    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "sweep-tiny.toml"
    spec.write_text(SWEEP)
    common = ["--threads", "1", "--wandb", "disabled", "--no-report"]
    first = ["--preset", "smoke", "--set", "train.max_iters=4", "--trials", "1", "--confirm", "0"]
    created = CliRunner().invoke(app, ["sweep", str(spec), *first, *common])
    assert created.exit_code == 0, created.output
    confirmed = CliRunner().invoke(app, ["sweep", str(spec), "--confirm", "1", *common])  # no flags repeated
    assert confirmed.exit_code == 0, confirmed.output
    folder = tmp_path / "runs" / "sweep-tiny"
    runs = [run for arm in json.loads((folder / "confirm.json").read_text())["runs"].values() for run in arm]
    assert len(runs) == 2
    for run in runs:
        cfg = json.loads((folder / run / "config.json").read_text())
        assert (
            cfg["train"]["max_iters"] == 4 and cfg["model"]["ngf"] == 4
        )  # smoke + --set, not the cpu preset
    refused = CliRunner().invoke(app, ["sweep", str(spec), "--preset", "cpu", "--confirm", "0", *common])
    assert refused.exit_code != 0 and "base config differs" in str(refused.exception)  # asked for another one
