"""Where a run's images come from: a reference-layout folder, two explicit folders, or the synthetic data."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cyclegan.config import DataConfig
from cyclegan.data.catalogue import DATASETS, NOT_REDISTRIBUTABLE
from cyclegan.data.images import list_images

if TYPE_CHECKING:
    from cyclegan.data.validate import DataReport


class DataError(ValueError):
    """A dataset that cannot be used; the message names the folder and what is wrong."""


@dataclass(frozen=True)
class Domains:
    """Image lists per split and domain, already swapped for direction=BtoA."""

    root: Path | None
    train_A: list[Path]
    train_B: list[Path]
    test_A: list[Path]
    test_B: list[Path]


def data_home() -> Path:
    """Cache of generated and downloaded data sets: $HARNESS_DATA, else ./data."""
    return Path(os.environ.get("HARNESS_DATA", "data"))


def dataset_root(cfg: DataConfig) -> Path | None:
    """The folder holding trainA/ trainB/ testA/ testB/ (made first for synth:TASK); None for dir_A/dir_B.

    An official name (``horse2zebra``) that is not a folder here means the copy under ``data_home()`` that
    ``harness data download`` makes.
    """
    if cfg.dir_A or cfg.dir_B:
        return None
    if cfg.dataset.startswith("synth:"):
        from cyclegan.synth import ensure_dataset

        return ensure_dataset(
            cfg.dataset.removeprefix("synth:"),
            cfg.synth_size,
            cfg.synth_n_train,
            cfg.synth_n_test,
            data_home(),
        )
    if cfg.dataset in NOT_REDISTRIBUTABLE and not Path(cfg.dataset).is_dir():
        raise DataError(NOT_REDISTRIBUTABLE[cfg.dataset])
    if cfg.dataset in DATASETS and not Path(cfg.dataset).is_dir():
        home = data_home() / cfg.dataset
        if not home.is_dir():
            raise DataError(
                f"dataset '{cfg.dataset}' is not downloaded (looked in {home}); "
                f"get it with: harness data download {cfg.dataset}"
            )
        return home
    return Path(cfg.dataset)


def _images(folder: Path, what: str) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"{what} folder not found: {folder}")
    return list_images(folder)


_checked: dict[tuple, DataReport] = {}


def _checked_report(cfg: DataConfig) -> DataReport:
    """``check_data`` once per (config, folder state) in this process, so the engine's check before the run
    and the training loop's resolve do not scan twice or warn twice."""
    from cyclegan.data.validate import check_data

    root = dataset_root(cfg)
    folders = [Path(cfg.dir_A), Path(cfg.dir_B)] if root is None else [root / s for s in ("trainA", "trainB")]
    key = (cfg, tuple(p.stat().st_mtime_ns if p.is_dir() else None for p in folders))
    if key not in _checked:
        _checked.clear()
        _checked[key] = check_data(cfg)
    return _checked[key]


def resolve_domains(cfg: DataConfig) -> Domains:
    """Image lists of the run. With ``data.skip_bad`` the lists hold only files that pass ``check_data``
    (bad ones skipped with one warning); otherwise every image file, unchecked (the engine checks first)."""
    if cfg.skip_bad:
        report = _checked_report(cfg)
        a, b = (
            report.kept("trainA") or report.kept("data.dir_A"),
            report.kept("trainB") or report.kept("data.dir_B"),
        )
        tests = (report.kept("testA"), report.kept("testB"))
        return _oriented(report.root, a, b, tests, cfg.direction)
    root = dataset_root(cfg)
    if root is None:
        if not (cfg.dir_A and cfg.dir_B):
            raise DataError("data.dir_A and data.dir_B must be given together")
        a, b = _images(Path(cfg.dir_A), "data.dir_A"), _images(Path(cfg.dir_B), "data.dir_B")
        tests = ([], [])
    else:
        if not root.is_dir():
            raise DataError(
                f"dataset folder not found: {root} (expected trainA/ trainB/ testA/ testB/ inside)"
            )
        a, b = _images(root / "trainA", "trainA"), _images(root / "trainB", "trainB")
        tests = tuple(list_images(root / s) if (root / s).is_dir() else [] for s in ("testA", "testB"))
    for images, what in ((a, "domain A"), (b, "domain B")):
        if not images:
            raise DataError(f"no training images for {what} (check with: harness data check {root or '...'})")
    return _oriented(root, a, b, tests, cfg.direction)


def _oriented(root: Path | None, a: list[Path], b: list[Path], tests: tuple, direction: str) -> Domains:
    if direction == "BtoA":
        return Domains(root, b, a, tests[1], tests[0])
    return Domains(root, a, b, tests[0], tests[1])
