"""Written files and folders follow the umask (shared machines), and writes stay atomic."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from cyclegan.atomic import atomic_write, atomic_write_json, temp_dir
from cyclegan.synth import ensure_dataset


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_outputs_follow_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        atomic_write_json(tmp_path / "out" / "summary.json", {"a": 1})
        made = temp_dir(tmp_path, ".staging.")
        data = ensure_dataset("seasons", 8, 2, 1, tmp_path / "data")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "out" / "summary.json") == 0o666 & ~umask
    assert _mode(made) == 0o777 & ~umask and made.name.startswith(".staging.")
    assert _mode(data) == 0o777 & ~umask
    assert {_mode(p) for p in data.rglob("*") if p.is_file()} == {0o666 & ~umask}
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["summary.json"]  # no temp file left


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    atomic_write_json(target, {"v": 1})

    def half_then_fail(f) -> None:
        f.write(b'{"v": 2')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, half_then_fail)
    assert target.read_text() == '{\n  "v": 1\n}\n' and [p.name for p in tmp_path.iterdir()] == ["run.json"]
