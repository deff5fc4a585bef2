"""How long runs take on this machine: a short timed probe of the architecture, cached per machine and config.

Why a probe and not FLOPs: at the cpu preset most of a step is not convolution arithmetic (docs/bench.md),
so FLOPs predict time badly, and workers that share cores slow each other down. The probe runs
``min(workers, cores)`` copies at once in fresh processes, each with a worker's share of the cores, the train
step a run uses (``cyclegan.train.make_step``) on random images of the crop size, and the time to load the
run's own training images when they are on disk (a folder data set of large photos costs more to load than
to train at 32 px). Each result is cached for a day in ``~/.cache/cyclegan-harness/throughput.json``, keyed
by machine, torch version, thread share, concurrency and every config field that changes the cost; it is
measured under whatever else the machine is doing then, which is what the run will meet.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from cyclegan.atomic import atomic_write_json
from cyclegan.config import Config
from cyclegan.fast import compile_cache_dir

DAY_S = 24 * 3600  # a cached probe is this fresh; a plan this long gets a warning
# Timed steps per probe process: until this long, at least one. On the shared 2-core machine at load ~6, 5-s
# probes a minute apart gave 136, 175 and 269 ms per step while whole runs took 250-300 ms (docs/bench.md).
PROBE_SECONDS = 15.0


def cache_file() -> Path:
    return compile_cache_dir().parent / "throughput.json"


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.node()}|{cpu}|{os.cpu_count()}"


def config_key(cfg: Config) -> str:
    """The config fields that change a step's, a batch's or an evaluation's cost (not seeds, learning rates or
    schedules)."""
    import torch

    d, t = cfg.data, cfg.train
    parts = {
        "model": dataclasses.asdict(cfg.model),
        "identity": cfg.loss.lambda_identity > 0,
        "gan_mode": cfg.loss.gan_mode,
        "train": [t.batch_size, t.fast, t.compile, t.amp, t.device],
        "data": dataclasses.asdict(d),  # the images, their count and preprocessing: loading and evaluation
        "eval": dataclasses.asdict(cfg.eval),
        "machine": _machine(),
        "torch": torch.__version__,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _read_cache() -> dict[str, Any]:
    try:
        return json.loads(cache_file().read_text())
    except (OSError, ValueError):
        return {}


def _data_on_disk(cfg: Config) -> bool:
    """False for a synthetic data set not generated yet (building the data set would generate it)."""
    d = cfg.data
    if not d.dataset.startswith("synth:") or d.dir_A or d.dir_B:
        return True
    from cyclegan.data.sources import data_home
    from cyclegan.synth import folder_name

    task = d.dataset.removeprefix("synth:")
    name = folder_name(task, d.synth_size, d.synth_n_train, d.synth_n_test, 0)  # dataset_root's seed
    return (data_home() / "synth" / name / "trainA").is_dir()


def _probe_evaluation(cfg: Config, model: Any) -> dict[str, Any]:
    """What evaluation adds, measured: building a run's Evaluator, one evaluation (metrics and sample grid),
    and the domain classifier's training that the warm-up pays once per data set when it is not cached
    (loading its images, then its optimiser steps). Scoring uses an untrained classifier of the same shape:
    the cost does not depend on its weights, and a probe must not pay the training it estimates."""
    import tempfile

    import torch

    from cyclegan.data.sources import resolve_domains
    from cyclegan.metrics import classifier as clf
    from cyclegan.metrics.evaluator import Evaluator, load_images

    tick = time.perf_counter()
    evaluator = Evaluator(cfg, model.device, untrained_classifier=True)
    setup = time.perf_counter() - tick
    tick = time.perf_counter()
    evaluator(model)
    with tempfile.TemporaryDirectory() as tmp:
        evaluator.sample_grid(model, Path(tmp) / "grid.png")
    once = time.perf_counter() - tick
    domains = resolve_domains(cfg.data)
    n_A, n_B = (min(len(paths), clf.MAX_TRAIN) for paths in (domains.train_A, domains.train_B))
    res = clf.resolution(cfg.data.crop_size)
    tick = time.perf_counter()
    load_images(domains.train_A[:8], cfg.data, res)
    per_image = (time.perf_counter() - tick) / max(1, min(8, n_A))
    images = torch.rand(64, 3, res, res) * 2 - 1
    clocks = []
    for steps in (1, 5):  # the difference: 4 steps of 64 images without the set-up and the first call
        tick = time.perf_counter()
        clf.train_classifier(images, images, res, max_steps=steps)
        clocks.append(time.perf_counter() - tick)
    per_trained_image = max(0.0, clocks[1] - clocks[0]) / (4 * 64)
    epochs, per_epoch = clf.training_schedule(n_A, n_B)
    return {
        "eval_setup_seconds": setup,
        "eval_seconds": once,
        "classifier_seconds": (n_A + n_B) * per_image + epochs * per_epoch * per_trained_image,
        "classifier_path": str(evaluator.classifier_path.resolve()),
    }


def _probe_child(cfg_dict: dict, threads: int, seconds: float, start: float, queue: Any) -> None:
    """One probe process: start-up, first call (compile included), timed steps, image loading, evaluation."""
    import torch

    from cyclegan.model import CycleGAN
    from cyclegan.train import build_dataset, make_step, pick_device

    torch.set_num_threads(threads)
    cfg = Config.from_dict(cfg_dict)
    model = CycleGAN(cfg, pick_device(cfg.train.device))
    step = make_step(model)
    n, s = cfg.train.batch_size, cfg.data.crop_size
    batch = {k: torch.rand(n, 3, s, s) * 2 - 1 for k in ("A", "B")}
    startup = time.time() - start
    tick = time.perf_counter()
    step(batch)
    first = time.perf_counter() - tick
    times: list[float] = []
    while not times or (sum(times) < seconds and len(times) < 500):
        tick = time.perf_counter()
        step(batch)
        times.append(time.perf_counter() - tick)
    data, evaluation = None, {}
    try:  # the run's own images, when they are on disk already (a probe generates nothing)
        if not _data_on_disk(cfg):
            raise FileNotFoundError("synthetic data set not generated yet")
        dataset = build_dataset(cfg)
        tick = time.perf_counter()
        count = min(len(dataset), max(4, 2 * n))
        for i in range(count):
            dataset[(1, i, i)]  # (epoch, position, index): the sampler's keys
        data = (time.perf_counter() - tick) / count * n
        evaluation = _probe_evaluation(cfg, model)
    except Exception:  # noqa: BLE001 - no data yet (synthetic set not generated, missing folder): step only
        pass
    # a run pays the mean step, not the median: on a shared machine the slow steps are part of its time
    step_mean = statistics.fmean(times)
    queue.put({"startup": startup, "first": first, "step": step_mean, "data": data, **evaluation})


def probe(cfg: Config, workers: int = 1) -> dict[str, Any]:
    """Measure now: ``min(workers, cores)`` probe processes at once, each with a worker's thread share."""
    from harness.engine.runner import worker_threads

    threads = worker_threads(workers)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    copies = max(1, min(workers, cores))
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    other_load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None  # before our own processes
    procs = [
        ctx.Process(target=_probe_child, args=(cfg.to_dict(), threads, PROBE_SECONDS, time.time(), queue))
        for _ in range(copies)
    ]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    step = statistics.median(r["step"] for r in results)
    data = [r["data"] for r in results if r["data"] is not None]
    evaluation = {
        k: statistics.median(r[k] for r in results) if all(k in r for r in results) else None
        for k in ("eval_setup_seconds", "eval_seconds", "classifier_seconds")
    }
    return {
        "step_seconds": step,
        "data_seconds": statistics.median(data) if data else None,
        **evaluation,
        "classifier_path": results[0].get("classifier_path"),
        "startup_seconds": statistics.median(r["startup"] for r in results),
        "first_call_extra_seconds": max(0.0, statistics.median(r["first"] for r in results) - step),
        "threads": threads,
        "concurrent": copies,
        "load": other_load,
        "measured_at": time.time(),
    }


def _load_changed(entry: dict[str, Any]) -> bool:
    """A probe taken while other work loaded the machine (the load average just before it started) more or
    less than now by over one core's worth is too slow or too fast to plan with: probe again, so the estimate
    is measured under the load the runs will meet."""
    if entry.get("load") is None or not hasattr(os, "getloadavg"):
        return False
    return abs(entry["load"] - os.getloadavg()[0]) > 1.0


def throughput(cfg: Config, workers: int = 1, *, measure: bool = True) -> dict[str, Any] | None:
    """The cached probe for this config and worker count on this machine (probing first if needed and
    ``measure``); with ``measure=False`` the freshest cached probe of this config at any worker count."""
    entries = _read_cache()
    key = config_key(cfg)
    fresh = {w: e for w, e in entries.get(key, {}).items() if time.time() - e.get("measured_at", 0) < DAY_S}
    if str(workers) in fresh and (not measure or not _load_changed(fresh[str(workers)])):
        return fresh[str(workers)]
    if not measure:
        return max(fresh.values(), key=lambda e: e["measured_at"]) if fresh else None
    result = probe(cfg, workers)
    entries = _read_cache()  # another process may have written meanwhile
    entries.setdefault(key, {})[str(workers)] = result
    atomic_write_json(cache_file(), entries)  # parallel workers may read it while a dry-run writes it
    return result


def iteration_seconds(entry: dict[str, Any], cfg: Config) -> float:
    """Seconds per training iteration: the step plus loading a batch (overlapped when loader workers run)."""
    step, data = entry["step_seconds"], entry.get("data_seconds") or 0.0
    if cfg.data.num_workers > 0:
        return max(step, data / cfg.data.num_workers)
    return step + data


def evaluations(cfg: Config, iterations: int) -> int:
    """Evaluations in a run of ``iterations``: one every ``train.eval_every`` before the end, one at the end
    (``cyclegan.train.train``)."""
    every = cfg.train.eval_every
    return ((iterations - 1) // every if every and iterations > 0 else 0) + 1


def run_seconds(entry: dict[str, Any], cfg: Config, iterations: int) -> float:
    """One run's wall time from its probe: start-up, first-call extra (compile), ``iterations`` iterations,
    and its evaluations (building its Evaluator, then each evaluation) when the probe could measure them."""
    fixed = entry["startup_seconds"] + entry["first_call_extra_seconds"]
    fixed += entry.get("eval_setup_seconds") or 0
    evaluating = evaluations(cfg, iterations) * (entry.get("eval_seconds") or 0)
    return fixed + iterations * iteration_seconds(entry, cfg) + evaluating


def warm_up_seconds(entry: dict[str, Any]) -> float:
    """The once-per-data-set evaluator warm-up before the workers start (``runner.warm_evaluators``), from a
    probe: the classifier's training when it is not cached yet, and building the Evaluator."""
    path = entry.get("classifier_path")
    training = (entry.get("classifier_seconds") or 0) if path and not Path(path).is_file() else 0
    return training + (entry.get("eval_setup_seconds") or 0)


def plan_seconds(runs: list[tuple[Config, int]], workers: int) -> float:
    """Wall time of ``runs`` (config, iterations): the evaluator warm-up once per data set, then the runs
    taken in order by ``workers`` workers, each the next run as soon as it is free (the queue's order). Each
    config is looked up (or probed) once."""
    entries: dict[str, dict[str, Any]] = {}
    for cfg, _ in runs:
        key = config_key(cfg)
        if key not in entries:
            entry = throughput(cfg, workers)
            assert entry is not None
            entries[key] = entry
    warm = {(cfg.data, cfg.eval): entries[config_key(cfg)] for cfg, _ in runs}
    start = sum(warm_up_seconds(entry) for entry in warm.values())
    free_at = [start] * max(1, workers)
    for cfg, iterations in runs:
        i = free_at.index(min(free_at))
        free_at[i] += run_seconds(entries[config_key(cfg)], cfg, iterations)
    return max(free_at)


def how(workers: int) -> str:
    from harness.engine.runner import worker_threads

    return (
        f"measured here: train step and image loading, {worker_threads(workers)} thread(s) per worker, "
        f"{workers} probe(s) at once, evaluation when the data is on disk; cached a day "
        f"in {cache_file()}; excludes generating a synthetic data set and building the report"
    )


def too_long(seconds: float, preset: str | None) -> str | None:
    """One line when a plan would take more than a day on this machine, with what would fit."""
    if seconds <= DAY_S:
        return None
    days = seconds / DAY_S
    hint = (
        "--preset paper is meant for a GPU (train.device=cuda); on this CPU use --preset cpu (32 px)"
        if preset != "cpu"
        else "use fewer seeds or arms, a smaller train.max_iters, or a GPU"
    )
    return f"that is {days:.1f} days on this machine: {hint}"
