"""Timing the training step: the plain reference-order step against the fast step, in one process.

The two steps run interleaved (plain, fast, plain, fast, ...) on identical fresh models and identical random
batches of the crop size, so machine noise (this CPU is shared) hits both alike; medians and quartiles
summarise. Work is counted with ``FlopCounterMode`` (forward and backward of one step) and set against this
machine's convolution throughput, timed in the same command.
"""

from __future__ import annotations

import multiprocessing
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from cyclegan.config import Config, resolve
from cyclegan.fast import FastStep
from cyclegan.model import CycleGAN
from cyclegan.train import Callbacks, pick_device

Batch = dict[str, torch.Tensor]
STEP_KINDS = ("plain", "fast")


def bench_config(preset: str, size: int | None, overrides: dict[str, Any] | None = None) -> Config:
    """The preset with overrides; ``size`` sets crop and load size (no resize margin: inputs are random)."""
    extra = dict(overrides or {})
    if size is not None:
        extra.update({"data.crop_size": size, "data.load_size": size})
    return resolve(preset, extra)


def random_batches(cfg: Config, count: int, device: torch.device, seed: int = 0) -> list[Batch]:
    """Random images in [-1, 1] of the crop size: the step's cost does not depend on the pixels."""
    gen = torch.Generator().manual_seed(seed)
    n, s = cfg.train.batch_size, cfg.data.crop_size
    return [
        {k: (torch.rand(n, 3, s, s, generator=gen) * 2 - 1).to(device) for k in ("A", "B")}
        for _ in range(count)
    ]


def make_step(cfg: Config, kind: str, device: torch.device) -> Callable[[Batch], dict[str, torch.Tensor]]:
    """A fresh model (same seed, so the same initial weights) and its plain or fast step."""
    model = CycleGAN(cfg, device)
    return model.train_step if kind == "plain" else FastStep(model)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(
    steps: dict[str, Callable[[Batch], Any]],
    batches: list[Batch],
    iters: int,
    warmup: int,
    device: torch.device,
) -> dict[str, dict[str, list[float]]]:
    """Wall and CPU seconds per call of each step, called in turn (a, b, a, b, ...) after ``warmup`` rounds.

    CPU time (all threads of this process) is kept beside wall time: on a shared machine it is the steadier
    measure of the work a step does, while wall time is what a user waits for.
    """
    times: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in steps}
    for i in range(warmup + iters):
        batch = batches[i % len(batches)]
        for name, step in steps.items():
            sync(device)
            tick, cpu = time.perf_counter(), time.process_time()
            step(batch)
            sync(device)
            if i >= warmup:
                times[name]["wall"].append(time.perf_counter() - tick)
                times[name]["cpu"].append(time.process_time() - cpu)
    return times


def gflop(call: Callable[[], object]) -> float:
    """GFLOP of one call (forward and backward, where it trains), counted by torch's FLOP counter."""
    with FlopCounterMode(display=False) as counter:
        call()
    return counter.get_total_flops() / 1e9


class ConvProbe:
    """One large 64 -> 64 3x3 convolution forward on 1x64xSxS: this machine's practical peak.

    It is timed as a third contestant inside the interleaved loop, so it sees the same machine load as the
    steps it is compared with (a peak measured once, before, can land in a quiet or a busy moment).
    """

    def __init__(self, device: torch.device, size: int = 256) -> None:
        self.x = torch.randn(1, 64, size, size, device=device)
        self.w = torch.randn(64, 64, 3, 3, device=device)
        self.gflop = gflop(lambda: self(None))

    def __call__(self, _batch: Batch | None) -> torch.Tensor:
        with torch.no_grad():
            return F.conv2d(self.x, self.w, padding=1)

    def summary(self, seconds: list[float]) -> dict[str, float]:
        return {
            "gflop": self.gflop,
            "gflops_median": self.gflop / statistics.median(seconds),
            "gflops_best": self.gflop / min(seconds),
        }


def _rss_mb(field: str) -> float | None:
    """A memory field of /proc/self/status (VmRSS: now, VmHWM: peak) in MB; None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Lower the kernel's peak-RSS mark to the current RSS (Linux >= 4.0), so imports do not set the peak."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 1024)


def _child_peak_rss(
    cfg_dict: dict, kind: str, iters: int, threads: int, queue: multiprocessing.Queue
) -> None:
    """Off Linux (no resettable peak mark), the peak since start-up stands for both (ru_maxrss: bytes on
    macOS, KiB on Linux)."""
    torch.set_num_threads(threads)
    cfg = Config.from_dict(cfg_dict)
    device = torch.device("cpu")
    batches = random_batches(cfg, iters, device)
    marked = _reset_peak_rss() and _rss_mb("VmRSS") is not None
    base = _rss_mb("VmRSS") if marked else _max_rss_mb()
    step = make_step(cfg, kind, device)
    for batch in batches:
        step(batch)
    queue.put((base, _rss_mb("VmHWM") if marked else _max_rss_mb()))


def peak_memory_mb(cfg: Config, kind: str, device: torch.device, iters: int = 2) -> dict[str, float]:
    """Peak memory of training with one step kind, measured apart so the two kinds do not share a peak.

    CPU: a fresh spawned process imports everything, resets the kernel's peak-RSS mark, builds the model
    and runs ``iters`` steps; ``peak_mb`` is its peak resident set, ``base_mb`` the resident set before the
    model (interpreter, torch, harness). CUDA: max memory allocated, in this process.
    """
    if device.type == "cuda":
        step = make_step(cfg, kind, device)
        batches = random_batches(cfg, iters, device)
        torch.cuda.reset_peak_memory_stats(device)
        for batch in batches:
            step(batch)
        return {"peak_mb": torch.cuda.max_memory_allocated(device) / 2**20, "base_mb": 0.0}
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(
        target=_child_peak_rss, args=(cfg.to_dict(), kind, iters, torch.get_num_threads(), queue)
    )
    proc.start()
    base, peak = queue.get()
    proc.join()
    return {"peak_mb": peak, "base_mb": base}


def summarise(seconds: list[float]) -> dict[str, float]:
    q1, median, q3 = statistics.quantiles(seconds, n=4) if len(seconds) > 1 else (seconds[0],) * 3
    return {
        "median_ms": median * 1e3,
        "q1_ms": q1 * 1e3,
        "q3_ms": q3 * 1e3,
        "min_ms": min(seconds) * 1e3,
        "max_ms": max(seconds) * 1e3,
        "n": len(seconds),
    }


def run_bench(
    preset: str = "cpu",
    size: int | None = None,
    overrides: dict[str, Any] | None = None,
    iters: int = 20,
    warmup: int = 3,
    memory: bool = True,
) -> dict[str, Any]:
    """Time plain vs fast interleaved and return everything ``harness bench`` prints (JSON-ready)."""
    cfg = bench_config(preset, size, overrides)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    device = pick_device(cfg.train.device)
    probe = ConvProbe(device)
    steps: dict[str, Callable[[Batch], Any]] = {kind: make_step(cfg, kind, device) for kind in STEP_KINDS}
    fast = steps["fast"]
    assert isinstance(fast, FastStep)
    compile_seconds = None
    batches = random_batches(cfg, 4, device)
    if fast.compile and fast.is_fast:
        fast(batches[0])  # compiles; reported apart, not timed
        compile_seconds = fast.compile_seconds
    times = time_interleaved({**steps, "conv_peak": probe}, batches, iters, warmup, device)
    peak = probe.summary(times["conv_peak"]["wall"])
    n_images = 2 * cfg.train.batch_size  # one image per domain per sample
    result: dict[str, Any] = {
        "preset": preset,
        "overrides": {k: str(v) for k, v in (overrides or {}).items()},
        "crop_size": cfg.data.crop_size,
        "batch_size": cfg.train.batch_size,
        "n_blocks": cfg.model.n_blocks,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "inputs": "random tensors of the crop size (same for both steps)",
        "iters": iters,
        "warmup": warmup,
        "fast_path": fast.is_fast,
        "fallback": fast.fallback,
        "compile_seconds": compile_seconds,
        "conv_peak": peak,
        "steps": {},
    }
    for kind in STEP_KINDS:
        s = summarise(times[kind]["wall"])
        s["cpu_median_ms"] = statistics.median(times[kind]["cpu"]) * 1e3
        work = gflop(partial(make_step(cfg, kind, device), random_batches(cfg, 1, device, seed=1)[0]))
        sec = s["median_ms"] / 1e3
        s.update(
            {
                "it_per_s": 1 / sec,
                "images_per_s": n_images / sec,
                "gflop_per_iter": work,
                "gflops": work / sec,
                "share_of_peak": work / sec / peak["gflops_median"],
            }
        )
        if memory:
            s.update(peak_memory_mb(cfg, kind, device))
        result["steps"][kind] = s
    plain, fast_ = result["steps"]["plain"], result["steps"]["fast"]
    result["speedup"] = plain["median_ms"] / fast_["median_ms"]
    result["speedup_cpu_time"] = plain["cpu_median_ms"] / fast_["cpu_median_ms"]
    return result


# --- overhead of everything that is not the train step -----------------------------------------------------
CallbacksFactory = Callable[[Config, Path], Callbacks]


class TimedCallbacks(Callbacks):
    """Wraps run callbacks and adds up the seconds spent in each hook, so the overhead can be broken down."""

    def __init__(self, inner: Callbacks) -> None:
        self.inner = inner
        self.seconds: dict[str, float] = {}
        self.final_eval_seconds = 0.0

    def _timed(self, hook: str, *args: Any) -> Any:
        tick = time.perf_counter()
        try:
            return getattr(self.inner, hook)(*args)
        finally:
            self.seconds[hook] = self.seconds.get(hook, 0.0) + time.perf_counter() - tick

    def on_eval(self, model, progress) -> None:
        if progress.iteration >= progress.total:  # the loop's last evaluation runs after wall_seconds is set
            tick = time.perf_counter()
            self.inner.on_eval(model, progress)
            self.final_eval_seconds += time.perf_counter() - tick
            return
        self._timed("on_eval", model, progress)


for _hook in ("on_start", "on_log", "on_checkpoint", "should_stop"):  # each timed, then the wrapped one's
    setattr(TimedCallbacks, _hook, lambda self, *args, _hook=_hook: self._timed(_hook, *args))


def measure_overhead(cfg: Config, callbacks_factory: CallbacksFactory, run_dir: Path | None = None) -> dict:
    """Train ``cfg`` for real with the given callbacks; report the share of wall time outside the train step.

    ``callbacks_factory(cfg, run_dir)`` builds the run's callbacks (``engine_callbacks``: the engine's).
    ``overhead_share`` is the loop's own split (``Progress.wall_seconds`` vs ``train_seconds``); the loop's
    final evaluation runs after it stops the wall clock, so ``overhead_share_with_final_eval`` adds it back.
    ``hook_seconds`` breaks the in-loop overhead down by callback hook; the rest of it (``other_seconds``) is
    data loading, checkpoint writes and loop bookkeeping.
    """
    from cyclegan.train import train

    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        folder = Path(run_dir) if run_dir else Path(tmp) / "run"
        folder.mkdir(parents=True, exist_ok=True)
        tick = time.perf_counter()
        inner = callbacks_factory(cfg, folder)
        callbacks = TimedCallbacks(inner)
        try:
            _, progress = train(cfg, folder, callbacks, resume=False)
        finally:
            close = getattr(inner, "close", None)
            if close is not None:
                close()
        total = time.perf_counter() - tick
    outside = progress.wall_seconds - progress.train_seconds
    in_loop_hooks = {k: v for k, v in callbacks.seconds.items() if k != "on_start"}
    final = callbacks.final_eval_seconds
    return {
        "callbacks": getattr(callbacks_factory, "__qualname__", str(callbacks_factory)),
        "iterations": progress.iteration,
        "wall_seconds": progress.wall_seconds,
        "train_seconds": progress.train_seconds,
        "overhead_seconds": outside,
        "overhead_share": outside / progress.wall_seconds,
        "final_eval_seconds": final,
        "overhead_share_with_final_eval": (outside + final) / (progress.wall_seconds + final),
        "hook_seconds": in_loop_hooks,
        "other_seconds": outside - sum(in_loop_hooks.values()),
        "outside_loop_seconds": total - progress.wall_seconds - final,  # data set, model, W&B: once per run
        "log_every": cfg.train.log_every,
        "eval_every": cfg.train.eval_every,
        "checkpoint_every": cfg.train.checkpoint_every,
        "num_workers": cfg.data.num_workers,
    }


def engine_callbacks(cfg: Config, run_dir: Path) -> Callbacks:
    """The callbacks a worker of the engine gives a run: its ``Recorder`` (store, eval, samples, summary) with
    a W&B ``Tracker`` (mode from $WANDB_MODE, offline by default), started as the worker starts it."""
    import os

    from harness.engine.plan import Unit, run_name
    from harness.engine.recorder import Recorder
    from harness.engine.tracking import Tracker

    arm, seed = "bench", cfg.train.seed
    unit = Unit("bench-overhead", run_name(arm, seed, cfg), arm, seed, cfg, run_dir)
    tracker = Tracker(os.environ.get("WANDB_MODE", "offline"))
    tracker.start(
        run_id=f"bench-{unit.key}-{int(time.time())}",
        project="cyclegan-bench",
        group=unit.experiment,
        job_type=arm,
        name=unit.key,
        config=cfg.to_dict(),
        run_dir=run_dir,
    )
    recorder = Recorder(unit, tracker)
    recorder.close = tracker.finish  # type: ignore[attr-defined]  # measure_overhead closes what it opened
    return recorder
