"""Error-free transformations and double-double sums shared by the CPU kernels.

Areas are sums of many rational terms. Each term is formed as a double-double
(a float64 pair whose sum carries ~106 bits) and accumulated as one, so the
final float64 is correctly rounded in all but pathological cases, and in any
case within a few ulps: far inside SPEC's 1e-12.
"""

from numba import njit

_SPLIT = 134217729.0  # 2**27 + 1, Dekker's splitter


@njit(cache=True, nogil=True, inline="always")
def two_sum(a, b):
    """``a + b = s + e`` exactly (Knuth)."""
    s = a + b
    bb = s - a
    e = (a - (s - bb)) + (b - bb)
    return s, e


@njit(cache=True, nogil=True, inline="always")
def two_prod(a, b):
    """``a * b = p + e`` exactly (Dekker; no FMA needed)."""
    p = a * b
    c = _SPLIT * a
    ah = c - (c - a)
    al = a - ah
    c = _SPLIT * b
    bh = c - (c - b)
    bl = b - bh
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, e


@njit(cache=True, nogil=True, inline="always")
def div_dd(a, b):
    """``a / b`` as a double-double ``(q, r)``."""
    q = a / b
    p, e = two_prod(q, b)
    r = ((a - p) - e) / b
    return q, r


@njit(cache=True, nogil=True, inline="always")
def add_dd(xh, xl, yh, yl):
    """Double-double sum ``(xh + xl) + (yh + yl)``."""
    s, e = two_sum(xh, yh)
    e += xl + yl
    h = s + e
    return h, e - (h - s)


@njit(cache=True, nogil=True, inline="always")
def scale_dd(k, xh, xl):
    """``k * (xh + xl)`` as a double-double (``k`` a float64 integer)."""
    p, e = two_prod(k, xh)
    return p, e + k * xl


@njit(cache=True, nogil=True, inline="always")
def mul_dd(xh, xl, yh, yl):
    """Double-double product ``(xh + xl) * (yh + yl)``."""
    p, e = two_prod(xh, yh)
    e += xh * yl + xl * yh
    h = p + e
    return h, e - (h - p)


@njit(cache=True, nogil=True, inline="always")
def dd_over(xh, xl, d):
    """``(xh + xl) / d`` rounded to float64."""
    q = xh / d
    p, e = two_prod(q, d)
    return q + (((xh - p) - e) + xl) / d


@njit(cache=True, nogil=True, inline="always")
def div_dd_dd(xh, xl, yh, yl):
    """Double-double quotient ``(xh + xl) / (yh + yl)`` (about 104 correct bits)."""
    q = xh / yh
    p, e = two_prod(q, yh)
    r = (((xh - p) - e) + xl - q * yl) / yh
    h = q + r
    return h, r - (h - q)


@njit(cache=True, nogil=True, inline="always")
def dd_over_dd(xh, xl, dh, dl):
    """``(xh + xl) / (dh + dl)`` rounded to float64 (a double-double divisor: a count past ``2**53``)."""
    q = xh / dh
    p, e = two_prod(q, dh)
    return q + ((((xh - p) - e) + xl) - q * dl) / dh


@njit(cache=True, nogil=True, inline="always")
def neumaier(s, c, x):
    """One step of Neumaier's compensated sum: returns the new ``(sum, compensation)``."""
    t = s + x
    if abs(s) >= abs(x):
        c += (s - t) + x
    else:
        c += (x - t) + s
    return t, c
