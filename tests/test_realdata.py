"""Issue 13 on real photographs (grass2gravel, cut from scikit-image's photos): a classifier that noise,
flat colour and blur cannot fool, reference rows, health flags, and the not-discriminative rule."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cyclegan.config import resolve
from cyclegan.metrics import Evaluator, health, pixels
from cyclegan.metrics.classifier import CLASS_A, CLASS_B
from cyclegan.metrics.degenerate import KINDS, blur, degenerate, flat, noise
from harness.report.references import not_discriminative


def test_degenerate_kinds() -> None:
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert torch.equal(noise(x, 3), noise(x, 3)) and not torch.equal(noise(x, 3), noise(x, 4))
    f = flat(x)
    assert torch.allclose(f, x.mean((2, 3), keepdim=True).expand_as(x))
    hf = pixels.high_frequency
    assert float(hf(pixels.to_unit(blur(x))).max()) < 0.1 * float(hf(pixels.to_unit(x)).min())
    assert torch.allclose(blur(x).mean((2, 3)), x.mean((2, 3)), atol=0.05)  # blurs, keeps the colour
    with pytest.raises(ValueError, match="valid: noise, flat, blur"):
        degenerate("snow", x)


def test_health_flags_noise_and_flat_outputs() -> None:
    assert health([], {"hf_ratio_AtoB": 4.1, "hf_ratio_BtoA": 1.0})["noise_like"] is True
    assert health([], {"hf_ratio_AtoB": 1.2, "hf_ratio_BtoA": 0.0})["flat_like"] is True
    ok = health([], {"hf_ratio_AtoB": 1.2, "hf_ratio_BtoA": 0.8})
    assert ok["noise_like"] is False and ok["flat_like"] is False
    assert health([], {})["noise_like"] is None


def test_not_discriminative_rule() -> None:
    refs = {"noise": {"m": 0.9}, "flat": {"m": 0.1}, "blur": {"m": None}}
    assert not_discriminative([0.5, 0.6, 0.7], refs, "m", higher_is_better=True) == ["noise"]
    assert not_discriminative([0.5, 0.6, 0.7], refs, "m", higher_is_better=False) == ["flat"]
    assert not_discriminative([], refs, "m", higher_is_better=True) == []


@pytest.fixture(scope="module")
def photo_evaluator(photo_set: Path, tmp_path_factory: pytest.TempPathFactory) -> Evaluator:
    return Evaluator(resolve("cpu", {"data.dataset": str(photo_set)}))


def test_classifier_on_real_photos_is_not_fooled(photo_evaluator: Evaluator) -> None:
    ev = photo_evaluator
    assert ev.classifier_accuracy >= 0.9
    assert all(ev.classifier_facts["rejection"][k] >= 0.9 for k in KINDS), ev.classifier_facts
    s = ev.cfg.data.crop_size
    probes = {
        "white": torch.ones(12, 3, s, s),
        "grey": torch.zeros(12, 3, s, s),
        "noise": torch.rand(12, 3, s, s, generator=torch.Generator().manual_seed(9)) * 2 - 1,
    }
    for name, x in probes.items():
        cls = ev.classifier.embed(x)[1]
        assert float(((cls == CLASS_A) | (cls == CLASS_B)).float().mean()) <= 0.1, name  # neither domain


def test_reference_rows_on_real_photos(photo_evaluator: Evaluator) -> None:
    refs = photo_evaluator.reference_points()
    assert set(refs) == {"do_nothing", "oracle", *KINDS}
    nothing, oracle = refs["do_nothing"], refs["oracle"]
    assert oracle["translation_AtoB"] >= 0.9 and nothing["translation_AtoB"] <= 0.25  # 12 test images
    for kind in KINDS:  # no degenerate output passes as translated, and KID ranks each below the oracle
        assert refs[kind]["translation_AtoB"] <= 0.1 and refs[kind]["translation_BtoA"] <= 0.1, kind
        assert refs[kind]["kid_AtoB"] > oracle["kid_AtoB"] + 3 * oracle["kid_AtoB_std"], kind
    assert health([], refs["noise"])["noise_like"] is True  # a generator that outputs noise is flagged
    assert health([], refs["flat"])["flat_like"] is True and health([], refs["blur"])["flat_like"] is True
    assert health([], oracle)["noise_like"] is False and health([], oracle)["flat_like"] is False
    assert photo_evaluator.reference_points() == refs  # cached


def test_report_reference_rows_and_read_first(photo_evaluator: Evaluator, tmp_path: Path) -> None:
    """Three done runs on the photo set: translation 0 (noise, flat and blur also score 0, so the metric is
    flagged at the top), KID far below the degenerate rows (discriminative), one run's outputs noise-like."""
    import pandas as pd

    from harness.report.load import RUN_COLUMNS, Store
    from harness.report.references import reference_sections
    from harness.report.render import to_markdown

    flat_cfg = {f"{s}.{k}": v for s, sect in photo_evaluator.cfg.to_dict().items() for k, v in sect.items()}
    names = ["r0", "r1", "r2"]
    runs = pd.DataFrame(
        [
            {**dict.fromkeys(RUN_COLUMNS), "run": r, "arm": "a", "seed": i, "status": "done"}
            for i, r in enumerate(names)
        ]
    )
    finals = pd.DataFrame(
        {
            "translation_AtoB": [0.0, 0.0, 0.0],
            "kid_AtoB": [5.0, 6.0, 7.0],
            "kid_AtoB_std": [2.0, 3.0, 2.5],
            "hf_ratio_AtoB": [3.0, 1.1, 0.9],
        },
        index=names,
    )
    store = Store(
        folder=tmp_path,
        experiment={"metrics": {"primary": "translation_AtoB", "secondary": ["kid_AtoB"]}},
        runs=runs,
        finals=finals,
        losses=pd.DataFrame(),
        evals=pd.DataFrame(),
        configs=dict.fromkeys(names, flat_cfg),
    )
    sections, fooled = reference_sections(store)
    assert fooled == {"translation_AtoB"}
    assert [s.title for s in sections] == ["Not discriminative on this data set", "Reference rows"]
    warning = sections[0].blocks[0].text
    assert "translation_AtoB (noise, flat, blur score as well as the median trained run)" in warning
    assert "kid_AtoB" not in warning
    md = to_markdown("t", sections, tmp_path)
    assert "held-out accuracy" in md and "FID / KID-Inception: not available" in md
    assert "r0: AtoB outputs look like noise" in md
    assert "unreliable, from 12 test images per side" in md  # kid_AtoB, Markdown-escaped
    assert "within-run spread (std over subsets) median 2.5 against a median value of 6" in md


def test_a_metric_that_is_not_discriminative_carries_no_verdict() -> None:
    """A comparison on a flagged metric loses its better/worse verdict, in the table and the verdict lines."""
    import pandas as pd

    from harness.report.analyse import Analysis
    from harness.report.build import _withhold

    comp = pd.DataFrame(
        {
            "family": ["primary", "secondary"],
            "arm": ["pool0", "pool0"],
            "vs": ["pool50", "pool50"],
            "metric": ["translation_AtoB", "kid_AtoB"],
            "verdict": ["better", "worse"],
            "sentence": ["pool0 is better", "pool0 is worse"],
        }
    )
    an = Analysis([], {}, {}, comp, ["pool0 is better"], {})
    out = _withhold(an, {"translation_AtoB"}, "pool50")
    assert list(out.comparisons["verdict"]) == ["not discriminative", "worse"]
    assert out.primary_verdicts == [
        "pool0 vs pool50 on translation_AtoB: no verdict, the metric is not discriminative on this data set"
    ]
    assert _withhold(an, set(), "pool50") is an


def test_a_run_forced_to_output_noise_is_flagged_and_scores_below_doing_nothing(
    photo_evaluator: Evaluator,
) -> None:
    """A model whose generators emit uniform noise, scored by the real evaluator on real photos: health calls
    it noise-like and the data-agnostic primary (translation) ranks it below doing nothing."""

    class NoiseModel:
        def __init__(self) -> None:
            self.gen = torch.Generator().manual_seed(0)

        def translate(self, images: torch.Tensor, direction: str, norm_stats: str) -> torch.Tensor:
            return torch.rand(images.shape, generator=self.gen) * 2 - 1

    metrics = photo_evaluator(NoiseModel())
    nothing = photo_evaluator.reference_points()["do_nothing"]
    assert health([], metrics)["noise_like"] is True
    assert metrics["translation_AtoB"] < nothing["translation_AtoB"]
    assert metrics["translation_BtoA"] <= nothing["translation_BtoA"]
