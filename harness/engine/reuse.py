"""One run, many reports: a run is identified by what determines its result, and a finished one is reused.

A run's numbers are a function of its resolved config, its data, the code that trains and evaluates it and
the numeric libraries it ran on. ``content_key`` hashes exactly those. A planned unit whose key equals a
finished run's anywhere in the same store (any experiment) is not trained again: ``adopt`` copies the result
files a report reads into the unit's own run folder and writes ``reused.json`` naming the source, so every
tool that reads run folders (status, reports) works unchanged. ``<store>/.runs/<key>.json`` indexes finished
runs by key (written atomically by the worker that finished the run), so a plan never scans the store.

What the key leaves out, and why (docs/RUNSTORE.md, "Content keys"):

- ``train.checkpoint_every`` and ``data.num_workers``: how a run is carried out, not what it computes (a
  checkpoint saves the RNG state without drawing from it; every data-side draw is a function of seed, epoch
  and position, whatever the number of loader workers).
- Where the data and the FID weights live (``data.dataset``, ``data.dir_A``, ``data.dir_B``,
  ``eval.inception_weights``): replaced by what is there (``data_identity``, ``weights_identity``).
- The experiment and arm names, W&B settings and run folder: they are not in the Config at all.
- ``harness/``: orchestration refactors must not invalidate runs. A harness change to what a run records
  (metric names, summary fields) bumps ``KEY_VERSION`` instead.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
from importlib import metadata
from pathlib import Path
from typing import Any

import cyclegan
from cyclegan.atomic import atomic_write, atomic_write_json
from cyclegan.config import Config, DataConfig
from harness.engine import store

KEY_VERSION = 1  # bump when the harness changes what a finished run records
MECHANICS = ("train.checkpoint_every", "data.num_workers")  # change how a run is carried out, not its result
LOCATIONS = ("data.dataset", "data.dir_A", "data.dir_B", "eval.inception_weights")  # replaced by identities
NUMERIC_PACKAGES = ("torch", "torchvision", "numpy", "pillow", "torchmetrics")  # compute or decode numbers
SPLITS = ("trainA", "trainB", "testA", "testB")  # a reference-layout folder: training and test images
INDEX = ".runs"
REUSED = "reused.json"
# What a report reads from a run folder (docs/RUNSTORE.md), copied in this order; summary.json last, since it
# is what marks the unit done: an adoption cut short leaves a unit that is simply not done yet.
COPIED = ("metrics.jsonl", "per_image.json", "samples")


@functools.cache
def code_digest() -> str:
    """sha256 of the ``cyclegan`` package's sources (relative path and bytes of every .py file): the code that
    trains and evaluates. Computed once per process: the code this process imported."""
    root = Path(cyclegan.__file__).parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def data_identity(data: DataConfig) -> dict[str, Any] | None:
    """What the run reads, wherever it is: the synthetic benchmark's generator (task, version, parameters),
    or per folder the names, sizes and modification times of its images (None when a folder is missing).

    Folders are identified without reading their bytes: a stat per file, not a read of the whole data set per
    plan. A folder copied without keeping times (``cp -r``) gets a new identity (trained again: safe); one
    edited in place to the same size with its time restored would not (documented in docs/RUNSTORE.md)."""
    from cyclegan.data.roots import dataset_root
    from cyclegan.errors import DataError

    if data.dataset.startswith("synth:") and not (data.dir_A or data.dir_B):
        from cyclegan import synth

        task = data.dataset.removeprefix("synth:")
        return {"synth": task, "version": synth.VERSION, "size": data.synth_size,
                "n_train": data.synth_n_train, "n_test": data.synth_n_test}  # fmt: skip
    try:
        root = dataset_root(data)
    except DataError:
        return None
    if root is None and not (data.dir_A and data.dir_B):
        return None
    folders = {"A": data.dir_A, "B": data.dir_B} if root is None else {s: root / s for s in SPLITS}
    present = {name: str(f) for name, f in folders.items() if Path(f).is_dir()}
    if not {"A", "B"} <= set(present) and not {"trainA", "trainB"} <= set(present):
        return None  # no training images: the run would fail, there is nothing to reuse
    try:
        return {"folders": {name: _folder_id(f) for name, f in present.items()}}
    except OSError:
        return None


def _folder_id(folder: str) -> str:
    from cyclegan.data.images import list_images

    h = hashlib.sha256()
    for p in list_images(folder):
        st = p.stat()
        h.update(f"{p.name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


@functools.lru_cache(maxsize=4)
def _file_sha256(path: str, size: int, mtime: int) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def weights_identity(explicit: str) -> str:
    """The FID weights the evaluator will use, as it records them: sha256 of the given file, else of the
    downloaded copy (its .sha256 sidecar), else 'none' (FID/KID-Inception are then not computed)."""
    from cyclegan.metrics import inception

    if explicit:
        p = Path(explicit)
        if not p.is_file():
            return f"missing:{explicit}"
        st = p.stat()
        return _file_sha256(str(p.resolve()), st.st_size, st.st_mtime_ns)
    side = inception.sidecar(inception.weights_path())
    if inception.weights_path().is_file() and side.is_file():
        return side.read_text().split()[0]
    return "none"


def content_material(
    cfg: Config, evaluate: bool = True, data: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """Everything that determines a run's result (None when its data cannot be identified here). ``data``:
    the data's identity when the caller has it (a plan keys many units on one data set)."""
    data = data or data_identity(cfg.data)
    if data is None:
        return None
    flat = {f"{s}.{k}": v for s, sect in cfg.to_dict().items() for k, v in sect.items()}
    versions = {}
    for name in NUMERIC_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "key_version": KEY_VERSION,
        "config": {k: v for k, v in flat.items() if k not in MECHANICS + LOCATIONS},
        "data": data,
        "fid_weights": weights_identity(cfg.eval.inception_weights) if evaluate else None,
        "evaluated": evaluate,
        "code": code_digest(),
        "packages": versions,
    }


def content_key(cfg: Config, evaluate: bool = True, data: dict[str, Any] | None = None) -> str | None:
    material = content_material(cfg, evaluate, data)
    if material is None:
        return None
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:20]


def attempt_key(previous: dict[str, Any], key: str | None) -> str | None:
    """The key of a run that may resume earlier attempts: kept only if every attempt ran under it (a run
    resumed with other code or data is a mix no plan asks for, so it is never reused)."""
    if previous.get("attempts") and previous.get("content_key") != key:
        return None
    return key


def index_entry(store_root: Path, key: str) -> Path:
    return Path(store_root) / INDEX / f"{key}.json"


def record_finished(run_dir: Path, key: str | None) -> None:
    """Index a run that finished done under ``key`` (its store is two folders up)."""
    if key is None:
        return
    store_root = run_dir.parents[1]
    source = run_dir.relative_to(store_root).as_posix()
    entry = {"content_key": key, "run": source, "at": store.now_iso()}
    atomic_write_json(index_entry(store_root, key), entry)


def find_source(store_root: Path, key: str | None) -> Path | None:
    """The finished run indexed under ``key``, if its folder still says done under that key."""
    if key is None:
        return None
    entry = store.read_json(index_entry(store_root, key)) or {}
    run = entry.get("run")
    if not isinstance(run, str) or ".." in Path(run).parts or Path(run).is_absolute():
        return None
    folder = Path(store_root) / run
    summary = store.read_json(folder / "summary.json") or {}
    info = store.read_json(folder / "run.json") or {}
    if summary.get("status") != "done" or info.get("content_key") != key:
        return None
    return folder


def reused_from(run_dir: Path) -> str | None:
    """``<experiment>/<run>`` a run folder's result was copied from, or None for a run trained here."""
    record = store.read_json(Path(run_dir) / REUSED) or {}
    return record.get("source")


def _copy(src: Path, dst: Path) -> None:
    if src.is_dir():
        for child in sorted(src.iterdir()):
            _copy(child, dst / child.name)
    elif src.is_file():
        with open(src, "rb") as f:
            atomic_write(dst, lambda out: shutil.copyfileobj(f, out))


def adopt(unit: Any, source: Path, key: str) -> None:
    """Make ``unit``'s run folder hold ``source``'s result: copies of what a report reads, run.json with the
    unit's own names and config hash, reused.json, then summary.json (which makes it done). The checkpoint
    and W&B files stay with the source (reused.json names it)."""
    store_root = unit.run_dir.parents[1]
    origin = source.relative_to(store_root).as_posix()
    for name in COPIED:
        _copy(source / name, unit.run_dir / name)
    run = store.read_json(source / "run.json") or {}
    run.update(experiment=unit.experiment, arm=unit.arm, seed=unit.seed, config_hash=unit.cfg.digest(),
               wandb=None, reused_from=origin)  # fmt: skip
    atomic_write_json(unit.run_dir / "run.json", run)
    atomic_write_json(
        unit.run_dir / REUSED, {"source": origin, "content_key": key, "at": store.now_iso(), "copied": COPIED}
    )
    _copy(source / "summary.json", unit.run_dir / "summary.json")


def release(run_dir: Path) -> None:
    """Undo an adoption (``--no-reuse``): summary.json first, so the unit is not done at any point after."""
    for name in ("summary.json", REUSED, "run.json", "metrics.jsonl", "per_image.json"):
        (run_dir / name).unlink(missing_ok=True)
    shutil.rmtree(run_dir / "samples", ignore_errors=True)


def sources(units: list[Any], store_root: Path, done: set[str]) -> dict[str, tuple[Path, str]]:
    """Unit key -> (the finished run it can reuse, the content key), for units not done yet (nothing is
    written)."""
    out, identities = {}, {}
    for u in units:
        if u.key in done:
            continue
        if u.cfg.data not in identities:  # one look at each data set per plan
            identities[u.cfg.data] = data_identity(u.cfg.data)
        key = content_key(u.cfg, data=identities[u.cfg.data])
        source = find_source(store_root, key)
        if source is not None and key is not None and source.resolve() != u.run_dir.resolve():
            out[u.key] = (source, key)
    return out
