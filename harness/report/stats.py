"""Statistics for comparing arms over seeds, each a thin wrapper around scipy.stats (Holm: statsmodels).

Seeds are few (3-10), so every helper degrades gracefully: fewer than two values or zero variance give NaN
(or a zero-width interval) instead of an exception, and the caller reports "not enough data".
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests

N_RESAMPLES = 10_000
CONFIDENCE = 0.95
CI_METHOD = "percentile"  # robust at n = 3..10 seeds, where BCa's jackknife acceleration is itself noisy
ALPHA = 0.05
POWER = 0.8


def _clean(x) -> np.ndarray:
    a = np.asarray(x, dtype=float).ravel()
    return a[np.isfinite(a)]


def _diff_of_means(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def _mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis)


def bootstrap_mean_ci(
    x,
    *,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    method: str = CI_METHOD,
    confidence: float = CONFIDENCE,
) -> tuple[float, float]:
    """95% bootstrap CI of the mean; NaN for n < 2, the point itself when every value is equal."""
    a = _clean(x)
    if a.size < 2:
        return math.nan, math.nan
    if np.ptp(a) == 0:
        return float(a[0]), float(a[0])
    res = stats.bootstrap(
        (a,),
        _mean,
        n_resamples=n_resamples,
        vectorized=True,
        method=method,
        confidence_level=confidence,
        rng=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def bootstrap_diff_ci(
    x,
    y,
    *,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    method: str = CI_METHOD,
    confidence: float = CONFIDENCE,
) -> tuple[float, float]:
    """95% bootstrap CI of mean(x) - mean(y), the two samples resampled independently."""
    a, b = _clean(x), _clean(y)
    if a.size < 2 or b.size < 2:
        return math.nan, math.nan
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        d = float(a[0] - b[0])
        return d, d
    res = stats.bootstrap(
        (a, b),
        _diff_of_means,
        n_resamples=n_resamples,
        vectorized=True,
        paired=False,
        method=method,
        confidence_level=confidence,
        rng=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def describe(
    x, *, n_resamples: int = N_RESAMPLES, seed: int = 0, method: str = CI_METHOD
) -> dict[str, float]:
    """Headline numbers for one arm: mean, sd, median, IQM (25% trimmed mean), n and the bootstrap CI."""
    a = _clean(x)
    n = int(a.size)
    lo, hi = bootstrap_mean_ci(a, n_resamples=n_resamples, seed=seed, method=method)
    return {
        "n": n,
        "mean": float(np.mean(a)) if n else math.nan,
        "sd": float(np.std(a, ddof=1)) if n >= 2 else math.nan,
        "median": float(np.median(a)) if n else math.nan,
        "iqm": float(stats.trim_mean(a, 0.25)) if n else math.nan,
        "ci_low": lo,
        "ci_high": hi,
    }


def welch_p(x, y) -> float:
    """Two-sided Welch t-test p-value; NaN when it is undefined (n < 2, or no variance anywhere)."""
    a, b = _clean(x), _clean(y)
    if a.size < 2 or b.size < 2:
        return math.nan
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        return math.nan
    with warnings.catch_warnings():  # near-constant samples (a saturated metric) would print scipy's
        warnings.simplefilter("ignore", RuntimeWarning)  # precision warning on the user's console
        return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def mannwhitney(x, y) -> tuple[float, float]:
    """Two-sided Mann-Whitney U test: (U of x, p-value); NaN when a sample is empty."""
    a, b = _clean(x), _clean(y)
    if a.size < 1 or b.size < 1:
        return math.nan, math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.mannwhitneyu(a, b, alternative="two-sided")
    return float(res.statistic), float(res.pvalue)


def prob_greater(x, y) -> float:
    """P(X > Y) + P(X = Y) / 2 over all pairs: the Mann-Whitney U of x divided by n_x n_y."""
    a, b = _clean(x), _clean(y)
    if a.size < 1 or b.size < 1:
        return math.nan
    u, _ = mannwhitney(a, b)
    return u / (a.size * b.size)


def prob_improvement(x, y, direction: str) -> float:
    """Probability that a random run of x beats a random run of y, given the metric's direction."""
    p = prob_greater(x, y)
    if direction == "maximize":
        return p
    if direction == "minimize":
        return 1.0 - p
    return math.nan


def holm(pvalues) -> np.ndarray:
    """Holm step-down adjusted p-values over one family (statsmodels); NaN entries are left out of it."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    valid = np.isfinite(p)
    if valid.any():
        out[valid] = multipletests(p[valid], method="holm")[1]
    return out


def pooled_sd(x, y) -> float:
    """Pooled standard deviation of two samples (the effect-size denominator of the two-sample t-test)."""
    a, b = _clean(x), _clean(y)
    if a.size < 2 or b.size < 2:
        return math.nan
    dof = a.size + b.size - 2
    return math.sqrt(((a.size - 1) * np.var(a, ddof=1) + (b.size - 1) * np.var(b, ddof=1)) / dof)


def power_two_sample(effect_size: float, n_per_arm: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided two-sample t-test with n per arm, from the noncentral t distribution."""
    df = 2 * n_per_arm - 2
    nc = abs(effect_size) * math.sqrt(n_per_arm / 2)
    crit = stats.t.isf(alpha / 2, df)
    return float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))


def seeds_needed(
    difference: float, sd: float, *, alpha: float = ALPHA, power: float = POWER, max_n: int = 10_000
) -> int | None:
    """Smallest seeds per arm at which a t-test detects ``difference`` with ``power``; None if > max_n."""
    if not (math.isfinite(difference) and math.isfinite(sd)) or sd <= 0 or difference == 0:
        return None
    d = difference / sd
    lo, hi = 2, 2
    while power_two_sample(d, hi, alpha) < power:
        if hi >= max_n:
            return None
        lo, hi = hi, min(hi * 2, max_n)
    while lo < hi:  # power grows with n: binary search the first n that reaches it
        mid = (lo + hi) // 2
        if power_two_sample(d, mid, alpha) >= power:
            hi = mid
        else:
            lo = mid + 1
    return hi


@dataclass(frozen=True)
class Comparison:
    """One arm against the control on one metric (p_holm columns are filled in across the family)."""

    arm: str
    metric: str
    direction: str
    n_arm: int
    n_control: int
    mean_arm: float
    mean_control: float
    diff: float
    ci_low: float
    ci_high: float
    p_welch: float
    p_mwu: float
    p_improve: float
    p_greater: float
    pooled_sd: float


def compare(
    x,
    control,
    *,
    arm: str,
    metric: str,
    direction: str,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    method: str = CI_METHOD,
) -> Comparison:
    """Every number the report shows for arm ``x`` vs the control on one metric, before Holm."""
    a, b = _clean(x), _clean(control)
    lo, hi = bootstrap_diff_ci(a, b, n_resamples=n_resamples, seed=seed, method=method)
    return Comparison(
        arm=arm,
        metric=metric,
        direction=direction,
        n_arm=int(a.size),
        n_control=int(b.size),
        mean_arm=float(np.mean(a)) if a.size else math.nan,
        mean_control=float(np.mean(b)) if b.size else math.nan,
        diff=float(np.mean(a) - np.mean(b)) if a.size and b.size else math.nan,
        ci_low=lo,
        ci_high=hi,
        p_welch=welch_p(a, b),
        p_mwu=mannwhitney(a, b)[1],
        p_improve=prob_improvement(a, b, direction),
        p_greater=prob_greater(a, b),
        pooled_sd=pooled_sd(a, b),
    )
