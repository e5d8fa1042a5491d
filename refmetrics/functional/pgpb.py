"""PBn and PGn (Baitieva et al., CVPRW 2025): the fraction of one class beyond a quantile of the other.

Both keep the exact state of the ranking metrics (:class:`refmetrics.functional._ranked.ExactScores`:
every score as an order-preserving key, positives and negatives apart, radix-sorted when a result is
asked for), so the order statistics the quantile needs are read off the sorted keys exactly, and
the result does not depend on batching, merging or backend.
"""

import math
from fractions import Fraction

import numpy as np

from .. import _validation as V
from . import _ranked as R

try:  # the one key map (kernels/cpu/keys.py, the lead's refactor of issue 13)
    from ..kernels.cpu.keys import decode_keys, keys_of
except ImportError:  # before it: the same map, in functional/_ranked.py
    from ._ranked import decode_keys

    def keys_of(values):
        """Keys of a float32/float64 array without NaN (-0.0 folded onto +0.0)."""
        values = np.asarray(values)
        kd = {np.dtype(np.float32): np.uint32, np.dtype(np.float64): np.uint64}[values.dtype]
        bits = (values + values.dtype.type(0.0)).view(kd)
        top = kd(1 << (8 * values.itemsize - 1))
        return np.where(bits & top, ~bits, bits | top).astype(kd)

_FLOAT_OF = {np.dtype(np.uint32): np.float32, np.dtype(np.uint64): np.float64}


def check_rate(name, value):
    return V.check_unit(name, value, "a rate", zero=True)


def lerp(a, b, t):
    """NumPy's ``_lerp`` (``np.quantile``'s linear interpolation) in float64, for finite ``a <= b``:
    ``a + (b - a) * t`` when ``t < 0.5``, else ``b - (b - a) * (1 - t)``, each operation rounded.

    With an infinite end the arithmetic would give NaN where the value is defined (``inf - inf``),
    so the limit is taken instead: ``a`` when ``a == b`` or ``t == 0``, else the infinite end
    (``-inf`` below, ``+inf`` above); ``-inf`` to ``+inf`` with ``0 < t < 1`` is NaN.
    """
    if math.isfinite(a) and math.isfinite(b):
        diff = b - a
        return b - diff * (1.0 - t) if t >= 0.5 else a + diff * t
    if a == b or t == 0.0:
        return a
    if a == -math.inf and b == math.inf:
        return float("nan")
    return a if a == -math.inf else b


def quantile_index(n, q):
    """``(lower index, upper index, gamma)`` of ``np.quantile``'s linear method for ``n`` sorted values:
    the virtual index ``(n - 1) * q`` (float64), its floor and the fraction above it."""
    virtual = (n - 1) * q
    if virtual >= n - 1:
        return n - 1, n - 1, virtual - (n - 1)
    below = math.floor(virtual)
    return below, below + 1, virtual - below


def _value_at(keys, index):
    """The score (float) of ``keys[index]`` (host or device sorted keys)."""
    if isinstance(keys, np.ndarray):
        return float(decode_keys(keys[index:index + 1])[0])
    from ..kernels.cuda import _driver as D

    return float(decode_keys(np.array([D.scalar(keys, index)], keys.dtype))[0])


def sorted_quantile(keys, q):
    """``np.quantile(values, q)`` of the values of sorted ``keys`` (see :func:`lerp` for infinities)."""
    lower, upper, gamma = quantile_index(keys.size, q)
    a = _value_at(keys, lower)
    b = a if upper == lower else _value_at(keys, upper)
    return lerp(a, b, gamma)


def bound_key(threshold, kd, above):
    """The key of the smallest value of the keys' float type that is ``> threshold`` (``above``) or of
    the largest one ``< threshold``; None when there is none."""
    ftype = _FLOAT_OF[np.dtype(kd)]
    inf = ftype(np.inf)
    with np.errstate(over="ignore"):
        f = ftype(threshold)
    if above:
        if threshold == math.inf:
            return None
        v = f if float(f) > threshold else np.nextafter(f, inf)
    else:
        if threshold == -math.inf:
            return None
        v = f if float(f) < threshold else np.nextafter(f, -inf)
    return keys_of(np.array([v], ftype))[0]


def count_beyond(keys, threshold, above):
    """``#(values > threshold)`` (``above``) or ``#(values < threshold)`` of sorted keys, exactly."""
    bound = bound_key(threshold, keys.dtype, above)
    if bound is None or not keys.size:
        return 0
    if isinstance(keys, np.ndarray):
        if above:
            return int(keys.size - np.searchsorted(keys, bound, side="left"))
        return int(np.searchsorted(keys, bound, side="right"))
    from ..kernels.cuda import _driver as D

    if above:
        return int(D.count_at_least(keys, np.array([bound], keys.dtype))[0])
    if bound == np.iinfo(keys.dtype).max:
        return int(keys.size)
    return int(keys.size - D.count_at_least(keys, np.array([bound + 1], keys.dtype))[0])


def _sorted(state):
    return state.device_sorted() if state.on_device else state.sorted()


def _undefined(state, what, stacklevel=5):
    p, n = state.n_pos, state.n_neg
    if p and n:
        return False
    why = "no samples" if not (p or n) else ("no positive (anomalous) sample" if not p
                                             else "no negative (normal) sample")
    V.warn_undefined(f"{what} is undefined with {why}; returning nan", stacklevel=stacklevel)
    return True


def _nan_threshold(what, stacklevel=5):
    V.warn_undefined(f"{what} is undefined: its quantile interpolates between -inf and +inf scores; returning nan",
                     stacklevel=stacklevel)
    return float("nan")


def pbn_from_state(state, fpr):
    if _undefined(state, "PBn"):
        return float("nan")
    pos, neg = _sorted(state)
    threshold = sorted_quantile(neg, 1.0 - fpr)
    if math.isnan(threshold):
        return _nan_threshold("PBn")
    return float(Fraction(count_beyond(pos, threshold, above=True), pos.size))


def pgn_from_state(state, fnr):
    if _undefined(state, "PGn"):
        return float("nan")
    pos, neg = _sorted(state)
    threshold = sorted_quantile(pos, fnr)
    if math.isnan(threshold):
        return _nan_threshold("PGn")
    return float(Fraction(count_beyond(neg, threshold, above=False), neg.size))


def new_state():
    return R.ExactScores()


def add_batch(state, preds, target, ignore_index, backend):
    state.add(R.partition(R.intake_pair(preds, target, ignore_index, backend)))


def pbn(preds, target, *, fpr=0.05, ignore_index=None, backend="auto"):
    """PBn: the fraction of positives above the ``1 - fpr`` quantile of the negatives (TPR at ``fpr``).

    Defined in ``docs/definitions.md``, section "PBn and PGn" (the page a paper cites).

    Parameters
    ----------
    preds : array_like
        Scores (image scores, or pixels), any shape; NaN rejected, +-inf allowed.
    target : array_like
        Binary labels {0, 1}: 1 = bad (anomalous, positive), 0 = good.
    fpr : float
        The fraction of good samples allowed above the threshold, in [0, 1].
    ignore_index : int or float, optional
        Elements whose target equals it are dropped.
    backend : {"auto", "cpu", "cuda"}

    Returns
    -------
    float
        ``#(positives > thr) / P`` with ``thr = np.quantile(negatives, 1 - fpr)``.

    Notes
    -----
    The threshold is NumPy's default (linear, Hyndman and Fan's type 7) quantile of the negatives'
    exact values in float64: with the negatives sorted, ``v = (N - 1) * q`` (``q = 1 - fpr``, both
    float64), ``a`` and ``b`` the values at ``floor(v)`` and ``floor(v) + 1`` (both the largest when
    ``v >= N - 1``), ``g = v - floor(v)``, and ``thr = a + (b - a) * g`` if ``g < 0.5`` else
    ``b - (b - a) * (1 - g)``, each operation rounded to float64: the number
    ``np.quantile(np.float64(negatives), 1 - fpr)`` returns, bit for bit, whenever ``a`` and ``b``
    are finite. With an infinite ``a`` or ``b`` NumPy's arithmetic gives NaN (``inf - inf``) where
    the quantile is defined; refmetrics takes the limit (``a`` if ``a == b`` or ``g == 0``, else the
    infinite end), and returns NaN with an UndefinedMetricWarning only between ``-inf`` and ``+inf``.
    The comparison ``score > thr`` is strict and exact; the fraction is correctly rounded. No
    positive or no negative: NaN with an UndefinedMetricWarning.

    See Also
    --------
    pgn : the mirror image, the fraction of negatives below a quantile of the positives.

    References
    ----------
    Baitieva et al., "Beyond Academic Benchmarks: Critical Analysis and Best Practices for Visual
    Industrial Anomaly Detection", CVPR Workshops 2025.

    Examples
    --------
    anomalib's documented example:

    >>> from refmetrics.functional import pbn
    >>> pbn([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], fpr=0.2)
    1.0
    >>> pbn([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], fpr=0.0)  # threshold 0.4: only 0.8 is above
    0.5
    """
    fpr = check_rate("fpr", fpr)
    state = new_state()
    add_batch(state, preds, target, ignore_index, backend)
    return pbn_from_state(state, fpr)


def pgn(preds, target, *, fnr=0.05, ignore_index=None, backend="auto"):
    """PGn: the fraction of negatives below the ``fnr`` quantile of the positives (TNR at ``fnr``).

    Defined in ``docs/definitions.md``, section "PBn and PGn" (the page a paper cites).

    Parameters
    ----------
    preds, target, ignore_index, backend
        As in :func:`pbn`.
    fnr : float
        The fraction of bad samples allowed below the threshold, in [0, 1].

    Returns
    -------
    float
        ``#(negatives < thr) / N`` with ``thr = np.quantile(positives, fnr)`` (as in :func:`pbn`).

    Notes
    -----
    The quantile, its infinities and the undefined cases are those of :func:`pbn`; the comparison
    ``score < thr`` is strict.

    Examples
    --------
    anomalib's documented example:

    >>> from refmetrics.functional import pgn
    >>> pgn([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], fnr=0.2)
    1.0
    """
    fnr = check_rate("fnr", fnr)
    state = new_state()
    add_batch(state, preds, target, ignore_index, backend)
    return pgn_from_state(state, fnr)
