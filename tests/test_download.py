"""Downloads end to end against a local HTTP server with Range support that the test runs and counts."""

from __future__ import annotations

import io
import re
import sys
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from cyclegan.data.download import DownloadError, download_dataset, download_model
from cyclegan.networks import ResnetGenerator
from harness.cli import app
from harness.commands import core, data  # noqa: F401  (attach translate and the data/models groups)

runner = CliRunner()


class Server:
    """Serves ``files`` (URL path -> bytes) with HTTP Range; counts requests and body bytes sent.

    ``cut_after`` makes the next response stop after that many body bytes and drop the connection, as a
    network failure would.
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.bytes_sent = 0
        self.cut_after: int | None = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                server.requests.append((self.path, self.headers.get("Range")))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start, status = 0, 200
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if match:
                    start = int(match.group(1))
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.end_headers()
                        return
                    status = 206
                self.send_response(status)
                self.send_header("Content-Length", str(len(body) - start))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.end_headers()
                payload = body[start:]
                if server.cut_after is not None:
                    payload, server.cut_after = payload[: server.cut_after], None
                    self.close_connection = True
                self.wfile.write(payload)
                self.wfile.flush()
                server.bytes_sent += len(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def png_bytes(seed: int, size: int = 16) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def dataset_zip(name: str, n: int = 3, extra: dict[str, bytes] | None = None) -> bytes:
    """A zip laid out like the official ones: NAME/trainA ... NAME/testB, stored (so byte flips hit data)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as z:
        for k, split in enumerate(("trainA", "trainB", "testA", "testB")):
            for i in range(n):
                z.writestr(f"{name}/{split}/{i}.png", png_bytes(10 * k + i))
        for entry, data in (extra or {}).items():
            z.writestr(entry, data)
    return out.getvalue()


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_fresh_download_extracts_and_second_call_fetches_nothing(server: Server, tmp_path: Path) -> None:
    body = dataset_zip("facades")
    server.files["/datasets/facades.zip"] = body
    root = tmp_path / "data"
    args = ["data", "download", "facades", "--root", str(root), "--base-url", server.base]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"to {root / 'facades'}" in result.output
    assert server.bytes_sent == len(body) and len(server.requests) == 1
    for split in ("trainA", "trainB", "testA", "testB"):
        assert sorted(p.name for p in (root / "facades" / split).iterdir()) == ["0.png", "1.png", "2.png"]
    assert [p.name for p in root.iterdir()] == ["facades"]  # no zip, .part or staging folder left around
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "already there" in again.output
    assert len(server.requests) == 1  # the server saw no second request
    listing = runner.invoke(app, ["data", "list", "--root", str(root)])
    facades = next(line for line in listing.output.splitlines() if " facades " in line)
    assert "present" in facades
    assert "present" not in next(line for line in listing.output.splitlines() if " horse2zebra " in line)
    assert "cityscapes cannot be redistributed" in listing.output


def test_interrupted_download_resumes_without_refetching(server: Server, tmp_path: Path) -> None:
    body = dataset_zip("mini", n=6)
    server.files["/datasets/mini.zip"] = body
    half = len(body) // 2
    server.cut_after = half
    with pytest.raises(DownloadError, match=f"interrupted after {half} of {len(body)} bytes"):
        download_dataset("mini", tmp_path, server.base, show_progress=False)
    part = tmp_path / "mini.zip.part"
    assert part.stat().st_size == half and not (tmp_path / "mini").exists()
    fetched = download_dataset("mini", tmp_path, server.base, show_progress=False)
    assert fetched.downloaded and fetched.bytes_fetched == len(body) - half
    assert server.requests[-1] == ("/datasets/mini.zip", f"bytes={half}-")
    assert server.bytes_sent == len(body)  # every byte crossed the wire exactly once
    assert len(list((tmp_path / "mini" / "trainA").iterdir())) == 6 and not part.exists()


def test_corrupt_archive_is_refused(server: Server, tmp_path: Path) -> None:
    body = bytearray(dataset_zip("maps"))
    entry = body.index(b"maps/trainB/1.png")
    body[entry + 200] ^= 0xFF  # inside that member's stored data: its CRC no longer matches
    server.files["/datasets/maps.zip"] = bytes(body)
    with pytest.raises(DownloadError, match=r"corrupt archive from .*/maps.zip: bad CRC in 'maps/trainB/"):
        download_dataset("maps", tmp_path, server.base, show_progress=False)
    assert files_under(tmp_path) == []  # nothing extracted, the bad file removed
    server.files["/datasets/maps.zip"] = b"<html>not a zip</html>"
    result = runner.invoke(
        app, ["data", "download", "maps", "--root", str(tmp_path), "--base-url", server.base]
    )
    assert result.exit_code != 0 and "corrupt archive" in str(result.exception)
    assert files_under(tmp_path) == []


def test_zip_with_an_escaping_entry_writes_nothing(server: Server, tmp_path: Path) -> None:
    root = tmp_path / "inner" / "data"
    server.files["/datasets/ae_photos.zip"] = dataset_zip("ae_photos", extra={"../../evil.txt": b"owned"})
    with pytest.raises(
        DownloadError, match=r"refusing to extract ae_photos.zip: 1 entry\(ies\).*'../../evil"
    ):
        download_dataset("ae_photos", root, server.base, show_progress=False)
    assert files_under(tmp_path) == ["inner", "inner/data"]  # no evil.txt anywhere, no partial data set
    server.files["/datasets/ae_photos.zip"] = dataset_zip("ae_photos", extra={"/etc/evil": b"owned"})
    with pytest.raises(DownloadError, match="refusing to extract"):
        download_dataset("ae_photos", root, server.base, show_progress=False)
    assert files_under(tmp_path) == ["inner", "inner/data"]


def test_network_failures_name_the_url(server: Server, tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(DownloadError, match=rf"HTTP 404 .* for {server.base}/datasets/horse2zebra.zip"):
        download_dataset("horse2zebra", tmp_path, server.base, show_progress=False)
    closed = Server()
    dead = closed.base
    closed.close()
    monkeypatch.setenv("HARNESS_DOWNLOAD_BASE", dead)  # the environment variable picks the server
    with pytest.raises(DownloadError, match=rf"download failed: .* for {dead}/datasets/horse2zebra.zip"):
        download_dataset("horse2zebra", tmp_path, show_progress=False)
    with pytest.raises(DownloadError, match="cityscapes cannot be redistributed.*cityscapes-dataset.com"):
        download_dataset("cityscapes", tmp_path)
    with pytest.raises(DownloadError, match="unknown data set 'zebras'; valid: ae_photos, apple2orange"):
        download_dataset("zebras", tmp_path)
    assert files_under(tmp_path) == []


def test_cli_network_error_is_one_line_exit_2(tmp_path: Path) -> None:
    import subprocess

    closed = Server()
    dead = closed.base
    closed.close()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "data",
            "download",
            "facades",
            "--root",
            str(tmp_path),
            "--base-url",
            dead,
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: download failed: [Errno 111] Connection refused for {dead}/datasets/facades.zip"
    ]


def reference_generator_state() -> dict[str, torch.Tensor]:
    """A small generator in the reference's key layout, plus the stale InstanceNorm buffers that checkpoints
    saved by PyTorch < 0.4 carry."""
    torch.manual_seed(0)
    state = ResnetGenerator(ngf=4, n_blocks=1, norm="instance").state_dict()
    state["model.2.running_mean"] = torch.zeros(4)
    state["model.2.running_var"] = torch.ones(4)
    return state


def test_model_download_then_translate(server: Server, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    torch.save(reference_generator_state(), buffer)
    server.files["/pretrained_models/style_monet.pth"] = buffer.getvalue()
    models = tmp_path / "models"
    args = ["models", "download", "style_monet", "--root", str(models), "--base-url", server.base]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    saved = models / "style_monet.pth"
    state = torch.load(saved, weights_only=True)
    assert "model.1.weight" in state and "model.2.running_mean" not in state
    assert server.bytes_sent == len(buffer.getvalue())
    assert runner.invoke(app, args).exit_code == 0 and len(server.requests) == 1  # idempotent
    Image.fromarray(np.full((20, 24, 3), 90, dtype=np.uint8)).save(tmp_path / "photo.jpg")
    out = tmp_path / "translated"
    translated = runner.invoke(
        app,
        ["translate", str(saved), str(tmp_path / "photo.jpg"), "--out", str(out)],
    )
    assert translated.exit_code == 0, translated.output
    image = Image.open(out / "photo.png")
    assert image.size == (24, 20) and image.mode == "RGB"  # the whole photo, sides already multiples of 4
    listing = runner.invoke(app, ["models", "list", "--root", str(models)])
    assert "present" in next(line for line in listing.output.splitlines() if " style_monet " in line)


def test_corrupt_model_is_refused(server: Server, tmp_path: Path) -> None:
    server.files["/pretrained_models/horse2zebra.pth"] = b"not a torch file at all"
    with pytest.raises(DownloadError, match=r"corrupt model file from .*/pretrained_models/horse2zebra.pth"):
        download_model("horse2zebra", tmp_path, server.base, show_progress=False)
    buffer = io.BytesIO()
    torch.save({"weights": torch.zeros(2)}, buffer)
    server.files["/pretrained_models/horse2zebra.pth"] = buffer.getvalue()
    with pytest.raises(DownloadError, match="not a CycleGAN generator state dict"):
        download_model("horse2zebra", tmp_path, server.base, show_progress=False)
    assert files_under(tmp_path) == []
