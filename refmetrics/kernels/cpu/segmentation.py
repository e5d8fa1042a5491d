"""Numba CPU kernels for segmentation scores at a threshold and the validation threshold.

- ``threshold_counts``: per-row TP, FP, FN, TN of ``score >= cut`` (the driver turns
  ``score > threshold`` / ``score >= threshold`` into one float64 ``cut``, as the CUDA
  twin compares with the same ``cut``).
- ``moment_buckets``: the exact sum and sum of squares of float values as integers per
  power of two (an order-free, exact accumulator: see the function).
"""

import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def threshold_counts(preds, target, has_ignore, ignore, cut, out):
    """``out[r] += [tp, fp, fn, tn]`` of ``pred >= cut`` for the ``(rows, m)`` inputs; returns
    ``(n_bad_labels, n_nan)``. A NaN ``cut`` predicts nothing positive."""
    bad = 0
    nan = 0
    for r in range(preds.shape[0]):
        tp = 0
        fp = 0
        fn = 0
        tn = 0
        for i in range(preds.shape[1]):
            t = target[r, i]
            if has_ignore and t == ignore:
                continue
            x = np.float64(preds[r, i])
            if x != x:
                nan += 1
                continue
            positive = x >= cut
            if t == 1:
                if positive:
                    tp += 1
                else:
                    fn += 1
            elif t == 0:
                if positive:
                    fp += 1
                else:
                    tn += 1
            else:
                bad += 1
        out[r, 0] += tp
        out[r, 1] += fp
        out[r, 2] += fn
        out[r, 3] += tn
    return bad, nan


# Exact moments. A finite float64 x != 0 is M * 2**E with M = frexp's mantissa * 2**53 an integer,
# |M| < 2**53, and E = frexp's exponent - 53 in [-1126, 971] (subnormals included). M is split in
# chunks of 18 bits, M = a * 2**36 + b * 2**18 + c, so that
#   x   = a 2**(E+36) + b 2**(E+18) + c 2**E
#   x^2 = a^2 2**(2E+72) + 2ab 2**(2E+54) + (2ac + b^2) 2**(2E+36) + 2bc 2**(2E+18) + c^2 2**(2E)
# with every coefficient below 2**37 in magnitude: added into int64 buckets indexed by the power of two,
# 2**26 values can go into one bucket before it could overflow; the driver calls the kernel on at most
# MAX_CHUNK values at a time and adds the buckets up as Python integers. Integer sums do not depend on the
# order of the values: the moments are exact and any batching gives the same buckets.
SUM_OFFSET = 1126  # bucket j of the sums holds multiples of 2**(j - SUM_OFFSET)
SUM_BUCKETS = SUM_OFFSET + 971 + 36 + 1
SQ_OFFSET = 2 * 1126  # bucket j of the squares holds multiples of 2**(j - SQ_OFFSET)
SQ_BUCKETS = SQ_OFFSET + 2 * 971 + 72 + 1
MAX_CHUNK = 1 << 26
_CHUNK_BITS = 18
_CHUNK_MASK = (1 << _CHUNK_BITS) - 1


@njit(cache=True, nogil=True, inline="always")
def mantissa_chunks(x):
    """``(a, b, c, e)`` with ``x = (a 2**36 + b 2**18 + c) 2**e`` exactly (finite ``x != 0``;
    ``a, b, c`` int64 with the sign of ``x``, ``e`` the exponent of the lowest chunk)."""
    m, e = math.frexp(x)
    whole = np.int64(math.ldexp(m, 53))
    negative = whole < 0
    if negative:
        whole = -whole
    c = whole & _CHUNK_MASK
    b = (whole >> _CHUNK_BITS) & _CHUNK_MASK
    a = whole >> (2 * _CHUNK_BITS)
    if negative:
        a, b, c = -a, -b, -c
    return a, b, c, np.int64(e) - 53


@njit(cache=True, nogil=True)
def moment_buckets(values, sums, squares):
    """Add every value's chunks to ``sums`` and its square's to ``squares`` (int64 buckets, see the
    module's comment); returns ``(n_nan, n_posinf, n_neginf)`` (those are not added)."""
    nan = 0
    posinf = 0
    neginf = 0
    for i in range(values.size):
        x = np.float64(values[i])
        if x != x:
            nan += 1
            continue
        if x == np.inf:
            posinf += 1
            continue
        if x == -np.inf:
            neginf += 1
            continue
        if x == 0.0:
            continue
        a, b, c, e = mantissa_chunks(x)
        j = e + SUM_OFFSET
        sums[j] += c
        sums[j + 18] += b
        sums[j + 36] += a
        k = 2 * e + SQ_OFFSET
        squares[k] += c * c
        squares[k + 18] += 2 * b * c
        squares[k + 36] += 2 * a * c + b * b
        squares[k + 54] += 2 * a * b
        squares[k + 72] += a * a
    return nan, posinf, neginf
