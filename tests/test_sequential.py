"""The --until-decided procedure (harness.report.sequential) in simulation: seeds added in batches until every
comparison is decided keep the family-wise error and the intervals' coverage, and stop early on clear effects.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.report import sequential
from harness.report.stats import welch

ARMS, START, MAX, MARGIN = 3, 5, 15, 1.0  # three arms vs one control, looks at 5, 10, 15 seeds per arm


def _experiment(data: np.ndarray, truth: np.ndarray) -> tuple[int, list[str], bool]:
    """One sequential experiment on data[arm, seed] (row 0 = control): (seeds used, verdicts, covered)."""
    for n in sequential.schedule(START, MAX):
        lvl = sequential.level(n, ARMS, start=START, max_seeds=MAX)
        decisions = [
            sequential.decide(welch(data[a, :n], data[0, :n]), lvl, MARGIN, "maximize")
            for a in range(1, ARMS + 1)
        ]
        verdicts = [d.verdict for d in decisions]
        if sequential.all_decided(verdicts) or n == MAX:
            covered = all(d.low <= t <= d.high for d, t in zip(decisions, truth, strict=True))
            return n, verdicts, covered
    raise AssertionError("the schedule ends at MAX")


def _simulate(effects: list[float], runs: int, seed: int) -> tuple[np.ndarray, list[list[str]], np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = np.asarray(effects, dtype=float)
    shift = np.concatenate([[0.0], truth])[:, None]
    out = [_experiment(rng.standard_normal((ARMS + 1, MAX)) + shift, truth) for _ in range(runs)]
    return np.array([o[0] for o in out]), [o[1] for o in out], np.array([o[2] for o in out])


def test_boundaries_spend_exactly_alpha_under_brownian_motion() -> None:
    t = np.array([0.2, 0.4, 0.6, 0.8, 1.0])
    crit = sequential.boundaries(t, 0.05)
    assert crit[0] == pytest.approx(1.959964 / np.sqrt(0.2), rel=1e-6)  # the first look spends alpha(t1)
    assert np.all(np.diff(crit) < 0) and crit[-1] > 1.959964
    rng = np.random.default_rng(3)
    z = (rng.standard_normal((200_000, t.size)) * np.sqrt(np.diff(t, prepend=0))).cumsum(1) / np.sqrt(t)
    crossed = np.abs(z) >= crit
    assert crossed.any(axis=1).mean() == pytest.approx(0.05, abs=0.002)
    spent = sequential.spent(t, 0.05)
    first = crossed.argmax(axis=1)[crossed.any(axis=1)]
    np.testing.assert_allclose(np.bincount(first, minlength=t.size).cumsum() / len(z), spent, atol=0.002)
    assert sequential.boundaries([1.0], 0.05)[0] == pytest.approx(1.959964, rel=1e-6)


def test_one_look_is_bonferroni() -> None:
    assert sequential.level(5, 4, start=5, max_seeds=None) == pytest.approx(0.05 / 4, rel=1e-9)
    assert sequential.looks(12, 5, 15) == [5 / 15, 10 / 15, 12 / 15]
    assert sequential.schedule(5, 15) == [5, 10, 15] and sequential.schedule(5, None) == [5]


def test_verdicts_read_off_one_interval() -> None:
    v = sequential.verdict
    assert v(0.1, 0.5, None, "maximize") == "better" and v(0.1, 0.5, None, "minimize") == "worse"
    assert v(-0.5, -0.1, 1.0, "maximize") == "worse" and v(0.1, 0.5, None, "unknown") == "differs"
    assert v(-0.2, 0.3, 0.5, "maximize") == "equivalent"
    assert v(-0.2, 0.3, None, "maximize") == "inconclusive"  # no declared margin: never equivalent
    assert v(-0.2, 0.6, 0.5, "maximize") == "inconclusive"


def test_null_keeps_familywise_error_and_coverage() -> None:
    """2,000 experiments where no arm differs: a false better/worse in at most 5 % of them, and all three
    intervals cover the truth (0) together in at least 94 %."""
    seeds, verdicts, covered = _simulate([0.0, 0.0, 0.0], 2000, seed=11)
    false = np.mean([any(v in ("better", "worse") for v in vs) for vs in verdicts])
    assert false <= 0.05
    assert covered.mean() >= 0.94
    assert seeds.max() == MAX  # undecided experiments ran to the maximum


def test_equivalence_claims_keep_their_error_at_the_margin() -> None:
    """Arms exactly one margin away: calling them equivalent is the error, in at most 5 % of experiments."""
    _, verdicts, covered = _simulate([MARGIN, -MARGIN, MARGIN], 2000, seed=12)
    assert np.mean([any(v == "equivalent" for v in vs) for vs in verdicts]) <= 0.05
    assert covered.mean() >= 0.94


def test_stops_early_under_a_clear_effect() -> None:
    seeds, verdicts, covered = _simulate([3.0, -3.0, 3.0], 500, seed=13)
    assert np.mean(seeds < MAX) >= 0.9  # most experiments stop at 10 seeds per arm, not 15
    assert all(vs == ["better", "worse", "better"] for vs, n in zip(verdicts, seeds, strict=True) if n < MAX)
    assert covered.mean() >= 0.94
