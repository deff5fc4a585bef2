"""Shared fixtures: tiny image folders in the reference layout, made by the tests themselves."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with a cold torch.compile run first: under xdist's --dist loadfile their 1-2 minute compile then
    overlaps the rest of the suite instead of trailing it (measured: 422 s with it last, 301 s warm)."""
    items.sort(key=lambda item: item.get_closest_marker("compiles") is None)


def pool_spec(name: str, question: str, seeds: list[int]) -> str:
    """A two-arm smoke ablation (pool 4 vs no pool) on the zebra task: the engine tests' workload."""
    return f"""
name = "{name}"
question = "{question}"
preset = "smoke"
data = "synth:zebra"
control = "a"
seeds = {seeds}

[arms.a]
"train.pool_size" = 4

[arms.b]
"train.pool_size" = 0
"""


IDENTITY_SWEEP_TAIL = """
[params."loss.lambda_identity"]
type = "categorical"
choices = [0.0, 0.5]
[[objectives]]
metric = "seasons.l1_AtoB"
direction = "minimize"
"""


def make_folder_dataset(root: Path, n: int = 6, size: int = 20, seed: int = 0) -> Path:
    """trainA/trainB/testA/testB with n random RGB PNGs each; A reddish, B bluish so the domains differ."""
    rng = np.random.default_rng(seed)
    for split in ("trainA", "trainB", "testA", "testB"):
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
            pixels[..., 0 if split.endswith("A") else 2] = 230
            Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture
def folder_dataset(tmp_path: Path) -> Path:
    return make_folder_dataset(tmp_path / "ds")


@pytest.fixture(scope="session")
def photo_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real-photo grass2gravel set (60 + 60 train, 12 + 12 test patches of 64 px), built once."""
    from cyclegan.data.photos import build_photo_set

    return build_photo_set(tmp_path_factory.mktemp("photos") / "grass2gravel")


POSTGRES_SERVER = pytest.StashKey[str]()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """Say which PostgreSQL the multi-machine test ran on (Debian's, PATH's or the pgserver wheel's)."""
    server = config.stash.get(POSTGRES_SERVER, None)
    if server:
        terminalreporter.write_line(f"PostgreSQL for the multi-machine sweep test: {server}")
