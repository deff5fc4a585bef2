"""Metric names in the data set's own directions, whatever ``data.direction`` a run trained with.

``data.direction=BtoA`` swaps the domains before the model sees them (``resolve_domains``), so the Evaluator's
model-direction metrics of such a run (``translation_AtoB``, ``kid_AtoB``, ``cycle_l1_A``, ...) describe the
ORIGINAL B -> A translation. The engine records them under their original-domain names, so that a report
compares like with like: e.g. ``translation_BtoA`` of an AtoB run (its G_B) against ``translation_BtoA`` of a
BtoA run (its G_A). Synthetic-task metrics (``zebra.*``, ``seasons.*``) already use the data set's directions
(the Evaluator orders them by data set, see ``Evaluator._dataset_order``) and are left alone. Loss names in
metrics.jsonl stay network names (G_A is the network trained on the model's A side).
"""

from __future__ import annotations

from typing import Any

_SWAP = {"AtoB": "BtoA", "BtoA": "AtoB"}


def _swapped(name: str) -> str:
    if "." in name:  # a task metric: already in the data set's directions
        return name
    for old, new in _SWAP.items():
        if old in name:
            return name.replace(old, new)
    if name in ("cycle_l1_A", "cycle_l1_B"):
        return "cycle_l1_B" if name.endswith("A") else "cycle_l1_A"
    return name


def dataset_names(metrics: dict[str, Any], direction: str) -> dict[str, Any]:
    """``metrics`` keyed by original-domain names: as is for AtoB runs, direction-swapped for BtoA runs."""
    if direction != "BtoA":
        return dict(metrics)
    return {_swapped(k): v for k, v in metrics.items()}
