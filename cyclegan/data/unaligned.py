"""Unpaired sampling as in the reference, made a pure function of (seed, epoch, position).

The reference's epoch has max(len A, len B) items; the loader shuffles indices, A takes ``index % len A`` and
B is drawn at random. Here the shuffle and every B draw, crop and flip come from generators derived from the
run seed and the item's (epoch, position), so any point of training can be recomputed after a resume and the
result does not depend on the number of loader workers.

A file that turns bad during training (deleted, truncated) is replaced by another file of its domain, drawn
from a generator derived from (seed, domain, epoch, position, attempt): the run goes on, stays reproducible,
and every replacement is counted (``dataset.skipped``, ``dataset.bad_files``) and warned about once per file.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from cyclegan.config import DataConfig
from cyclegan.data.images import load_rgb
from cyclegan.data.sources import DataError
from cyclegan.data.transforms import preprocess
from cyclegan.seeding import derive_generator

log = logging.getLogger("cyclegan.data")
MAX_SUBSTITUTES = 16  # replacements tried per item before the data set is declared broken


class UnalignedDataset(Dataset):
    def __init__(self, paths_A: list[Path], paths_B: list[Path], cfg: DataConfig, seed: int) -> None:
        if not paths_A or not paths_B:
            raise DataError("both domains need at least one image")
        self.paths_A, self.paths_B, self.cfg, self.seed = paths_A, paths_B, cfg, seed
        self.skipped = 0  # replacements made so far, summed over loader workers by EpochBatches
        self.bad_files: dict[str, str] = {}  # path -> first error seen

    def __len__(self) -> int:
        return max(len(self.paths_A), len(self.paths_B))

    def order(self, epoch: int) -> list[int]:
        return torch.randperm(len(self), generator=derive_generator(self.seed, "order", epoch)).tolist()

    def _load(self, domain: str, index: int, epoch: int, position: int) -> tuple[torch.Tensor, list[str]]:
        """Preprocessed image ``index`` of ``domain``, or a deterministic replacement if it no longer loads;
        also the 'path\terror' lines of every file that failed."""
        paths = self.paths_A if domain == "A" else self.paths_B
        failed = []
        for attempt in range(MAX_SUBSTITUTES + 1):
            try:
                image = load_rgb(paths[index])
            except (
                Exception
            ) as exc:  # Pillow raises many types for a damaged file; any of them means "skip it"
                failed.append(
                    f"{paths[index]}\t{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                )
                gen = derive_generator(self.seed, "substitute", domain, epoch, position, attempt)
                step = int(torch.randint(1, len(paths), (), generator=gen)) if len(paths) > 1 else 0
                index = (index + step) % len(paths)
                continue
            gen = derive_generator(self.seed, f"aug_{domain}", epoch, position)
            return preprocess(image, self.cfg, gen), failed
        example = failed[0].replace("\t", ": ")
        raise DataError(f"{len(failed)} images of domain {domain} in a row failed to load, e.g. {example}")

    def __getitem__(self, key: tuple[int, int, int]) -> dict:
        epoch, position, index = key
        gen = derive_generator(self.seed, "item", epoch, position)
        index_B = int(torch.randint(0, len(self.paths_B), (), generator=gen))
        A, failed_A = self._load("A", index % len(self.paths_A), epoch, position)
        B, failed_B = self._load("B", index_B, epoch, position)
        # failures travel with the batch so counts made in loader workers reach the main process
        return {"A": A, "B": B, "failed": "\n".join(failed_A + failed_B)}

    def note_failures(self, failed: list[str]) -> None:
        """Count replacements reported by a batch and warn once per newly bad file."""
        for line in (line for text in failed for line in text.split("\n") if line):
            path, _, error = line.partition("\t")
            self.skipped += 1
            if path not in self.bad_files:
                self.bad_files[path] = error
                log.warning(
                    "skipping unreadable image %s (%s); a deterministic replacement is used", path, error
                )


class EpochSampler(Sampler):
    """Yields (epoch, position, index) keys for one epoch, starting at ``start`` (resume mid-epoch)."""

    def __init__(self, dataset: UnalignedDataset, epoch: int, start: int = 0) -> None:
        self.dataset, self.epoch, self.start = dataset, epoch, start

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        order = self.dataset.order(self.epoch)
        for position in range(self.start, len(order)):
            yield (self.epoch, position, order[position])

    def __len__(self) -> int:
        return len(self.dataset) - self.start


class EpochBatches:
    """Iterates a DataLoader's batches, moving each batch's load failures into the dataset's counters."""

    def __init__(self, loader: DataLoader, dataset: UnalignedDataset) -> None:
        self.loader, self.dataset = loader, dataset

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        for batch in self.loader:
            self.dataset.note_failures(batch.pop("failed"))
            yield batch

    def __len__(self) -> int:
        return len(self.loader)


def epoch_batches(
    dataset: UnalignedDataset,
    epoch: int,
    batch_size: int,
    start_batch: int = 0,
    num_workers: int = 0,
    pin: bool = False,
) -> EpochBatches:
    """Batches of one epoch from batch ``start_batch`` on; workers prefetch so loading overlaps training, and
    ``pin`` (for CUDA) lets the host-to-device copy run asynchronously."""
    sampler = EpochSampler(dataset, epoch, start_batch * batch_size)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin,
        persistent_workers=False,
        prefetch_factor=4 if num_workers else None,
    )
    return EpochBatches(loader, dataset)


def batches_per_epoch(dataset: UnalignedDataset, batch_size: int) -> int:
    return -(-len(dataset) // batch_size)
