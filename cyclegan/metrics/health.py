"""Training health from the loss history alone: oscillation, divergence, and (with metrics) mode collapse."""

from __future__ import annotations

import math

import numpy as np

EMA_ALPHA = 0.2  # smoothing of the logged losses (about a 9-record window)
COLLAPSE_RATIO = 0.1  # outputs varying less than this share of the inputs' variance = collapse
DIVERGE_FACTOR = 3.0
# Outputs with more than twice the target domain's high-frequency energy look like noise (uniform noise has
# 2.6x grass's and 4x gravel's on the real-photo set); under a tenth of it, like one flat colour or a heavy
# blur (those measure 0 and 0.04x).
NOISE_HF_RATIO, FLAT_HF_RATIO = 2.0, 0.1


def ema(values: np.ndarray, alpha: float = EMA_ALPHA) -> np.ndarray:
    out = np.empty_like(values)
    acc = values[0]
    for i, v in enumerate(values):
        acc = alpha * v + (1 - alpha) * acc
        out[i] = acc
    return out


def _last_per_iteration(records: list[dict]) -> list[dict]:
    """A resumed run appends; keep the last record per iteration, in iteration order."""
    latest = {int(r["iteration"]): r for r in records if r.get("kind", "loss") == "loss"}
    return [latest[k] for k in sorted(latest)]


def _oscillation(series: np.ndarray) -> float | None:
    """Std of the first differences of the smoothed series over its second half."""
    half = ema(series)[len(series) // 2 :]
    return float(np.std(np.diff(half))) if len(half) >= 3 else None


def health(loss_records: list[dict], metrics: dict | None = None) -> dict:
    """Flags and numbers for summary.json's ``health``.

    - ``oscillation_G`` / ``oscillation_D``: spread (std) of the first differences of the EMA-smoothed
      adversarial losses G_A + G_B and D_A + D_B over the second half of training (None with < 6 records);
    - ``diverged``: a non-finite loss, or the smoothed total generator objective over the last 10% of the
      records above ``DIVERGE_FACTOR`` x its median over the run;
    - ``collapsed``: spread_ratio_AtoB or spread_ratio_BtoA (from the Evaluator) below ``COLLAPSE_RATIO``;
      None when ``metrics`` lacks them;
    - ``noise_like`` / ``flat_like``: hf_ratio_AtoB or hf_ratio_BtoA above ``NOISE_HF_RATIO`` / below
      ``FLAT_HF_RATIO`` (outputs' high-frequency energy against the target domain's); None without them.
    """
    records = _last_per_iteration(loss_records)
    names = ("G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B", "D_A", "D_B")
    values = {k: np.array([float(r.get(k, 0.0)) for r in records]) for k in names}
    finite = all(np.isfinite(v).all() for v in values.values())
    out: dict = {"n_records": len(records), "oscillation_G": None, "oscillation_D": None}
    diverged = not finite
    if records and finite:
        g_adv, d_adv = values["G_A"] + values["G_B"], values["D_A"] + values["D_B"]
        out["oscillation_G"], out["oscillation_D"] = _oscillation(g_adv), _oscillation(d_adv)
        total = ema(sum(values[k] for k in names[:6]))
        tail = total[-max(1, len(total) // 10) :]
        diverged = bool(tail.mean() > DIVERGE_FACTOR * np.median(total))
    out["diverged"] = diverged
    ratios = [(metrics or {}).get(f"spread_ratio_{d}") for d in ("AtoB", "BtoA")]
    ratios = [r for r in ratios if r is not None and not math.isnan(r)]
    out["collapsed"] = bool(min(ratios) < COLLAPSE_RATIO) if ratios else None
    hf = [(metrics or {}).get(f"hf_ratio_{d}") for d in ("AtoB", "BtoA")]
    hf = [r for r in hf if r is not None and not math.isnan(r)]
    out["noise_like"] = bool(max(hf) > NOISE_HF_RATIO) if hf else None
    out["flat_like"] = bool(min(hf) < FLAT_HF_RATIO) if hf else None
    return out
