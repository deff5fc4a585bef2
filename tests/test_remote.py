"""A URL store (harness/engine/remote.py) on fsspec's in-memory filesystem: what is uploaded in which order,
what a reader's pull takes and leaves, and that a local path is untouched. In process, well under a second;
the end-to-end test on an S3 server is tests/test_postgres_ablation.py."""

from __future__ import annotations

import json
from pathlib import Path

import fsspec
import pytest
from typer.testing import CliRunner

from harness import cli
from harness.engine import remote
from harness.engine.worker import _Lock
from harness.errors import StoreFault, UserError
from tests.conftest import IDENTITY_SWEEP_TAIL


@pytest.fixture
def bucket(tmp_path, monkeypatch):
    """An empty in-memory bucket, a cache folder under tmp_path, and a clean binding table."""
    fs = fsspec.filesystem("memory")
    fs.mkdir("/bucket")
    monkeypatch.setenv(remote.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(remote, "_BOUND", {})
    monkeypatch.setattr(remote, "_SENT", {})
    yield fs
    fs.rm("/bucket", recursive=True)


def _run_folder(root, name: str, status: str) -> None:
    run = root / "exp" / name
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "latest.pt").write_bytes(b"weights")
    (run / "metrics.jsonl").write_text('{"iteration": 6}\n')
    (run / "run.json").write_text('{"status": "running"}')
    (run / "summary.json").write_text(f'{{"status": "{status}"}}')
    (run / ".lock").write_text("")
    (run / ".summary.json.1234.tmp").write_text("half")


def test_a_run_is_uploaded_with_its_summary_last_and_only_changes_again(bucket, tmp_path, monkeypatch):
    cache = remote.open_store("memory://bucket/store")
    assert remote.url_of(cache / "exp") == "memory://bucket/store/exp"
    _run_folder(cache, "a", "done")
    sent = []
    put = type(bucket).put_file

    def recorded(fs, lpath: str, rpath: str, **kw) -> None:
        sent.append(rpath)
        put(fs, lpath, rpath, **kw)

    monkeypatch.setattr(type(bucket), "put_file", recorded)
    remote.push(cache / "exp" / "a")
    names = [p.rsplit("/", 1)[1] for p in sent]
    assert names[-2:] == ["run.json", "summary.json"]  # a reader that sees "done" sees the whole run
    assert sorted(names[:-2]) == ["latest.pt", "metrics.jsonl"]  # no lock, no temp file
    sent.clear()
    (cache / "exp" / "a" / "metrics.jsonl").write_text('{"iteration": 6}\n{"iteration": 12}\n')
    remote.push(cache / "exp" / "a")
    assert [p.rsplit("/", 1)[1] for p in sent] == ["metrics.jsonl"]


def test_a_pull_leaves_runs_trained_here_and_checkpoints_to_the_run_itself(bucket, tmp_path, monkeypatch):
    cache = remote.open_store("memory://bucket/store")
    for name in ("a", "b"):
        _run_folder(cache, name, "done")
        remote.push(cache / "exp" / name)
    (cache / "exp" / "experiment.json").write_text("{}")
    remote.push(cache / "exp" / "experiment.json")
    remote._BOUND.clear()  # a second machine, with its own cache folder
    monkeypatch.setenv(remote.CACHE_ENV, str(tmp_path / "other"))
    mine = remote.open_store("memory://bucket/store")
    (mine / "exp" / "b").mkdir(parents=True)
    (mine / "exp" / "b" / "metrics.jsonl").write_text("training here\n")
    with _Lock(mine / "exp" / "b" / ".lock"):
        remote.pull(mine / "exp")
    assert (mine / "exp" / "experiment.json").read_text() == "{}"
    assert (mine / "exp" / "a" / "summary.json").read_text() == '{"status": "done"}'
    assert not (mine / "exp" / "a" / "checkpoints").exists()  # a reader needs no weights
    assert (mine / "exp" / "b" / "metrics.jsonl").read_text() == "training here\n"  # left as it is
    remote.pull(mine / "exp" / "a", run=True)  # taking a run over: everything, the checkpoint too
    assert (mine / "exp" / "a" / "checkpoints" / "latest.pt").read_bytes() == b"weights"


def test_a_local_path_is_not_a_url_and_a_bad_one_is_one_line(bucket, tmp_path):
    assert remote.open_store(str(tmp_path / "runs")) == tmp_path / "runs"
    assert remote.url_of(tmp_path / "runs") is None
    remote.push(tmp_path / "runs")  # nothing bound: nothing happens
    with pytest.raises(UserError, match="--store memory://nobucket/x: FileNotFoundError"):
        remote.open_store("memory://nobucket/x")
    cache = remote.open_store("memory://bucket/store")
    (cache / "exp").mkdir(parents=True)
    (cache / "exp" / "experiment.json").write_text("{}")
    bucket.rm("/bucket", recursive=True)
    bucket.pipe("/bucket", b"a file where the bucket was")
    with pytest.raises(StoreFault, match="memory://bucket/store/exp/experiment.json: .*run the same command"):
        remote.push(cache / "exp" / "experiment.json")


def test_a_sweep_on_a_url_store_uploads_its_runs_and_any_machine_reports_them(bucket, tmp_path, monkeypatch):
    """A one-trial smoke sweep with one confirmation seed, in process (a memory store lives in one process):
    the trial's and the confirmation's runs reach the URL as they finish; a second machine's report and
    status read them from its own pull of the store (the study from trials.json: no journal there)."""
    monkeypatch.setenv("HARNESS_DATA", str(tmp_path / "data"))
    spec = tmp_path / "sweep-url.toml"
    spec.write_text('name = "url"\nkind = "sweep"\npreset = "smoke"\ndata = "synth:seasons"\nseeds = [0]\n'
                    '[sweep]\ntrials = 1\npruner = "none"\n' + IDENTITY_SWEEP_TAIL)  # fmt: skip
    store, tiny = "memory://bucket/s", ["--set", "train.max_iters=6", "--threads", "1", "--wandb", "disabled"]
    args = ["sweep", str(spec), "--store", store, "--trials", "1", "--confirm", "1", *tiny, "--no-report"]
    result = CliRunner().invoke(cli.app, args)  # --no-report: the report is the second machine's
    assert result.exit_code == 0, result.output
    names = {Path(f).relative_to("/bucket/s/url").as_posix() for f in bucket.find("/bucket/s/url")}
    runs = sorted({n.split("/")[0] for n in names if "/" in n})
    assert [r.rsplit("-", 1)[0] for r in runs] == ["confirm-best-s1", "confirm-default-s1", "trial-0-s0"]
    assert {f"{r}/summary.json" for r in runs} <= names and {"experiment.json", "confirm.json"} <= names
    assert "trials.json" in names and "queue.journal" not in names  # the study's copy, not its live journal
    remote._BOUND.clear()  # a second machine: its own cache, nothing local
    monkeypatch.setenv(remote.CACHE_ENV, str(tmp_path / "other"))
    result = CliRunner().invoke(cli.app, ["report", "url", "--store", store, "--reports", f"{tmp_path}/r2"])
    assert result.exit_code == 0, result.output
    listed = (tmp_path / "r2" / "url" / "runs.csv").read_text()
    assert all(r in listed for r in runs)
    md = (tmp_path / "r2" / "url" / "report.md").read_text()
    assert "1 finished, 0 pruned" in md
    status = CliRunner().invoke(cli.app, ["status", "url", "--store", store, "--json"])
    assert status.exit_code == 0, status.output
    assert sorted(r["run"] for r in json.loads(status.output)["runs"]) == runs
