"""Where a run's images come from: a reference-layout folder, two explicit folders, or the synthetic data."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from cyclegan.config import DataConfig
from cyclegan.data.images import list_images
from cyclegan.data.roots import data_home, dataset_root
from cyclegan.data.validate import DataReport, check_data
from cyclegan.errors import DataError, NoImages

__all__ = ["DataError", "Domains", "data_home", "dataset_root", "resolve_domains"]  # the data API


@dataclass(frozen=True)
class Domains:
    """Image lists per split and domain, already swapped for direction=BtoA."""

    root: Path | None
    train_A: list[Path]
    train_B: list[Path]
    test_A: list[Path]
    test_B: list[Path]


def _images(folder: Path, what: str) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"{what} folder not found: {folder}")
    return list_images(folder)


def _checked_report(cfg: DataConfig) -> DataReport:
    """``check_data`` once per (config, folder state) in this process, so the engine's check before the run
    and the training loop's resolve do not scan twice or warn twice."""
    root = dataset_root(cfg)
    folders = [Path(cfg.dir_A), Path(cfg.dir_B)] if root is None else [root / s for s in ("trainA", "trainB")]
    return _check_once(cfg, tuple(p.stat().st_mtime_ns if p.is_dir() else None for p in folders))


@functools.lru_cache(maxsize=1)
def _check_once(cfg: DataConfig, folder_state: tuple) -> DataReport:
    return check_data(cfg)


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
            raise NoImages(f"no training images for {what} in {root or 'data.dir_A/dir_B'}", root)
    return _oriented(root, a, b, tests, cfg.direction)


def _oriented(root: Path | None, a: list[Path], b: list[Path], tests: tuple, direction: str) -> Domains:
    if direction == "BtoA":
        return Domains(root, b, a, tests[1], tests[0])
    return Domains(root, a, b, tests[0], tests[1])
