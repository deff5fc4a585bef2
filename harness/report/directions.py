"""Which way is better for each metric: the spec says it for the primary, the metric registry for the rest."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

VALID = ("maximize", "minimize")


def _registry_direction(name: str) -> str | None:
    """The direction ``cyclegan.metrics`` registers for ``name``, or None while that registry is absent."""
    try:
        from cyclegan import metrics as registry  # written in parallel; the report works without it
    except ImportError:
        return None
    lookup = getattr(registry, "direction", None)
    if callable(lookup):
        try:
            value = lookup(name)
        except (KeyError, ValueError):
            return None
        return value if value in VALID else None
    return None


def directions(experiment: dict[str, Any], names: Iterable[str]) -> dict[str, str]:
    """'maximize', 'minimize' or 'unknown' (difference shown, no better/worse wording) per metric name."""
    spec = experiment.get("metrics", {})
    out = {}
    for name in names:
        if name == spec.get("primary") and spec.get("direction") in VALID:
            out[name] = spec["direction"]
        else:
            out[name] = _registry_direction(name) or "unknown"
    return out
