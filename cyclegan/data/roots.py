"""Where a data set's folders are: ``data_home()`` and the root of a configured data set (the synthetic
benchmark is generated there first). A leaf of the data package: the validator and the image lists use it."""

from __future__ import annotations

import os
from pathlib import Path

from cyclegan.config import DataConfig
from cyclegan.data.catalogue import DATASETS, NOT_REDISTRIBUTABLE
from cyclegan.errors import DataError, NotDownloaded
from cyclegan.synth import ensure_dataset


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
            raise NotDownloaded(f"dataset '{cfg.dataset}' is not downloaded (looked in {home})", cfg.dataset)
        return home
    return Path(cfg.dataset)
