"""Reference rows beside the arms, and which metrics can carry a verdict on this data set.

For every metric the report shows what doing nothing, the oracle (real target-domain test images) and the
degenerate outputs (uniform noise, flat mean colour, heavy blur of the input) score on the same test set.
A metric that scores any degenerate output as well as the median trained run is "not discriminative on this
data set": it cannot tell a trained generator from garbage here, and the report says so right under its
verdict.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from cyclegan.metrics.degenerate import KINDS
from harness.report.load import Store
from harness.report.render import Bullets, Section, Table, Text, fmt

RELIABLE_N = 50  # KID / FID from fewer test images per side are marked unreliable
SET_METRICS = ("kid_AtoB", "kid_BtoA", "kid_inception_AtoB", "kid_inception_BtoA")
FID_METRICS = ("fid_inception_AtoB", "fid_inception_BtoA")


def not_discriminative(
    trained: list[float], refs: dict[str, dict[str, Any]], name: str, higher_is_better: bool
) -> list[str]:
    """The degenerate kinds whose ``name`` is at least as good as the median of ``trained`` (empty: the
    metric separates them, or there is nothing to compare)."""
    values = [v for v in trained if v is not None and not math.isnan(v)]
    if not values:
        return []
    median = float(pd.Series(values).median())
    fooled = []
    for kind in KINDS:
        r = (refs.get(kind) or {}).get(name)
        if r is None or math.isnan(r):
            continue
        if (r >= median) if higher_is_better else (r <= median):
            fooled.append(kind)
    return fooled


def _config(flat: dict[str, Any]):
    from cyclegan.config import Config

    nested: dict[str, dict[str, Any]] = {}
    for key, value in flat.items():
        section, _, name = key.partition(".")
        nested.setdefault(section, {})[name] = value
    return Config.from_dict(nested)


def _absent(cfg) -> str | None:
    """Why the runs' data set is not on this machine (None when it is): a report never generates data."""
    from cyclegan.data.roots import data_home
    from cyclegan.synth import folder_name

    d = cfg.data
    if d.dataset.startswith("synth:"):
        folder = (
            data_home()
            / "synth"
            / folder_name(d.dataset.removeprefix("synth:"), d.synth_size, d.synth_n_train, d.synth_n_test, 0)
        )
        return None if folder.is_dir() else f"the runs' data set {d.dataset} is not at {folder}"
    return None  # folder data: a missing folder raises DataError with its own message


def _evaluator(store: Store):
    """The Evaluator of the experiment's data set (from a done run's config); its reference rows are
    cached beside the domain classifier, so this is cheap after the first report."""
    from cyclegan.errors import DataError
    from cyclegan.metrics import Evaluator

    done = [r for r in store.done()["run"] if r in store.configs]
    if not done:
        return None
    cfg = _config(store.configs[done[0]])
    reason = _absent(cfg)
    if reason:
        raise DataError(reason)
    return Evaluator(cfg)


def _noise_or_flat_runs(store: Store) -> list[str]:
    from cyclegan.metrics.health import FLAT_HF_RATIO, NOISE_HF_RATIO

    lines = []
    for run in store.done()["run"]:
        for d in ("AtoB", "BtoA"):
            col = f"hf_ratio_{d}"
            v = store.finals.loc[run, col] if col in store.finals.columns else math.nan
            if v > NOISE_HF_RATIO:
                lines.append(f"{run}: {d} outputs look like noise ({v:.3g}x the target's high frequencies)")
            elif v < FLAT_HF_RATIO:
                lines.append(f"{run}: {d} outputs look like one flat colour ({v:.3g}x the target's detail)")
    return lines


def _small_sample(store: Store, prov: dict[str, Any]) -> list[str]:
    n = min(prov["n_test_A"], prov["n_test_B"])
    if n >= RELIABLE_N:
        return []
    lines = []
    for name in SET_METRICS + FID_METRICS:
        if name not in store.finals.columns or store.finals[name].isna().all():
            continue
        spread, std = "", store.finals.get(f"{name}_std")
        if std is not None and std.notna().any():
            spread = (
                f"; within-run spread (std over subsets) median {fmt(float(std.median()))} against a "
                f"median value of {fmt(float(store.finals[name].median()))}"
            )
        lines.append(f"{name}: unreliable, from {n} test images per side (< {RELIABLE_N}){spread}")
    return lines


def reference_sections(store: Store) -> tuple[list[Section], set[str]]:
    """'Not discriminative on this data set' (only when a metric is) and 'Reference rows'; or a line saying
    why there are no reference rows. Placed right under the question and verdict. Also the metrics flagged
    (they cannot carry a verdict)."""
    from cyclegan.errors import ConfigError, DataError
    from cyclegan.metrics import REGISTRY

    try:
        ev = _evaluator(store)
    except (DataError, ConfigError, OSError) as exc:
        return [Section("Reference rows", [Text(f"Reference rows unavailable: {exc}")])], set()
    if ev is None:
        return [], set()
    refs, prov = ev.reference_points(), ev.provenance()
    rows, flagged, names = [], [], set()
    for name in store.metric_names:
        m = REGISTRY.get(name)
        if m is None or name not in store.finals.columns or name not in refs["do_nothing"]:
            continue
        trained = store.finals.loc[store.done()["run"], name].astype(float).tolist()
        fooled = [] if m.diagnostic else not_discriminative(trained, refs, name, m.higher_is_better)
        if fooled:
            flagged.append(f"{name} ({', '.join(fooled)} score as well as the median trained run)")
            names.add(name)
        median = pd.Series(trained).median()
        rows.append(
            {
                "metric": name,
                "better": "higher" if m.higher_is_better else "lower",
                "median trained": median,
                **{k.replace("_", " "): refs[k].get(name) for k in ("do_nothing", "oracle", *KINDS)},
                "discriminative": "n/a (diagnostic)" if m.diagnostic else ("no" if fooled else "yes"),
            }
        )
    rej = ", ".join(f"{k} {v:.0%}" for k, v in prov["classifier_rejection"].items())
    facts = [
        f"test images: {prov['n_test_A']} (A) and {prov['n_test_B']} (B), every metric below",
        f"domain classifier: {prov['classifier']}; held-out accuracy {prov['classifier_accuracy']:.3f}; "
        f"degenerate test images it rejects: {rej}",
        f"FID / KID-Inception: {prov['fid_network']}"
        if prov["fid_network"]
        else "FID / KID-Inception: not available (no weights; `harness models download fid-inception`)",
    ]
    top = []
    if flagged:
        warning = "Not discriminative on this data set, so their comparisons carry no verdict: " + "; ".join(
            flagged
        )
        top = [Section("Not discriminative on this data set", [Text(warning + ".", bold=True)])]
    blocks = [Bullets(facts), Table(pd.DataFrame(rows), caption="reference rows (same test set as the runs)")]
    health = _noise_or_flat_runs(store)
    blocks.append(Bullets(health) if health else Text("No run's outputs look like noise or one flat colour."))
    small = _small_sample(store, prov)
    if small:
        blocks.append(Bullets(small))
    return [*top, Section("Reference rows", blocks)], names
