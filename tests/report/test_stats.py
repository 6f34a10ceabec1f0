"""The reports' statistical tests, against SciPy where it is installed (it comes with
scikit-learn) and against values worked out by hand."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from neuroprune.report.stats import permutation_test, welch


def _welch_by_hand(a, b):
    """t and Welch-Satterthwaite degrees of freedom, from the textbook formulas."""
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    t = (statistics.mean(a) - statistics.mean(b)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return t, df


def test_welch_matches_the_t_distribution_at_the_hand_computed_statistic():
    stats = pytest.importorskip("scipy.stats")
    a, b = [1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 4.0, 6.0, 8.0, 10.0]
    t, df = _welch_by_hand(a, b)
    # means 3 and 6, variances 2.5 and 10: t = -3 / sqrt(0.5 + 2), df = 6.25 / (1/16 + 1)
    assert t == pytest.approx(-3 / math.sqrt(2.5))
    assert df == pytest.approx(6.25 / 1.0625)
    assert welch(a, b) == pytest.approx(2 * stats.t.sf(abs(t), df), rel=1e-12)
    assert welch(b, a) == pytest.approx(welch(a, b), rel=1e-12)  # two-sided


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_welch_matches_scipy_on_unequal_sizes_and_spreads(seed):
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(seed)
    a, b = list(rng.normal(0.9, 0.01, 4)), list(rng.normal(0.91, 0.05, 7))
    assert welch(a, b) == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue,
                                        rel=1e-10)


def test_welch_without_enough_values_or_spread():
    assert welch([0.9], [0.8, 0.7]) is None  # one value: no variance
    assert welch([0.9, 0.9], [0.9, 0.9]) is None  # no spread, same mean: nothing to test
    assert welch([0.9, 0.9], [0.8, 0.8]) == 0.0  # no spread, different means: certain


def test_permutation_test_exact_by_hand():
    # 2 against 2: the 6 splits of {1, 2, 3, 4} give |median difference| 2, 1, 0, 0, 1, 2;
    # observed ({1, 2} against {3, 4}) is 2: 2 of the 6 are as extreme
    assert permutation_test([1, 2], [3, 4]) == pytest.approx(2 / 6)
    assert permutation_test([1, 4], [2, 3]) == 1.0  # difference 0: every split is as extreme
    # 5 against 5, medians ignore the outer values: 12 of the 252 splits are as extreme
    assert permutation_test([0.90, 0.91, 0.92, 0.93, 0.94],
                            [0.80, 0.81, 0.82, 0.83, 0.84]) == pytest.approx(12 / 252)


def test_permutation_test_exact_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.0, 1.0, 6), rng.normal(0.8, 1.0, 5)

    def statistic(x, y):
        return abs(np.median(x) - np.median(y))

    ref = stats.permutation_test((a, b), statistic, permutation_type="independent",
                                 alternative="greater", n_resamples=np.inf).pvalue
    assert permutation_test(a, b) == pytest.approx(ref, rel=1e-12)


def test_permutation_test_sampled_when_there_are_too_many_splits():
    rng = np.random.default_rng(4)
    a, b = rng.normal(0.0, 1.0, 15), rng.normal(1.5, 1.0, 15)
    assert math.comb(30, 15) > 20_000  # sampled, not enumerated
    p = permutation_test(a, b, rounds=2000, seed=0)
    assert p == permutation_test(a, b, rounds=2000, seed=0)  # fixed by the seed
    assert 1 / 2001 <= p < 0.05  # never 0; a shift of 1.5 sd over 15 values is seen
    stats = pytest.importorskip("scipy.stats")
    ref = stats.permutation_test((a, b), lambda x, y: abs(np.median(x) - np.median(y)),
                                 permutation_type="independent", alternative="greater",
                                 n_resamples=20_000, random_state=1).pvalue
    assert p == pytest.approx(ref, abs=0.01)
    same = permutation_test(a, a + rng.normal(0.0, 1e-3, 15), rounds=500)
    assert same > 0.5  # no difference: most relabellings are as extreme
