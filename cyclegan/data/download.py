"""Download the official data sets and pretrained generators: resumable, verified, safely extracted.

A download streams into ``<target>.part``; an interrupted one resumes with an HTTP Range request, so no byte
is fetched twice. The finished file is verified before use (zip CRCs; a ``.pth`` must load with
``torch.load(weights_only=True)`` as a generator state dict) and a zip is extracted only if no entry would
land outside the target folder. Extraction goes to a temporary folder renamed into place at the end, so the
target folder exists only when complete, and its existence makes a second call a no-op.
"""

from __future__ import annotations

import http.client
import shutil
import stat
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from cyclegan.atomic import atomic_write, temp_dir
from cyclegan.data.catalogue import DATASETS, MODELS, NOT_REDISTRIBUTABLE, base_url, dataset_url, model_url
from cyclegan.data.sources import DataError, data_home

if TYPE_CHECKING:
    import torch

CHUNK = 1 << 16
TIMEOUT_S = 30
MAX_UNPACKED = 8 << 30  # bytes; the official archives unpack to well under 2 GiB


class DownloadError(DataError):
    """A download or archive that cannot be used; the message names the URL or file."""


@dataclass(frozen=True)
class Fetched:
    path: Path  # the data set folder or the .pth file
    url: str
    downloaded: bool  # False: it was already there, nothing was fetched
    bytes_fetched: int = 0  # bytes received by this call (a resumed download counts only the rest)


def models_home() -> Path:
    return data_home() / "models"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__


def _progress(label: str, show: bool):
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    return Progress(
        TextColumn(label),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        disable=not show,
        transient=False,
    )


def fetch(url: str, dest: Path, show_progress: bool = True) -> int:
    """Download ``url`` to ``dest`` via ``dest.part``, resuming a partial ``.part``; return bytes received."""
    part = dest.with_name(dest.name + ".part")
    part.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to send: the .part is already whole
            part.replace(dest)
            return 0
        raise DownloadError(f"download failed: {_reason(exc)} for {url}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"download failed: {_reason(exc)} for {url}") from None
    received = 0
    with response:
        resumed = have and response.status == 206
        if have and not resumed:
            have = 0  # the server ignored the Range header: start over
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        try:
            with open(part, "ab" if resumed else "wb") as out, _progress(dest.name, show_progress) as bar:
                task = bar.add_task("download", total=total, completed=have)
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(task, advance=len(chunk))
        except (OSError, http.client.HTTPException) as exc:
            raise DownloadError(
                f"download of {url} interrupted after {have + received} bytes ({_reason(exc)}); "
                "run the same command again to resume"
            ) from None
    if total is not None and have + received < total:
        raise DownloadError(
            f"download of {url} interrupted after {have + received} of {total} bytes; "
            "run the same command again to resume"
        )
    part.replace(dest)
    return received


def _unsafe_entry(info: zipfile.ZipInfo) -> bool:
    """An entry that is absolute, climbs with '..', names a drive, or is a symbolic link."""
    name = info.filename.replace("\\", "/")
    parts = PurePosixPath(name).parts
    is_link = stat.S_ISLNK(info.external_attr >> 16)
    return name.startswith("/") or ".." in parts or (parts and ":" in parts[0]) or is_link


def verify_zip(path: Path, url: str) -> None:
    """Raise (and delete the file, so the next call downloads afresh) unless every entry's CRC matches."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        path.unlink(missing_ok=True)
        raise DownloadError(
            f"corrupt archive from {url}: {_reason(exc)}; deleted it, nothing extracted"
        ) from None
    if bad is not None:
        path.unlink(missing_ok=True)
        raise DownloadError(f"corrupt archive from {url}: bad CRC in '{bad}'; deleted it, nothing extracted")


def extract_zip(path: Path, target: Path, cap: int = MAX_UNPACKED) -> None:
    """Extract into ``target`` (created whole at the end) or refuse entirely if any entry is unsafe or the
    whole would unpack beyond ``cap`` bytes or the free space (a zip bomb, a wrong file). The entries'
    declared sizes are what extraction may write: zipfile stops each entry there (and its CRC check fails)."""
    with zipfile.ZipFile(path) as archive:
        unsafe = [info.filename for info in archive.infolist() if _unsafe_entry(info)]
        if unsafe:
            raise DownloadError(
                f"refusing to extract {path.name}: {len(unsafe)} entry(ies) would land outside {target}, "
                f"e.g. '{unsafe[0]}'; nothing extracted"
            )
        size = sum(info.file_size for info in archive.infolist())
        if size > cap:
            raise DownloadError(
                f"refusing to extract {path.name}: it would unpack to {size:,} bytes, over the cap of "
                f"{cap:,}; nothing extracted"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(target.parent).free
        if size > free:
            raise DownloadError(
                f"refusing to extract {path.name}: it unpacks to {size:,} bytes and {target.parent} has "
                f"{free:,} free; nothing extracted"
            )
        staging = temp_dir(target.parent, f".{target.name}.", ".extracting")
        try:
            for info in archive.infolist():
                if info.filename.startswith("__MACOSX/"):
                    continue
                archive.extract(info, staging)
            # archives hold NAME/trainA/...; one without that top folder is used as is
            inner = staging / target.name
            entries = [p for p in staging.iterdir() if not p.name.startswith(".")]
            (inner if entries == [inner] and inner.is_dir() else staging).rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _known(name: str, names: tuple[str, ...], what: str) -> None:
    if name in NOT_REDISTRIBUTABLE:
        raise DownloadError(NOT_REDISTRIBUTABLE[name])
    if name not in names:
        raise DownloadError(f"unknown {what} '{name}'; valid: {', '.join(names)}")


def download_dataset(
    name: str, root: Path | None = None, base: str | None = None, show_progress: bool = True
) -> Fetched:
    """``<root>/<name>/`` holding trainA/ ... testB/, downloaded and extracted unless already there."""
    _known(name, DATASETS, "data set")
    root = Path(root) if root else data_home()
    target, url = root / name, dataset_url(name, base)
    if target.is_dir():
        return Fetched(target, url, downloaded=False)
    archive = root / f"{name}.zip"
    received = fetch(url, archive, show_progress)
    verify_zip(archive, url)
    try:
        extract_zip(archive, target)
    finally:
        archive.unlink()  # extracted, or refused as unsafe: either way the next call starts afresh
    return Fetched(target, url, downloaded=True, bytes_fetched=received)


def verify_generator(path: Path, url: str) -> dict[str, torch.Tensor]:
    """The state dict in ``path`` if it loads safely and looks like a reference ResNet generator."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        path.unlink(missing_ok=True)
        raise DownloadError(
            f"corrupt model file from {url}: {str(exc).splitlines()[0]}; deleted it, nothing saved"
        ) from None
    if not isinstance(state, dict) or "model.1.weight" not in state:
        path.unlink(missing_ok=True)
        raise DownloadError(
            f"{url} is not a CycleGAN generator state dict (no 'model.1.weight'); nothing saved"
        )
    return state


def download_model(
    name: str, root: Path | None = None, base: str | None = None, show_progress: bool = True
) -> Fetched:
    """``<root>/<name>.pth``: an official generator as a bare state dict that ``harness translate`` loads."""
    import torch

    _known(name, MODELS, "model")
    root = Path(root) if root else models_home()
    target, url = root / f"{name}.pth", model_url(name, base)
    if target.is_file():
        return Fetched(target, url, downloaded=False)
    raw = root / f"{name}.download"
    received = fetch(url, raw, show_progress)
    state = verify_generator(raw, url)
    from cyclegan.networks import drop_stale_norm_stats

    state = drop_stale_norm_stats(state)
    atomic_write(target, lambda f: torch.save(state, f))
    raw.unlink()
    return Fetched(target, url, downloaded=True, bytes_fetched=received)


def download_fid_inception(
    root: Path | None = None, base: str | None = None, sha256: str | None = None, show_progress: bool = True
) -> Fetched:
    """The FID Inception weights (torch-fidelity's release file), resumable, verified by a strict safe load
    into the architecture and, given ``sha256``, by that hash; the hash of what was verified is kept beside
    the file (``.sha256``) so a later change is noticed before the file is used."""
    from cyclegan.metrics import inception

    root = Path(root) if root else models_home()
    target = root / inception.WEIGHTS_FILE
    url = f"{base_url(base)}/{inception.WEIGHTS_FILE}" if base else inception.DEFAULT_URL
    if inception.available(target) is not None:
        return Fetched(target, url, downloaded=False)
    raw = root / f"{inception.WEIGHTS_FILE}.download"
    received = fetch(url, raw, show_progress)
    try:
        digest = inception.verify_weights(raw)
        if sha256 is not None and digest != sha256.lower():
            raise inception.WeightsError(f"sha256 {digest} of {url} is not the expected {sha256.lower()}")
    except inception.WeightsError as exc:
        raw.unlink(missing_ok=True)
        raise DownloadError(f"{exc}; deleted it, nothing saved") from None
    raw.replace(target)
    atomic_write(inception.sidecar(target), lambda f: f.write(f"{digest}  {target.name}\n".encode()))
    return Fetched(target, url, downloaded=True, bytes_fetched=received)
