"""numba-cuda twin of ``kernels/cpu/binned.py``: the binned (``thresholds=``) histogram."""

from numba import cuda

from ._jit import kernel


@kernel
def binned_histogram(scores, target, has_ignore, ignore, thresholds, hist, counts):
    """``hist[side, b] +=`` elements with exactly ``b`` thresholds ``<=`` their score (side 0 =
    positives), with integer atomics (so the counts do not depend on scheduling).
    Elements whose target equals ``ignore`` are skipped; ``counts = [n_nan, n_bad]``."""
    i = cuda.grid(1)
    if i >= scores.size:
        return
    t = target[i]
    if has_ignore and t == ignore:
        return
    s = scores[i]
    if s != s:
        cuda.atomic.add(counts, 0, 1)
        return
    if t == 1:
        side = 0
    elif t == 0:
        side = 1
    else:
        cuda.atomic.add(counts, 1, 1)
        return
    lo = 0
    hi = thresholds.size
    while lo < hi:  # first threshold > s
        mid = (lo + hi) // 2
        if thresholds[mid] <= s:
            lo = mid + 1
        else:
            hi = mid
    cuda.atomic.add(hist, (side, lo), 1)


@kernel
def add_into(dst, src):
    """``dst += src`` elementwise (merging two device states)."""
    i = cuda.grid(1)
    if i < dst.size:
        dst[i] += src[i]
