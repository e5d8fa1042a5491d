"""numba-cuda twin of ``kernels/cpu/binned.py`` (work in progress, issue 5; not wired yet)."""

import numpy as np
from numba import cuda


@cuda.jit
def binned_histogram(scores, target, thresholds, hist, counts):
    """``hist[side, b] +=`` elements with exactly ``b`` thresholds ``<=`` their score (side 0 =
    positives), with integer atomics (so the counts do not depend on scheduling).
    ``counts = [n_nan, n_bad]``."""
    i = cuda.grid(1)
    if i >= scores.size:
        return
    s = np.float64(scores[i])
    if s != s:
        cuda.atomic.add(counts, 0, 1)
        return
    t = target[i]
    if t == 1:
        side = 0
    elif t == 0:
        side = 1
    else:
        cuda.atomic.add(counts, 1, 1)
        return
    lo = 0
    hi = thresholds.size
    while lo < hi:
        mid = (lo + hi) // 2
        if thresholds[mid] <= s:
            lo = mid + 1
        else:
            hi = mid
    cuda.atomic.add(hist, (side, lo), 1)
