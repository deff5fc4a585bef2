"""FID and KID on Inception-v3 features, only from a weights file the user supplies.

We cannot download weights, and statistics from a randomly initialised Inception would look like numbers
while meaning nothing, so without ``eval.inception_weights`` these metrics are None ("not available").
Inputs are resized to 299 px and normalised with the ImageNet mean/std that torchvision's weights expect.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from scipy import linalg
from torch.nn import functional as F

from cyclegan.config import ConfigError

_MEAN = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
_STD = torch.tensor([0.229, 0.224, 0.225])[:, None, None]


def load_inception(path: str | Path) -> torch.nn.Module:
    """Inception-v3 with the user's state dict (a torchvision-format file), returning 2048-d pool features."""
    from torchvision.models import inception_v3

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"eval.inception_weights: file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise ConfigError(f"eval.inception_weights: cannot read {path}: {str(exc).splitlines()[0]}") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    aux = any(k.startswith("AuxLogits.") for k in state)
    net = inception_v3(weights=None, aux_logits=aux, init_weights=False)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ConfigError(
            f"eval.inception_weights: {path} is not an Inception-v3 state dict: {str(exc).splitlines()[0]}"
        ) from None
    net.fc = torch.nn.Identity()
    return net.eval()


@torch.no_grad()
def inception_features(net: torch.nn.Module, images: torch.Tensor, batch: int = 32) -> np.ndarray:
    """Images in [-1, 1] -> (N, 2048) pool features."""
    device = next(net.parameters()).device
    out = []
    for i in range(0, len(images), batch):
        x = (images[i : i + batch].to(device) * 0.5 + 0.5).clamp(0, 1)
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        x = (x - _MEAN.to(device)) / _STD.to(device)
        out.append(net(x).float().cpu())
    return torch.cat(out).numpy().astype(np.float64)


def fid(x: np.ndarray, y: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (Heusel et al. 2017)."""
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        eps = np.eye(len(s1)) * 1e-6
        covmean = linalg.sqrtm((s1 + eps) @ (s2 + eps))
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean.real))
