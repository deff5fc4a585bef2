"""Run-folder files of docs/RUNSTORE.md: config.json, run.json, metrics.jsonl, summary.json.

JSON documents are replaced atomically; metrics.jsonl is append-only with one flushed line per record, and is
repaired on resume (a torn last line from a killed worker is dropped, as are records past the checkpoint the
run resumes from, so a resumed run's file reads exactly like an uninterrupted one).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import platform
import resource
import socket
import subprocess
from pathlib import Path
from typing import Any

from cyclegan.atomic import atomic_write_text

PACKAGES = ("torch", "torchvision", "numpy", "optuna", "wandb", "cyclegan-harness")


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON document, or None when missing or unreadable (a reader never crashes on a partial store)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Every parseable record of a metrics.jsonl (a torn last line is skipped)."""
    out = []
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


def append_metric(path: Path, record: dict[str, Any]) -> None:
    """One line, flushed and synced, so a killed worker loses at most the line being written."""
    line = json.dumps(record, allow_nan=False, default=_jsonable) + "\n"
    try:
        with open(path, "a") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:  # a full disk: say which file (a torn line is dropped on resume)
        raise OSError(exc.errno, exc.strerror, str(path)) from exc


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {value!r}")


def repair_metrics(path: Path, upto: int | None) -> None:
    """Keep the parseable records with iteration <= ``upto`` (None: all), rewriting the file atomically."""
    if not Path(path).exists():
        return
    kept = [r for r in read_metrics(path) if upto is None or r.get("iteration", 0) <= upto]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))


@functools.cache
def git_info(root: Path = Path(__file__).resolve().parents[2]) -> dict[str, Any]:
    """Commit and dirty flag of the code that ran (None outside a git checkout). Changes under reports/ do
    not count: the harness writes there itself, so the first report would mark every later run dirty."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)reports"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(dirty)}


@functools.cache
def package_versions() -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    out["python"] = platform.python_version()
    return out


def device_name(device: Any) -> str:
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return str(device)


def peak_memory_mb(device: Any) -> float:
    """Peak accelerator memory for CUDA runs, else the worker process's peak resident set size."""
    import torch

    if torch.device(device).type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"
