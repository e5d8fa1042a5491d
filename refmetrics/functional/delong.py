"""DeLong's confidence interval for AUROC and DeLong's paired test of two AUROCs.

DeLong, DeLong and Clarke-Pearson (1988) estimate the variance of the empirical
AUROC (Mann-Whitney's statistic) from its *structural components*: for each
positive, the fraction of negatives it outranks, and for each negative, the
fraction of positives that outrank it, ties counting one half. Sun and Xu (2014)
compute them from mid-ranks in O(n log n); here each component is two binary
searches over refmetrics' exact order-preserving keys (``kernels/cpu/keys.py``):
for a positive ``x``, ``#(neg < x) + #(neg <= x)`` is twice the number of
negatives it outranks, an integer. Every sum is then an exact integer and the
variance an exact rational, rounded once; the AUROC is the same rational
``2U / (2 P N)`` that :func:`refmetrics.functional.auroc` rounds, so both return
the same float, bit for bit.

The data are image-level: one score per image, images independent. Pixel AUROC
is not a mean over independent samples (the pixels of one image are correlated),
so pixel and region metrics take the image-level bootstrap instead.
"""

import math
from fractions import Fraction
from typing import NamedTuple

import numpy as np

from .. import _arrays as arrays
from .. import _validation as validation
from ..kernels.cpu import keys

__all__ = ["AurocCI", "DelongTest", "auroc_ci", "delong_test"]


class AurocCI(NamedTuple):
    """The result of :func:`auroc_ci`: ``(auroc, low, high, std_err)``."""

    auroc: float
    low: float
    high: float
    std_err: float


class DelongTest(NamedTuple):
    """The result of :func:`delong_test`: ``(difference, z, p_value)``."""

    difference: float
    z: float
    p_value: float


# ---------------------------------------------------------------------------
# drivers
# ---------------------------------------------------------------------------

def intake(preds_list, target, names):
    """Validated keys: one ``(positive keys, negative keys)`` pair per score set, in element order.

    Every score set is checked against ``target`` (shape, emptiness, NaN) under its own
    name; the labels are checked once. Device arrays (CuPy, torch CUDA) are copied to
    the host: the data are one score per image. The keys of position ``i`` of every score
    set belong to the same image, which the paired test needs.
    """
    labels_arr = arrays.to_host(target, "target")
    host = [arrays.to_host(p, name) for p, name in zip(preds_list, names)]
    for arr, name in zip(host, names):
        validation.check_pair(arr, labels_arr, name, "target")
    scores = [arrays.exact_scores(arr, name) for arr, name in zip(host, names)]
    for s, name in zip(scores, names):
        validation.raise_if_nan(name, int(np.count_nonzero(np.isnan(s))))
    labels = arrays.labels(labels_arr)
    positive, negative = labels == 1, labels == 0
    n_bad = labels.size - int(np.count_nonzero(positive)) - int(np.count_nonzero(negative))
    if n_bad:
        validation.raise_bad_labels("target", labels, False, labels.dtype.type(0), None, n_bad)
    out = []
    for s in scores:
        k = keys.keys_of(s)
        out.append((k[positive], k[negative]))
    return out


def components(pos, neg, in_order=True):
    """Twice the structural components, as int64 arrays.

    ``2 N V10_i = #(neg < x_i) + #(neg <= x_i)`` for each positive ``x_i`` and
    ``2 P V01_j = #(pos > y_j) + #(pos >= y_j)`` for each negative ``y_j``: a tie
    counts once in one count and not in the other, so one half in the component
    (Sun and Xu's mid-ranks). Binary searches of the sorted keys in the other
    class's sorted keys: O(n log n). ``in_order``: the components in element order
    (what the paired test needs, one argsort per class more); else in key order
    (what a variance alone needs: it does not depend on the order).
    """
    return _half(pos, neg, in_order, above=False), _half(neg, pos, in_order, above=True)


def _half(keys_, other, in_order, above):
    """``#(other < k) + #(other <= k)`` for each key ``k`` of ``keys_`` (``above``: ``#(other > k) + #(other >= k)``)."""
    sorted_other = np.sort(other)
    if in_order:
        order = np.argsort(keys_, kind="stable")
        needles = keys_[order]
    else:
        needles = np.sort(keys_)
    # sorted needles: NumPy's binary search starts from the previous answer (several times faster)
    counts = (np.searchsorted(sorted_other, needles, side="left")
              + np.searchsorted(sorted_other, needles, side="right")).astype(np.int64, copy=False)
    if above:
        counts = 2 * other.size - counts
    if not in_order:
        return counts
    out = np.empty_like(counts)
    out[order] = counts
    return out


_CHUNK = 1 << 28  # elements per int64 partial sum: each term is below 2**34, each sum below 2**62
_WIDE_CHUNK = 1 << 19  # the same for |x| >= 2**34: terms below 2**42 (21-bit limbs), sums below 2**61


def _sums(x):
    """``(sum x, sum x**2)`` of an int64 array of counts (``0 <= x < 2**63``), exactly, as Python ints.

    Below ``2**34`` (fewer than about 8.6e9 elements on the other side):
    ``x = hi * 2**17 + lo`` with ``0 <= lo < 2**17``, so ``x**2 = hi**2 * 2**34 + hi * lo * 2**18 + lo**2``
    and every term of every partial sum stays below ``2**34`` in magnitude: no int64 sum overflows.
    Larger values take three 21-bit limbs, ``x = a 2**42 + b 2**21 + c``, whose products stay below
    ``2**42`` and are summed ``2**19`` at a time.
    """
    if x.size and int(x.max()) >= 1 << 34:
        return _wide_sums(x)
    total = square = 0
    for start in range(0, x.size, _CHUNK):
        c = x[start:start + _CHUNK]
        hi, lo = c >> 17, c & 0x1FFFF
        total += int(c.sum())
        square += (int((hi * hi).sum()) << 34) + (int((hi * lo).sum()) << 18) + int((lo * lo).sum())
    return total, square


def _wide_sums(x):
    """:func:`_sums` for counts up to ``2**63``."""
    total = square = 0
    mask = (1 << 21) - 1
    for start in range(0, x.size, _WIDE_CHUNK):
        v = x[start:start + _WIDE_CHUNK]
        a, b, c = v >> 42, (v >> 21) & mask, v & mask
        total += (int(a.sum()) << 42) + (int(b.sum()) << 21) + int(c.sum())
        square += ((int((a * a).sum()) << 84) + (int((a * b).sum()) << 64) + (int((2 * a * c + b * b).sum()) << 42)
                   + (int((b * c).sum()) << 22) + int((c * c).sum()))
    return total, square


def _scaled_sample_variance(x):
    """``m (m - 1)`` times the sample variance (ddof 1) of ``x``: ``m sum x**2 - (sum x)**2``, exactly."""
    total, square = _sums(x)
    return x.size * square - total * total


def variance(v10, v01):
    """DeLong's variance ``S10 / P + S01 / N`` as an exact :class:`~fractions.Fraction`.

    ``v10`` (``P`` values) and ``v01`` (``N`` values) are twice the structural
    components as :func:`components` returns them (``2 N V10``, ``2 P V01``), or the
    differences of two methods' components, whose variance is
    ``var(A) + var(B) - 2 cov(A, B)``. Needs ``P >= 2`` and ``N >= 2``.
    """
    p, n = v10.size, v01.size
    return (Fraction(_scaled_sample_variance(v10), p * p * (p - 1) * 4 * n * n)
            + Fraction(_scaled_sample_variance(v01), n * n * (n - 1) * 4 * p * p))


def sqrt_rounded(q):
    """The float nearest ``sqrt(q)`` for a Fraction ``q >= 0``, correctly rounded (one rounding).

    ``r = isqrt(floor(q 4**k))`` with ``r >= 2**55``: ``sqrt(q) 2**k`` is ``r`` exactly, or lies
    strictly between ``r`` and ``r + 1``, where no float and no half-way point between two floats
    of that magnitude lies; ``r + 1/2`` then rounds as ``sqrt(q)`` does.
    """
    if q == 0:
        return 0.0
    num, den = q.numerator, q.denominator
    k = max(0, (112 - num.bit_length() + den.bit_length()) // 2 + 1)
    scaled, rest = divmod(num << (2 * k), den)
    r = math.isqrt(scaled)
    if rest == 0 and r * r == scaled:
        return float(Fraction(r, 1 << k))
    return float(Fraction(2 * r + 1, 1 << (k + 1)))


def normal_quantile(level):
    """``z = Phi^-1((1 + level) / 2)``, the two-sided standard normal quantile (1.959963984540054 at 0.95)."""
    # scipy.special.ndtri is scipy.stats.norm.ppf without importing scipy.stats
    from scipy.special import ndtri

    return float(ndtri((1.0 + level) / 2.0))


def _undefined_one_class(what, p, n):
    """NaN everywhere without a positive or without a negative (a warning says which)."""
    if p and n:
        return False
    why = "no positive (anomalous) sample" if not p else "no negative (normal) sample"
    # stack: warn_undefined, this function, the public function, the caller
    validation.warn_undefined(f"{what} is undefined with {why}; returning nan", stacklevel=4)
    return True


def _too_few(what, p, n):
    """DeLong's sample variances divide by ``P - 1`` and ``N - 1``: fewer than two of a class is undefined."""
    if p >= 2 and n >= 2:
        return False
    validation.warn_undefined(
        f"DeLong's variance needs at least 2 positive (anomalous) and 2 negative (normal) samples (its sample "
        f"variances divide by P - 1 and N - 1), received P={p} and N={n}; {what} nan", stacklevel=4)
    return True


# ---------------------------------------------------------------------------
# public functions
# ---------------------------------------------------------------------------

def auroc_ci(preds, target, *, level=0.95):
    """AUROC with DeLong's confidence interval and standard error.

    Defined in ``docs/definitions.md``, section "Confidence intervals (DeLong)" (the page a paper cites).

    Parameters
    ----------
    preds : array_like
        Image-level anomaly scores (one per image, images independent), higher
        means more anomalous. Any shape (flattened); bool, integer or
        float16/32/64; +-inf allowed, NaN rejected. Device arrays are copied to
        the host.
    target : array_like
        Binary labels {0, 1}, as many as ``preds``: 1 = anomalous (positive).
    level : float
        The confidence level, in (0, 1).

    Returns
    -------
    AurocCI
        A named tuple ``(auroc, low, high, std_err)`` of Python floats: the
        AUROC (equal, bit for bit, to :func:`auroc`), the interval
        ``auroc -+ z * std_err`` clipped to [0, 1], with
        ``z = Phi^-1((1 + level) / 2)``, and DeLong's standard error.

    Notes
    -----
    The structural components are, for each positive ``x_i`` and each negative
    ``y_j`` (``P`` and ``N`` of them), with ties counting one half (mid-ranks)::

        V10_i = (#(neg < x_i) + 1/2 #(neg == x_i)) / N
        V01_j = (#(pos > y_j) + 1/2 #(pos == y_j)) / P

    Their means are the AUROC; ``S10`` and ``S01`` are their sample variances
    (ddof 1) and ``std_err = sqrt(S10 / P + S01 / N)``. Comparisons are on the
    exact scores (their order-preserving keys), the sums are exact integers,
    the variance is an exact rational and ``std_err`` its correctly rounded
    square root; ``low`` and ``high`` are computed in float64.

    No positive or no negative: everything is NaN, with an
    UndefinedMetricWarning. Fewer than two positives or two negatives: the
    AUROC is returned, ``std_err``, ``low`` and ``high`` are NaN, with an
    UndefinedMetricWarning that says why.

    The scores must be independent samples (image scores): for pixel and region
    metrics use the image-level bootstrap.

    See Also
    --------
    auroc : the AUROC alone.
    delong_test : DeLong's paired test of two AUROCs on the same images.

    References
    ----------
    E. R. DeLong, D. M. DeLong and D. L. Clarke-Pearson, "Comparing the areas under two or more
    correlated receiver operating characteristic curves: a nonparametric approach", Biometrics
    44(3), 837-845, 1988.
    X. Sun and W. Xu, "Fast implementation of DeLong's algorithm for comparing the areas under
    correlated receiver operating characteristic curves", IEEE Signal Processing Letters 21(11),
    1389-1393, 2014.

    Examples
    --------
    Three normal images (0.1, 0.4, 0.5) and three anomalous ones (0.4, 0.6, 0.9);
    the positive at 0.4 ties a negative. ``V10 = (1/2, 1, 1)``, ``V01 = (1, 5/6, 2/3)``,
    ``S10 = 1/12``, ``S01 = 1/36``, variance ``1/36 + 1/108 = 1/27``:

    >>> from refmetrics.functional import auroc_ci
    >>> ci = auroc_ci([0.1, 0.4, 0.5, 0.4, 0.6, 0.9], [0, 0, 0, 1, 1, 1])
    >>> ci.auroc  # 5/6
    0.8333333333333334
    >>> ci.std_err  # sqrt(1/27)
    0.19245008972987526
    >>> round(ci.low, 4), ci.high  # 5/6 + 1.96 * 0.192 > 1: clipped
    (0.4561, 1.0)
    >>> auroc, low, high, std_err = ci  # a tuple
    """
    level = validation.check_level(level)
    (pos, neg), = intake([preds], target, ["preds"])
    p, n = pos.size, neg.size
    nan = float("nan")
    if _undefined_one_class("AUROC and its DeLong interval", p, n):
        return AurocCI(nan, nan, nan, nan)
    v10, v01 = components(pos, neg, in_order=False)
    value = float(Fraction(int(v10.sum()), 2 * p * n))
    if _too_few("std_err, low and high are", p, n):
        return AurocCI(value, nan, nan, nan)
    std_err = sqrt_rounded(variance(v10, v01))
    half = normal_quantile(level) * std_err
    return AurocCI(value, max(0.0, value - half), min(1.0, value + half), std_err)


def delong_test(preds_a, preds_b, target):
    """DeLong's paired test: do two score sets on the same images have the same AUROC?

    Defined in ``docs/definitions.md``, section "Confidence intervals (DeLong)" (the page a paper cites).

    Parameters
    ----------
    preds_a, preds_b : array_like
        Two methods' image-level scores on the same images, in the same order
        (each as ``preds`` of :func:`auroc_ci`).
    target : array_like
        The images' binary labels {0, 1}, shared by both.

    Returns
    -------
    DelongTest
        A named tuple ``(difference, z, p_value)`` of Python floats:
        ``difference = AUROC_a - AUROC_b`` (the exact difference, rounded once),
        ``z = difference / sqrt(var(A) + var(B) - 2 cov(A, B))`` and the
        two-sided ``p_value = erfc(|z| / sqrt(2))``.

    Notes
    -----
    ``var(A)`` and ``var(B)`` are DeLong's variances (see :func:`auroc_ci`) and
    ``cov(A, B) = C10 / P + C01 / N``, with ``C10`` the sample covariance (ddof 1)
    of the two methods' ``V10`` components over the positives and ``C01`` that
    of their ``V01`` components over the negatives. The variance of the
    difference is computed exactly (the sample variance of the components'
    differences, which equals ``var(A) + var(B) - 2 cov(A, B)``) and ``z`` is
    the correctly rounded ``sign(d) sqrt(d**2 / var)``.

    When the variance of the difference is 0 (every component of A minus B is
    the same): a difference of 0 gives ``z = 0``, ``p_value = 1``; any other
    difference gives ``z = +-inf``, ``p_value = 0``.

    No positive or no negative: everything is NaN, with an
    UndefinedMetricWarning. Fewer than two positives or two negatives: the
    difference is returned, ``z`` and ``p_value`` are NaN, with an
    UndefinedMetricWarning that says why.

    See Also
    --------
    auroc_ci : one method's interval.

    References
    ----------
    DeLong, DeLong and Clarke-Pearson (1988); Sun and Xu (2014): see :func:`auroc_ci`.

    Examples
    --------
    Method A as in :func:`auroc_ci` (AUROC 5/6), method B on the same six images (AUROC 2/3).
    The components' differences A - B are ``(1/6, 1/3, 0)`` over the positives and
    ``(0, 1/6, 1/3)`` over the negatives, each of sample variance 1/36, so the variance of the
    difference is ``1/36 / 3 + 1/36 / 3 = 1/54`` and ``z = (1/6) / sqrt(1/54) = sqrt(3/2)``:

    >>> from refmetrics.functional import delong_test
    >>> target = [0, 0, 0, 1, 1, 1]
    >>> a = [0.1, 0.4, 0.5, 0.4, 0.6, 0.9]
    >>> b = [0.2, 0.45, 0.7, 0.4, 0.6, 0.8]
    >>> result = delong_test(a, b, target)
    >>> result.difference  # 5/6 - 2/3
    0.16666666666666666
    >>> result.z  # sqrt(3/2)
    1.224744871391589
    >>> difference, z, p_value = result
    >>> round(p_value, 4)  # erfc(sqrt(3) / 2)
    0.2207
    """
    (pos_a, neg_a), (pos_b, neg_b) = intake([preds_a, preds_b], target, ["preds_a", "preds_b"])
    p, n = pos_a.size, neg_a.size
    nan = float("nan")
    if _undefined_one_class("The DeLong test of two AUROCs", p, n):
        return DelongTest(nan, nan, nan)
    v10_a, v01_a = components(pos_a, neg_a)
    v10_b, v01_b = components(pos_b, neg_b)
    difference = Fraction(int(v10_a.sum()) - int(v10_b.sum()), 2 * p * n)
    if _too_few("z and p_value are", p, n):
        return DelongTest(float(difference), nan, nan)
    var = variance(v10_a - v10_b, v01_a - v01_b)
    if var == 0:  # the same components up to a constant: no variance to divide by
        if difference == 0:
            return DelongTest(0.0, 0.0, 1.0)
        return DelongTest(float(difference), math.copysign(math.inf, difference), 0.0)
    z = math.copysign(sqrt_rounded(difference * difference / var), difference)
    return DelongTest(float(difference), z, math.erfc(abs(z) / math.sqrt(2.0)))
