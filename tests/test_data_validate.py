"""Validation before training: every problem class, its one-line message and exit code 2; skip_bad."""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cyclegan.config import resolve
from cyclegan.data.sources import DataError, resolve_domains
from cyclegan.data.validate import check_data, scan
from harness.cli import main
from tests.conftest import make_folder_dataset

HARNESS = [sys.executable, "-m", "harness"]


def noisy(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """Random pixels: compress badly, so a truncated file really lacks image data."""
    return Image.fromarray(
        np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    )


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def data_cfg(root: Path, **over):
    cfg = resolve("smoke", {"data.dataset": str(root), "data.load_size": 16, "data.crop_size": 16}).data
    return dataclasses.replace(cfg, **over)


def cli_check(root: Path | str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [*HARNESS, "data", "check", str(root), "--crop-size", "16", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def break_missing_root(root: Path) -> Path:
    return root / "nowhere"


def break_missing_folder(root: Path) -> Path:
    for p in (root / "trainB").iterdir():
        p.unlink()
    (root / "trainB").rmdir()
    return root


def break_empty_folder(root: Path) -> Path:
    for p in (root / "trainA").iterdir():
        p.unlink()
    (root / "trainA" / ".DS_Store").write_bytes(b"litter")  # hidden litter does not count as content
    return root


def break_no_supported(root: Path) -> Path:
    for p in (root / "trainB").iterdir():
        p.unlink()
    (root / "trainB" / "notes.txt").write_text("not an image")
    (root / "trainB" / "scan.heic").write_bytes(b"\x00" * 64)
    return root


def break_too_small(root: Path) -> Path:
    noisy((12, 30)).save(root / "trainA" / "thin.png")
    noisy((10, 10)).save(root / "testB" / "tiny.png")
    return root


def break_unreadable(root: Path) -> Path:
    (root / "trainA" / "fake.jpg").write_text("this is text, not a JPEG")
    return root


def break_truncated(root: Path) -> Path:
    noisy((40, 40)).save(root / "trainB" / "cut.png")
    truncate(root / "trainB" / "cut.png")
    noisy((40, 40), 1).save(root / "trainA" / "cut.jpg", quality=95)
    truncate(root / "trainA" / "cut.jpg")
    return root


CASES = {
    "missing root": (break_missing_root, "dataset folder not found"),
    "missing folder": (break_missing_folder, "missing folder(s):"),
    "empty folder": (break_empty_folder, "empty folder(s):"),
    "no supported images": (break_no_supported, "no images of a supported type"),
    "too small": (
        break_too_small,
        "2 image(s) smaller than the 16 px crop: trainA/thin.png (12x30), testB/tiny.png",
    ),
    "unreadable": (break_unreadable, "1 unreadable file(s): trainA/fake.jpg (cannot identify image file)"),
    "truncated": (break_truncated, "2 truncated file(s): trainA/cut.jpg"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_problem_raises_one_line(case: str, tmp_path: Path) -> None:
    breaker, message = CASES[case]
    root = breaker(make_folder_dataset(tmp_path / "ds", n=3))
    with pytest.raises(DataError) as err:
        check_data(data_cfg(root))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("case", list(CASES))
def test_each_problem_exits_2_through_main(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """The console entry point in this process: same code path as the installed script, without paying the
    CLI's import time seven times (the subprocess test below covers the script itself)."""
    breaker, message = CASES[case]
    root = breaker(make_folder_dataset(tmp_path / "ds", n=3))
    before = sorted(tmp_path.rglob("*"))
    monkeypatch.setattr("sys.argv", ["harness", "data", "check", str(root), "--crop-size", "16"])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert sorted(tmp_path.rglob("*")) == before  # a check writes nothing


def test_problems_exit_2_through_the_installed_script(tmp_path: Path) -> None:
    """Two problem classes through `python -m harness` side by side: exit 2, one stderr line, no traceback."""
    cases = ("missing folder", "truncated")
    roots = {
        case: CASES[case][0](make_folder_dataset(tmp_path / case.replace(" ", "_"), n=3)) for case in cases
    }
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    running = {
        case: subprocess.Popen(
            [*HARNESS, "data", "check", str(root), "--crop-size", "16"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for case, root in roots.items()
    }
    for case, proc in running.items():
        _, stderr = proc.communicate(timeout=180)
        lines = stderr.strip().splitlines()
        assert proc.returncode == 2, (case, stderr)
        assert len(lines) == 1 and lines[0].startswith("error: ") and CASES[case][1] in lines[0], (
            case,
            stderr,
        )
        assert "Traceback" not in stderr


def test_several_problem_classes_share_one_line(tmp_path: Path) -> None:
    root = break_unreadable(break_too_small(make_folder_dataset(tmp_path / "ds", n=3)))
    with pytest.raises(DataError) as err:
        check_data(data_cfg(root))
    text = str(err.value)
    assert "\n" not in text and text.count("; ") == 1
    assert "smaller than the 16 px crop" in text and "unreadable" in text


def test_load_size_below_crop_is_a_problem(tmp_path: Path) -> None:
    root = make_folder_dataset(tmp_path / "ds", n=2)
    with pytest.raises(DataError, match="data.load_size 12 is smaller than data.crop_size 16"):
        check_data(data_cfg(root, load_size=12))


def test_fast_check_has_no_false_alarm_and_full_decodes(tmp_path: Path) -> None:
    root = make_folder_dataset(tmp_path / "ds", n=2)
    trailing = root / "trainA" / "trailing.jpg"
    noisy((20, 20)).save(trailing, quality=90)
    trailing.write_bytes(trailing.read_bytes() + b"appended metadata, as some cameras do")
    scrambled = root / "trainB" / "scrambled.png"
    noisy((32, 32)).save(scrambled)
    data = bytearray(scrambled.read_bytes())
    start = data.index(b"IDAT") + 40
    data[start : start + 200] = bytes(200)  # damaged pixel data, intact end marker
    scrambled.write_bytes(bytes(data))
    fast = scan(data_cfg(root))
    assert fast.problems == []  # headers and end markers look fine; trailing data is no false alarm
    full = scan(data_cfg(root), full=True)
    assert len(full.problems) == 1 and "trainB/scrambled.png" in full.problems[0]
    assert [p.path.name for p in full.folder("trainB").bad] == ["scrambled.png"]


def test_skip_bad_counts_and_warns_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = make_folder_dataset(tmp_path / "ds", n=4)
    break_unreadable(root)
    break_truncated(root)
    noisy((8, 30)).save(root / "trainB" / "small.png")
    (root / "trainA" / "Thumbs.db").write_bytes(b"\x00" * 10)
    cfg = data_cfg(root, skip_bad=True)
    with caplog.at_level(logging.WARNING, logger="cyclegan.data"):
        report = check_data(cfg)
    assert report.skipped == 4
    assert len(report.kept("trainA")) == 4 and len(report.kept("trainB")) == 4
    assert {p.kind for f in report.folders for p in f.bad} == {"unreadable", "truncated", "too_small"}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].getMessage().startswith("skipping 4 bad image file(s)")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cyclegan.data"):
        domains = resolve_domains(cfg)
        again = resolve_domains(cfg)
    assert [p.name for p in domains.train_A] == ["000.png", "001.png", "002.png", "003.png"]
    assert domains.train_B == again.train_B and len(domains.train_B) == 4 and len(domains.test_A) == 4
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1  # one check, one warning
    backwards = resolve_domains(dataclasses.replace(cfg, direction="BtoA"))
    assert backwards.train_A == domains.train_B


def test_skip_bad_still_fails_when_a_domain_has_nothing_left(tmp_path: Path) -> None:
    root = make_folder_dataset(tmp_path / "ds", n=1)
    (root / "trainB" / "000.png").write_text("broken")
    with pytest.raises(DataError, match="no usable images left in .*trainB after skipping 1 bad file"):
        check_data(data_cfg(root, skip_bad=True))


def test_explicit_folders(tmp_path: Path) -> None:
    root = make_folder_dataset(tmp_path / "ds", n=2)
    cfg = data_cfg(tmp_path, dir_A=str(root / "trainA"), dir_B=str(root / "testB"))
    report = check_data(cfg)
    assert [f.name for f in report.folders] == ["data.dir_A", "data.dir_B"]
    with pytest.raises(DataError, match="must be given together"):
        check_data(data_cfg(tmp_path, dir_A=str(root / "trainA")))


def test_cli_check_counts_a_mixed_folder(tmp_path: Path) -> None:
    root = make_folder_dataset(tmp_path / "ds", n=5)
    break_unreadable(root)  # trainA/fake.jpg
    break_truncated(root)  # trainA/cut.jpg, trainB/cut.png
    noisy((8, 8)).save(root / "trainA" / "small1.png")
    noisy((30, 9)).save(root / "trainA" / "small2.bmp")
    Image.new("L", (20, 20), 9).save(root / "trainB" / "gray.png")
    for junk in (".DS_Store", "Thumbs.db", "readme.txt"):
        (root / "trainA" / junk).write_text("x")
    done = cli_check(root)
    assert done.returncode == 2
    out = done.stdout
    assert "26 image(s): 21 usable, 5 bad (2 too small, 2 truncated, 1 unreadable)" in out
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:]] for line in out.splitlines()
            if line.startswith("│")}  # fmt: skip
    # folder: files, images, usable, bad, other files, sizes, modes
    assert rows["trainA"][:5] == ["10", "9", "5", "4", "1"]  # readme.txt counted as other, litter ignored
    assert rows["trainB"][:5] == ["7", "7", "6", "1", "0"]
    assert rows["trainB"][6] == "RGB 6, L 1"  # the truncated PNG's header still reads
    assert rows["trainA"][7] == "2 too small, 1 truncated, 1 unreadable" and rows["testB"][7] == "-"
    assert rows["testA"][:4] == ["5", "5", "5", "0"] and rows["testA"][5] == "20x20"
    assert "2 truncated file(s)" in done.stderr and "1 unreadable file(s)" in done.stderr
    assert cli_check(make_folder_dataset(tmp_path / "good", n=2)).returncode == 0


def test_official_name_means_the_downloaded_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("HARNESS_DATA", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match="'facades' is not downloaded") as err:
        check_data(data_cfg(Path("facades")))
    assert err.value.name == "facades"
    monkeypatch.setattr("sys.argv", ["harness", "data", "check", "facades"])
    with pytest.raises(SystemExit):  # the command line names the command that fixes it
        main()
    assert "get it with: harness data download facades" in capsys.readouterr().err
    with pytest.raises(DataError, match="cityscapes cannot be redistributed"):
        check_data(data_cfg(Path("cityscapes")))
    make_folder_dataset(tmp_path / "home" / "facades", n=2)
    report = check_data(data_cfg(Path("facades")))
    assert report.root == tmp_path / "home" / "facades" and len(report.kept("trainA")) == 2
