"""harness.report.stats against independent computations: statsmodels (Welch intervals, TOST, t intervals),
scipy's exact Mann-Whitney mode, and brute force."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW, ttost_ind

from harness.report import stats

X = np.array([0.612, 0.587, 0.655, 0.598, 0.634])  # five seeds of an arm
Y = np.array([0.521, 0.553, 0.498, 0.571, 0.489, 0.533])  # six seeds of the control
TIES = np.array([0.5, 0.5, 0.6, 0.7])


@pytest.mark.parametrize("confidence", [0.95, 0.99, 1 - 0.05 / 6, 0.9999])
def test_welch_interval_and_p_match_statsmodels(confidence) -> None:
    cm = CompareMeans(DescrStatsW(X), DescrStatsW(Y))
    w = stats.welch(X, Y)
    ref = cm.tconfint_diff(alpha=1 - confidence, usevar="unequal")
    np.testing.assert_allclose(w.interval(confidence), ref, rtol=1e-12)
    _, p, df = cm.ttest_ind(usevar="unequal")
    assert w.p() == pytest.approx(p, rel=1e-12) and w.df == pytest.approx(df, rel=1e-12)
    assert w.p() == pytest.approx(sps.ttest_ind(X, Y, equal_var=False).pvalue, rel=1e-12)
    lo, hi = w.interval(1 - w.p())  # the interval at 1 - p just touches 0: p and interval agree exactly
    assert min(abs(lo), abs(hi)) < 1e-12


@pytest.mark.parametrize("margin", [0.05, 0.08, 0.12, 0.2])
def test_tost_matches_statsmodels(margin) -> None:
    ref, _, _ = ttost_ind(X, Y, -margin, margin, usevar="unequal")
    w = stats.welch(X, Y)
    assert w.tost_p(margin) == pytest.approx(ref, rel=1e-10)
    # TOST at level a <=> the 1 - 2a interval lies inside the margin
    for a in (0.01, 0.025, 0.05):
        lo, hi = w.interval(1 - 2 * a)
        assert (w.tost_p(margin) < a) == (-margin < lo and hi < margin)
    assert math.isnan(w.tost_p(None))


def test_mean_interval_matches_statsmodels() -> None:
    np.testing.assert_allclose(stats.t_interval(X), DescrStatsW(X).tconfint_mean(0.05), rtol=1e-12)
    d = stats.describe(X)
    assert d["n"] == 5 and d["mean"] == X.mean() and d["sd"] == X.std(ddof=1) and d["median"] == np.median(X)
    assert d["iqm"] == sps.trim_mean(X, 0.25) and (d["ci_low"], d["ci_high"]) == stats.t_interval(X)


def test_rank_test_is_scipys_exact_mode_and_its_floor() -> None:
    for a, b in ((X, Y), (X[:3], Y[:4]), (X, Y + 0.1001)):
        exact = sps.mannwhitneyu(a, b, alternative="two-sided", method="exact").pvalue
        assert stats.rank_p(a, b) == exact
    # all of one sample above the other: the smallest p an exact 5-vs-5 test can give, 2 / C(10, 5)
    assert stats.rank_p(X, X - 1) == pytest.approx(stats.smallest_rank_p(5, 5), rel=1e-12)
    assert stats.smallest_rank_p(5, 5) == pytest.approx(2 / 252)
    # with ties the exact distribution does not apply: a permutation test of U, close to full enumeration
    a, b = TIES, np.array([0.45, 0.5, 0.55, 0.5])
    pooled = np.concatenate([a, b])
    u0 = sps.mannwhitneyu(a, b).statistic
    us = []
    for idx in itertools.combinations(range(8), 4):
        rest = [i for i in range(8) if i not in idx]
        us.append(sps.mannwhitneyu(pooled[list(idx)], pooled[rest]).statistic)
    us = np.array(us)
    centre = len(a) * len(b) / 2
    full = np.mean(np.abs(us - centre) >= abs(u0 - centre) - 1e-12)
    assert stats.rank_p(a, b) == pytest.approx(full, abs=0.02)


def test_probability_of_improvement_is_the_pairwise_count() -> None:
    for a, b in ((X, Y), (TIES, TIES[::-1] + 0.05), (TIES, TIES)):
        pairs = np.mean([(x > y) + 0.5 * (x == y) for x in a for y in b])
        assert stats.prob_greater(a, b) == pytest.approx(pairs, abs=1e-12)
        assert stats.prob_improvement(a, b, "maximize") == pytest.approx(pairs, abs=1e-12)
        assert stats.prob_improvement(a, b, "minimize") == pytest.approx(1 - pairs, abs=1e-12)
    assert math.isnan(stats.prob_improvement(X, Y, "unknown"))


def test_mde_and_seeds_for_margin_follow_their_definition() -> None:
    w = stats.welch(X, Y)
    expected = (sps.t.ppf(1 - 0.01 / 2, w.df) + sps.t.ppf(0.8, w.df)) * w.se
    assert w.mde(0.01) == pytest.approx(expected, rel=1e-12)
    n = stats.seeds_for_margin(1.0, 1.0, 0.05)
    assert stats.Welch(0, math.sqrt(2 / n), 2 * n - 2).mde(0.05) <= 1.0
    assert stats.Welch(0, math.sqrt(2 / (n - 1)), 2 * n - 4).mde(0.05) > 1.0
    assert n == 17  # the textbook 16-17 per arm for d = 1 at 80% power
    assert stats.seeds_for_margin(0.0, 1.0, 0.05) is None
    assert stats.seeds_for_margin(1.0, math.nan, 0.05) is None


def test_failure_rate_by_direction() -> None:
    v = [1.02, 1.07, 0.55, 1.03, 0.38]  # a bimodal arm: the median tells what the mean hides
    assert stats.failure_rate(v, 0.8, "maximize") == 0.4
    assert stats.failure_rate(v, 1.05, "minimize") == 0.2
    assert math.isnan(stats.failure_rate(v, None, "maximize"))
    assert stats.describe(v, threshold=0.8, direction="maximize")["failure_rate"] == 0.4


def test_hierarchical_bootstrap_widens_with_image_noise() -> None:
    rng = np.random.default_rng(0)
    seed_means = rng.normal(0, 0.1, 8)
    quiet = [m + rng.normal(0, 0.01, 50) for m in seed_means]
    noisy = [m + rng.normal(0, 1.0, 50) for m in seed_means]
    lo_q, hi_q = stats.hierarchical_bootstrap(quiet, n_resamples=4000)
    lo_n, hi_n = stats.hierarchical_bootstrap(noisy, n_resamples=4000)
    assert lo_q < np.mean([q.mean() for q in quiet]) < hi_q
    assert hi_n - lo_n > 1.3 * (hi_q - lo_q)  # test-image noise shows in the interval
    assert all(math.isnan(v) for v in stats.hierarchical_bootstrap([np.ones(3)]))  # one seed: no interval


def test_small_and_degenerate_samples_give_nan_not_errors() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning / DegenerateDataWarning leaks into the report
        one = stats.describe([0.4])
        assert one["n"] == 1 and one["mean"] == 0.4 and math.isnan(one["sd"]) and math.isnan(one["ci_low"])
        empty = stats.describe([])
        assert empty["n"] == 0 and math.isnan(empty["mean"]) and math.isnan(empty["iqm"])
        flat = stats.describe([0.3, 0.3, 0.3])
        assert flat["sd"] == 0 and (flat["ci_low"], flat["ci_high"]) == (0.3, 0.3)
        assert stats.welch([1, 1, 1], [0.5, 0.5]).interval(0.95) == (0.5, 0.5)
        assert math.isnan(stats.welch([1, 1, 1], [0.5, 0.5]).p())
        assert math.isnan(stats.welch([1.0], Y).p()) and math.isnan(stats.welch([1.0], Y).interval(0.95)[0])
        c = stats.compare([], Y, arm="a", metric="m", direction="maximize")
        assert c.n_arm == 0 and math.isnan(c.diff) and math.isnan(c.p_welch) and math.isnan(c.p_improve)
        assert stats.describe([0.1, math.nan, 0.3])["n"] == 2  # NaN (metric not available) is not a value
