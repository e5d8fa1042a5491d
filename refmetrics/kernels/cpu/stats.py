"""Numba CPU kernels for score statistics (MinMax, AnomalyScoreDistribution)."""

import numpy as np
from numba import njit

from ._sum import neumaier


@njit(cache=True, nogil=True)
def min_max_nan(values):
    """``(min, max, n_nan)`` of ``values`` as float64, NaNs skipped, -0.0 read as 0.0.

    An empty or all-NaN input gives ``(inf, -inf, n_nan)``.
    """
    lo = np.inf
    hi = -np.inf
    nan = 0
    for i in range(values.size):
        v = np.float64(values[i])
        if v != v:
            nan += 1
            continue
        if v < lo:
            lo = v
        if v > hi:
            hi = v
    return lo + 0.0, hi + 0.0, nan


@njit(cache=True, nogil=True)
def column_mean_std(sorted_columns, mean, std):
    """Mean and unbiased (ddof=1) standard deviation of every column.

    ``sorted_columns`` is ``(n, m)`` with each column sorted, so that the
    compensated sums see the values in an order fixed by the multiset alone and
    the result is independent of how the rows arrived. ``n == 1`` gives std NaN.
    """
    n = sorted_columns.shape[0]
    for j in range(sorted_columns.shape[1]):
        s = 0.0
        c = 0.0
        plain = 0.0
        for i in range(n):
            s, c = neumaier(s, c, sorted_columns[i, j])
            plain += sorted_columns[i, j]
        if np.isfinite(plain):
            mu = (s + c) / n
        else:  # +-inf or NaN terms: the compensation is meaningless, keep IEEE semantics
            mu = plain / n
        s = 0.0
        c = 0.0
        for i in range(n):
            d = sorted_columns[i, j] - mu
            s, c = neumaier(s, c, d * d)
        mean[j] = mu
        if n > 1:
            std[j] = np.sqrt((s + c) / (n - 1))
        else:
            std[j] = np.nan
