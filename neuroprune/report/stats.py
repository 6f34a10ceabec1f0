"""The statistical tests of the reports: Welch's t-test on means (comparison tables) and a
permutation test on medians (replicated activation searches)."""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence

import numpy as np

EXACT_LIMIT = 20_000


def welch(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided p-value of Welch's t-test (unequal variances); None with fewer than two
    values on a side or no spread at all."""
    if len(a) < 2 or len(b) < 2:
        return None
    if statistics.pvariance(a) == 0 and statistics.pvariance(b) == 0:
        return None if statistics.mean(a) == statistics.mean(b) else 0.0
    from scipy import stats  # installed with scikit-learn; imported only when a table has a test

    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def permutation_test(a: Sequence[float], b: Sequence[float], rounds: int = 10_000,
                     seed: int = 0) -> float:
    """Two-sided p-value of ``median(a) - median(b)`` under exchangeable labels: every
    relabelling when there are at most 20,000 of them, else ``rounds`` random ones (and the
    observed labelling counted once, so that p is never 0)."""
    a, b = [float(v) for v in a], [float(v) for v in b]
    pooled, n = np.array(a + b), len(a)
    observed = abs(statistics.median(a) - statistics.median(b))
    if math.comb(len(pooled), n) <= EXACT_LIMIT:
        hits = total = 0
        for idx in itertools.combinations(range(len(pooled)), n):
            mask = np.zeros(len(pooled), bool)
            mask[list(idx)] = True
            total += 1
            hits += abs(np.median(pooled[mask]) - np.median(pooled[~mask])) >= observed - 1e-12
        return hits / total
    rng = np.random.default_rng(seed)
    hits = 1
    for _ in range(rounds):
        perm = rng.permutation(pooled)
        hits += abs(np.median(perm[:n]) - np.median(perm[n:])) >= observed - 1e-12
    return hits / (rounds + 1)
