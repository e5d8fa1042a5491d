"""Exact integer and count arithmetic beyond 64 bits and 53 bits, for the CPU kernels and their CUDA twins.

Counts are int64 (at most ``2**63 - 1`` elements). Two things can then lose exactness:

- a product of two counts passes ``2**64`` (F1's cross products, Mann-Whitney's ``2U``). The
  helpers here form a 64 x 64 -> 128-bit product from 32-bit limbs and compare and add 128-bit
  values held as ``(hi, lo)`` pairs of uint64;
- a count passes ``2**53`` and ``float64(count)`` rounds. :func:`count_dd` writes it as an exact
  double-double ``hi + lo`` instead. Kernels take that path only for counts at or above ``2**53``
  (:data:`EXACT_FLOAT`), so every result below keeps its bits.

Pure numba integer and float operations, no Python ints: the CUDA kernels compile their twins
from this Python source.
"""

import numpy as np
from numba import njit

from ._sum import dd_over_dd

_M32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
_S63 = np.uint64(63)
_ONE = np.uint64(1)
_LOW63 = np.uint64((1 << 63) - 1)

EXACT_FLOAT = 1 << 53
"""Counts below this convert to float64 exactly."""


@njit(cache=True, nogil=True, inline="always")
def mul_u64(a, b):
    """``a * b`` for uint64 ``a, b`` as the exact 128-bit ``(hi, lo)``, from four 32 x 32-bit products."""
    a = np.uint64(a)
    b = np.uint64(b)
    a0 = a & _M32
    a1 = a >> _S32
    b0 = b & _M32
    b1 = b >> _S32
    p00 = a0 * b0
    p01 = a0 * b1
    p10 = a1 * b0
    p11 = a1 * b1
    mid = (p00 >> _S32) + (p01 & _M32) + (p10 & _M32)  # < 3 * 2**32: no wrap
    lo = (p00 & _M32) | (mid << _S32)
    hi = p11 + (p01 >> _S32) + (p10 >> _S32) + (mid >> _S32)
    return hi, lo


@njit(cache=True, nogil=True, inline="always")
def add_u128(ah, al, bh, bl):
    """``(ah, al) + (bh, bl)`` modulo ``2**128`` (uint64 halves)."""
    lo = np.uint64(al) + np.uint64(bl)
    carry = _ONE if lo < np.uint64(al) else np.uint64(0)
    return np.uint64(ah) + np.uint64(bh) + carry, lo


@njit(cache=True, nogil=True, inline="always")
def cmp_u128(ah, al, bh, bl):
    """1, 0 or -1 as the 128-bit ``(ah, al)`` is larger than, equal to or smaller than ``(bh, bl)``."""
    if ah != bh:
        return 1 if ah > bh else -1
    if al != bl:
        return 1 if al > bl else -1
    return 0


@njit(cache=True, nogil=True, inline="always")
def split63(hi, lo):
    """The 128-bit ``(hi, lo)`` (below ``2**126``) as int64 ``(high, low)`` with ``value = high * 2**63 + low``,
    ``0 <= low < 2**63``: the form the AUROC state keeps in an int64 array."""
    return np.int64((np.uint64(hi) << _ONE) | (np.uint64(lo) >> _S63)), np.int64(np.uint64(lo) & _LOW63)


@njit(cache=True, nogil=True, inline="always")
def join63(high, low):
    """Inverse of :func:`split63`: ``(hi, lo)`` uint64 of ``high * 2**63 + low``."""
    h = np.uint64(high)
    return h >> _ONE, ((h & _ONE) << _S63) | np.uint64(low)


@njit(cache=True, nogil=True, inline="always")
def count_dd(x):
    """A count ``0 <= x < 2**63`` (int64) as an exact double-double ``(hi, lo)``.

    ``hi = float64(x)`` (rounded to nearest) and ``lo = float64(x - int64(hi))``: the
    remainder has at most 11 significant bits, so it is exact. ``lo`` is 0 below ``2**53``.
    ``hi`` can round up to ``2**63``, outside int64: the remainder is then taken from
    ``hi / 2``, exactly as large.
    """
    x = np.int64(x)
    hi = np.float64(x)
    if hi >= 9.223372036854775808e18:  # 2**63: x - int64(hi) would overflow
        half = np.int64(hi * 0.5)
        return hi, np.float64((x - half) - half)
    return hi, np.float64(x - np.int64(hi))


@njit(cache=True, nogil=True)
def _count_ratios(num, den, out):
    for i in range(num.size):
        n_h, n_l = count_dd(num[i])
        d_h, d_l = count_dd(den[i])
        if d_h == 0.0:
            out[i] = np.nan if n_h == 0.0 else np.inf
        else:
            out[i] = dd_over_dd(n_h, n_l, d_h, d_l)


def count_ratios(num, den):
    """``num / den`` as float64 for counts (int64 arrays of one shape, or ``den`` a scalar).

    While every count is below ``2**53`` this is NumPy's division, correctly rounded and bit for
    bit what it always was. Past that, each quotient is formed from the exact double-double counts
    (:func:`count_dd`) and rounded once; ``x / 0`` is ``inf`` (``nan`` for ``0 / 0``), as NumPy's.
    """
    num = np.asarray(num)
    den_arr = np.broadcast_to(np.asarray(den), num.shape)
    if not num.size or max(int(num.max()), int(den_arr.max())) < EXACT_FLOAT:
        return num / den
    out = np.empty(num.shape, np.float64)
    _count_ratios(np.ascontiguousarray(num, np.int64).reshape(-1), np.ascontiguousarray(den_arr, np.int64).reshape(-1),
                  out.reshape(-1))
    return out
