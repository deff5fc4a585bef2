"""A domain classifier trained from scratch on train A vs train B: the judge when no pretrained net exists.

Its held-out accuracy (test A vs test B) travels with it so readers can decide whether to trust its verdicts;
its penultimate features feed KID. Trained once per data set and preprocessing, cached by content hash.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from cyclegan.atomic import atomic_write

VERSION = 2  # bump when the network or its training changes: the cache key includes it
MAX_RES = 64  # the classifier sees images downscaled to at most this many pixels a side
MAX_TRAIN = 2000  # training images per domain (enough for a two-class judge; bounds memory and time)


class DomainClassifier(nn.Module):
    """Four strided convs, global average pooling (the 64-d features), a linear two-way head."""

    def __init__(self, res: int) -> None:
        super().__init__()
        self.res = res
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, 1, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(16, 32, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(32, 64, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(64, 64, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(64, 2)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] at any size -> the classifier's resolution."""
        if images.shape[-1] != self.res or images.shape[-2] != self.res:
            images = F.interpolate(images, size=(self.res, self.res), mode="bilinear", antialias=True)
        return images

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(self.prepare(images)))

    @torch.no_grad()
    def embed(self, images: torch.Tensor, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
        """(penultimate features, probability of domain B) for a batch, in eval mode."""
        self.eval()
        feats = torch.cat(
            [self.features(self.prepare(images[i : i + batch])) for i in range(0, len(images), batch)]
        )
        return feats, self.head(feats).softmax(1)[:, 1]


def resolution(crop_size: int) -> int:
    return min(crop_size, MAX_RES)


def train_classifier(
    train_A: torch.Tensor, train_B: torch.Tensor, res: int, epochs: int = 6, seed: int = 0
) -> DomainClassifier:
    """Adam, batch 64, random horizontal flips; seeded without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = DomainClassifier(res)
        x = torch.cat([net.prepare(train_A), net.prepare(train_B)])
        y = torch.cat([torch.zeros(len(train_A)), torch.ones(len(train_B))]).long()
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        net.train()
        for _ in range(epochs):
            order = torch.randperm(len(x))
            for i in range(0, len(x), 64):
                idx = order[i : i + 64]
                xb = x[idx]
                flip = torch.rand(len(idx)) < 0.5
                xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
                loss = F.cross_entropy(net.head(net.features(xb)), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    return net.eval()


def accuracy(net: DomainClassifier, test_A: torch.Tensor, test_B: torch.Tensor) -> float:
    pa, pb = net.embed(test_A)[1], net.embed(test_B)[1]
    return float(((pa < 0.5).sum() + (pb >= 0.5).sum()) / (len(pa) + len(pb)))


def cache_key(dataset_id: str, preprocessing: dict, res: int) -> str:
    blob = json.dumps({"data": dataset_id, "pre": preprocessing, "res": res, "v": VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_or_train(
    cache: Path, train_A, train_B, test_A: torch.Tensor, test_B: torch.Tensor, res: int
) -> tuple[DomainClassifier, float]:
    """The cached classifier at ``cache`` if present, else train it (``train_A``/``train_B`` are callables
    returning tensors, so nothing is loaded on a cache hit), measure it and save it atomically."""
    if cache.is_file():
        try:
            state = torch.load(cache, map_location="cpu", weights_only=True)
            net = DomainClassifier(int(state["res"]))
            net.load_state_dict(state["weights"])
            return net.eval(), float(state["accuracy"])
        except (RuntimeError, KeyError, ValueError, OSError):
            pass  # unreadable or from another version: retrain and overwrite
    net = train_classifier(train_A(), train_B(), res)
    acc = accuracy(net, test_A, test_B)
    state = {"weights": net.state_dict(), "accuracy": acc, "res": res, "version": VERSION}
    atomic_write(cache, lambda f: torch.save(state, f))
    return net, acc
