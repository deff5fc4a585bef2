"""Decisions that stay valid when seeds are added until they are decided (``harness run --until-decided``).

Method: each comparison of a family of m gets alpha/m (Bonferroni). That share is spent over the looks with
the Lan-DeMets O'Brien-Fleming-type spending function alpha(t) = 2 - 2 Phi(z_{1-alpha/2} / sqrt(t)), t =
seeds so far / max_seeds (Lan & DeMets 1983, Biometrika 70:659; O'Brien & Fleming 1979, Biometrics 35:549).
The look's critical value comes from the joint normal law of the cumulative statistic, by recursive numerical
integration (Armitage, McPherson & Rowe 1969, JRSS A 132:235). The nominal two-sided level of that critical
value sets a Welch t interval: a repeated confidence interval (Jennison & Turnbull 1989, JRSS B 51:305; 2000,
Group Sequential Methods, ch. 9). Every verdict is read off that one interval:

- better / worse: the interval excludes 0 (on the metric's good / bad side),
- equivalent: the interval lies inside (-margin, +margin) (two one-sided tests at half its level),
- inconclusive at n seeds: neither.

Repeated confidence intervals cover their differences at every look simultaneously with probability at least
1 - alpha/m each, so with the Bonferroni split all intervals of a family cover at all looks with probability
>= 1 - alpha, whenever the experiment stops; no verdict read off a covering interval is wrong. The same holds
for a single look (a fixed number of seeds: Bonferroni-level Welch intervals). With no ``max_seeds`` there is
one look and nothing is spent early. Bonferroni rather than Holm: only single-step intervals are both
simultaneous and informative for every verdict (Holm-compatible intervals collapse to 0 for rejected
hypotheses; Strassburger & Bretz 2008, Stat Med 27:4914).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import optimize
from scipy.stats import norm

from harness.report.stats import ALPHA, Welch

GRID = 801  # points of the numerical integration per look (the boundaries agree with gsDesign to 1e-3)
DECIDED = ("better", "worse", "equivalent", "differs")


def spent(t, alpha: float) -> np.ndarray:
    """Two-sided error spent by information fraction t (O'Brien-Fleming-type Lan-DeMets function)."""
    t = np.asarray(t, dtype=float)
    with np.errstate(divide="ignore"):
        return 2 * norm.sf(norm.isf(alpha / 2) / np.sqrt(t))


def boundaries(fractions, alpha: float) -> np.ndarray:
    """Two-sided critical values |Z| >= c_k of looks at increasing information ``fractions`` (in (0, 1]),
    spending ``alpha`` by the function above; inf where a look may spend nothing."""
    t = np.asarray(fractions, dtype=float)
    if t.size == 0 or np.any(np.diff(t) <= 0) or t[0] <= 0 or t[-1] > 1:
        raise ValueError(f"information fractions must increase within (0, 1], got {list(t)}")
    inc = np.diff(spent(t, alpha), prepend=0.0)
    crit = np.empty(t.size)
    w = f = None  # the continuation region's grid of W(t_k) = Z_k sqrt(t_k) and its sub-density there
    for k, tk in enumerate(t):
        if k == 0:
            crit[0] = norm.isf(inc[0] / 2) if inc[0] > 0 else math.inf
        else:
            s = math.sqrt(tk - t[k - 1])
            weight = np.full(w.size, w[1] - w[0])
            weight[[0, -1]] /= 2  # trapezoid rule

            def cross(c: float, s=s, tk=tk, weight=weight, w=w, f=f) -> float:
                b = c * math.sqrt(tk)
                return float(np.sum(weight * f * (norm.sf((b - w) / s) + norm.cdf((-b - w) / s))))

            if inc[k] <= 0 or cross(40.0) >= inc[k]:
                crit[k] = math.inf
            else:
                crit[k] = optimize.brentq(lambda c, target=inc[k]: cross(c) - target, 1e-6, 40.0, xtol=1e-10)
        edge = min(crit[k], 10.0) * math.sqrt(tk)
        grid = np.linspace(-edge, edge, GRID)
        if k == 0:
            f = norm.pdf(grid, scale=math.sqrt(tk))
        else:
            f = (weight * f) @ norm.pdf((grid[None, :] - w[:, None]) / s) / s
        w = grid
    return crit


def looks(n: int, start: int, max_seeds: int | None) -> list[float]:
    """Information fractions of the analyses up to one at n seeds per arm: the planned looks start,
    2 start, ... before n (seeds are added in batches of ``start``), then n itself (capped at max_seeds)."""
    if not max_seeds:
        return [1.0]
    n = min(n, max_seeds)
    before = [p for p in range(start, max_seeds, max(1, start)) if p < n]
    return [p / max_seeds for p in before] + [n / max_seeds]


def schedule(start: int, max_seeds: int | None) -> list[int]:
    """Seeds per arm at each planned look: start, 2 start, ..., max_seeds."""
    if not max_seeds or max_seeds <= start:
        return [start]
    return [*range(start, max_seeds, max(1, start)), max_seeds]


@lru_cache(maxsize=256)  # a pure function of a few integers, called per comparison and look
def level(n: int, m: int, *, start: int, max_seeds: int | None, alpha: float = ALPHA) -> float:
    """Nominal two-sided level of one comparison of a family of m at the look with n seeds per arm: its
    interval is a 1 - level Welch interval. Without max_seeds: alpha / m (Bonferroni, one look)."""
    crit = boundaries(looks(n, start, max_seeds), alpha / max(1, m))[-1]
    return float(2 * norm.sf(crit))


def verdict(low: float, high: float, margin: float | None, direction: str) -> str:
    """better / worse (or differs, direction unknown) / equivalent / inconclusive, from one interval;
    'n/a' when it is undefined. A metric without a declared margin is never 'equivalent'."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return "n/a"
    if low > 0 or high < 0:
        if direction not in ("maximize", "minimize"):
            return "differs"
        return "better" if (low > 0) == (direction == "maximize") else "worse"
    if margin is not None and -margin < low and high < margin:
        return "equivalent"
    return "inconclusive"


@dataclass(frozen=True)
class Decision:
    diff: float
    low: float
    high: float
    level: float  # the interval is 1 - level
    verdict: str


def decide(w: Welch, lvl: float, margin: float | None, direction: str) -> Decision:
    """The verdict of one comparison at one look from Welch's statistics and the look's nominal level; a
    difference without variance (se = 0) has no interval and no verdict."""
    if not (math.isfinite(w.se) and w.se > 0):
        return Decision(w.diff, math.nan, math.nan, lvl, "n/a")
    low, high = w.interval(1 - lvl)
    return Decision(w.diff, low, high, lvl, verdict(low, high, margin, direction))


def all_decided(verdicts) -> bool:
    """The stopping rule: every declared comparison is better, worse, equivalent (or differs)."""
    return all(v in DECIDED for v in verdicts)
