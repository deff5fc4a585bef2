"""Device choice, in a leaf module: training, checkpoint loading and benchmarks all pick devices alike."""

from __future__ import annotations

import torch


def pick_device(name: str) -> torch.device:
    """``auto`` is the GPU when there is one, else the CPU; any other name is taken as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
