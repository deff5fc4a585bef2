"""Standard FID and KID, the numbers CycleGAN papers report: 2048-d pool features of the FID Inception network
(TensorFlow's 2015-12-05 Inception-v3, ported to PyTorch by torch-fidelity; pytorch-fid and clean-fid use the
same graph), scored by torchmetrics.

Why torchmetrics: one maintained library gives FID, KID, PSNR and SSIM; its FID network is torch-fidelity's
exact port (TF-compatible bilinear resize with ``antialias=False``, used here); it installs against our torch
pin. Features are extracted once per image set here and fed to torchmetrics' metrics through an identity
"network", so the reference images' features are paid once per data set. Without the weights file these
metrics are None ("not available"): numbers from random weights would look real and mean nothing.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import torch
from torch import nn

from cyclegan.data.roots import data_home

NETWORK = "FID Inception-v3 (TF 2015-12-05 graph, torch-fidelity port), 2048-d pool features"
WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
DEFAULT_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{WEIGHTS_FILE}"
KID_SUBSETS = 50


class WeightsError(ValueError):
    """A weights file that is not the FID Inception network's state dict (or changed since it was checked)."""


def weights_path() -> Path:
    """Where ``harness models download fid-inception`` puts the file: beside the pretrained generators."""
    return data_home() / "models" / WEIGHTS_FILE


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def verify_weights(path: Path) -> str:
    """Load ``path`` safely (weights_only) and strictly into the FID Inception architecture; return its
    sha256. Raises WeightsError naming the file and what is wrong."""
    from torchvision.models import inception_v3

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise WeightsError(f"{path} does not load as a state dict: {str(exc).splitlines()[0]}") from None
    net = inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)
    try:
        net.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise WeightsError(
            f"{path} is not the FID Inception network's state dict: {str(exc).splitlines()[0]}"
        ) from None
    return _sha256(path)


def sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def available(path: Path | None = None) -> Path | None:
    """The weights file when present and unchanged since it was verified (its .sha256 sidecar), else None."""
    path = Path(path) if path is not None else weights_path()
    side = sidecar(path)
    if not path.is_file() or not side.is_file():
        return None
    if side.read_text().split()[0] != _sha256(path):
        raise WeightsError(f"{path} changed since it was verified; delete it and download it again")
    return path


def load_network(path: Path) -> nn.Module:
    """torchmetrics' FID Inception (torch-fidelity's port) with TF-compatible resizing. The file was checked
    by ``available`` (same bytes that loaded with weights_only=True); torch-fidelity then reads it itself."""
    from torchmetrics.image.fid import NoTrainInceptionV3

    return NoTrainInceptionV3("inception-v3-compat", ["2048"], str(path), antialias=False)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> uint8 [0, 255], rounded (what saving the image as PNG would store)."""
    return ((images.float() * 0.5 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)


@torch.no_grad()
def features(net: nn.Module, images: torch.Tensor, batch: int = 32) -> torch.Tensor:
    """(N, 2048) float64 pool features of images in [-1, 1] (any size: the network resizes to 299)."""
    device = next(net.parameters()).device
    parts = [
        net(to_uint8(images[i : i + batch]).to(device)).double().cpu() for i in range(0, len(images), batch)
    ]
    return torch.cat(parts) if parts else torch.empty(0, 2048, dtype=torch.float64)


class _Given(nn.Identity):
    """Lets torchmetrics' metrics take features already extracted."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features


def _apart(fake: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two sets; when both are the same samples (the oracle: real test images scored against themselves)
    they become two disjoint halves, since a sample paired with itself scores 0 and biases KID below it."""
    if fake.shape != real.shape or not torch.equal(fake, real):
        return fake, real
    order = torch.randperm(len(real), generator=torch.Generator().manual_seed(0))
    half = len(real) // 2
    return real[order[:half]], real[order[half : 2 * half]]


def fid(fake: torch.Tensor, real: torch.Tensor) -> float:
    """torchmetrics' Frechet distance between Gaussians fitted to two feature sets."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    fake, real = _apart(fake, real)
    metric = FrechetInceptionDistance(feature=_Given(real.shape[1])).double()
    metric.update(real, real=True)
    metric.update(fake, real=False)
    return float(metric.compute())


def kid_subset_size(n_fake: int, n_real: int) -> int:
    """At most 1000 and at most half the smaller set, so subsets differ and their std means something."""
    return max(2, min(1000, n_fake // 2, n_real // 2))


def kid(fake: torch.Tensor, real: torch.Tensor, seed: int = 0) -> tuple[float, float]:
    """torchmetrics' KID (cubic polynomial kernel, unbiased MMD^2): (mean, std) over ``KID_SUBSETS`` random
    subsets, drawn with a fixed seed without touching the global RNG."""
    from torchmetrics.image.kid import KernelInceptionDistance

    fake, real = _apart(fake, real)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "will save all extracted features": they are small
        metric = KernelInceptionDistance(
            feature=_Given(real.shape[1]),
            subsets=KID_SUBSETS,
            subset_size=kid_subset_size(len(fake), len(real)),
        )
    metric.update(real, real=True)
    metric.update(fake, real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)
