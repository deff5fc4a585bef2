"""A run store addressed by a URL (``--store s3://bucket/prefix``): runs train in a local cache folder and are
copied to the URL, so every machine (and every report) reads every machine's runs.

Workers write files in place and fsync them; object storage has neither appends nor renames, so the cache
is the working copy and the URL the shared one. A run folder is uploaded at each checkpoint and when the run
ends, summary.json last: a reader that sees ``status: done`` there sees a complete run (each object is
replaced whole). Reads pull a folder before looking (``pull``); a run folder that a process on this machine
is training (its ``.lock`` held) is left as it is. A local path is not a URL: nothing here touches it.

Credentials and the endpoint come from the usual AWS variables (``AWS_ACCESS_KEY_ID``, ...,
``AWS_ENDPOINT_URL`` for an S3-compatible server), as boto reads them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.errors import StoreFault, UserError

CACHE_ENV = "HARNESS_STORE_CACHE"  # where URL stores are cached; default .store-cache in the working folder
LAST = ("run.json", "summary.json")  # uploaded after everything else, in this order: "done" comes last
_SKIP_DIRS = {"checkpoints", "wandb"}  # not needed to read a run (a run's own pull takes checkpoints)
_QUICK = {"config_kwargs": {"connect_timeout": 5, "retries": {"max_attempts": 1}}}  # a probe
_BOUND: dict[Path, tuple[str, Any]] = {}  # cache root -> (store URL, filesystem), set by ``open_store``
_SENT: dict[Path, tuple[int, int]] = {}  # file -> (size, mtime_ns) when this process last uploaded it


def is_url(value: str) -> bool:
    return "://" in value


def open_store(value: str | Path) -> Path:
    """``--store``: a local path as given; a URL, once its bucket answers, as its local cache folder. A store
    that cannot be reached is one line naming it and the cause, before anything is written."""
    text = str(value)
    if not is_url(text):
        return Path(text)
    url = text.rstrip("/")
    fs, root = _filesystem(url)
    probe, _ = _filesystem(url, **(_QUICK if url.startswith("s3://") else {}))
    try:
        probe.ls(root.lstrip("/").split("/", 1)[0], refresh=True)  # the bucket
    except Exception as exc:  # noqa: BLE001 - botocore's and fsspec's errors alike: all mean "not usable"
        raise UserError(f"--store {url}: {_cause(exc)}") from None
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    cache = (Path(os.environ.get(CACHE_ENV) or ".store-cache") / f"{_slug(url)}-{digest}").absolute()
    _BOUND[cache] = (url, fs)
    return cache


def url_of(path: Path) -> str | None:
    """The URL a cached path stands for (for messages and for worker processes), None for a local store."""
    found = _find(path)
    return None if found is None else found[0]


def shown(path: Path) -> str:
    """How to name ``path`` to a user: its URL when it is a cached copy."""
    return url_of(path) or str(path)


def pull(folder: Path, *, run: bool = False) -> None:
    """Bring ``folder`` (an experiment's, or with ``run`` a run's) up to date from the URL. An experiment's
    pull takes what a reader needs (no checkpoints) and skips runs that this machine is training; a run's
    pull (its caller holds the run's lock, to resume it) takes everything, checkpoints included."""
    found = _find(folder)
    if found is None:
        return
    url, fs = found
    remote = _remote(url)
    with _faults(url):
        if not fs.exists(remote):
            return
        files = [f for f in fs.find(remote) if not Path(f).name.startswith(".")]
        by_run: dict[str, list[str]] = {}
        for f in files:
            parts = Path(f[len(remote) :].lstrip("/")).parts
            if run or len(parts) == 1:
                _fetch(fs, f, folder, remote)
            elif not _SKIP_DIRS & set(parts[1:-1]):
                by_run.setdefault(parts[0], []).append(f)
        for name, run_files in by_run.items():
            with _unless_training(folder / name) as free:
                for f in run_files if free else []:
                    _fetch(fs, f, folder, remote)


def push(path: Path) -> None:
    """Upload ``path`` (a file, or a folder's files that changed since this process last sent them), with
    run.json and summary.json last; a run folder is complete on the URL once its summary.json is there."""
    found = _find(path)
    if found is None:
        return
    url, fs = found
    if path.is_file():
        files = [path]
    else:
        files = sorted(
            (f for f in path.rglob("*") if f.is_file() and not f.is_symlink() and _sendable(f, path)),
            key=lambda f: (f.parent == path and f.name in LAST, LAST.index(f.name) if f.name in LAST else 0),
        )
    with _faults(url):
        for f in files:
            stat = f.stat()
            if _SENT.get(f) == (stat.st_size, stat.st_mtime_ns):
                continue
            fs.put_file(str(f), _remote(url if f == path else f"{url}/{f.relative_to(path).as_posix()}"))
            _SENT[f] = (stat.st_size, stat.st_mtime_ns)


def _sendable(f: Path, top: Path) -> bool:
    """Not hidden (a lock, an atomic write's temp file) and not a W&B folder (it syncs itself)."""
    parts = f.relative_to(top).parts
    return not any(p.startswith(".") for p in parts) and "wandb" not in parts[:-1]


def _find(path: Path) -> tuple[str, Any] | None:
    path = Path(path).absolute()
    for root, (url, fs) in _BOUND.items():
        if path == root or root in path.parents:
            return f"{url}/{path.relative_to(root).as_posix()}".removesuffix("/."), fs
    return None


def _remote(url: str) -> str:
    """The filesystem's own name for the object or prefix at ``url`` (``bucket/key`` for S3)."""
    import fsspec

    return fsspec.core.strip_protocol(url)


def _fetch(fs: Any, name: str, folder: Path, remote: str) -> None:
    from cyclegan.atomic import atomic_write

    target = folder / name[len(remote) :].lstrip("/")
    atomic_write(target, lambda f: f.write(fs.cat_file(name)))


@contextlib.contextmanager
def _unless_training(run_dir: Path) -> Iterator[bool]:
    """Hold the run's lock (the one ``worker.run_unit`` takes) while it is pulled and yield True, or yield
    False when a process here trains it. Plain ``flock``: importing the worker would cost seconds of torch."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def _faults(url: str) -> Iterator[None]:
    """Any error of the object store, as the one-line store fault the CLI prints (exit 2, resumable)."""
    try:
        yield
    except StoreFault:
        raise
    except Exception as exc:  # noqa: BLE001 - botocore, aiohttp and fsspec errors share no base class
        raise StoreFault(f"{url}: {_cause(exc)}; check the store, then run the same command again") from None


def _filesystem(url: str, **options: Any) -> tuple[Any, str]:
    """A filesystem of its own (fsspec's instance cache would keep an endpoint the environment no longer
    names) that lists afresh each time (other machines write the store)."""
    import fsspec

    try:
        return fsspec.core.url_to_fs(url, use_listings_cache=False, skip_instance_cache=True, **options)
    except (ImportError, ValueError) as exc:
        raise UserError(f"--store {url}: {_cause(exc)} (a local path or s3://bucket/prefix)") from None


def _cause(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:300]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _slug(url: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in url.split("://", 1)[1])[:60]
