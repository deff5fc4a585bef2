"""harness.report.stats against independent computations (scipy.stats called directly, statsmodels, Holm's
definition)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestIndPower

from harness.report import stats

X = np.array([0.612, 0.587, 0.655, 0.598, 0.634])  # five seeds of an arm
Y = np.array([0.521, 0.553, 0.498, 0.571, 0.489, 0.533])  # six seeds of the control
TIES = np.array([0.5, 0.5, 0.6, 0.7])


def test_mean_ci_is_scipys_percentile_bootstrap() -> None:
    ref = sps.bootstrap((X,), np.mean, n_resamples=10_000, method="percentile", rng=np.random.default_rng(7))
    assert stats.bootstrap_mean_ci(X, seed=7) == (ref.confidence_interval.low, ref.confidence_interval.high)
    bca = sps.bootstrap((X,), np.mean, n_resamples=10_000, method="BCa", rng=np.random.default_rng(7))
    got = stats.bootstrap_mean_ci(X, seed=7, method="BCa")
    assert got == (bca.confidence_interval.low, bca.confidence_interval.high)


def test_diff_ci_is_scipys_two_sample_bootstrap() -> None:
    def diff(a, b, axis):
        return a.mean(axis=axis) - b.mean(axis=axis)

    ref = sps.bootstrap(
        (X, Y), diff, n_resamples=10_000, method="percentile", paired=False, rng=np.random.default_rng(0)
    )
    lo, hi = stats.bootstrap_diff_ci(X, Y)
    assert (lo, hi) == (ref.confidence_interval.low, ref.confidence_interval.high)
    assert lo < X.mean() - Y.mean() < hi


def test_tests_and_probability_of_improvement() -> None:
    assert stats.welch_p(X, Y) == sps.ttest_ind(X, Y, equal_var=False).pvalue
    assert stats.mannwhitney(X, Y)[1] == sps.mannwhitneyu(X, Y, alternative="two-sided").pvalue
    for a, b in ((X, Y), (TIES, TIES[::-1] + 0.05), (TIES, TIES)):
        pairs = np.mean([(x > y) + 0.5 * (x == y) for x in a for y in b])  # brute force over all pairs
        assert stats.prob_greater(a, b) == pytest.approx(pairs, abs=1e-12)
        assert stats.prob_improvement(a, b, "maximize") == pytest.approx(pairs, abs=1e-12)
        assert stats.prob_improvement(a, b, "minimize") == pytest.approx(1 - pairs, abs=1e-12)
    assert math.isnan(stats.prob_improvement(X, Y, "unknown"))


@pytest.mark.parametrize(
    "p",
    [
        [0.01, 0.04, 0.03, 0.005, 0.2],
        [0.001, 0.001, 0.5, 0.049, 0.0125, 0.9, 0.02],  # ties, and raw * m > 1
        [0.3],
        np.random.default_rng(3).uniform(0, 0.1, 40).tolist(),
    ],
)
def test_holm_equals_its_definition(p) -> None:
    """Holm's step-down written out: k-th smallest of m p-values times (m - k), running max, capped at 1."""
    m, order = len(p), np.argsort(p, kind="stable")
    ref = np.empty(m)
    ref[order] = np.minimum(np.maximum.accumulate((m - np.arange(m)) * np.asarray(p)[order]), 1.0)
    np.testing.assert_allclose(stats.holm(p), ref, rtol=0, atol=1e-12)


def test_holm_leaves_nan_out_of_the_family() -> None:
    p = [0.01, math.nan, 0.03, 0.2, math.nan]
    got = stats.holm(p)
    assert np.isnan(got[[1, 4]]).all()
    np.testing.assert_allclose(got[[0, 2, 3]], multipletests([0.01, 0.03, 0.2], method="holm")[1], atol=1e-12)
    assert np.isnan(stats.holm([math.nan])).all()


def test_power_and_seeds_needed_agree_with_statsmodels() -> None:
    power = TTestIndPower()
    for d in (0.3, 0.8, 1.5, -0.8):
        for n in (3, 5, 10, 40):
            assert stats.power_two_sample(d, n) == pytest.approx(
                power.power(abs(d), nobs1=n, alpha=0.05), abs=1e-10
            )
        need = math.ceil(power.solve_power(effect_size=abs(d), alpha=0.05, power=0.8))
        assert stats.seeds_needed(d * 0.02, 0.02) == max(2, need)
    assert stats.seeds_needed(0.0, 0.1) is None  # no difference: no number of seeds detects it
    assert stats.seeds_needed(1e-6, 1.0) is None  # beyond max_n
    assert stats.pooled_sd(X, Y) == pytest.approx(
        math.sqrt(((len(X) - 1) * X.var(ddof=1) + (len(Y) - 1) * Y.var(ddof=1)) / (len(X) + len(Y) - 2))
    )


def test_describe_matches_numpy_and_scipy() -> None:
    d = stats.describe(X)
    assert d["n"] == 5 and d["mean"] == X.mean() and d["sd"] == X.std(ddof=1) and d["median"] == np.median(X)
    assert d["iqm"] == sps.trim_mean(X, 0.25)
    assert (d["ci_low"], d["ci_high"]) == stats.bootstrap_mean_ci(X)


def test_small_and_degenerate_samples_give_nan_not_errors() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning / DegenerateDataWarning leaks into the report
        one = stats.describe([0.4])
        assert one["n"] == 1 and one["mean"] == 0.4 and math.isnan(one["sd"]) and math.isnan(one["ci_low"])
        empty = stats.describe([])
        assert empty["n"] == 0 and math.isnan(empty["mean"]) and math.isnan(empty["iqm"])
        flat = stats.describe([0.3, 0.3, 0.3])
        assert flat["sd"] == 0 and (flat["ci_low"], flat["ci_high"]) == (0.3, 0.3)
        assert stats.bootstrap_diff_ci([1, 1, 1], [0.5, 0.5]) == (0.5, 0.5)
        assert math.isnan(stats.welch_p([1, 1, 1], [0.5, 0.5]))
        assert math.isnan(stats.welch_p([1.0], Y)) and math.isnan(stats.bootstrap_diff_ci([1.0], Y)[0])
        c = stats.compare([], Y, arm="a", metric="m", direction="maximize")
        assert c.n_arm == 0 and math.isnan(c.diff) and math.isnan(c.p_welch) and math.isnan(c.p_improve)
        assert stats.describe([0.1, math.nan, 0.3])["n"] == 2  # NaN (metric not available) is not a value
