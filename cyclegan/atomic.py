"""Atomic file writes: a reader sees the old file or the new one, never half of either.

Temp files and folders are created with mode 0666 / 0777 minus the umask, like any ``open``/``mkdir``, so
the renamed result has the permissions the user expects (``tempfile.mkstemp``/``mkdtemp`` make it owner-only).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write`` on a temp file in the same folder, fsync it, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        fd, tmp = _create(lambda p: os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), path.parent,
                          f".{path.name}.", ".tmp")  # fmt: skip
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno and exc.filename in (None, tmp):  # name the file meant
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def temp_dir(parent: Path, prefix: str, suffix: str = "") -> Path:
    """A new, uniquely named folder in ``parent``, to be filled and then renamed into place."""
    return Path(_create(lambda p: os.mkdir(p, 0o777), parent, prefix, suffix)[1])


def _create(make: Callable[[str], Any], parent: Path, prefix: str, suffix: str) -> tuple[Any, str]:
    """(what ``make`` returned, the path) for the first random name in ``parent`` that did not exist yet."""
    while True:
        candidate = os.path.join(parent, f"{prefix}{secrets.token_hex(4)}{suffix}")
        try:
            return make(candidate), candidate
        except FileExistsError:
            continue


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def atomic_write_json(path: str | Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
