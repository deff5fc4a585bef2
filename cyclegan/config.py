"""One typed config tree for a CycleGAN run.

Defaults are the paper's (``../shared/REFERENCE.md``); presets and user overrides are plain dotted overrides
(``loss.lambda_identity=0``) validated against this tree, so a typo is an error, never a silent no-op.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import re
import typing
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, get_args, get_origin

import pydantic

from cyclegan.errors import ConfigError


def _knob(
    default: Any, doc: str, *, lo: float | None = None, hi: float | None = None, pattern: str | None = None
) -> Any:
    """A config field with a one-line 'why' and an optional inclusive range (or a pattern for a string)."""
    return field(default=default, metadata={"doc": doc, "lo": lo, "hi": hi, "pattern": pattern})


@dataclass(frozen=True)
class ModelConfig:
    ngf: int = _knob(64, "generator width of the first conv layer", lo=1, hi=1024)
    n_blocks: int = _knob(
        9, "ResNet blocks in the generator (9 at 256 px, 6 at 128 px in the paper)", lo=0, hi=64
    )
    netD: Literal["patch", "pixel", "scalar"] = _knob(
        "patch", "discriminator output: PatchGAN map, per-pixel map, or one scalar per image"
    )
    n_layers_D: int = _knob(3, "PatchGAN depth (3 = the paper's 70x70 receptive field)", lo=1, hi=5)
    ndf: int = _knob(64, "discriminator width of the first conv layer", lo=1, hi=1024)
    norm: Literal["instance", "batch", "none"] = _knob("instance", "normalisation in G and D")
    dropout: bool = _knob(False, "Dropout(0.5) in the ResNet blocks (off in the paper)")
    init_gain: float = _knob(0.02, "std of the N(0, gain) weight init", lo=0.0, hi=1.0)


@dataclass(frozen=True)
class LossConfig:
    gan_mode: Literal["lsgan", "vanilla", "hinge"] = _knob("lsgan", "adversarial loss")
    lambda_A: float = _knob(10.0, "weight of the forward cycle A -> B -> A (mean L1)", lo=0.0, hi=1000.0)
    lambda_B: float = _knob(10.0, "weight of the backward cycle B -> A -> B (mean L1)", lo=0.0, hi=1000.0)
    lambda_identity: float = _knob(
        0.5,
        "identity weight as a multiplier of lambda_A / lambda_B; 0 skips the identity forwards",
        lo=0.0,
        hi=100.0,
    )


@dataclass(frozen=True)
class OptimConfig:
    lr: float = _knob(2e-4, "Adam learning rate for both optimisers", lo=0.0, hi=1.0)
    beta1: float = _knob(0.5, "Adam beta1", lo=0.0, hi=1.0)
    beta2: float = _knob(0.999, "Adam beta2", lo=0.0, hi=1.0)
    n_epochs: int = _knob(100, "epochs at the initial learning rate", lo=0, hi=100000)
    n_epochs_decay: int = _knob(100, "epochs of linear decay to zero after n_epochs", lo=0, hi=100000)


@dataclass(frozen=True)
class DataConfig:
    dataset: str = _knob(
        "synth:zebra", "'synth:zebra', 'synth:seasons' or a folder with trainA/ trainB/ testA/ testB/"
    )
    dir_A: str = _knob("", "explicit folder of domain A training images (overrides dataset)")
    dir_B: str = _knob("", "explicit folder of domain B training images (overrides dataset)")
    direction: Literal["AtoB", "BtoA"] = _knob("AtoB", "BtoA swaps the domains (the reference's --direction)")
    load_size: int = _knob(286, "images are resized to this before cropping", lo=1, hi=8192)
    crop_size: int = _knob(256, "random crop size fed to the networks", lo=4, hi=8192)
    preprocess: Literal["resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none"] = _knob(
        "resize_and_crop", "the reference's preprocessing modes"
    )
    no_flip: bool = _knob(False, "disable random horizontal flips")
    synth_size: int = _knob(32, "image size of the built-in synthetic benchmark", lo=8, hi=1024)
    synth_n_train: int = _knob(500, "training images per domain of the synthetic benchmark", lo=1, hi=100000)
    synth_n_test: int = _knob(100, "test scenes of the synthetic benchmark", lo=1, hi=100000)
    skip_bad: bool = _knob(False, "skip unreadable or too-small images (with one warning) instead of failing")
    num_workers: int = _knob(0, "DataLoader worker processes (0 = load in the training process)", lo=0, hi=64)


@dataclass(frozen=True)
class TrainConfig:
    seed: int = _knob(0, "seeds init, data order, crops, flips and the image pools", lo=0, hi=2**31 - 1)
    batch_size: int = _knob(1, "images per domain per iteration", lo=1, hi=4096)
    pool_size: int = _knob(50, "image pool per direction (0 = feed D the current fakes)", lo=0, hi=100000)
    max_iters: int = _knob(
        0, "stop after this many iterations (0 = run the full epoch schedule)", lo=0, hi=10**9
    )
    fast: bool = _knob(True, "use the fast train step (same maths; see harness bench)")
    compile: bool = _knob(False, "torch.compile the networks in the fast step")
    amp: Literal["none", "bf16"] = _knob(
        "none", "bf16 autocast (with channels-last) in the fast step; CUDA only, losses not bit-equal to fp32"
    )
    device: str = _knob("auto", "'auto', 'cpu', 'cuda[:N]' or 'mps'", pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$")
    threads: int = _knob(0, "torch CPU threads (0 = torch's default)", lo=0, hi=1024)
    log_every: int = _knob(50, "iterations between loss records", lo=1, hi=10**9)
    eval_every: int = _knob(0, "iterations between evaluations (0 = only at the end)", lo=0, hi=10**9)
    checkpoint_every: int = _knob(
        500, "iterations between checkpoints (also written at the end)", lo=1, hi=10**9
    )


@dataclass(frozen=True)
class EvalConfig:
    n_test: int = _knob(
        0, "held-out test images per direction used by every metric (0 = all of them)", lo=0, hi=100000
    )
    inception_weights: str = _knob(
        "",
        "FID Inception weights file (torch-fidelity format); empty = the copy `harness models download "
        "fid-inception` made, when present; FID/KID-Inception are None without weights",
    )
    n_samples: int = _knob(8, "fixed test images per direction shown in sample grids", lo=0, hi=256)


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        """Short hash of the resolved config: a run's identity together with its seed."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """Rebuild from ``to_dict`` output, validating every key and value."""
        flat = {f"{s}.{k}": v for s, sect in data.items() if isinstance(sect, dict) for k, v in sect.items()}
        unknown = [s for s, sect in data.items() if not isinstance(sect, dict)]
        if unknown:
            raise ConfigError(f"unknown config section '{unknown[0]}'; valid: {', '.join(_sections())}")
        return apply_overrides(cls(), flat)


def _sections() -> list[str]:
    return [f.name for f in dataclasses.fields(Config)]


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _section_cls(name: str) -> type:
    return _hints(Config)[name]


def _allowed(hint: Any, meta: dict[str, Any]) -> str:
    if get_origin(hint) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(hint))
    if meta.get("pattern"):
        return "one of 'auto', 'cpu', 'cuda', 'cuda:N', 'mps'"
    kind = {bool: "true/false", int: "an integer", float: "a number", str: "a string"}[hint]
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and hi is not None:
        kind += f" in [{lo:g}, {hi:g}]"
    return kind


def _coerce(key: str, hint: Any, meta: dict[str, Any], value: Any) -> Any:
    """Turn a string (from the CLI) or JSON/TOML value into the field's type (pydantic's lax mode, within
    the field's bounds, finite), or raise naming the key; a bool is never taken for a number."""
    try:
        if isinstance(value, bool) and hint in (int, float):
            raise ValueError(value)  # pydantic's lax mode would read True as 1
        return _adapter(hint, meta.get("lo"), meta.get("hi"), meta.get("pattern")).validate_python(value)
    except (ValueError, pydantic.ValidationError):
        raise ConfigError(f"bad value {value!r} for '{key}': expected {_allowed(hint, meta)}") from None


@functools.cache
def _adapter(hint: Any, lo: float | None, hi: float | None, pattern: str | None) -> pydantic.TypeAdapter:
    if hint is bool:  # true/false (any case), 1/0, yes/no from the command line; not on/off or a number
        text = pydantic.BeforeValidator(lambda v: _BOOLS.get(v.lower(), v) if isinstance(v, str) else v)
        return pydantic.TypeAdapter(Annotated[bool, text], config=pydantic.ConfigDict(strict=True))
    if hint in (int, float):
        return pydantic.TypeAdapter(Annotated[hint, pydantic.Field(ge=lo, le=hi, allow_inf_nan=False)])
    if pattern:
        return pydantic.TypeAdapter(
            Annotated[hint, pydantic.Field(pattern=pattern)], config=pydantic.ConfigDict(strict=True)
        )
    return pydantic.TypeAdapter(hint, config=pydantic.ConfigDict(strict=True))  # str and Literal: as given


_BOOLS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


def apply_overrides(cfg: Config, overrides: dict[str, Any]) -> Config:
    """Return ``cfg`` with dotted overrides applied; values may be strings (CLI) or typed (TOML/JSON)."""
    sections: dict[str, dict[str, Any]] = {}
    for key, value in overrides.items():
        section, _, name = key.partition(".")
        if section not in _sections() or not name:
            raise ConfigError(f"unknown config key '{key}'; sections are: {', '.join(_sections())}")
        cls = _section_cls(section)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if name not in fields:
            raise ConfigError(f"unknown config key '{key}'; valid keys in '{section}': {', '.join(fields)}")
        hint = _hints(cls)[name]
        sections.setdefault(section, {})[name] = _coerce(key, hint, fields[name].metadata, value)
    changes = {s: dataclasses.replace(getattr(cfg, s), **kv) for s, kv in sections.items()}
    return dataclasses.replace(cfg, **changes)


_NEXT_KEY = re.compile(r"\s+(?=[A-Za-z_]\w*\.\w+=)")


def parse_set(items: list[str] | None) -> dict[str, str]:
    """Parse ``k=v`` strings from ``--set``; one item may hold several, split where a new ``section.key=``
    starts, so a value may contain spaces (a folder name); a malformed item is an error naming it."""
    out: dict[str, str] = {}
    for item in items or []:
        for part in _NEXT_KEY.split(item.strip()):
            key, sep, value = part.partition("=")
            if not sep or not key:
                raise ConfigError(f"bad override '{part}': expected key=value, e.g. loss.lambda_identity=0")
            out[key.strip()] = value.strip()
    return out


def describe() -> list[tuple[str, str, Any, str]]:
    """(key, type, default, doc) for every knob: feeds ``harness info --keys`` and the docs."""
    rows = []
    for section in _sections():
        cls = _section_cls(section)
        for f in dataclasses.fields(cls):
            hint = _hints(cls)[f.name]
            rows.append((f"{section}.{f.name}", _allowed(hint, f.metadata), f.default, f.metadata["doc"]))
    return rows


# Presets are data: dotted overrides on top of the paper defaults.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    "cpu": {
        "model.ngf": 16,
        "model.n_blocks": 4,
        "model.ndf": 32,
        "model.n_layers_D": 2,
        "data.load_size": 32,
        "data.crop_size": 32,
        "data.synth_size": 32,
        "data.synth_n_train": 500,
        "data.synth_n_test": 100,
        "optim.n_epochs": 2,
        "optim.n_epochs_decay": 2,
        "train.max_iters": 2000,
        "train.log_every": 50,
        "train.eval_every": 1000,  # one mid-run and one final eval: evaluation stays under 2 % of a run
        "train.checkpoint_every": 500,
    },
    # `make demo`: a whole ablation (2 arms x 3 seeds) in about two minutes on 2 cores, at 32 px.
    "demo": {
        "model.ngf": 8,
        "model.n_blocks": 2,
        "model.ndf": 8,
        "model.n_layers_D": 2,
        "data.load_size": 32,
        "data.crop_size": 32,
        "data.synth_size": 32,
        "data.synth_n_train": 200,
        "data.synth_n_test": 50,
        "optim.n_epochs": 2,
        "optim.n_epochs_decay": 1,
        "train.max_iters": 600,
        "train.log_every": 10,
        "train.eval_every": 200,
        "train.checkpoint_every": 200,
        "eval.n_samples": 6,
    },
    "smoke": {
        "model.ngf": 4,
        "model.n_blocks": 1,
        "model.ndf": 4,
        "model.n_layers_D": 2,
        "data.load_size": 16,
        "data.crop_size": 16,
        "data.synth_size": 16,
        "data.synth_n_train": 24,
        "data.synth_n_test": 8,
        "optim.n_epochs": 1,
        "optim.n_epochs_decay": 1,
        "train.max_iters": 12,
        "train.pool_size": 4,
        "train.log_every": 2,
        "train.eval_every": 6,
        "train.checkpoint_every": 6,
        "eval.n_samples": 2,
    },
}


def resolve(preset: str = "paper", overrides: dict[str, Any] | None = None) -> Config:
    """Paper defaults < preset < overrides."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset '{preset}'; valid: {', '.join(PRESETS)}")
    cfg = apply_overrides(Config(), PRESETS[preset])
    return apply_overrides(cfg, overrides or {})


__all__ = [
    "Config",
    "ConfigError",
    "DataConfig",
    "EvalConfig",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "PRESETS",
    "TrainConfig",
    "apply_overrides",
    "describe",
    "parse_set",
    "resolve",
]
