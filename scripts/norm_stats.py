"""Re-score an experiment's finished runs with batch norm's running statistics and with each test image's own.

Training-time evaluations put generators in eval mode, so batch norm normalises with its running averages
(the reference's ``--eval``); the reference's test script by default does not, and at test batch size 1
each image is normalised by its own statistics. This script measures how much that choice moves the
metrics, per arm, and writes a markdown table with the command that produced it:

    .venv/bin/python scripts/norm_stats.py ablate-norm --out reports/norm-stats
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from cyclegan import checkpoint as ckpt
from cyclegan.atomic import atomic_write_json, atomic_write_text
from cyclegan.metrics import Evaluator
from cyclegan.model import NORM_STATS
from harness.report import stats
from harness.report.load import load_store

METRICS = ("zebra.stripe_AtoB", "translation_AtoB", "kid_AtoB", "zebra.background_AtoB")


def score(run_dir: Path) -> dict[str, dict[str, float]]:
    """Every metric of a run's final checkpoint under both batch norm settings."""
    model, _ = ckpt.load_trained(run_dir / "checkpoints" / "latest.pt", "cpu")
    return {mode: Evaluator(model.cfg, "cpu", mode)(model) for mode in NORM_STATS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("experiment")
    ap.add_argument("--store", type=Path, default=Path("runs"))
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)  # the thread count the runs were evaluated with under --workers 2
    store = load_store(args.store, args.experiment)
    done = store.done()
    args.out.mkdir(parents=True, exist_ok=True)
    values: dict[tuple[str, str, str], list[float]] = {}
    for row in done.itertuples():
        scores = score(args.store / args.experiment / row.run)
        atomic_write_json(args.out / f"{row.run}.json", scores)
        for mode, metrics in scores.items():
            for m in METRICS:
                values.setdefault((row.arm, mode, m), []).append(metrics[m])
        print(f"{row.run}: " + ", ".join(f"{mode} {s[METRICS[0]]:.3f}" for mode, s in scores.items()))
    lines = [
        f"# {args.experiment}: batch norm's test-time statistics",
        "",
        f"Reproduce: `.venv/bin/python scripts/norm_stats.py {args.experiment} --out {args.out}` "
        f"(reads `{args.store}/{args.experiment}/*/checkpoints/latest.pt`; one JSON per run here).",
        "",
        "Each done run's final checkpoint scored twice: `running` = eval mode, batch norm uses its running "
        "averages (what the experiment's report shows); `per_image` = each test image normalised by its own "
        "statistics (the reference test script's default at batch size 1). Mean over seeds with its 95% "
        "t interval; the difference is paired (the same checkpoints scored both ways): the mean of the "
        "per-seed differences with its 95% t interval. Differences of order 1e-7 for instance norm and no "
        "norm are floating-point summation order (one image at a time instead of 64), not an effect.",
        "",
        "| arm | metric | n | running | per_image | per_image - running | 95% CI |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm in store.arms:
        for m in METRICS:
            run_v, img_v = values.get((arm, "running", m)), values.get((arm, "per_image", m))
            if not run_v:
                continue
            a, b = stats.describe(run_v), stats.describe(img_v)
            d = stats.describe([i - r for i, r in zip(img_v, run_v, strict=True)])
            lines.append(
                f"| {arm} | {m} | {len(run_v)} | {a['mean']:.4g} [{a['ci_low']:.4g}, {a['ci_high']:.4g}] | "
                f"{b['mean']:.4g} [{b['ci_low']:.4g}, {b['ci_high']:.4g}] | {d['mean']:+.4g} | "
                f"[{d['ci_low']:+.4g}, {d['ci_high']:+.4g}] |"
            )
    lines += [
        "",
        f"## Each arm vs the control ({store.control}) with per-image statistics",
        "",
        "Welch's t-test and its 95% interval of the difference of means (unadjusted), "
        "a follow-up outside the report's families: read p as uncorrected.",
        "",
        "| arm | metric | arm - control | 95% CI | Welch p |",
        "|---|---|---|---|---|",
    ]
    for arm in store.arms:
        for m in METRICS:
            x, y = values.get((arm, "per_image", m)), values.get((store.control, "per_image", m))
            if arm == store.control or not x or not y:
                continue
            c = stats.compare(x, y, arm=arm, metric=m, direction="unknown")
            ci = f"[{c.ci_low:+.4g}, {c.ci_high:+.4g}]"
            lines.append(f"| {arm} | {m} | {c.diff:+.4g} | {ci} | {c.p_welch:.2g} |")
    atomic_write_text(args.out / "README.md", "\n".join(lines) + "\n")
    print(f"table: {args.out / 'README.md'}")


if __name__ == "__main__":
    sys.exit(main())
