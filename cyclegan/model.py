"""The CycleGAN model: four networks, two Adams, two pools and the reference's training iteration.

Names follow the paper and the reference: ``G_A`` maps A -> B, ``G_B`` maps B -> A, ``D_A`` judges domain B
(real B vs G_A's fakes), ``D_B`` judges domain A.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator

import torch
from torch import nn
from torch.nn import functional as F

from cyclegan.config import Config
from cyclegan.losses import GANLoss
from cyclegan.networks import build_discriminator, build_generator
from cyclegan.pool import ImagePool
from cyclegan.seeding import derive_generator

LOSS_NAMES = ("G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B", "D_A", "D_B")
NORM_STATS = ("running", "per_image")


@contextlib.contextmanager
def _batch_statistics(net: nn.Module) -> Iterator[None]:
    """Batch norm layers normalise with the statistics of the batch they see and leave their running
    averages untouched (train mode without tracking); everything else, dropout included, stays as it is."""
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.training, m.track_running_stats) for m in norms]
    for m in norms:
        m.train(True)
        m.track_running_stats = False
    try:
        yield
    finally:
        for m, (training, tracking) in zip(norms, saved, strict=True):
            m.train(training)
            m.track_running_stats = tracking


def lr_factor(epoch: int, n_epochs: int, n_epochs_decay: int) -> float:
    """Learning-rate multiplier during ``epoch`` (counted from 1): constant, then linear decay.

    The reference steps its scheduler at each epoch's end, so epoch k runs at
    1 - max(0, k - n_epochs) / (n_epochs_decay + 1).
    """
    return 1.0 - max(0, epoch - n_epochs) / float(n_epochs_decay + 1)


def set_requires_grad(nets: list[nn.Module], flag: bool) -> None:
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


class CycleGAN(nn.Module):
    def __init__(self, cfg: Config, device: torch.device | str = "cpu") -> None:
        super().__init__()
        self.cfg = cfg
        self.device = torch.device(device)
        torch.manual_seed(cfg.train.seed)  # network init is the only user of the global RNG
        self.G_A = build_generator(cfg.model)
        self.G_B = build_generator(cfg.model)
        self.D_A = build_discriminator(cfg.model)
        self.D_B = build_discriminator(cfg.model)
        self.to(self.device)
        self.gan_loss = GANLoss(cfg.loss.gan_mode)
        o = cfg.optim
        self.opt_G = torch.optim.Adam(
            itertools.chain(self.G_A.parameters(), self.G_B.parameters()), lr=o.lr, betas=(o.beta1, o.beta2)
        )
        self.opt_D = torch.optim.Adam(
            itertools.chain(self.D_A.parameters(), self.D_B.parameters()), lr=o.lr, betas=(o.beta1, o.beta2)
        )
        self.pool_A = ImagePool(cfg.train.pool_size, derive_generator(cfg.train.seed, "pool_A"))
        self.pool_B = ImagePool(cfg.train.pool_size, derive_generator(cfg.train.seed, "pool_B"))
        self.epoch = 1
        self.set_epoch(1)

    # --- schedule -------------------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Set the learning rate for ``epoch``: a pure function of the epoch, so resume needs no history."""
        self.epoch = epoch
        lr = self.cfg.optim.lr * lr_factor(epoch, self.cfg.optim.n_epochs, self.cfg.optim.n_epochs_decay)
        for opt in (self.opt_G, self.opt_D):
            for group in opt.param_groups:
                group["lr"] = lr

    @property
    def lr(self) -> float:
        return self.opt_G.param_groups[0]["lr"]

    # --- the reference iteration ----------------------------------------------------------------------
    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One iteration in the reference's exact order; returns the detached losses by reference name."""
        cfg = self.cfg.loss
        real_A = batch["A"].to(self.device, non_blocking=True)
        real_B = batch["B"].to(self.device, non_blocking=True)
        # 1. forward
        fake_B = self.G_A(real_A)
        rec_A = self.G_B(fake_B)
        fake_A = self.G_B(real_B)
        rec_B = self.G_A(fake_A)
        # 2-4. generators, with the discriminators frozen
        set_requires_grad([self.D_A, self.D_B], False)
        self.opt_G.zero_grad(set_to_none=True)
        zero = torch.zeros((), device=self.device)
        idt_A_loss, idt_B_loss = zero, zero
        if cfg.lambda_identity > 0:
            idt_A = self.G_A(real_B)
            idt_A_loss = F.l1_loss(idt_A, real_B) * cfg.lambda_B * cfg.lambda_identity
            idt_B = self.G_B(real_A)
            idt_B_loss = F.l1_loss(idt_B, real_A) * cfg.lambda_A * cfg.lambda_identity
        G_A_loss = self.gan_loss(self.D_A(fake_B), True, for_discriminator=False)
        G_B_loss = self.gan_loss(self.D_B(fake_A), True, for_discriminator=False)
        cycle_A_loss = F.l1_loss(rec_A, real_A) * cfg.lambda_A
        cycle_B_loss = F.l1_loss(rec_B, real_B) * cfg.lambda_B
        loss_G = G_A_loss + G_B_loss + cycle_A_loss + cycle_B_loss + idt_A_loss + idt_B_loss
        loss_G.backward()
        self.opt_G.step()
        # 5-6. discriminators, on pooled fakes
        set_requires_grad([self.D_A, self.D_B], True)
        self.opt_D.zero_grad(set_to_none=True)
        D_A_loss = self.discriminator_loss(self.D_A, real_B, self.pool_B.query(fake_B))
        D_A_loss.backward()
        D_B_loss = self.discriminator_loss(self.D_B, real_A, self.pool_A.query(fake_A))
        D_B_loss.backward()
        self.opt_D.step()
        losses = (G_A_loss, G_B_loss, cycle_A_loss, cycle_B_loss, idt_A_loss, idt_B_loss, D_A_loss, D_B_loss)
        return {name: value.detach() for name, value in zip(LOSS_NAMES, losses, strict=True)}

    def discriminator_loss(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return 0.5 * (self.gan_loss(D(real), True) + self.gan_loss(D(fake.detach()), False))

    # --- inference ------------------------------------------------------------------------------------
    @torch.no_grad()
    def translate(
        self, images: torch.Tensor, direction: str = "AtoB", norm_stats: str = "running"
    ) -> torch.Tensor:
        """Translate a batch in [-1, 1] with the generator in eval mode. ``norm_stats`` says what batch norm
        normalises with: "running" (its running averages, the reference's ``--eval``) or "per_image" (each
        image's own statistics, as the reference's test script does by default at batch size 1). Instance
        norm and no norm give the same output either way."""
        if norm_stats not in NORM_STATS:
            raise ValueError(f"norm_stats: '{norm_stats}'; valid: {', '.join(NORM_STATS)}")
        G = self.G_A if direction == "AtoB" else self.G_B
        was_training = G.training
        G.eval()
        try:
            images = images.to(self.device)
            if norm_stats == "running":
                return G(images)
            with _batch_statistics(G):
                return torch.cat([G(image[None]) for image in images])
        finally:
            G.train(was_training)

    # --- checkpointable state -------------------------------------------------------------------------
    def training_state(self) -> dict:
        """Everything of the model needed to continue exactly (not data position: see train.py)."""
        return {
            "G_A": self.G_A.state_dict(),
            "G_B": self.G_B.state_dict(),
            "D_A": self.D_A.state_dict(),
            "D_B": self.D_B.state_dict(),
            "opt_G": self.opt_G.state_dict(),
            "opt_D": self.opt_D.state_dict(),
            "pool_A": self.pool_A.state_dict(),
            "pool_B": self.pool_B.state_dict(),
            "epoch": self.epoch,
        }

    def load_training_state(self, state: dict) -> None:
        for name in ("G_A", "G_B", "D_A", "D_B"):
            getattr(self, name).load_state_dict(state[name], strict=True)
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])
        self.pool_A.load_state_dict(state["pool_A"], self.device)
        self.pool_B.load_state_dict(state["pool_B"], self.device)
        self.set_epoch(int(state["epoch"]))
