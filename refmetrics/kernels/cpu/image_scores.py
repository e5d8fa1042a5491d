"""Numba CPU kernels for image scores derived from maps: max, top-k mean, pooled max.

Every kernel takes the maps as a ``(B, n)`` or ``(B, H, W)`` float32/float64
array and writes one float64 per image. The arithmetic is fixed (which values
are added, in which order, with which compensation), so the CUDA twins in
``kernels/cuda/image_scores.py`` (built from the same Python source where the
code is shared) give bit-identical results. Kernels never validate and never
raise: NaN counts are returned for the caller to report.
"""

import math

import numpy as np
from numba import njit

from ._sum import add_dd, neumaier, two_sum


@njit(cache=True, nogil=True)
def row_max(values, out):
    """``out[b] = max(values[b])`` as float64 (-0.0 read as 0.0); returns the number of NaNs."""
    nan = 0
    for b in range(values.shape[0]):
        hi = -np.inf
        for i in range(values.shape[1]):
            v = np.float64(values[b, i])
            if v != v:
                nan += 1
            elif v > hi:
                hi = v
        out[b] = hi + 0.0
    return nan


@njit(cache=True, nogil=True, inline="always")
def ascending_mean(values, start, stop):
    """Mean of ``values[start:stop]`` (sorted ascending, float64): Neumaier's compensated sum
    taken in that order, then ``(sum + compensation) / count``. With an infinite value the
    compensation is meaningless and the plain IEEE sum is used (+inf, -inf, or NaN for both)."""
    s = 0.0
    c = 0.0
    plain = 0.0
    for i in range(start, stop):
        x = np.float64(values[i])
        s, c = neumaier(s, c, x)
        plain += x
    count = np.float64(stop - start)
    if math.isfinite(plain):
        return (s + c) / count
    return plain / count


@njit(cache=True, nogil=True)
def top_k_means(sorted_rows, k, out):
    """``out[b]`` = mean of the ``k`` largest values of row ``b`` of ``sorted_rows`` (each row
    sorted ascending): :func:`ascending_mean` over its last ``k`` entries."""
    n = sorted_rows.shape[1]
    for b in range(sorted_rows.shape[0]):
        out[b] = ascending_mean(sorted_rows[b], n - k, n)


@njit(cache=True, nogil=True, inline="always")
def window_row_sum(maps, b, y, x, kernel):
    """``(hi, lo, plain)``: ``maps[b, y, x:x+kernel]`` summed left to right as a double-double
    (Neumaier's sum, then ``two_sum`` of sum and compensation: ``hi + lo`` carries it without
    a rounding), and as a plain float64 sum (used instead when it is not finite)."""
    s = 0.0
    c = 0.0
    plain = 0.0
    for j in range(kernel):
        v = np.float64(maps[b, y, x + j])
        s, c = neumaier(s, c, v)
        plain += v
    hi, lo = two_sum(s, c)
    return hi, lo, plain


@njit(cache=True, nogil=True, inline="always")
def window_mean(row_hi, row_lo, row_plain, b, y, x, kernel):
    """Mean of the ``kernel x kernel`` window with top-left corner ``(y, x)`` from its row sums
    (``row_*[b, y + i, x]``, i = 0..kernel-1): the double-double row sums added top to bottom
    (``add_dd``), the total rounded to float64 (its high part) and divided by ``kernel**2``.
    Only additions and one division: no product that a GPU compiler could fuse into an FMA, so
    the CUDA twin gives the same bits. When any row sum is not finite the plain sums are added
    instead (IEEE: +inf, -inf or NaN)."""
    hi = 0.0
    lo = 0.0
    plain = 0.0
    for i in range(kernel):
        hi, lo = add_dd(hi, lo, row_hi[b, y + i, x], row_lo[b, y + i, x])
        plain += row_plain[b, y + i, x]
    area = np.float64(kernel * kernel)
    if math.isfinite(plain):
        return hi / area
    return plain / area


@njit(cache=True, nogil=True)
def window_rows(maps, kernel, row_hi, row_lo, row_plain):
    """The horizontal pass: every ``1 x kernel`` row sum of every map (``(B, H, W-kernel+1)``)."""
    for b in range(maps.shape[0]):
        for y in range(maps.shape[1]):
            for x in range(row_hi.shape[2]):
                hi, lo, plain = window_row_sum(maps, b, y, x, kernel)
                row_hi[b, y, x] = hi
                row_lo[b, y, x] = lo
                row_plain[b, y, x] = plain


@njit(cache=True, nogil=True)
def pooled_max(maps, kernel, out):
    """``out[b]`` = the largest ``kernel x kernel`` (stride 1, no padding) window mean of map
    ``b`` (``(B, H, W)``). A NaN window mean (a window holding both +inf and -inf) makes the
    image's result NaN, as ``max`` propagates NaN. Returns the number of NaN window means.

    The row sums are computed once per map (``window_rows``) and shared by the ``kernel``
    windows that contain them: ``2 * kernel`` compensated additions per window.
    """
    B, H, W = maps.shape
    ow = W - kernel + 1
    oh = H - kernel + 1
    row_hi = np.empty((1, H, ow))
    row_lo = np.empty((1, H, ow))
    row_plain = np.empty((1, H, ow))
    nan = 0
    for b in range(B):
        window_rows(maps[b:b + 1], kernel, row_hi, row_lo, row_plain)
        best = -np.inf
        bad = False
        for y in range(oh):
            for x in range(ow):
                m = window_mean(row_hi, row_lo, row_plain, 0, y, x, kernel)
                if m != m:
                    bad = True
                    nan += 1
                elif m > best:
                    best = m
        out[b] = np.nan if bad else best + 0.0
    return nan
