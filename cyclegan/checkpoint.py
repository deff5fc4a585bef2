"""One checkpoint file holds everything needed to continue a run exactly, written atomically.

Loaded with ``weights_only=True``: a checkpoint is data (tensors, numbers, strings), never code.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch

from cyclegan.atomic import atomic_write
from cyclegan.config import Config
from cyclegan.device import pick_device
from cyclegan.errors import CheckpointError

FORMAT = 1


def save(path: str | Path, state: dict[str, Any]) -> None:
    atomic_write(path, lambda f: torch.save({"format": FORMAT, **state}, f))


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:  # torch's text suggests loading it unsafely: say why it is refused
        raise CheckpointError(_refused(path, str(exc))) from None
    except Exception as exc:  # torch raises many types for a bad file
        raise CheckpointError(f"cannot read checkpoint {path}: {str(exc).splitlines()[0]}") from None


def _refused(path: Path, torch_text: str) -> str:
    """Our reason for a file the safe loader refused; a checkpoint holds only tensors and plain values."""
    found = re.search(r"GLOBAL ([\w.]+)", torch_text)
    if found:
        return (f"refused checkpoint {path}: it holds the Python object {found.group(1)}, and loading such "
                "objects can run any code; a checkpoint holds only tensors and plain values, as the harness "
                "writes them (train again, or use a checkpoint written by the harness)")  # fmt: skip
    return f"refused checkpoint {path}: not a file of tensors and plain values (damaged, or another format)"


def check_compatible(state: dict[str, Any], cfg: Config, path: str | Path) -> None:
    """Refuse to resume into a different architecture (the saved config travels inside the checkpoint)."""
    saved = state.get("config", {}).get("model")
    if saved is not None and saved != cfg.to_dict()["model"]:
        diff = sorted(k for k in saved if saved[k] != cfg.to_dict()["model"].get(k))
        raise CheckpointError(f"checkpoint {path} was trained with other model settings ({', '.join(diff)})")


def load_trained(path: str | Path, device: str | torch.device | None = None) -> tuple[Any, dict[str, Any]]:
    """(the trained CycleGAN, the checkpoint) from a harness checkpoint, for scoring and inspection; the
    device defaults to the run's ``train.device``."""
    from cyclegan.model import CycleGAN

    state = load(path)
    if "model" not in state or "config" not in state:
        raise CheckpointError(f"{path} is not a harness checkpoint (no config/model inside)")
    cfg = Config.from_dict(state["config"])
    model = CycleGAN(cfg, pick_device(cfg.train.device) if device is None else device)
    model.load_training_state(state["model"])
    return model, state
