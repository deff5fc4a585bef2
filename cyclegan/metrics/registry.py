"""Every metric by name, with its direction and a one-line definition; the name fixes the protocol.

Generic metrics (any dataset) name the model's directions: ``AtoB`` is G_A on the test A images. Task metrics
(``zebra.*``, ``seasons.*``) name the data set's directions (A = plain coats / summer) whatever
``data.direction`` says, so their meaning and direction never flip. Pixel distances are on [0, 1] intensities.
"""

from __future__ import annotations

from dataclasses import dataclass

from cyclegan.synth import COATS

DIRECTIONS = ("AtoB", "BtoA")


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    definition: str
    diagnostic: bool = False  # describes the run or the judge, not translation quality: never a verdict
    needs: str = (
        ""  # what it needs beyond two folders of images: "synth:TASK" data or "fid-inception" weights
    )

    @property
    def direction(self) -> str:
        """'maximize' or 'minimize' (the words experiment.json and Optuna use)."""
        return "maximize" if self.higher_is_better else "minimize"


REGISTRY: dict[str, Metric] = {}


def _add(name: str, higher_is_better: bool, definition: str, diagnostic: bool = False) -> None:
    prefix = name.split(".")[0] if "." in name else ""
    needs = f"synth:{prefix}" if prefix else "fid-inception" if "_inception_" in name else ""
    REGISTRY[name] = Metric(name, higher_is_better, definition, diagnostic, needs)


def _target(d: str) -> str:
    return d[-1]


for _d in DIRECTIONS:
    _src, _dst = _d[0], _target(_d)
    _G = "G_A" if _d == "AtoB" else "G_B"
    _add(
        f"translation_{_d}",
        True,
        f"share of {_G}(test {_src}) whose most likely class under the from-scratch domain classifier "
        f"(A / B / degenerate) is domain {_dst}",
    )
    _add(
        f"kid_{_d}",
        False,
        f"KID (unbiased cubic-polynomial MMD^2, mean over subsets) between domain-classifier features of "
        f"{_G}(test {_src}) and real test {_dst}",
    )
    _add(
        f"kid_{_d}_std",
        False,
        f"std over subsets of kid_{_d} (its sampling noise, not a quality score)",
        diagnostic=True,
    )
    _add(
        f"color_dist_{_d}",
        False,
        f"mean per-image chi-square distance of Lab a*b* histograms of test {_src} and {_G}(test {_src}) "
        "(0 = same colours; the identity loss's claim)",
    )
    _add(
        f"spread_ratio_{_d}",
        True,
        f"variance across the test set of {_G}'s outputs over that of its inputs (near 0 = mode collapse)",
        diagnostic=True,
    )
    _add(
        f"hf_ratio_{_d}",
        False,
        f"mean |luminance difference| of 4-neighbours in {_G}(test {_src}) over that in real test {_dst} "
        "(about 1 for natural outputs, far above 1 for noise, near 0 for flat colour; health reads it)",
        diagnostic=True,
    )
    _add(
        f"fid_inception_{_d}",
        False,
        f"FID (torchmetrics) of {_G}(test {_src}) vs real test {_dst} on the FID Inception network's pool "
        "features; None without its weights (harness models download fid-inception), never random ones",
    )
    _add(
        f"kid_inception_{_d}",
        False,
        f"KID (torchmetrics, cubic kernel, mean over 50 subsets) of {_G}(test {_src}) vs real test {_dst} on "
        "the FID Inception network's pool features; None without its weights",
    )
    _add(
        f"kid_inception_{_d}_std",
        False,
        f"std over subsets of kid_inception_{_d} (its sampling noise, not a quality score)",
        diagnostic=True,
    )
for _x, _G1, _G2 in (("A", "G_A", "G_B"), ("B", "G_B", "G_A")):
    _add(
        f"cycle_l1_{_x}",
        False,
        f"mean |{_G2}({_G1}(test {_x})) - test {_x}|; WEAK evidence: a generator can hide its input in "
        "imperceptible signal and reconstruct it without translating well",
    )
_add(
    "classifier_accuracy",
    True,
    "held-out accuracy of the domain classifier on test A vs test B (trust check)",
    diagnostic=True,
)

_add(
    "zebra.stripe_AtoB",
    True,
    "phase-free stripe score of horse->zebra outputs inside the animal mask: mean |luminance gradient| in "
    "the eroded mask, scaled so real plain coats (test A) = 0 and real stripes (test B) = 1",
)
_add("zebra.background_AtoB", False, "horse->zebra mean |output - input| outside the dilated animal mask")
_add(
    "zebra.shape_iou_AtoB",
    True,
    "IoU of the true animal mask with the pixels where the horse->zebra output differs from the scene's "
    "known background by > 0.1 (the animal keeps its outline)",
)
_add(
    "zebra.stripe_BtoA",
    False,
    "stripe score (as zebra.stripe_AtoB) of zebra->horse outputs: 0 = stripes removed",
)
_add("zebra.background_BtoA", False, "zebra->horse mean |output - input| outside the dilated animal mask")
_add("zebra.shape_iou_BtoA", True, "as zebra.shape_iou_AtoB, for zebra->horse outputs")
for _coat in COATS:
    _add(f"zebra.stripe_AtoB.{_coat}", True, f"zebra.stripe_AtoB on the test scenes with a {_coat} coat")
    _add(
        f"zebra.background_AtoB.{_coat}",
        False,
        f"zebra.background_AtoB on the test scenes with a {_coat} coat",
    )
    _add(
        f"zebra.shape_iou_AtoB.{_coat}", True, f"zebra.shape_iou_AtoB on the test scenes with a {_coat} coat"
    )
for _d, _what in (("AtoB", "summer->winter"), ("BtoA", "winter->summer")):
    _add(f"seasons.l1_{_d}", False, f"{_what} mean |output - exact target|")
    _add(f"seasons.psnr_{_d}", True, f"{_what} PSNR in dB against the exact target (peak 1, capped at 100)")
    _add(f"seasons.ssim_{_d}", True, f"{_what} SSIM against the exact target (Gaussian window 7, sigma 1.5)")

PRIMARY = {"zebra": "zebra.stripe_AtoB", "seasons": "seasons.l1_AtoB", None: "translation_AtoB"}


def get(name: str) -> Metric:
    if name not in REGISTRY:
        from cyclegan.config import ConfigError

        raise ConfigError(f"unknown metric '{name}'; see `cyclegan.metrics.REGISTRY` (e.g. translation_AtoB)")
    return REGISTRY[name]


def synth_task(dataset: str) -> str | None:
    """'zebra' for 'synth:zebra'; None for a folder data set."""
    return dataset.removeprefix("synth:") if dataset.startswith("synth:") else None


def metric_names(dataset: str) -> list[str]:
    """Every metric the Evaluator reports for ``dataset`` (a data.dataset value), in registry order; the
    Inception ones are None without the FID Inception weights."""
    return [m.name for m in REGISTRY.values() if not m.needs.startswith("synth:") or m.needs == dataset]


def unavailable(name: str, dataset: str, inception_weights: str = "") -> str | None:
    """Why ``name`` cannot be computed on ``dataset`` (None when it can): task metrics need their synthetic
    task's exact answers; the Inception ones the FID Inception weights (``eval.inception_weights`` or the
    downloaded copy). The domain-classifier metrics train their classifier on the data's own images."""
    needs = get(name).needs
    if needs.startswith("synth:") and needs != dataset:
        return f"needs {needs} data (its exact answers)"
    if needs == "fid-inception" and not inception_weights:
        from cyclegan.metrics import inception

        if not inception.weights_path().is_file():
            return "needs the FID Inception weights (not downloaded)"
    return None


def agnostic() -> list[str]:
    """Quality metrics computable on any two folders of images, with nothing downloaded."""
    return [m.name for m in REGISTRY.values() if not m.needs and not m.diagnostic]


def primary_metric(dataset: str) -> Metric:
    """The recommended primary metric: the task's exact measure for synthetic data, else translation_AtoB."""
    return REGISTRY[PRIMARY.get(synth_task(dataset), PRIMARY[None])]
