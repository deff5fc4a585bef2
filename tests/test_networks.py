"""Networks match the reference: parameter counts, key names, norm/bias rules, output shapes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cyclegan.config import ModelConfig, resolve
from cyclegan.networks import (
    NLayerDiscriminator,
    PixelDiscriminator,
    ResnetGenerator,
    ScalarDiscriminator,
    build_discriminator,
    build_generator,
    count_parameters,
    receptive_field,
)


def test_paper_parameter_counts() -> None:
    assert count_parameters(ResnetGenerator(64, 9)) == 11_378_179
    assert count_parameters(ResnetGenerator(64, 6)) == 7_837_699
    assert count_parameters(NLayerDiscriminator(64, 3)) == 2_764_737
    counts = [count_parameters(NLayerDiscriminator(64, n)) for n in (1, 2, 4, 5)]
    assert counts == [136_385, 662_977, 6_959_553, 11_154_369]
    assert count_parameters(PixelDiscriminator(64)) == 8_705


def test_receptive_fields_and_map_size() -> None:
    fields = [receptive_field(ModelConfig(n_layers_D=n)) for n in range(1, 6)]
    assert fields == [16, 34, 70, 142, 286]
    D = NLayerDiscriminator(64, 3)
    for size, side in ((256, 30), (128, 14), (64, 6)):
        assert D(torch.zeros(1, 3, size, size)).shape == (1, 1, side, side)


def test_scalar_discriminator_one_value_per_image() -> None:
    D = ScalarDiscriminator(8, 3)
    out = D(torch.zeros(3, 3, 64, 64))
    assert out.shape == (3, 1)
    # same trunk as the PatchGAN, a Linear head instead of the last 4x4 conv: 15 * 8 * 8 fewer parameters
    assert count_parameters(NLayerDiscriminator(8, 3)) - count_parameters(D) == 15 * 64


def reference_generator_keys(n_blocks: int, norm: str) -> set[str]:
    """Key names written from REFERENCE.md's module layout (not from our code)."""
    convs = [1, 4, 7] + [19 - 9 + n_blocks, 22 - 9 + n_blocks]
    norms = [2, 5, 8, 20 - 9 + n_blocks, 23 - 9 + n_blocks]
    keys = {f"model.{26 - 9 + n_blocks}.weight", f"model.{26 - 9 + n_blocks}.bias"}
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    for c in convs:
        keys.add(f"model.{c}.weight")
        if norm == "instance":  # the reference's use_bias
            keys.add(f"model.{c}.bias")
    if norm == "batch":
        keys |= {f"model.{i}.{p}" for i in norms for p in bn}
    for b in range(10, 10 + n_blocks):
        for c in (1, 5):
            keys.add(f"model.{b}.conv_block.{c}.weight")
            if norm == "instance":  # the reference's use_bias
                keys.add(f"model.{b}.conv_block.{c}.bias")
        if norm == "batch":
            keys |= {f"model.{b}.conv_block.{i}.{p}" for i in (2, 6) for p in bn}
    return keys


@pytest.mark.parametrize("norm", ["instance", "batch", "none"])
@pytest.mark.parametrize("n_blocks", [9, 6])
def test_generator_keys_match_reference_layout(norm: str, n_blocks: int) -> None:
    G = ResnetGenerator(8, n_blocks, norm)
    assert set(G.state_dict()) == reference_generator_keys(n_blocks, norm)


def test_reference_state_dict_loads_strictly() -> None:
    # A state dict built only from the reference's key names and shapes (as in latest_net_G.pth) loads
    # strictly, with no key conversion.
    ngf, n_blocks = 64, 9
    shapes = {
        "model.1.weight": (ngf, 3, 7, 7),
        "model.1.bias": (ngf,),
        "model.4.weight": (2 * ngf, ngf, 3, 3),
        "model.4.bias": (2 * ngf,),
        "model.7.weight": (4 * ngf, 2 * ngf, 3, 3),
        "model.7.bias": (4 * ngf,),
        "model.19.weight": (4 * ngf, 2 * ngf, 3, 3),
        "model.19.bias": (2 * ngf,),
        "model.22.weight": (2 * ngf, ngf, 3, 3),
        "model.22.bias": (ngf,),
        "model.26.weight": (3, ngf, 7, 7),
        "model.26.bias": (3,),
    }
    for b in range(10, 19):
        for c in (1, 5):
            shapes[f"model.{b}.conv_block.{c}.weight"] = (4 * ngf, 4 * ngf, 3, 3)
            shapes[f"model.{b}.conv_block.{c}.bias"] = (4 * ngf,)
    state = {k: torch.randn(s) for k, s in shapes.items()}
    G = ResnetGenerator(ngf, n_blocks)
    G.load_state_dict(state, strict=True)
    assert torch.equal(G.model[26].weight, state["model.26.weight"])


def test_patchgan_keys_match_reference_layout() -> None:
    inst = set(NLayerDiscriminator(8, 3, "instance").state_dict())
    assert inst == {f"model.{i}.{p}" for i in (0, 2, 5, 8, 11) for p in ("weight", "bias")}
    batch = set(NLayerDiscriminator(8, 3, "batch").state_dict())
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    expected = {
        "model.0.weight",
        "model.0.bias",
        "model.2.weight",
        "model.5.weight",
        "model.8.weight",
        "model.11.weight",
        "model.11.bias",
    } | {f"model.{i}.{p}" for i in (3, 6, 9) for p in bn}
    assert batch == expected
    assert set(PixelDiscriminator(8).state_dict()) == {
        f"net.{i}.{p}" for i in (0, 2, 5) for p in ("weight", "bias")
    }


def test_norm_and_bias_rules() -> None:
    for norm in ("instance", "batch", "none"):
        G = ResnetGenerator(4, 2, norm)
        inner_convs = [m for m in G.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)][:-1]
        assert all((c.bias is None) == (norm != "instance") for c in inner_convs)
        assert G.model[-2].bias is not None  # the output conv always has a bias
        norms = [m for m in G.modules() if isinstance(m, nn.InstanceNorm2d | nn.BatchNorm2d)]
        if norm == "instance":
            assert norms and all(not n.affine and not n.track_running_stats for n in norms)
            assert all(isinstance(n, nn.InstanceNorm2d) for n in norms)
        elif norm == "batch":
            assert norms and all(n.affine and n.track_running_stats for n in norms)
        else:
            assert norms == []


def test_reference_init() -> None:
    torch.manual_seed(0)
    G = build_generator(ModelConfig(ngf=32, n_blocks=2, norm="batch"))
    conv = G.model[1].weight
    assert abs(conv.mean().item()) < 0.002 and abs(conv.std().item() - 0.02) < 0.002
    bn = G.model[2]
    assert abs(bn.weight.mean().item() - 1.0) < 0.01 and torch.all(bn.bias == 0)
    D = build_discriminator(ModelConfig(ndf=16))
    assert torch.all(D.model[0].bias == 0)


def test_info_paper_json() -> None:
    from harness.commands.core import network_info

    nets = network_info(resolve("paper"))
    assert nets["G"]["parameters"] == 11_378_179
    assert nets["D"]["parameters"] == 2_764_737
    assert nets["D"]["output_shape"] == [1, 30, 30]
    assert nets["total_parameters"] == 28_285_832
