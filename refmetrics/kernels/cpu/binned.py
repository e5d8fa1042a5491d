"""Numba CPU kernels for the binned (``thresholds=``) mode of the curve metrics."""

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def binned_histogram(scores, target, has_ignore, ignore, thresholds, hist):
    """Count elements per threshold bin, split by label.

    ``thresholds`` ascending (float64). ``hist[side, b]`` (side 0 = positives)
    counts the elements with exactly ``b`` thresholds ``<=`` their score, so an
    element is predicted positive at ``thresholds[k]`` iff it lies in a bin
    ``b > k`` (the comparison ``score >= threshold``). Returns
    ``(n_nan, n_bad_label)``.
    """
    nan = 0
    bad = 0
    nt = thresholds.size
    for i in range(scores.size):
        t = target[i]
        if has_ignore and t == ignore:
            continue
        s = np.float64(scores[i])
        if s != s:
            nan += 1
            continue
        if t == 1:
            side = 0
        elif t == 0:
            side = 1
        else:
            bad += 1
            continue
        lo = 0
        hi = nt
        while lo < hi:  # first threshold > s
            mid = (lo + hi) >> 1
            if thresholds[mid] <= s:
                lo = mid + 1
            else:
                hi = mid
        hist[side, lo] += 1
    return nan, bad
