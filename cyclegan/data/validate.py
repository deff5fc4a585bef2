"""Check a data set before training starts, so a bad file costs seconds, not a crashed run hours in.

The default check reads headers only (size, mode, format) plus a cheap end-of-file test per format; a file
that fails the end-of-file test is then decoded fully to confirm, so the fast check has no false alarms on
files with trailing data. ``full=True`` decodes every image.

Problem classes (each one line in the error, classes joined by '; '): missing root or folder, empty folder,
no images of a supported type, images smaller than the crop, unreadable files, truncated files. The last
three are per file and can be skipped with ``data.skip_bad=true`` (one warning counts them); the others
cannot. An image is "smaller than the crop" when either side is below ``crop_size`` (unless preprocess is
``none``): the reference's ``crop`` mode cannot crop it, and the resize modes would invent the missing detail.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from cyclegan.config import DataConfig
from cyclegan.data.images import IMAGE_SUFFIXES, is_ignored, is_image_file, load_rgb
from cyclegan.data.roots import dataset_root
from cyclegan.errors import DataError

log = logging.getLogger("cyclegan.data")

SPLITS = ("trainA", "trainB", "testA", "testB")
REQUIRED = ("trainA", "trainB")
SKIPPABLE = ("too_small", "unreadable", "truncated")
EXAMPLES = 3


@dataclass(frozen=True)
class FileProblem:
    path: Path
    kind: str  # one of SKIPPABLE
    detail: str


@dataclass
class FolderReport:
    """What one folder holds: counts, sizes, modes, bad files and the files a run may use."""

    name: str  # trainA ... testB, or data.dir_A / data.dir_B
    path: Path
    required: bool
    exists: bool = False
    n_files: int = 0  # files that are not hidden or OS litter
    other_files: list[Path] = field(default_factory=list)  # not an image suffix
    images: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    bad: list[FileProblem] = field(default_factory=list)
    sizes: Counter = field(default_factory=Counter)  # (w, h) -> count, over readable images
    modes: Counter = field(default_factory=Counter)

    def size_range(self) -> tuple[tuple[int, int], tuple[int, int]] | None:
        if not self.sizes:
            return None
        by_area = sorted(self.sizes, key=lambda s: (s[0] * s[1], s))
        return by_area[0], by_area[-1]


@dataclass
class DataReport:
    root: Path | None
    folders: list[FolderReport]
    problems: list[str]  # one line per problem class; empty when usable
    skipped: int = 0  # bad files left out because of skip_bad
    warning: str | None = None

    def folder(self, name: str) -> FolderReport | None:
        return next((f for f in self.folders if f.name == name), None)

    def kept(self, name: str) -> list[Path]:
        folder = self.folder(name)
        return list(folder.kept) if folder else []

    @property
    def ok(self) -> bool:
        return not self.problems


def _tail_looks_truncated(path: Path, fmt: str | None) -> bool:
    """A per-format end-of-file test that costs two small reads; True means 'decode to be sure'."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(16)
        fh.seek(max(0, size - 16))
        tail = fh.read()
    if fmt == "PNG":
        return not tail.endswith(b"IEND\xaeB`\x82")
    if fmt == "JPEG":
        return not tail.endswith(b"\xff\xd9")
    if fmt == "GIF":
        return not tail.endswith(b";")
    if fmt == "WEBP":
        return size < int.from_bytes(head[4:8], "little") + 8
    if fmt == "BMP":
        declared, offset = int.from_bytes(head[2:6], "little"), int.from_bytes(head[10:14], "little")
        return size < declared or size <= offset
    return False


def _error_text(exc: BaseException, path: Path) -> str:
    """First line of the error, without the path Pillow repeats (the report names the file already)."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text.replace(f" '{path}'", "").replace(str(path), "").strip(" :") or type(exc).__name__


def _decode_problem(path: Path, suspicious: bool) -> FileProblem | None:
    try:
        load_rgb(path)
    except Exception as exc:  # Pillow's plugins raise many types (OSError, SyntaxError, ValueError, ...)
        text = _error_text(exc, path)
        kind = "truncated" if suspicious or "truncated" in text.lower() else "unreadable"
        return FileProblem(path, kind, text)
    return None


def inspect_file(
    path: Path, crop_size: int | None, full: bool = False
) -> tuple[FileProblem | None, tuple, str]:
    """(problem or None, (w, h) or (), mode or '') for one image file; never raises for a bad file."""
    try:
        with Image.open(path) as img:
            size, mode, fmt = img.size, img.mode, img.format
    except Exception as exc:  # unreadable header: not an image, permission denied, vanished
        return FileProblem(path, "unreadable", _error_text(exc, path)), (), ""
    try:
        suspicious = _tail_looks_truncated(path, fmt)
    except OSError as exc:
        return FileProblem(path, "unreadable", str(exc)), (), ""
    if full or suspicious:
        problem = _decode_problem(path, suspicious)
        if problem:
            return problem, size, mode
    if crop_size and min(size) < crop_size:
        return FileProblem(path, "too_small", f"{size[0]}x{size[1]}"), size, mode
    return None, size, mode


def inspect_folder(name: str, path: Path, required: bool, crop_size: int | None, full: bool) -> FolderReport:
    report = FolderReport(name, path, required, exists=path.is_dir())
    if not report.exists:
        return report
    files = sorted(p for p in path.iterdir() if p.is_file() and not is_ignored(p))
    report.n_files = len(files)
    report.images = [p for p in files if is_image_file(p)]
    report.other_files = [p for p in files if not is_image_file(p)]
    for image in report.images:
        problem, size, mode = inspect_file(image, crop_size, full)
        if size:
            report.sizes[size] += 1
            report.modes[mode] += 1
        if problem:
            report.bad.append(problem)
        else:
            report.kept.append(image)
    return report


def _show(path: Path, root: Path | None) -> str:
    try:
        return str(path.relative_to(root)) if root else str(path)
    except ValueError:
        return str(path)


def _examples(items: list[str]) -> str:
    more = f" (+{len(items) - EXAMPLES} more)" if len(items) > EXAMPLES else ""
    return ", ".join(items[:EXAMPLES]) + more


def _folder_problems(folders: list[FolderReport], root: Path | None) -> list[str]:
    problems = []
    missing = [f for f in folders if f.required and not f.exists]
    if missing:
        where = f" (expected {'/ '.join(SPLITS)}/ inside {root})" if root else ""
        problems.append(f"missing folder(s): {', '.join(str(f.path) for f in missing)}{where}")
    empty = [f for f in folders if f.exists and f.n_files == 0]
    if empty:
        problems.append(f"empty folder(s): {', '.join(str(f.path) for f in empty)}")
    no_images = [f for f in folders if f.exists and f.n_files and not f.images]
    for f in no_images:
        others = _examples([p.name for p in f.other_files])
        problems.append(
            f"no images of a supported type ({', '.join(sorted(IMAGE_SUFFIXES))}) in {f.path}: "
            f"{len(f.other_files)} other file(s), e.g. {others}"
        )
    return problems


_KIND_TEXT = {"unreadable": "unreadable file(s)", "truncated": "truncated file(s)"}


def _file_problems(folders: list[FolderReport], root: Path | None, crop_size: int) -> list[str]:
    problems = []
    for kind in SKIPPABLE:
        bad = [p for f in folders for p in f.bad if p.kind == kind]
        if not bad:
            continue
        listed = _examples([f"{_show(p.path, root)} ({p.detail})" for p in bad])
        what = f"image(s) smaller than the {crop_size} px crop" if kind == "too_small" else _KIND_TEXT[kind]
        problems.append(f"{len(bad)} {what}: {listed}")
    return problems


def _config_problems(cfg: DataConfig) -> list[str]:
    if cfg.preprocess in ("resize_and_crop", "scale_width_and_crop") and cfg.load_size < cfg.crop_size:
        return [
            f"data.load_size {cfg.load_size} is smaller than data.crop_size {cfg.crop_size} "
            f"(preprocess {cfg.preprocess} would crop outside the image)"
        ]
    return []


def _inspect(cfg: DataConfig, full: bool) -> tuple[DataReport, list[str]]:
    """Report with the unskippable problems filled in, and the per-file problem lines kept apart."""
    root = dataset_root(cfg)
    if root is None:
        if not (cfg.dir_A and cfg.dir_B):
            raise DataError("data.dir_A and data.dir_B must be given together")
        specs = [("data.dir_A", Path(cfg.dir_A), True), ("data.dir_B", Path(cfg.dir_B), True)]
    else:
        if not root.is_dir():
            raise DataError(f"dataset folder not found: {root} (expected {'/ '.join(SPLITS)}/ inside)")
        specs = [(s, root / s, s in REQUIRED) for s in SPLITS]
    crop = 0 if cfg.preprocess == "none" else cfg.crop_size
    folders = [inspect_folder(name, path, required, crop, full) for name, path, required in specs]
    problems = _config_problems(cfg) + _folder_problems(folders, root)
    return DataReport(root, folders, problems), _file_problems(folders, root, cfg.crop_size)


def scan(cfg: DataConfig, full: bool = False) -> DataReport:
    """Every problem as ``check_data`` sees it without ``skip_bad``, but returned, not raised (for tables).

    Still raises ``DataError`` when there is nothing to scan (root not found, dir_A without dir_B).
    """
    report, file_problems = _inspect(cfg, full)
    report.problems += file_problems
    return report


def check_data(cfg: DataConfig, full: bool = False) -> DataReport:
    """Check the data a run with ``cfg`` would use; raise ``DataError`` (one line) if it cannot train.

    With ``cfg.skip_bad`` bad files (too small, unreadable, truncated) are left out of ``report.kept`` with
    one logged warning instead; a missing or empty folder, or a domain with nothing usable left, still raises.
    Writes nothing (for ``synth:*`` the benchmark is generated first by ``dataset_root``).
    """
    report, file_problems = _inspect(cfg, full)
    if not cfg.skip_bad:
        report.problems += file_problems
    else:
        report.skipped = sum(len(f.bad) for f in report.folders)
        for f in report.folders:
            if f.exists and f.images and not f.kept:
                report.problems.append(
                    f"no usable images left in {f.path} after skipping {len(f.bad)} bad file(s)"
                )
        if report.skipped:
            report.warning = (
                f"skipping {report.skipped} bad image file(s) (data.skip_bad=true): "
                + "; ".join(file_problems)
            )
    if report.problems:
        raise DataError("; ".join(report.problems))
    if report.warning:
        log.warning(report.warning)
    return report
