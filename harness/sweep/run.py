"""Start or continue a sweep: create the study once and raise its target; join it as a worker.

Worker ``i`` seeds its sampler with ``sampler_seed + i``; a worker that joins from elsewhere without
``--index`` uses a number derived from its host and pid.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

from harness.engine import remote
from harness.engine import store as engine_store
from harness.engine.plan import write_experiment
from harness.engine.queue import (
    GRACE_SECONDS,
    HEARTBEAT_SECONDS,
    describe_storage,
    journal_path,
    open_storage,
)
from harness.engine.worker import WorkerOptions, work
from harness.sweep import study as S
from harness.sweep.spec import SweepSpec, base_config
from harness.sweep.worker import Search


def default_index() -> int:
    """A sampler offset for a worker started by hand elsewhere: 1000 + a hash of host and pid."""
    return 1000 + zlib.crc32(engine_store.worker_id().encode()) % 1_000_000


def experiment_record(spec: SweepSpec, storage: str, command: str) -> dict[str, Any]:
    """experiment.json (docs/RUNSTORE.md) with kind "sweep", so status and report tools find the sweep."""
    cfg = base_config(spec)
    return {
        "name": spec.name, "question": spec.question, "kind": "sweep", "spec_path": str(spec.path),
        "command": command, "preset": spec.preset, "base": spec.base, "data": cfg.data.dataset,
        "control": "default", "arms": {}, "seeds": list(spec.seeds),
        "budget": {"iterations": cfg.train.max_iters},
        "metrics": {"primary": spec.metrics[0], "direction": spec.directions[0],
                    "secondary": spec.metrics[1:]},
        "sweep": spec.to_json(), "storage": storage, "runs": [],
        "created": engine_store.now_iso(),
    }  # fmt: skip


def join(
    spec: SweepSpec, storage_url: str | None, heartbeat: tuple[int | None, int | None], opts: WorkerOptions
) -> dict[str, int]:
    """One worker: open the storage, load the study (never create it), work until the target is met.
    ``heartbeat`` = (interval, grace period) in seconds for SQL storages (None: the queue's defaults)."""
    interval, grace = heartbeat[0] or HEARTBEAT_SECONDS, heartbeat[1] or GRACE_SECONDS
    storage = open_storage(storage_url, journal_path(opts.store, spec.name), heartbeat=interval, grace=grace)
    study = S.load_study(spec, storage, opts.index)
    return work(study, Search(S.adopt_recorded(spec, study)), opts)


def find_sweep(name: str) -> Path | None:
    """The sweep spec NAME refers to, or None when it is not a sweep (``harness worker`` dispatches on it)."""
    from harness.engine.spec import read_toml
    from harness.errors import UserError
    from harness.sweep.spec import find_spec

    try:
        path = find_spec(name)
    except UserError:
        plain = Path("experiments") / f"{name}.toml"
        if not plain.is_file():
            return None
        path = plain
    raw = read_toml(path)
    return path if raw.get("kind") == "sweep" or "sweep" in raw else None


def prepare(
    spec: SweepSpec, storage_url: str | None, store: Path, add: int, command: str, adopt: bool = False
) -> tuple[Any, int, SweepSpec]:
    """Create/load the study (before any parallel worker starts) and raise its target by ``add``; returns
    the spec as the study runs it (``adopt``: an existing study's --preset/--set, when none is given now)."""
    journal = journal_path(store, spec.name)
    storage = open_storage(storage_url, journal)
    study = S.create_or_load(spec, storage, S.worker_seed(spec, 0), adopt)
    spec = S.adopt_recorded(spec, study) if adopt else spec
    remote.pull(store / spec.name)  # a URL store: its experiment.json keeps the sweep's first "created"
    (store / spec.name).mkdir(parents=True, exist_ok=True)
    write_experiment(
        store / spec.name, experiment_record(spec, describe_storage(storage_url, journal), command)
    )
    remote.push(store / spec.name / "experiment.json")
    return study, S.add_to_target(study, add), spec
