"""Adversarial loss over a discriminator's whole output (map, pixels or scalar)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class GANLoss(nn.Module):
    """lsgan: MSE against 1 / 0 (the paper); vanilla: BCE with logits; hinge: the margin loss.

    ``for_discriminator`` only matters for hinge, whose generator term is -mean(D(fake)).
    """

    def __init__(self, mode: str = "lsgan") -> None:
        super().__init__()
        if mode not in ("lsgan", "vanilla", "hinge"):
            raise ValueError(f"unknown gan_mode '{mode}'; valid: lsgan, vanilla, hinge")
        self.mode = mode

    def forward(
        self, prediction: torch.Tensor, target_is_real: bool, for_discriminator: bool = True
    ) -> torch.Tensor:
        if self.mode == "hinge":
            if not for_discriminator:
                return -prediction.mean()
            sign = -1.0 if target_is_real else 1.0
            return F.relu(1.0 + sign * prediction).mean()
        target = torch.full_like(prediction, 1.0 if target_is_real else 0.0)
        if self.mode == "lsgan":
            return F.mse_loss(prediction, target)
        return F.binary_cross_entropy_with_logits(prediction, target)
