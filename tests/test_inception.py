"""Standard FID / KID: parity with torchmetrics end to end, the weights download, and "not available"."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from torchvision.models import inception_v3
from typer.testing import CliRunner

from cyclegan.config import resolve
from cyclegan.data.download import DownloadError, download_fid_inception
from cyclegan.metrics import Evaluator, inception
from harness.cli import app


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A state dict of the FID Inception architecture with random weights (stands in for the real file);
    batch-norm statistics set by one pass in training mode, so features stay of order 1 as real ones do."""
    torch.manual_seed(0)
    net = inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=True)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = 1.0  # running statistics = this batch's
    with torch.no_grad():
        net.train()(torch.rand(4, 3, 299, 299) * 2 - 1)
    path = tmp_path_factory.mktemp("w") / "random.pth"
    torch.save(net.state_dict(), path)
    return path.read_bytes()


class _Double(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.double()


@pytest.fixture
def server():
    from tests.test_download import Server  # importable once collection has put the root on sys.path

    s = Server()
    yield s
    s.close()


def test_fid_and_kid_known_answers() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4000, 3, generator=gen, dtype=torch.float64)
    y = torch.randn(4000, 3, generator=gen, dtype=torch.float64)
    # same Gaussians -> about 0; mean shifted by (1, 2, 0), identity covariances -> |mu|^2 = 5
    assert abs(inception.fid(x, y)) < 0.05
    assert abs(inception.fid(x, y + torch.tensor([1.0, 2.0, 0.0], dtype=torch.float64)) - 5.0) < 0.2
    same, std = inception.kid(x[:200], y[:200])
    shifted = inception.kid(x[:200], y[:200] + 0.5)[0]
    assert abs(same) < 3 * std + 0.01 and shifted > same + 5 * std
    assert inception.kid(x[:200], x[:200])[0] == pytest.approx(inception.kid(x[:200], x[:200])[0])  # seeded


def test_our_fid_and_kid_equal_torchmetrics_end_to_end(random_weights: bytes, tmp_path: Path) -> None:
    """Our path (features once, rounded uint8, batches of 3, torchmetrics on the features) against
    torchmetrics' own FID / KID modules fed the same uint8 images, same network file (random weights)."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    path = tmp_path / "w.pth"
    path.write_bytes(random_weights)
    gen = torch.Generator().manual_seed(1)
    real = torch.rand(6, 3, 32, 32, generator=gen) * 2 - 1
    fake = (real.flip(-1) * 0.5 + torch.rand(6, 3, 32, 32, generator=gen) * 0.5).clamp(-1, 1)
    net = inception.load_network(path)
    f_real, f_fake = inception.features(net, real, batch=3), inception.features(net, fake, batch=3)
    ours_fid, (ours_kid, ours_std) = inception.fid(f_fake, f_real), inception.kid(f_fake, f_real)

    ref = FrechetInceptionDistance(feature=2048, feature_extractor_weights_path=str(path), antialias=False)
    ref.update(inception.to_uint8(real), real=True)
    ref.update(inception.to_uint8(fake), real=False)
    ref_fid = float(ref.compute())
    in_float64 = torch.nn.Sequential(net, _Double())  # torchmetrics keeps KID features as the net gives them
    with pytest.warns(UserWarning):
        kid = KernelInceptionDistance(feature=in_float64, subsets=inception.KID_SUBSETS, subset_size=3)
    kid.update(inception.to_uint8(real), real=True)
    kid.update(inception.to_uint8(fake), real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        ref_kid, ref_std = (float(v) for v in kid.compute())
    assert ours_fid > 0 and ours_kid != 0
    assert ours_fid == pytest.approx(ref_fid, rel=1e-6)
    assert ours_kid == pytest.approx(ref_kid, rel=1e-6) and ours_std == pytest.approx(ref_std, rel=1e-6)


def test_download_resumes_verifies_and_is_used_automatically(
    server, random_weights: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import make_folder_dataset

    monkeypatch.setenv("HARNESS_DATA", str(tmp_path / "home"))
    server.files[f"/{inception.WEIGHTS_FILE}"] = random_weights
    digest = hashlib.sha256(random_weights).hexdigest()
    root = make_folder_dataset(tmp_path / "ds", n=6, size=16)
    cfg = resolve("smoke", {"data.dataset": str(root)})
    metrics = Evaluator(cfg).reference_points()["do_nothing"]
    assert metrics["fid_inception_AtoB"] is None and metrics["kid_inception_AtoB"] is None  # not available

    server.cut_after = 1000  # the first attempt breaks off
    runner = CliRunner()
    args = ["models", "download", "fid-inception", "--base-url", server.base, "--quiet", "--sha256", digest]
    first = runner.invoke(app, args)
    assert isinstance(first.exception, DownloadError) and "again to resume" in str(first.exception)
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    assert server.requests[-1][1] == "bytes=1000-"  # resumed where it stopped
    target = tmp_path / "home" / "models" / inception.WEIGHTS_FILE
    assert target.read_bytes() == random_weights
    assert inception.sidecar(target).read_text().split()[0] == digest
    sent = server.bytes_sent
    third = runner.invoke(app, args)
    assert "already there" in third.output and server.bytes_sent == sent

    ev = Evaluator(cfg)  # the downloaded weights are found without being named (scoring: the parity test)
    assert ev.inception is not None and ev.inc_A.shape == (6, 2048)
    assert ev.provenance()["fid_network"] == inception.NETWORK and ev.provenance()["n_test_A"] == 6

    target.write_bytes(random_weights[:-1] + b"x")  # changed after it was verified
    with pytest.raises(Exception, match="changed since it was verified"):
        Evaluator(cfg)


def test_download_with_a_wrong_hash_or_a_wrong_file_saves_nothing(
    server, random_weights: bytes, tmp_path: Path
) -> None:
    server.files[f"/{inception.WEIGHTS_FILE}"] = random_weights
    with pytest.raises(DownloadError, match="is not the expected"):
        download_fid_inception(tmp_path, server.base, sha256="0" * 64, show_progress=False)
    assert list(tmp_path.iterdir()) == []
    bad = tmp_path / "bad.pth"
    torch.save({"conv.weight": torch.zeros(1)}, bad)
    server.files[f"/{inception.WEIGHTS_FILE}"] = bad.read_bytes()
    bad.unlink()
    with pytest.raises(DownloadError, match="not the FID Inception network's state dict"):
        download_fid_inception(tmp_path, server.base, show_progress=False)
    assert list(tmp_path.iterdir()) == []
