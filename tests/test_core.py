"""Pool, losses, the train step's order and forward count, the schedule, determinism and exact resume."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cyclegan.config import resolve
from cyclegan.losses import GANLoss
from cyclegan.model import CycleGAN, lr_factor
from cyclegan.pool import ImagePool
from cyclegan.train import train


def test_pool_returns_old_images_half_the_time_once_full() -> None:
    gen = torch.Generator().manual_seed(0)
    pool = ImagePool(10, gen)
    for i in range(10):  # filling: every image is stored and returned as is
        image = torch.full((1, 3, 2, 2), float(i))
        assert torch.equal(pool.query(image), image)
    returned_old = 0
    trials = 2000
    for i in range(trials):
        new = torch.full((1, 3, 2, 2), 1000.0 + i)
        out = pool.query(new)
        returned_old += int(not torch.equal(out, new))
    assert len(pool.images) == 10
    assert 0.45 < returned_old / trials < 0.55


def test_pool_fill_phase_and_pass_through() -> None:
    pool = ImagePool(3, torch.Generator().manual_seed(0))
    batch = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    assert torch.equal(pool.query(batch), batch) and len(pool.images) == 2
    passthrough = ImagePool(0, torch.Generator().manual_seed(0))
    x = torch.randn(4, 3, 2, 2, requires_grad=True)
    assert passthrough.query(x) is x and passthrough.images == []


def test_pool_output_carries_no_gradient() -> None:
    pool = ImagePool(2, torch.Generator().manual_seed(0))
    x = torch.randn(3, 3, 2, 2, requires_grad=True)
    assert not pool.query(x).requires_grad


def test_gan_losses() -> None:
    pred = torch.tensor([[0.5, 1.5]])
    assert GANLoss("lsgan")(pred, True).item() == pytest.approx((0.25 + 0.25) / 2)
    assert GANLoss("lsgan")(pred, False).item() == pytest.approx((0.25 + 2.25) / 2)
    expected = torch.nn.functional.softplus(-pred).mean().item()
    assert GANLoss("vanilla")(pred, True).item() == pytest.approx(expected)
    assert GANLoss("hinge")(pred, True).item() == pytest.approx((0.5 + 0.0) / 2)
    assert GANLoss("hinge")(pred, True, for_discriminator=False).item() == pytest.approx(-1.0)


def test_lr_schedule_100_plus_100() -> None:
    factors = {k: lr_factor(k, 100, 100) for k in (1, 100, 101, 150, 200)}
    assert factors == {1: 1.0, 100: 1.0, 101: 1 - 1 / 101, 150: 1 - 50 / 101, 200: 1 - 100 / 101}
    model = CycleGAN(resolve("smoke"))
    model.cfg = resolve("paper")
    model.set_epoch(150)
    assert model.lr == pytest.approx(2e-4 * (1 - 50 / 101))


def _count_generator_forwards(lambda_identity: float) -> int:
    cfg = resolve("smoke", {"loss.lambda_identity": lambda_identity, "train.fast": False})
    model = CycleGAN(cfg)
    calls = []
    for G in (model.G_A, model.G_B):
        G.register_forward_hook(lambda *_: calls.append(1))
    batch = {"A": torch.rand(1, 3, 16, 16) * 2 - 1, "B": torch.rand(1, 3, 16, 16) * 2 - 1}
    losses = model.train_step(batch)
    assert set(losses) == {"G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B", "D_A", "D_B"}
    if lambda_identity == 0:
        assert losses["idt_A"].item() == 0.0 and losses["idt_B"].item() == 0.0
    return len(calls)


def test_identity_forwards_skipped_when_lambda_identity_is_zero() -> None:
    assert _count_generator_forwards(0.5) == 6
    assert _count_generator_forwards(0.0) == 4


def test_losses_follow_reference_weights() -> None:
    cfg = resolve(
        "smoke", {"train.fast": False, "loss.lambda_A": 7, "loss.lambda_B": 3, "train.pool_size": 0}
    )
    model = CycleGAN(cfg)
    A, B = torch.rand(1, 3, 16, 16) * 2 - 1, torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        fake_B = model.G_A(A)
        cycle_A = torch.nn.functional.l1_loss(model.G_B(fake_B), A) * 7
        idt_A = torch.nn.functional.l1_loss(model.G_A(B), B) * 3 * 0.5
        G_A = ((model.D_A(fake_B) - 1) ** 2).mean()
    losses = model.train_step({"A": A, "B": B})
    assert losses["cycle_A"].item() == pytest.approx(cycle_A.item(), rel=1e-6)
    assert losses["idt_A"].item() == pytest.approx(idt_A.item(), rel=1e-6)
    assert losses["G_A"].item() == pytest.approx(G_A.item(), rel=1e-6)


def _weights(model: CycleGAN) -> dict[str, torch.Tensor]:
    return {
        f"{n}.{k}": v for n in ("G_A", "G_B", "D_A", "D_B") for k, v in getattr(model, n).state_dict().items()
    }


def test_same_seed_same_weights(folder_dataset: Path) -> None:
    cfg = resolve("smoke", {"data.dataset": str(folder_dataset), "train.max_iters": 4})
    a, _ = train(cfg)
    b, _ = train(cfg)
    c, _ = train(
        resolve("smoke", {"data.dataset": str(folder_dataset), "train.max_iters": 4, "train.seed": 1})
    )
    wa, wb, wc = _weights(a), _weights(b), _weights(c)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


RESUME_SCRIPT = """
import sys, torch
from cyclegan.config import resolve
from cyclegan.train import train
cfg = resolve("smoke", {"data.dataset": sys.argv[1], "train.max_iters": 10, "train.pool_size": 3,
                        "train.batch_size": 2, "train.checkpoint_every": 100, "optim.n_epochs": 2,
                        "optim.n_epochs_decay": 2, "train.fast": sys.argv[4]})
model, progress = train(cfg, sys.argv[2], stop_at=int(sys.argv[3]))
torch.save({n: getattr(model, n).state_dict() for n in ("G_A", "G_B", "D_A", "D_B")}, sys.argv[2] + "/w.pt")
"""


@pytest.mark.parametrize("fast", ["false", "true"])
def test_resume_in_fresh_process_is_bit_identical(folder_dataset: Path, tmp_path: Path, fast: str) -> None:
    """N+M steps in one go == N steps, save, load in a fresh process, M steps (epoch boundary crossed)."""

    def run(run_dir: Path, stop_at: int) -> None:
        cmd = [sys.executable, "-c", RESUME_SCRIPT, str(folder_dataset), str(run_dir), str(stop_at), fast]
        subprocess.run(cmd, check=True, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin"})

    run(tmp_path / "whole", 10)
    run(tmp_path / "split", 4)
    run(tmp_path / "split", 10)
    whole = torch.load(tmp_path / "whole" / "w.pt", weights_only=True)
    split = torch.load(tmp_path / "split" / "w.pt", weights_only=True)
    for net in whole:
        for key, value in whole[net].items():
            assert torch.equal(value, split[net][key]), f"{net}.{key} differs after resume"
    state = torch.load(tmp_path / "split" / "checkpoints" / "latest.pt", weights_only=True)
    assert state["iteration"] == 10 and state["epoch"] == 4 and state["batch"] == 1
    assert len(state["model"]["pool_A"]["images"]) == 3


def test_per_image_norm_stats_normalise_each_image_alone_and_keep_running_averages() -> None:
    """The reference test script's default (no --eval) at batch 1: batch norm uses each image's statistics."""
    import copy

    cfg = resolve("smoke", {"model.norm": "batch"})
    model = CycleGAN(cfg, "cpu")
    for m in model.G_A.modules():  # running averages far from any image's statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.fill_(0.5)
            m.running_var.fill_(4.0)
    before = copy.deepcopy(model.G_A.state_dict())
    modes = [(m.training, getattr(m, "track_running_stats", None)) for m in model.G_A.modules()]
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    per_image = model.translate(x, "AtoB", "per_image")
    expected = []
    for image in x:  # a throwaway copy in train mode sees one image: its statistics, nothing else
        twin = copy.deepcopy(model.G_A).train()
        with torch.no_grad():
            expected.append(twin(image[None]))
    torch.testing.assert_close(per_image, torch.cat(expected), rtol=0, atol=1e-6)
    assert not torch.allclose(per_image, model.translate(x, "AtoB", "running"), atol=1e-3)
    for k, v in model.G_A.state_dict().items():  # running averages and counters untouched
        assert torch.equal(v, before[k]), k
    assert modes == [(m.training, getattr(m, "track_running_stats", None)) for m in model.G_A.modules()]
    with pytest.raises(ValueError, match="norm_stats: 'batch'; valid: running, per_image"):
        model.translate(x, "AtoB", "batch")


def test_instance_norm_is_unaffected_by_norm_stats() -> None:
    model = CycleGAN(resolve("smoke"), "cpu")
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    torch.testing.assert_close(
        model.translate(x, "AtoB", "per_image"), model.translate(x, "AtoB", "running"), rtol=0, atol=1e-6
    )
