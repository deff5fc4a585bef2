"""Which way is better for each metric, and what it measures: the spec says it for the primary metric, the
registry (``cyclegan.metrics.REGISTRY``) for the rest; a name in neither is 'unknown' (no better/worse
words)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cyclegan.metrics.registry import REGISTRY

VALID = ("maximize", "minimize")


def directions(experiment: dict[str, Any], names: Iterable[str]) -> dict[str, str]:
    """'maximize', 'minimize' or 'unknown' per metric name."""
    spec = experiment.get("metrics", {})
    out = {}
    for name in names:
        if name == spec.get("primary") and spec.get("direction") in VALID:
            out[name] = spec["direction"]
        elif name in REGISTRY:
            out[name] = REGISTRY[name].direction
        else:
            out[name] = "unknown"
    return out


def definition(name: str) -> str:
    """The registry's one-line definition, or a note that the name is not registered."""
    return REGISTRY[name].definition if name in REGISTRY else "not in cyclegan.metrics (direction unknown)"
