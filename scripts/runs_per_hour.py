"""Whole training runs per hour when K runs share one device: the cpu preset's runs, K at a time on one GPU.

Usage (repository root, PYTHONPATH including it):

    python scripts/runs_per_hour.py [--preset cpu] [--device cuda] [--procs 1,4,8] [--set k=v ...]

For each K, K processes start together, each trains one run of the preset with its own seed through the
library's loop (data loading, train steps, checkpoints; no tracking and no evaluation, which `harness run`
adds); runs per hour = K x 3600 / the wall time from starting the K processes to the last one's end. The
CPU cores are split evenly between the K processes (train.threads). The synthetic data set is made once,
before any timing.
Not part of the package or its tests.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time

import torch

from cyclegan.config import resolve
from cyclegan.data.roots import dataset_root
from cyclegan.train import train


def one_run(preset: str, overrides: dict, seed: int, threads: int, out: str, queue) -> None:
    cfg = resolve(preset, {**overrides, "train.seed": seed, "train.threads": threads})
    tick = time.perf_counter()
    _, progress = train(cfg, run_dir=out)
    queue.put((seed, time.perf_counter() - tick, progress.iteration, progress.train_seconds))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--procs", default="1,4,8", help="comma-separated numbers of runs sharing the device")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    overrides = {"train.device": args.device, **dict(s.split("=", 1) for s in args.sets)}
    cfg = resolve(args.preset, overrides)
    dataset_root(cfg.data)  # make the synthetic set before timing
    cores = os.cpu_count() or 1
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        f"preset {args.preset}, {cfg.data.crop_size} px, device {name}, "
        f"{cores} CPU cores, torch {torch.__version__}"
    )
    ctx = multiprocessing.get_context("spawn")
    for k in (int(p) for p in args.procs.split(",")):
        threads = max(1, cores // k)
        queue = ctx.Queue()
        with tempfile.TemporaryDirectory() as tmp:
            procs = [
                ctx.Process(target=one_run, args=(args.preset, overrides, i, threads, f"{tmp}/r{i}", queue))
                for i in range(k)
            ]
            tick = time.perf_counter()
            for p in procs:
                p.start()
            results = [queue.get() for _ in procs]
            for p in procs:
                p.join()
            wall = time.perf_counter() - tick
        iters = results[0][2]
        slowest = max(r[1] for r in results)
        step_share = sum(r[3] for r in results) / sum(r[1] for r in results)
        print(
            f"K={k}: {k} run(s) of {iters} iterations, {threads} thread(s) each: wall {wall:.1f} s "
            f"(slowest run {slowest:.1f} s, train step {step_share:.0%} of run time); "
            f"{k * 3600 / wall:.0f} runs/hour"
        )


if __name__ == "__main__":
    main()
