"""Score a CycleGAN on a fixed held-out test set: the same first ``eval.n_test`` test images per direction for
every arm and seed, so numbers compare across runs.

Usage: ``ev = Evaluator(cfg, device); metrics = ev(model); ev.reference_points(); ev.sample_grid(model, p)``.
Loading, the domain classifier (cached per data set) and the reference statistics are paid once in
``__init__``; each call then costs four generator passes over the test set and a few small reductions.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from torchvision.utils import make_grid, save_image

from cyclegan import synth
from cyclegan.atomic import atomic_write, atomic_write_json
from cyclegan.config import Config, ConfigError, DataConfig
from cyclegan.data.images import load_rgb
from cyclegan.data.sources import DataError, Domains, data_home, resolve_domains
from cyclegan.data.transforms import preprocess
from cyclegan.metrics import classifier as clf
from cyclegan.metrics import degenerate, inception, pixels
from cyclegan.metrics.kid import kid
from cyclegan.metrics.registry import synth_task

Value = float | None
VERSION = 3  # bump when a metric's computation changes: cached reference points then recompute


def load_images(paths: list[Path], cfg: DataConfig, size: int | None = None) -> torch.Tensor:
    """Test-time preprocessing (no flip, centre crop) -> (N, 3, H, W) in [-1, 1]; optionally downscaled to
    ``size`` one image at a time so large data sets fit in memory."""
    out = []
    for path in paths:
        x = preprocess(load_rgb(path), cfg, None).unsqueeze(0)
        if size is not None and x.shape[-1] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
        out.append(x)
    return torch.cat(out) if out else torch.empty(0, 3, cfg.crop_size, cfg.crop_size)


def _preprocess_array(array: np.ndarray, cfg: DataConfig) -> torch.Tensor:
    """Apply the images' geometric preprocessing to a uint8 HxWx3 image or an HxW mask (nonzero = inside);
    returns [-1, 1] (3, H, W)."""
    from PIL import Image

    rgb = array if array.ndim == 3 else np.repeat((array > 0).astype(np.uint8)[..., None] * 255, 3, axis=2)
    return preprocess(Image.fromarray(rgb), cfg, None)


def _mean(values: torch.Tensor) -> Value:
    v = values[~torch.isnan(values)]
    return float(v.mean()) if len(v) else None


def _scores(values: torch.Tensor) -> list[Value]:
    """Per-image scores as JSON values (NaN, an image the metric does not apply to, as None)."""
    return [None if not math.isfinite(v) else round(float(v), 6) for v in values.flatten().tolist()]


def _files_id(domains: Domains) -> str:
    """Identity of a folder data set without reading every byte: names, sizes and modification times."""
    h = hashlib.sha256()
    for paths in (domains.train_A, domains.train_B, domains.test_A, domains.test_B):
        for p in paths:
            st = p.stat()
            h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


class Evaluator:
    """Metrics for one config's data set; see ``cyclegan.metrics.registry`` for every name's definition."""

    def __init__(
        self,
        cfg: Config,
        device: torch.device | str = "cpu",
        norm_stats: str = "running",
        untrained_classifier: bool = False,
    ) -> None:
        """``untrained_classifier``: score with a fresh classifier of the same shape instead of the cached or
        trained one (the run-time probe: scoring costs the same whatever its weights, and a probe must not
        spend the classifier's training)."""
        self.cfg, self.device, self.norm_stats = cfg, torch.device(device), norm_stats
        domains = resolve_domains(cfg.data)
        if not domains.test_A or not domains.test_B:
            where = domains.root or f"{cfg.data.dir_A} / {cfg.data.dir_B}"
            raise DataError(
                f"evaluation needs held-out test images: no testA/ or testB/ images under {where}"
            )
        n = cfg.eval.n_test or None  # 0: every test image of each side
        self.test_A = load_images(domains.test_A[:n], cfg.data)
        self.test_B = load_images(domains.test_B[:n], cfg.data)
        self.task = synth_task(cfg.data.dataset) if domains.root is not None and not cfg.data.dir_A else None
        self.swap = cfg.data.direction == "BtoA"
        manifest = synth.read_manifest(domains.root) if self.task else None
        dataset_id = manifest["content_hash"] if manifest else _files_id(domains)
        pre = {k: getattr(cfg.data, k) for k in ("load_size", "crop_size", "preprocess", "direction")}
        res = clf.resolution(cfg.data.crop_size)
        self.key = clf.cache_key(dataset_id, pre, res)
        self.cache_dir = self._cache_dir(domains.root)
        self.classifier_path = self.cache_dir / f"classifier-{self.key}.pt"
        if untrained_classifier:
            self.classifier = clf.DomainClassifier(res).eval()
            self.classifier_facts = {"accuracy": None, "rejection": {}}
        else:
            self.classifier, self.classifier_facts = clf.load_or_train(
                self.classifier_path,
                lambda: load_images(domains.train_A[: clf.MAX_TRAIN], cfg.data, res),
                lambda: load_images(domains.train_B[: clf.MAX_TRAIN], cfg.data, res),
                self.test_A,
                self.test_B,
                res,
            )
        real = torch.cat([self.classifier.embed(self.test_A)[0], self.classifier.embed(self.test_B)[0]])
        # KID's kernel assumes features of order 1: standardise with the real test features' statistics,
        # fixed per data set, so every run's KID uses the same scale.
        self.feat_mean, self.feat_std = real.mean(0), real.std(0).clamp_min(1e-6)
        self.feat_A, self.feat_B = self._features(self.test_A), self._features(self.test_B)
        self.classifier_accuracy = self.classifier_facts["accuracy"]
        self.inception, self.inception_id = self._inception(cfg.eval.inception_weights)
        if self.inception is not None:
            self.inc_A = inception.features(self.inception, self.test_A)
            self.inc_B = inception.features(self.inception, self.test_B)
        if self.task:
            self._load_synth_meta(domains.root, len(self.test_A))

    # --- set-up -------------------------------------------------------------------------------------------
    def _inception(self, explicit: str) -> tuple[torch.nn.Module | None, str]:
        """(FID Inception network or None, the weights' sha256 or 'none'): the user's file when given (checked
        now), else the downloaded copy when present (checked against its recorded hash)."""
        try:
            if explicit:
                digest, path = inception.verify_weights(Path(explicit)), Path(explicit)
            else:
                path = inception.available()
                digest = inception.sidecar(path).read_text().split()[0] if path else "none"
        except inception.WeightsError as exc:
            raise ConfigError(f"eval.inception_weights: {exc}") from None
        if path is None:
            return None, digest
        return inception.load_network(path).to(self.device), digest

    def provenance(self) -> dict:
        """Which networks and how many images produced the numbers (for reports beside them)."""
        return {
            "n_test_A": len(self.test_A),
            "n_test_B": len(self.test_B),
            "fid_network": inception.NETWORK if self.inception is not None else None,
            "fid_weights_sha256": None if self.inception is None else self.inception_id,
            "classifier": clf.DESCRIPTION,
            "classifier_accuracy": self.classifier_accuracy,
            "classifier_rejection": self.classifier_facts["rejection"],
        }

    @staticmethod
    def _cache_dir(root: Path | None) -> Path:
        """Under the data set's folder when writable (it travels with the data), else under $HARNESS_DATA."""
        if root is not None and os.access(root, os.W_OK):
            return root / ".harness-cache"
        return data_home() / "cache"

    def _load_synth_meta(self, root: Path, n: int) -> None:
        arrays, info = synth.load_test_meta(root)
        self.mask = torch.stack([_preprocess_array(m, self.cfg.data)[0] > 0 for m in arrays["mask"][:n]])
        bg = [_preprocess_array(b, self.cfg.data) for b in arrays["background"][:n]]
        self.background = pixels.to_unit(torch.stack(bg))
        self.coats = [s.get("coat") for s in info["scenes"][:n]]
        if self.task == "zebra":
            dA, dB = self._dataset_order(self.test_A, self.test_B)
            self.energy_plain = _mean(pixels.stripe_energy(pixels.to_unit(dA), self.mask))
            self.energy_striped = _mean(pixels.stripe_energy(pixels.to_unit(dB), self.mask))

    def _dataset_order(self, model_A, model_B):
        """(data set's A side, B side) of a model-direction pair: task metrics use the data set's names."""
        return (model_B, model_A) if self.swap else (model_A, model_B)

    def _features(self, images: torch.Tensor) -> np.ndarray:
        return ((self.classifier.embed(images)[0] - self.feat_mean) / self.feat_std).numpy()

    # --- scoring ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def translate(self, model, images: torch.Tensor, direction: str, batch: int = 64) -> torch.Tensor:
        parts = [
            model.translate(images[i : i + batch], direction, self.norm_stats).float().cpu()
            for i in range(0, len(images), batch)
        ]
        return torch.cat(parts)

    def __call__(self, model) -> dict[str, Value]:
        fake_B = self.translate(model, self.test_A, "AtoB")
        fake_A = self.translate(model, self.test_B, "BtoA")
        rec_A = self.translate(model, fake_B, "BtoA")
        rec_B = self.translate(model, fake_A, "AtoB")
        return self.score(fake_B, fake_A, rec_A, rec_B)

    def score(
        self,
        fake_B: torch.Tensor,
        fake_A: torch.Tensor,
        rec_A: torch.Tensor | None = None,
        rec_B: torch.Tensor | None = None,
    ) -> dict[str, Value]:
        """Every metric from given outputs (model directions, [-1, 1]): G_A(test A), G_B(test B) and the two
        reconstructions (None where there is none, e.g. for the oracle)."""
        m: dict[str, Value] = {"classifier_accuracy": self.classifier_accuracy}
        # each metric that is a mean over test images, image by image: test-set noise is then visible beside
        # the seeds' (stats.hierarchical_bootstrap); the recorder stores it as the run's per_image.json
        self.per_image: dict[str, list[Value]] = {}
        pairs = (("AtoB", self.test_A, fake_B, self.feat_B), ("BtoA", self.test_B, fake_A, self.feat_A))
        for d, src, out, real_feats in pairs:
            feats, cls = self.classifier.embed(out)
            correct = (cls == (clf.CLASS_B if d == "AtoB" else clf.CLASS_A)).float()
            m[f"translation_{d}"] = float(correct.mean())
            self.per_image[f"translation_{d}"] = _scores(correct)
            feats = ((feats - self.feat_mean) / self.feat_std).numpy()
            m[f"kid_{d}"], m[f"kid_{d}_std"] = kid(feats, real_feats)
            color = pixels.color_distance(pixels.to_unit(src), pixels.to_unit(out))
            m[f"color_dist_{d}"] = float(color.mean())
            self.per_image[f"color_dist_{d}"] = _scores(color)
            m[f"spread_ratio_{d}"] = pixels.spread(out) / max(pixels.spread(src), 1e-12)
            target = self.test_B if d == "AtoB" else self.test_A
            m[f"hf_ratio_{d}"] = _mean(pixels.high_frequency(pixels.to_unit(out))) / max(
                _mean(pixels.high_frequency(pixels.to_unit(target))), 1e-12
            )
            m[f"fid_inception_{d}"] = m[f"kid_inception_{d}"] = m[f"kid_inception_{d}_std"] = None
            if self.inception is not None:
                f = inception.features(self.inception, out)
                real = self.inc_B if d == "AtoB" else self.inc_A
                m[f"fid_inception_{d}"] = inception.fid(f, real)
                m[f"kid_inception_{d}"], m[f"kid_inception_{d}_std"] = inception.kid(f, real)
        for x, rec, real in (("A", rec_A, self.test_A), ("B", rec_B, self.test_B)):
            if rec is None:
                m[f"cycle_l1_{x}"] = None
                continue
            cycle = pixels.l1(pixels.to_unit(rec), pixels.to_unit(real))
            m[f"cycle_l1_{x}"] = float(cycle.mean())
            self.per_image[f"cycle_l1_{x}"] = _scores(cycle)
        if self.task == "zebra":
            m.update(self._zebra(*self._dataset_order(fake_B, fake_A)))
        elif self.task == "seasons":
            m.update(self._seasons(*self._dataset_order(fake_B, fake_A)))
        return {k: (None if v is not None and not math.isfinite(v) else v) for k, v in m.items()}

    def _stripe(self, images: torch.Tensor, select: torch.Tensor | None = None) -> Value:
        energy = pixels.stripe_energy(images, self.mask)
        mean = _mean(energy if select is None else energy[select])
        if mean is None or self.energy_plain is None or self.energy_striped is None:
            return None
        return (mean - self.energy_plain) / (self.energy_striped - self.energy_plain)

    def _zebra(self, out_AtoB: torch.Tensor, out_BtoA: torch.Tensor) -> dict[str, Value]:
        """Task metrics in the data set's directions (A plain coats, B stripes); outputs in [-1, 1]."""
        dA, dB = (pixels.to_unit(t) for t in self._dataset_order(self.test_A, self.test_B))
        fB, fA = pixels.to_unit(out_AtoB), pixels.to_unit(out_BtoA)
        bg_AtoB = pixels.background_change(dA, fB, self.mask)
        iou_AtoB = pixels.shape_iou(fB, self.background, self.mask)
        if self.energy_plain is not None and self.energy_striped is not None:
            span = self.energy_striped - self.energy_plain
            for d, images in (("AtoB", fB), ("BtoA", fA)):
                energy = pixels.stripe_energy(images, self.mask)
                self.per_image[f"zebra.stripe_{d}"] = _scores((energy - self.energy_plain) / span)
        self.per_image["zebra.background_AtoB"] = _scores(bg_AtoB)
        self.per_image["zebra.shape_iou_AtoB"] = _scores(iou_AtoB)
        m: dict[str, Value] = {
            "zebra.stripe_AtoB": self._stripe(fB),
            "zebra.background_AtoB": _mean(bg_AtoB),
            "zebra.shape_iou_AtoB": _mean(iou_AtoB),
            "zebra.stripe_BtoA": self._stripe(fA),
            "zebra.background_BtoA": _mean(pixels.background_change(dB, fA, self.mask)),
            "zebra.shape_iou_BtoA": _mean(pixels.shape_iou(fA, self.background, self.mask)),
        }
        for coat in synth.COATS:
            sel = torch.tensor([c == coat for c in self.coats])
            has = bool(sel.any())
            m[f"zebra.stripe_AtoB.{coat}"] = self._stripe(fB, sel) if has else None
            m[f"zebra.background_AtoB.{coat}"] = _mean(bg_AtoB[sel]) if has else None
            m[f"zebra.shape_iou_AtoB.{coat}"] = _mean(iou_AtoB[sel]) if has else None
        return m

    def _seasons(self, out_AtoB: torch.Tensor, out_BtoA: torch.Tensor) -> dict[str, Value]:
        """Exact per-pixel targets: test scene i rendered in the other season."""
        dA, dB = (pixels.to_unit(t) for t in self._dataset_order(self.test_A, self.test_B))
        m: dict[str, Value] = {}
        for d, out, target in (("AtoB", out_AtoB, dB), ("BtoA", out_BtoA, dA)):
            out = pixels.to_unit(out)
            m[f"seasons.l1_{d}"] = float(pixels.l1(out, target).mean())
            m[f"seasons.psnr_{d}"] = float(pixels.psnr(out, target).mean())
            m[f"seasons.ssim_{d}"] = float(pixels.ssim(out, target).mean())
        return m

    # --- reference points and pictures --------------------------------------------------------------------
    def reference_points(self) -> dict[str, dict[str, Value]]:
        """Every metric for outputs no trained run should beat or lose to: ``do_nothing`` (output = input),
        ``oracle`` (output = a real target-domain test image: for synthetic tasks the same scene's exact
        target), and each degenerate kind of the input (``noise``, ``flat``, ``blur``). Computed once per data
        set, test set and FID network, cached next to the classifier."""
        tag = f"{self.key}-n{len(self.test_A)}x{len(self.test_B)}-{self.inception_id[:12]}"
        path = self.cache_dir / f"reference-v{VERSION}-{tag}.json"
        if path.is_file():
            return json.loads(path.read_text())
        a, b = self.test_A, self.test_B
        points = {
            "do_nothing": self.score(a, b, a, b),
            "oracle": self.score(b[torch.arange(len(a)) % len(b)], a[torch.arange(len(b)) % len(a)]),
        }
        for i, kind in enumerate(degenerate.KINDS):
            points[kind] = self.score(
                degenerate.degenerate(kind, a, 2 * i), degenerate.degenerate(kind, b, 2 * i + 1)
            )
        atomic_write_json(path, points)
        return points

    @torch.no_grad()
    def sample_grid(self, model, path: str | Path) -> None:
        """A PNG of the first ``eval.n_samples`` test images; rows: input A, G_A(A), [true B of the same
        scene], input B, G_B(B), [true A]; the bracketed rows only for synthetic data."""
        k = min(self.cfg.eval.n_samples, len(self.test_A))
        if k == 0:
            return
        a, b = self.test_A[:k], self.test_B[:k]
        rows = [a, self.translate(model, a, "AtoB")] + ([b] if self.task else [])
        rows += [b, self.translate(model, b, "BtoA")] + ([a] if self.task else [])
        grid = make_grid(pixels.to_unit(torch.cat(rows)), nrow=k, padding=1, pad_value=1.0)
        buf = io.BytesIO()
        save_image(grid, buf, format="png")
        atomic_write(path, lambda f: f.write(buf.getvalue()))
