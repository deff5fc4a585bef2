"""Translate image files with our checkpoints or a bare reference generator state dict."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torchvision.utils import save_image

from cyclegan import checkpoint
from cyclegan.config import Config
from cyclegan.data.images import load_rgb
from cyclegan.data.transforms import preprocess
from cyclegan.networks import ResnetGenerator, drop_stale_norm_stats

GENERATOR_OF = {"AtoB": "G_A", "BtoA": "G_B"}


def _infer_generator_shape(state: dict[str, torch.Tensor], cfg: Config) -> Config:
    """Read ngf, block count and norm off a reference state dict so it loads without flags."""
    ngf = state["model.1.weight"].shape[0]
    n_blocks = len({k.split(".")[1] for k in state if ".conv_block." in k})
    norm = "batch" if "model.2.weight" in state else "instance"  # only batch norm has affine weights
    return dataclasses.replace(
        cfg, model=dataclasses.replace(cfg.model, ngf=ngf, n_blocks=n_blocks, norm=norm)
    )


def load_generator(path: str | Path, direction: str, cfg: Config) -> tuple[ResnetGenerator, Config]:
    """Return the generator for ``direction`` and the config it was trained with."""
    if direction not in GENERATOR_OF:
        raise checkpoint.CheckpointError(f"bad direction '{direction}'; valid: AtoB, BtoA")
    state = checkpoint.load(path)
    if "model" in state and "config" in state:  # our checkpoint
        cfg = Config.from_dict(state["config"])
        weights = state["model"][GENERATOR_OF[direction]]
    elif "model.1.weight" in state:  # a reference generator (one direction only)
        weights = drop_stale_norm_stats(state)
        cfg = _infer_generator_shape(weights, cfg)
    else:
        raise checkpoint.CheckpointError(f"{path} is neither a harness checkpoint nor a generator state dict")
    G = ResnetGenerator(cfg.model.ngf, cfg.model.n_blocks, cfg.model.norm, cfg.model.dropout)
    try:
        G.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        raise checkpoint.CheckpointError(
            f"{path} does not fit the generator: {str(exc).splitlines()[0]}"
        ) from None
    return G.eval(), cfg


@torch.no_grad()
def translate_files(G: ResnetGenerator, cfg: Config, paths: list[Path], out: Path) -> list[Path]:
    """Translate each file at test-time preprocessing (no flip, centre crop) and save under its own name."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in paths:
        if not Path(path).is_file():
            raise checkpoint.CheckpointError(f"image not found: {path}")
        x = preprocess(load_rgb(path), cfg.data, None).unsqueeze(0)
        y = G(x)
        target = out / Path(path).with_suffix(".png").name
        save_image(y * 0.5 + 0.5, target)
        written.append(target)
    return written
