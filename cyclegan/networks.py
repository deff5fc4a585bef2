"""Generators and discriminators with the reference's layer layout.

Each network keeps its layers in one ``nn.Sequential`` named as the reference names it (``model`` or ``net``),
so state-dict keys and shapes match a reference checkpoint for the same settings and load with
``strict=True``. Norm rules follow the reference: instance norm has no affine parameters and no running
stats, and the conv before it keeps its bias; batch norm is affine with running stats and the conv before it
has no bias; with no norm the convs have no bias either (the reference's ``use_bias`` is true only for
instance norm).
"""

from __future__ import annotations

import torch
from torch import nn

from cyclegan.config import ModelConfig

Norm = str  # "instance" | "batch" | "none"


def norm_layer(kind: Norm, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=True, track_running_stats=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm '{kind}'; valid: instance, batch, none")


def conv_bias(kind: Norm) -> bool:
    """The reference's ``use_bias = norm_layer == InstanceNorm2d``: no bias before batch norm (its own shift
    makes one redundant) and none with ``norm = none`` (``get_norm_layer('none')`` is not InstanceNorm2d)."""
    return kind == "instance"


class ResnetBlock(nn.Module):
    def __init__(self, dim: int, norm: Norm, dropout: bool) -> None:
        super().__init__()
        bias = conv_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3, bias=bias),
            norm_layer(norm, dim),
            nn.ReLU(True),
        ]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm_layer(norm, dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """c7s1-ngf, two stride-2 downsamplings, n residual blocks, two upsamplings, c7s1-3, tanh."""

    def __init__(
        self, ngf: int = 64, n_blocks: int = 9, norm: Norm = "instance", dropout: bool = False
    ) -> None:
        super().__init__()
        bias = conv_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(3, ngf, 7, bias=bias),
            norm_layer(norm, ngf),
            nn.ReLU(True),
        ]
        for i in range(2):
            mult = 2**i
            layers += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=bias),
                norm_layer(norm, ngf * mult * 2),
                nn.ReLU(True),
            ]
        layers += [ResnetBlock(ngf * 4, norm, dropout) for _ in range(n_blocks)]
        for i in range(2):
            mult = 2 ** (2 - i)
            layers += [
                nn.ConvTranspose2d(
                    ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1, bias=bias
                ),
                norm_layer(norm, ngf * mult // 2),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class NLayerDiscriminator(nn.Module):
    """PatchGAN: each output value judges one receptive-field patch (70x70 at n_layers=3)."""

    def __init__(self, ndf: int = 64, n_layers: int = 3, norm: Norm = "instance") -> None:
        super().__init__()
        self.model = nn.Sequential(
            *patch_trunk(ndf, n_layers, norm), nn.Conv2d(_width(ndf, n_layers), 1, 4, 1, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def _width(ndf: int, n: int) -> int:
    return ndf * min(2**n, 8)


def patch_trunk(ndf: int, n_layers: int, norm: Norm) -> list[nn.Module]:
    """The PatchGAN layers before its final 1-channel conv (shared with the scalar discriminator)."""
    bias = conv_bias(norm)
    layers: list[nn.Module] = [nn.Conv2d(3, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
    for n in range(1, n_layers):
        layers += [
            nn.Conv2d(_width(ndf, n - 1), _width(ndf, n), 4, 2, 1, bias=bias),
            norm_layer(norm, _width(ndf, n)),
            nn.LeakyReLU(0.2, True),
        ]
    layers += [
        nn.Conv2d(_width(ndf, n_layers - 1), _width(ndf, n_layers), 4, 1, 1, bias=bias),
        norm_layer(norm, _width(ndf, n_layers)),
        nn.LeakyReLU(0.2, True),
    ]
    return layers


class PixelDiscriminator(nn.Module):
    """1x1 PatchGAN: judges each pixel's colour alone (receptive field 1)."""

    def __init__(self, ndf: int = 64, norm: Norm = "instance") -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, ndf, 1),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 1, bias=conv_bias(norm)),
            norm_layer(norm, ndf * 2),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, 1, bias=conv_bias(norm)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ScalarDiscriminator(nn.Module):
    """One real/fake score per image: the PatchGAN trunk, global average pooling, then a linear head.

    Why this design: it keeps everything of the PatchGAN except the patch-wise output, so an ablation
    against ``patch`` isolates the one question the seed asks (map vs scalar), not depth or width. Pooling
    before the head (rather than flattening) lets it run at any crop size, and the pooled features see the
    whole image through the trunk's growing receptive field. Its head is a Linear(C, 1) in place of the
    PatchGAN's 4x4 conv to one channel, so it has 15 x C fewer parameters than the PatchGAN at equal depth.
    """

    def __init__(self, ndf: int = 64, n_layers: int = 3, norm: Norm = "instance") -> None:
        super().__init__()
        self.model = nn.Sequential(*patch_trunk(ndf, n_layers, norm))
        self.head = nn.Linear(_width(ndf, n_layers), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.model(x).mean(dim=(2, 3))
        return self.head(features)


def init_weights(net: nn.Module, gain: float = 0.02) -> nn.Module:
    """Reference init: conv/linear weights N(0, gain), biases 0; batch-norm weight N(1, gain), bias 0."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
    return net


def build_generator(cfg: ModelConfig) -> ResnetGenerator:
    return init_weights(ResnetGenerator(cfg.ngf, cfg.n_blocks, cfg.norm, cfg.dropout), cfg.init_gain)


def build_discriminator(cfg: ModelConfig) -> nn.Module:
    if cfg.netD == "patch":
        net: nn.Module = NLayerDiscriminator(cfg.ndf, cfg.n_layers_D, cfg.norm)
    elif cfg.netD == "pixel":
        net = PixelDiscriminator(cfg.ndf, cfg.norm)
    else:
        net = ScalarDiscriminator(cfg.ndf, cfg.n_layers_D, cfg.norm)
    return init_weights(net, cfg.init_gain)


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def receptive_field(cfg: ModelConfig) -> int:
    """Receptive field in pixels of one discriminator output (the whole trunk for the scalar head)."""
    if cfg.netD == "pixel":
        return 1
    # Walk the conv stack: kernels 4, strides 2 (n_layers times) then two stride-1 convs.
    rf, jump = 1, 1
    strides = [2] * cfg.n_layers_D + [1, 1]
    for s in strides:
        rf += (4 - 1) * jump
        jump *= s
    if cfg.netD == "scalar":
        rf -= 3 * jump  # no final 4x4 conv: global pooling covers the image instead
    return rf


def drop_stale_norm_stats(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop running statistics of norm layers that have no affine weight: InstanceNorm buffers that
    PyTorch < 0.4 saved and current InstanceNorm lacks (the reference drops them when loading as well)."""
    stats = ("running_mean", "running_var", "num_batches_tracked")

    def stale(key: str) -> bool:
        module, _, leaf = key.rpartition(".")
        return leaf in stats and f"{module}.weight" not in state

    return {k: v for k, v in state.items() if not stale(k)}
