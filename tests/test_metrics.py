"""Metrics on hand-made inputs with known answers, the domain classifier, KID, health and the Evaluator."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan.config import resolve
from cyclegan.metrics import REGISTRY, Evaluator, health, metric_names, pixels, primary_metric
from cyclegan.metrics.kid import kid
from cyclegan.model import CycleGAN

# ---------------------------------------------------------------------------------------------- hand-made


def _flat(rgb, size: int = 16, n: int = 1) -> torch.Tensor:
    return torch.tensor(rgb, dtype=torch.float32)[None, :, None, None].expand(n, 3, size, size).clone()


def _stripes(size: int = 24, period: float = 6.0, phase: float = 0.0, angle: float = 0.0) -> torch.Tensor:
    y, x = torch.meshgrid(
        torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij"
    )
    wave = torch.sin(2 * math.pi * (x * math.cos(angle) + y * math.sin(angle)) / period + phase)
    return (wave >= 0).float().expand(1, 3, size, size).clone()


def test_identical_images_have_zero_distances() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 16, 16, generator=g)
    assert torch.equal(pixels.l1(x, x), torch.zeros(4))
    assert torch.allclose(pixels.psnr(x, x), torch.full((4,), 100.0))
    assert torch.allclose(pixels.ssim(x, x), torch.ones(4), atol=1e-5)
    assert torch.allclose(pixels.color_distance(x, x), torch.zeros(4))
    mask = torch.zeros(4, 16, 16, dtype=torch.bool)
    assert torch.equal(pixels.background_change(x, x, mask), torch.zeros(4))


def test_known_shift() -> None:
    x = torch.full((2, 3, 8, 8), 0.4)
    assert torch.allclose(pixels.l1(x, x + 0.1), torch.full((2,), 0.1))
    assert torch.allclose(pixels.psnr(x, x + 0.1), torch.full((2,), 20.0), atol=1e-4)  # 10 log10(1 / 0.01)
    assert pixels.ssim(x, x + 0.1).max() < 1.0
    # pure green vs pure red share no a*b* bin: chi-square distance 1
    assert torch.allclose(pixels.color_distance(_flat([0, 1, 0]), _flat([1, 0, 0])), torch.ones(1))
    # a small brightness change keeps most of the colour histogram
    assert pixels.color_distance(_flat([0.3, 0.6, 0.2]), _flat([0.31, 0.61, 0.21])) < 0.5


def test_lab_of_known_colours() -> None:
    lab = pixels.rgb_to_lab(torch.cat([_flat([1, 1, 1], 2), _flat([0, 0, 0], 2), _flat([1, 0, 0], 2)]))[
        :, :, 0, 0
    ]
    assert torch.allclose(lab[0], torch.tensor([100.0, 0.0, 0.0]), atol=0.1)
    assert torch.allclose(lab[1], torch.zeros(3), atol=0.1)
    assert torch.allclose(lab[2], torch.tensor([53.24, 80.09, 67.20]), atol=0.3)  # sRGB red, standard value


def test_stripe_energy_phase_free_and_zero_on_plain_coat() -> None:
    mask = torch.ones(1, 24, 24, dtype=torch.bool)
    base = pixels.stripe_energy(_stripes(phase=0.0), mask)
    for phase in (0.7, 1.9, math.pi):
        shifted = pixels.stripe_energy(_stripes(phase=phase), mask)
        assert abs(float(shifted - base)) < 0.1 * float(base)
    # period 6: a black/white edge after every 3 px along x, none along y -> (1/3 + 0) / 2 of the pairs
    assert abs(float(base) - 1 / 6) < 1e-6
    tilted = pixels.stripe_energy(_stripes(angle=0.4), mask)
    assert float(tilted) > 0.5 * float(base)
    assert float(pixels.stripe_energy(_flat([0.6, 0.3, 0.1], 24), mask)) == 0.0
    # only the (eroded) mask counts: stripes outside it are ignored
    inside = torch.zeros(1, 24, 24, dtype=torch.bool)
    inside[:, 6:18, 6:18] = True
    img = _flat([0.5, 0.5, 0.5], 24)
    img[..., :, :5] = _stripes()[..., :, :5]
    assert float(pixels.stripe_energy(img, inside)) == 0.0


def test_background_and_shape_iou() -> None:
    bg = _flat([0.3, 0.6, 0.2], 16)
    mask = torch.zeros(1, 16, 16, dtype=torch.bool)
    mask[:, 4:12, 5:11] = True
    out = bg.clone()
    out[:, :, mask[0]] = 0.9  # paint the animal only
    assert float(pixels.background_change(bg, out, mask)) == 0.0
    assert float(pixels.shape_iou(out, bg, mask)) == 1.0
    out2 = out + 0.2 * (~mask).float()[:, None]  # and change the background by 0.2
    assert abs(float(pixels.background_change(bg, out2, mask)) - 0.2) < 1e-6
    half = bg.clone()
    half[:, :, 4:12, 5:8] = 0.9  # only half the animal differs from the background
    assert abs(float(pixels.shape_iou(half, bg, mask)) - 0.5) < 1e-6


def test_kid_of_a_set_against_itself_is_zero_and_grows_with_distortion() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 16))
    y = rng.normal(size=(200, 16))  # another sample of the same distribution
    same, same_std = kid(x, y)
    assert abs(same) < 3 * same_std + 0.05
    self_kid, self_std = kid(x, x)
    assert abs(self_kid) < 3 * self_std and abs(self_kid) < 0.02
    values = [kid(x, y + shift)[0] for shift in (0.25, 0.5, 1.0)]
    assert values[0] > same + 2 * same_std
    assert values[0] < values[1] < values[2]


# ------------------------------------------------------------------------------------------------- registry


def test_registry_names_directions_and_primaries() -> None:
    zebra, seasons, folder = (
        metric_names("synth:zebra"),
        metric_names("synth:seasons"),
        metric_names("/data/x"),
    )
    assert (
        "zebra.stripe_AtoB" in zebra and "zebra.stripe_AtoB.white" in zebra and "seasons.l1_AtoB" not in zebra
    )
    assert "seasons.ssim_BtoA" in seasons and not any(n.startswith("zebra.") for n in seasons)
    assert "translation_AtoB" in folder and not any("." in n for n in folder)
    assert primary_metric("synth:zebra").name == "zebra.stripe_AtoB"
    assert primary_metric("synth:zebra").direction == "maximize"
    assert primary_metric("synth:seasons").name == "seasons.l1_AtoB"
    assert primary_metric("synth:seasons").direction == "minimize"
    assert primary_metric("/data/horse2zebra").name == "translation_AtoB"
    assert REGISTRY["zebra.background_AtoB"].higher_is_better is False
    assert "WEAK evidence" in REGISTRY["cycle_l1_A"].definition
    assert all(m.definition and "\n" not in m.definition for m in REGISTRY.values())


# ------------------------------------------------------------------------------------------------- health


def _records(g, d, cycle=None) -> list[dict]:
    cycle = cycle if cycle is not None else [1.0] * len(g)
    return [
        {
            "kind": "loss",
            "iteration": 10 * (i + 1),
            "G_A": a / 2,
            "G_B": a / 2,
            "D_A": b / 2,
            "D_B": b / 2,
            "cycle_A": c,
            "cycle_B": c,
            "idt_A": 0.1,
            "idt_B": 0.1,
        }
        for i, (a, b, c) in enumerate(zip(g, d, cycle, strict=True))
    ]


def test_health_flags() -> None:
    calm = health(_records([0.5] * 40, [0.25] * 40))
    assert calm["oscillation_G"] == 0.0 and calm["oscillation_D"] == 0.0
    assert calm["diverged"] is False and calm["collapsed"] is None and calm["n_records"] == 40
    wild = health(_records([0.5 + (-1) ** i for i in range(40)], [0.25] * 40))
    assert wild["oscillation_G"] > 0.1 and wild["oscillation_D"] == 0.0
    nan = _records([0.5] * 40, [0.25] * 40)
    nan[-1]["D_A"] = float("nan")
    assert health(nan)["diverged"] is True
    blowup = health(_records([0.5] * 40, [0.25] * 40, cycle=[1.0] * 30 + [50.0] * 10))
    assert blowup["diverged"] is True
    assert health(calm and _records([0.5] * 8, [0.2] * 8), {"spread_ratio_AtoB": 0.02})["collapsed"] is True
    assert (
        health(_records([0.5] * 8, [0.2] * 8), {"spread_ratio_AtoB": 0.9, "spread_ratio_BtoA": 1.1})[
            "collapsed"
        ]
        is False
    )
    # a resumed run appends records again; the last per iteration wins
    recs = _records([0.5] * 10, [0.25] * 10)
    assert health(recs + recs[-3:])["n_records"] == 10


# ------------------------------------------------------------------------------------------------ evaluator


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARNESS_DATA", str(root))
        yield root


def _cfg(task: str, **extra):
    over = {
        "data.dataset": f"synth:{task}",
        "data.synth_n_train": 200,
        "data.synth_n_test": 60,
        "eval.n_test": 60,
    }
    return resolve("cpu", {**over, **extra})


@pytest.fixture(scope="module")
def zebra_evaluator(data_root) -> Evaluator:
    torch.set_num_threads(1)
    return Evaluator(_cfg("zebra"))


def test_domain_classifier_is_accurate_on_zebra_and_cached(
    zebra_evaluator: Evaluator, data_root: Path
) -> None:
    assert zebra_evaluator.classifier_accuracy >= 0.95
    cached = list((data_root / "synth" / "zebra-32px-200-60-s0" / ".harness-cache").glob("classifier-*.pt"))
    assert len(cached) == 1
    again = Evaluator(_cfg("zebra"))  # loads, does not retrain: same weights, same accuracy
    assert again.classifier_accuracy == zebra_evaluator.classifier_accuracy
    w1, w2 = zebra_evaluator.classifier.state_dict(), again.classifier.state_dict()
    assert all(torch.equal(w1[k], w2[k]) for k in w1)


def test_zebra_reference_points(zebra_evaluator: Evaluator) -> None:
    refs = zebra_evaluator.reference_points()
    nothing, oracle = refs["do_nothing"], refs["oracle"]
    assert abs(nothing["zebra.stripe_AtoB"]) < 0.02 and abs(oracle["zebra.stripe_AtoB"] - 1) < 1e-9
    assert abs(nothing["zebra.stripe_BtoA"] - 1) < 1e-9 and abs(oracle["zebra.stripe_BtoA"]) < 0.02
    for coat in ("white", "black", "brown"):
        assert oracle[f"zebra.stripe_AtoB.{coat}"] > 0.8 and abs(nothing[f"zebra.stripe_AtoB.{coat}"]) < 0.05
    assert nothing["zebra.background_AtoB"] == 0.0 and oracle["zebra.background_AtoB"] == 0.0
    assert oracle["zebra.shape_iou_AtoB"] > 0.97 and nothing["zebra.shape_iou_AtoB"] > 0.97
    assert nothing["translation_AtoB"] < 0.06 and oracle["translation_AtoB"] > 0.95  # 3 of 60 at most
    assert abs(oracle["kid_AtoB"]) < oracle["kid_AtoB_std"]  # the real set against itself: about 0
    assert nothing["kid_AtoB"] > 5 * oracle["kid_AtoB_std"]
    assert nothing["color_dist_AtoB"] == 0.0 and oracle["color_dist_AtoB"] > 0.0
    assert nothing["cycle_l1_A"] == 0.0 and oracle["cycle_l1_A"] is None
    assert nothing["fid_inception_AtoB"] is None and nothing["kid_inception_AtoB"] is None
    assert zebra_evaluator.reference_points() == refs  # cached


def test_zebra_metric_follows_data_direction(data_root) -> None:
    """With direction=BtoA the model's A is the zebras; task metrics keep the data set's meaning."""
    ev = Evaluator(_cfg("zebra", **{"data.direction": "BtoA"}))
    oracle = ev.reference_points()["oracle"]
    assert abs(oracle["zebra.stripe_AtoB"] - 1) < 1e-9 and abs(oracle["zebra.stripe_BtoA"]) < 0.02
    assert ev.classifier_accuracy >= 0.95


def test_evaluator_on_a_model(zebra_evaluator: Evaluator, tmp_path: Path) -> None:
    model = CycleGAN(zebra_evaluator.cfg)
    metrics = zebra_evaluator(model)
    assert set(metrics) == set(metric_names("synth:zebra"))
    for name, value in metrics.items():
        if "inception" in name:
            assert value is None
        else:
            assert value is not None and math.isfinite(value), name
    assert 0 <= metrics["translation_AtoB"] <= 1 and metrics["cycle_l1_A"] > 0
    assert metrics == zebra_evaluator(model)  # deterministic: same images, same model, same numbers
    # per-image scores: one per test image, and their mean is the run's number
    n = len(zebra_evaluator.test_A)
    assert {"translation_AtoB", "cycle_l1_A", "zebra.stripe_AtoB", "zebra.background_AtoB"} <= set(
        zebra_evaluator.per_image
    )
    for name, scores in zebra_evaluator.per_image.items():
        assert len(scores) == n, name
        finite = [v for v in scores if v is not None]
        assert np.mean(finite) == pytest.approx(metrics[name], abs=1e-5), name
    grid = tmp_path / "grid.png"
    zebra_evaluator.sample_grid(model, grid)
    k, size = zebra_evaluator.cfg.eval.n_samples, zebra_evaluator.cfg.data.crop_size
    assert Image.open(grid).size == (k * (size + 1) + 1, 6 * (size + 1) + 1)


def test_seasons_reference_points(data_root) -> None:
    ev = Evaluator(_cfg("seasons", **{"eval.n_test": 30}))
    refs = ev.reference_points()
    oracle, nothing = refs["oracle"], refs["do_nothing"]
    assert oracle["seasons.l1_AtoB"] == 0.0 and oracle["seasons.psnr_AtoB"] == 100.0
    assert abs(oracle["seasons.ssim_BtoA"] - 1) < 1e-5
    assert nothing["seasons.l1_AtoB"] > 0.2 and nothing["seasons.psnr_AtoB"] < 15
    assert ev.classifier_accuracy >= 0.95
    assert len(ev.test_A) == 30


def test_cli_eval_json(data_root: Path, tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from cyclegan import checkpoint
    from harness.cli import app

    cfg = resolve("smoke", {"data.dataset": "synth:zebra"})
    path = tmp_path / "latest.pt"
    checkpoint.save(path, {"config": cfg.to_dict(), "model": CycleGAN(cfg).training_state(), "iteration": 0})
    result = CliRunner().invoke(app, ["eval", str(path), "--json", "--grid", str(tmp_path / "g.png")])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["primary"] == "zebra.stripe_AtoB"
    assert set(out["metrics"]) == set(metric_names("synth:zebra"))
    assert out["reference_points"]["oracle"]["zebra.stripe_AtoB"] == pytest.approx(1.0)
    assert (tmp_path / "g.png").is_file()


def test_evaluator_on_a_folder_data_set(tmp_path: Path) -> None:
    from tests.conftest import make_folder_dataset

    root = make_folder_dataset(tmp_path / "ds", n=12, size=20)
    cfg = resolve("smoke", {"data.dataset": str(root), "eval.n_test": 10})
    ev = Evaluator(cfg)
    assert ev.task is None and len(ev.test_A) == 10
    assert ev.classifier_accuracy >= 0.95  # reddish vs bluish noise
    refs = ev.reference_points()
    assert refs["do_nothing"]["translation_AtoB"] <= 0.05 and refs["oracle"]["translation_AtoB"] >= 0.95
    assert refs["oracle"]["cycle_l1_A"] is None
    for kind in ("noise", "flat", "blur"):  # the three-way classifier does not call degenerate outputs B
        assert refs[kind]["translation_AtoB"] <= 0.2, kind
    metrics = ev(CycleGAN(cfg))
    assert set(metrics) == set(metric_names(str(root)))
    assert list((root / ".harness-cache").glob("classifier-*.pt"))
