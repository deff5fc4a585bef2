"""The CycleGAN model: four networks, two Adams, two pools and the reference's training iteration.

Names follow the paper and the reference: ``G_A`` maps A -> B, ``G_B`` maps B -> A, ``D_A`` judges domain B
(real B vs G_A's fakes), ``D_B`` judges domain A.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.nn import functional as F

from cyclegan.config import Config
from cyclegan.losses import GANLoss
from cyclegan.networks import build_discriminator, build_generator
from cyclegan.pool import ImagePool
from cyclegan.seeding import derive_generator

Phases = tuple[Callable, Callable]  # (generator phase, discriminator phase), see CycleGAN.train_step
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
        self._D_params = [p for D in (self.D_A, self.D_B) for p in D.parameters()]
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
    def train_step(
        self, batch: dict[str, torch.Tensor], batched: bool = False, phases: Phases | None = None
    ) -> dict[str, torch.Tensor]:
        """One iteration in the reference's order; returns the detached losses by reference name.

        ``batched`` is the fast path (``cyclegan.fast``): the same maths with generator and discriminator
        calls batched where the dependency order allows. ``phases`` replaces ``(generator_phase,
        discriminator_phase)`` by wrapped versions of them (torch.compile, autocast): same signatures.
        """
        generator_phase, discriminator_phase = phases or (self.generator_phase, self.discriminator_phase)
        real_A = batch["A"].to(self.device, non_blocking=True)
        real_B = batch["B"].to(self.device, non_blocking=True)
        # 1-4. generators, with the discriminators frozen
        self._set_D_requires_grad(False)
        self.opt_G.zero_grad(set_to_none=True)
        fake_B, fake_A, g_losses = generator_phase(real_A, real_B, batched)
        sum(g_losses).backward()
        self.opt_G.step()
        # 5-6. discriminators, on pooled fakes (pool_B first, as the reference)
        self._set_D_requires_grad(True)
        self.opt_D.zero_grad(set_to_none=True)
        pooled_B = self.pool_B.query(fake_B)
        pooled_A = self.pool_A.query(fake_A)
        D_A_loss, D_B_loss = discriminator_phase(real_A, real_B, pooled_A, pooled_B, batched)
        (D_A_loss + D_B_loss).backward()  # disjoint parameters: the gradients of two separate backwards
        self.opt_D.step()
        losses = (*g_losses, D_A_loss, D_B_loss)
        return {name: value.detach() for name, value in zip(LOSS_NAMES, losses, strict=True)}

    def generator_phase(
        self, real_A: torch.Tensor, real_B: torch.Tensor, batched: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
        """(fake_B, fake_A, the six generator losses in LOSS_NAMES order).

        Plain: the reference's six generator calls in its order (fake_B, rec_A, fake_A, rec_B, idt_A,
        idt_B). Batched: G_B's three inputs are ready once fake_B is, so one call G_B(cat(fake_B, real_B,
        real_A)) gives rec_A, fake_A and idt_B, and one call G_A(cat(fake_A, real_B)) gives rec_B and idt_A;
        instance norm and no norm act per sample, so each sample's output is the one it would get alone.
        """
        L = self.cfg.loss
        identity = L.lambda_identity > 0
        if batched:
            n = real_A.shape[0]
            fake_B = self.G_A(real_A)
            rec_A, fake_A, *idt_B = self.G_B(
                torch.cat((fake_B, real_B, real_A) if identity else (fake_B, real_B))
            ).split(n)
            rec_B, *idt_A = self.G_A(torch.cat((fake_A, real_B)) if identity else fake_A).split(n)
            idt_A, idt_B = (idt_A[0], idt_B[0]) if identity else (None, None)
        else:
            fake_B = self.G_A(real_A)
            rec_A = self.G_B(fake_B)
            fake_A = self.G_B(real_B)
            rec_B = self.G_A(fake_A)
            idt_A, idt_B = (self.G_A(real_B), self.G_B(real_A)) if identity else (None, None)
        if idt_A is not None and idt_B is not None:
            idt_A_loss = F.l1_loss(idt_A, real_B) * L.lambda_B * L.lambda_identity
            idt_B_loss = F.l1_loss(idt_B, real_A) * L.lambda_A * L.lambda_identity
        else:
            idt_A_loss = idt_B_loss = torch.zeros((), device=real_A.device)
        G_A_loss = self.gan_loss(self.D_A(fake_B).float(), True, for_discriminator=False)
        G_B_loss = self.gan_loss(self.D_B(fake_A).float(), True, for_discriminator=False)
        cycle_A_loss = F.l1_loss(rec_A, real_A) * L.lambda_A
        cycle_B_loss = F.l1_loss(rec_B, real_B) * L.lambda_B
        return fake_B, fake_A, (G_A_loss, G_B_loss, cycle_A_loss, cycle_B_loss, idt_A_loss, idt_B_loss)

    def discriminator_phase(
        self,
        real_A: torch.Tensor,
        real_B: torch.Tensor,
        pooled_A: torch.Tensor,
        pooled_B: torch.Tensor,
        batched: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(D_A loss, D_B loss): each half of 0.5 * (loss on real + loss on the pooled fake).

        Batched: each discriminator judges cat(real, pooled fake) in one call and its output is split, so
        each half gets its own loss mean, exactly as the reference's two calls.
        """
        losses = []
        for D, real, fake in ((self.D_A, real_B, pooled_B), (self.D_B, real_A, pooled_A)):
            if batched:
                pred_real, pred_fake = D(torch.cat((real, fake.detach()))).float().split(real.shape[0])
            else:
                pred_real, pred_fake = D(real).float(), D(fake.detach()).float()
            losses.append(0.5 * (self.gan_loss(pred_real, True) + self.gan_loss(pred_fake, False)))
        return losses[0], losses[1]

    def _set_D_requires_grad(self, flag: bool) -> None:
        for p in self._D_params:
            p.requires_grad_(flag)

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
