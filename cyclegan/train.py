"""The training loop: data, model, schedule, checkpoints; everything else (tracking, eval) via callbacks.

Resume is exact: a checkpoint holds the model's full training state, the global RNG state and the data
position (epoch, batch), and every data-side random choice is a pure function of (seed, epoch, position).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from cyclegan import checkpoint
from cyclegan.config import Config
from cyclegan.data.sources import resolve_domains
from cyclegan.data.unaligned import UnalignedDataset, batches_per_epoch, epoch_batches
from cyclegan.device import pick_device
from cyclegan.model import CycleGAN
from cyclegan.seeding import rng_state, set_rng_state


class Callbacks:
    """Hooks the loop calls; subclass and override what you need. All default to doing nothing."""

    def on_start(self, model: CycleGAN, progress: Progress) -> None: ...

    def on_log(self, progress: Progress, losses: dict[str, float]) -> None: ...

    def on_eval(self, model: CycleGAN, progress: Progress) -> None: ...

    def on_checkpoint(self, progress: Progress, path: Path) -> None: ...

    def should_stop(self, progress: Progress) -> bool:
        """Return True to stop early (e.g. a pruned trial); the loop checkpoints first."""
        return False


@dataclass
class Progress:
    iteration: int = 0  # iterations completed
    total: int = 0
    epoch: int = 1  # current epoch, from 1
    batch: int = 0  # batches of the current epoch completed
    train_seconds: float = 0.0  # time spent in train steps (excludes loading, eval, checkpoints)
    wall_seconds: float = 0.0  # wall time of this run, summed over resumes
    stopped_early: bool = False
    resumed_from: int | None = None
    extra: dict = field(default_factory=dict)


def total_iterations(cfg: Config, per_epoch: int) -> int:
    """The epoch schedule's length, capped by train.max_iters (past the schedule the learning rate is 0)."""
    budget = (cfg.optim.n_epochs + cfg.optim.n_epochs_decay) * per_epoch
    return min(budget, cfg.train.max_iters) if cfg.train.max_iters else budget


def build_dataset(cfg: Config) -> UnalignedDataset:
    domains = resolve_domains(cfg.data)
    return UnalignedDataset(domains.train_A, domains.train_B, cfg.data, cfg.train.seed)


def make_step(model: CycleGAN):
    """The train-step function the config asks for: the fast step (train.fast), else the reference order."""
    if model.cfg.train.fast:
        from cyclegan.fast import FastStep

        return FastStep(model)
    return model.train_step


def train(
    cfg: Config,
    run_dir: str | Path | None = None,
    callbacks: Callbacks | None = None,
    resume: bool = True,
    stop_at: int | None = None,
) -> tuple[CycleGAN, Progress]:
    """Train ``cfg``; with ``run_dir``, checkpoint to ``run_dir/checkpoints/latest.pt`` and resume from it.

    ``stop_at`` ends the call after that many total iterations (a checkpoint is written), leaving the run
    resumable: tests use it to split a run in two.
    """
    callbacks = callbacks or Callbacks()
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    device = pick_device(cfg.train.device)
    dataset = build_dataset(cfg)
    per_epoch = batches_per_epoch(dataset, cfg.train.batch_size)
    model = CycleGAN(cfg, device)
    progress = Progress(total=total_iterations(cfg, per_epoch))
    ckpt_path = Path(run_dir) / "checkpoints" / "latest.pt" if run_dir else None
    if ckpt_path and resume and ckpt_path.exists():
        state = checkpoint.load(ckpt_path, map_location=device)
        checkpoint.check_compatible(state, cfg, ckpt_path)
        model.load_training_state(state["model"])
        set_rng_state(state["rng"])
        progress.iteration, progress.epoch, progress.batch = (
            state["iteration"],
            state["epoch"],
            state["batch"],
        )
        progress.train_seconds, progress.wall_seconds = state["train_seconds"], state["wall_seconds"]
        progress.resumed_from = progress.iteration
    step = make_step(model)
    callbacks.on_start(model, progress)
    end = min(progress.total, stop_at) if stop_at is not None else progress.total
    started = time.perf_counter() - progress.wall_seconds

    def save() -> None:
        if ckpt_path is None:
            return
        progress.wall_seconds = time.perf_counter() - started
        checkpoint.save(
            ckpt_path,
            {
                "config": cfg.to_dict(),
                "model": model.training_state(),
                "rng": rng_state(),
                "iteration": progress.iteration,
                "epoch": progress.epoch,
                "batch": progress.batch,
                "train_seconds": progress.train_seconds,
                "wall_seconds": progress.wall_seconds,
            },
        )
        callbacks.on_checkpoint(progress, ckpt_path)

    t = cfg.train
    while progress.iteration < end:
        model.set_epoch(progress.epoch)
        pin = device.type == "cuda"
        loader = epoch_batches(
            dataset, progress.epoch, t.batch_size, progress.batch, cfg.data.num_workers, pin
        )
        for batch in loader:
            tick = time.perf_counter()
            losses = step(batch)
            progress.iteration += 1
            progress.batch += 1
            if progress.batch >= per_epoch:
                progress.epoch, progress.batch = progress.epoch + 1, 0
            if progress.iteration % t.log_every == 0 or progress.iteration == progress.total:
                values = {k: float(v) for k, v in losses.items()}
                progress.train_seconds += time.perf_counter() - tick
                callbacks.on_log(progress, values)
            else:
                progress.train_seconds += time.perf_counter() - tick
            done = progress.iteration >= end
            if (
                t.eval_every
                and progress.iteration % t.eval_every == 0
                and progress.iteration < progress.total
            ):
                callbacks.on_eval(model, progress)
            if callbacks.should_stop(progress):
                progress.stopped_early = True
                done = True
            if done or progress.iteration % t.checkpoint_every == 0:
                save()
            if done or progress.batch == 0:
                break
        if progress.stopped_early:
            break
    progress.wall_seconds = time.perf_counter() - started
    if progress.iteration >= progress.total and not progress.stopped_early:
        callbacks.on_eval(model, progress)
    return model, progress
