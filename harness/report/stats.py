"""Statistics for comparing arms over a few seeds (3-15): Welch t intervals and tests, TOST, an exact rank
test, planning numbers and a hierarchical bootstrap. scipy does the distributions; the formulas are short.

Why Welch t and not the percentile bootstrap: at n = 5 per arm a percentile bootstrap interval of a mean
covers about 85 % instead of 95 % (it ignores that the sd itself is estimated); the t interval is exact for
normal data and close to nominal for the skewed metrics seen here. Every helper degrades gracefully: fewer
than two values or no variance give NaN instead of an exception, and the caller says "not enough data".
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

ALPHA = 0.05  # each family's error rate (primary, secondary and exploratory metrics are separate families)
CONFIDENCE = 1 - ALPHA
POWER = 0.8  # for planning: the minimum detectable effect and the seeds needed for a margin
N_RESAMPLES = 10_000
RANK_PERMUTATIONS = 20_000  # Monte Carlo permutations when ties rule out the exact rank distribution


def _clean(x) -> np.ndarray:
    a = np.asarray(x, dtype=float).ravel()
    return a[np.isfinite(a)]


@dataclass(frozen=True)
class Welch:
    """mean(x) - mean(y), its standard error and the Welch-Satterthwaite degrees of freedom."""

    diff: float
    se: float
    df: float

    def interval(self, confidence: float) -> tuple[float, float]:
        """Two-sided Welch t interval; the point itself when neither sample varies, NaN when undefined."""
        if not math.isfinite(self.diff):
            return math.nan, math.nan
        if self.se == 0:
            return self.diff, self.diff
        half = float(stats.t.ppf(0.5 + confidence / 2, self.df)) * self.se
        return self.diff - half, self.diff + half

    def p(self) -> float:
        """Two-sided p of H0: no difference (the same t and df as the interval, so p < a <=> 0 outside the
        1 - a interval)."""
        if not (math.isfinite(self.diff) and self.se > 0):
            return math.nan
        return float(2 * stats.t.sf(abs(self.diff) / self.se, self.df))

    def tost_p(self, margin: float | None) -> float:
        """Two one-sided tests (Schuirmann 1987) of H0: |difference| >= margin; NaN without a margin.

        p < a <=> the 1 - 2a interval lies inside (-margin, +margin)."""
        if margin is None or not (math.isfinite(self.diff) and self.se > 0):
            return math.nan
        lower = stats.t.sf((self.diff + margin) / self.se, self.df)  # H0: diff <= -margin
        upper = stats.t.cdf((self.diff - margin) / self.se, self.df)  # H0: diff >= +margin
        return float(max(lower, upper))

    def mde(self, level: float, power: float = POWER) -> float:
        """Minimum detectable effect: the true difference a two-sided test at ``level`` detects with
        ``power``, for this standard error (the usual t approximation (t_{1-level/2} + t_power) * se)."""
        if not (math.isfinite(self.se) and self.se > 0):
            return math.nan
        return float((stats.t.ppf(1 - level / 2, self.df) + stats.t.ppf(power, self.df)) * self.se)


def welch(x, y) -> Welch:
    """Welch's statistics of two samples; NaN fields when a sample has fewer than two values."""
    a, b = _clean(x), _clean(y)
    if a.size < 2 or b.size < 2:
        return Welch(math.nan, math.nan, math.nan)
    va, vb = np.var(a, ddof=1) / a.size, np.var(b, ddof=1) / b.size
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1)) if se > 0 else math.inf
    return Welch(float(np.mean(a) - np.mean(b)), se, float(df))


def t_interval(x, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Student t interval of one mean; NaN for n < 2, the point itself when every value is equal."""
    a = _clean(x)
    if a.size < 2:
        return math.nan, math.nan
    se = float(np.std(a, ddof=1) / math.sqrt(a.size))
    m = float(np.mean(a))
    if se == 0:
        return m, m
    half = float(stats.t.ppf(0.5 + confidence / 2, a.size - 1)) * se
    return m - half, m + half


def failure_rate(x, threshold: float | None, direction: str) -> float:
    """Share of runs on the failing side of ``threshold`` (below it when higher is better, above it when
    lower is better); NaN without a threshold, a known direction or any value."""
    a = _clean(x)
    if threshold is None or direction not in ("maximize", "minimize") or a.size == 0:
        return math.nan
    failed = a < threshold if direction == "maximize" else a > threshold
    return float(failed.mean())


def describe(x, *, threshold: float | None = None, direction: str = "unknown") -> dict[str, float]:
    """One arm: n, mean with its 95% t interval, sd, median (beside the mean: arms can be bimodal), IQM
    (25% trimmed mean) and the failure rate against the spec's threshold."""
    a = _clean(x)
    n = int(a.size)
    lo, hi = t_interval(a)
    return {
        "n": n,
        "mean": float(np.mean(a)) if n else math.nan,
        "ci_low": lo,
        "ci_high": hi,
        "sd": float(np.std(a, ddof=1)) if n >= 2 else math.nan,
        "median": float(np.median(a)) if n else math.nan,
        "iqm": float(stats.trim_mean(a, 0.25)) if n else math.nan,
        "failure_rate": failure_rate(a, threshold, direction),
    }


def rank_p(x, y, *, seed: int = 0) -> float:
    """Two-sided Mann-Whitney U p-value from the exact null distribution (scipy's exact mode) when there are
    no ties, else from a seeded permutation test of U; NaN when a sample has fewer than two values (one seed
    per arm: no test, as for Welch; scipy's permutation test refuses such a sample)."""
    a, b = _clean(x), _clean(y)
    if a.size < 2 or b.size < 2:
        return math.nan
    both = np.concatenate([a, b])
    if np.unique(both).size == both.size:
        return float(stats.mannwhitneyu(a, b, alternative="two-sided", method="exact").pvalue)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.permutation_test(
            (a, b),
            lambda u, v, axis: stats.mannwhitneyu(u, v, axis=axis, method="asymptotic").statistic,
            permutation_type="independent",
            alternative="two-sided",
            n_resamples=RANK_PERMUTATIONS,
            vectorized=True,
            rng=np.random.default_rng(seed),
        )
    return float(res.pvalue)


def smallest_rank_p(n_x: int, n_y: int) -> float:
    """The smallest two-sided p an exact rank test of n_x vs n_y values can give: 2 / C(n_x + n_y, n_x)
    (all of one sample above all of the other). A test whose level is below this can never reject."""
    if n_x < 1 or n_y < 1:
        return math.nan
    return min(1.0, 2 / math.comb(n_x + n_y, n_x))


def prob_greater(x, y) -> float:
    """P(X > Y) + P(X = Y) / 2 over all pairs of values."""
    a, b = _clean(x), _clean(y)
    if a.size < 1 or b.size < 1:
        return math.nan
    d = a[:, None] - b[None, :]
    return float(((d > 0).sum() + 0.5 * (d == 0).sum()) / d.size)


def prob_improvement(x, y, direction: str) -> float:
    """Probability that a random run of x beats a random run of y, given the metric's direction."""
    p = prob_greater(x, y)
    return {"maximize": p, "minimize": 1.0 - p}.get(direction, math.nan)


def seeds_for_margin(
    margin: float, sd: float, level: float, *, power: float = POWER, max_n: int = 1000
) -> int | None:
    """Seeds per arm (equal arms) at which a two-sided Welch test at ``level`` detects a true difference of
    ``margin`` with ``power``, i.e. the first n whose minimum detectable effect is <= margin, for an arm sd of
    ``sd`` (from runs already done). The same n lets TOST at level/2 claim equivalence within the margin
    with about that power when the true difference is 0. None when sd or margin is unusable or n > max_n."""
    if not (math.isfinite(margin) and math.isfinite(sd)) or margin <= 0 or sd <= 0:
        return None
    for n in range(2, max_n + 1):
        se = sd * math.sqrt(2 / n)
        if Welch(0.0, se, 2 * n - 2).mde(level, power) <= margin:
            return n
    return None


def hierarchical_bootstrap(
    per_seed: list, *, n_resamples: int = N_RESAMPLES, seed: int = 0, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """Percentile CI of the grand mean when both seeds and test images vary: resample seeds with
    replacement, then each chosen seed's per-image scores with replacement (two-stage bootstrap).

    ``per_seed``: one array of per-image scores per seed. Test-set noise then shows in the interval, not
    only the spread of seed means."""
    seeds = [_clean(s) for s in per_seed]
    seeds = [s for s in seeds if s.size]
    if len(seeds) < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    k = len(seeds)
    pick = rng.integers(0, k, size=(n_resamples, k))
    total = np.zeros(n_resamples)
    for i in range(k):  # every picked seed gets its own resample of images, even when picked twice
        for j, s in enumerate(seeds):
            rows = np.flatnonzero(pick[:, i] == j)
            if rows.size:
                total[rows] += s[rng.integers(0, s.size, size=(rows.size, s.size))].mean(axis=1)
    grand = total / k
    tail = (1 - confidence) / 2
    lo, hi = np.quantile(grand, [tail, 1 - tail])
    return float(lo), float(hi)


@dataclass(frozen=True)
class Comparison:
    """One arm against a reference on one metric, unadjusted (``analyse`` adds the family's levels)."""

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
    p_rank: float
    p_improve: float
    se: float
    df: float


def compare(
    x, control, *, arm: str, metric: str, direction: str, confidence: float = CONFIDENCE
) -> Comparison:
    """Every unadjusted number for arm ``x`` vs ``control`` on one metric; the CI is Welch's."""
    a, b = _clean(x), _clean(control)
    w = welch(a, b)
    lo, hi = w.interval(confidence)
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
        p_welch=w.p(),
        p_rank=rank_p(a, b),
        p_improve=prob_improvement(a, b, direction),
        se=w.se,
        df=w.df,
    )
