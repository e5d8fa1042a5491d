"""Segmentation scores at a threshold, MVTec AD 2's validation threshold and ADer's mF1/mAcc/mIoU."""

import math
from fractions import Fraction

import numpy as np

from .. import _arrays as A
from .. import _validation as V
from ..kernels.cpu import segmentation as KS
from ..kernels.cpu._int128 import count_ratios
from . import threshold as FT

try:  # the one key map (kernels/cpu/keys.py, the lead's refactor of issue 13)
    from ..kernels.cpu.keys import key_of as _key
    from ..kernels.cpu.keys import value_of as _value
except ImportError:  # before it: the same map, in functional/threshold.py
    from .threshold import _key, _value

_AVERAGES = ("global", "samplewise")
RATES = ("precision", "recall", "f1", "iou")


# ---------------------------------------------------------------------------
# counts at a threshold
# ---------------------------------------------------------------------------

def positive_cut(threshold, strict):
    """The float64 ``cut`` with ``x >= cut`` iff ``x > threshold`` (``strict``) or ``x >= threshold``;
    NaN (nothing positive) for ``x > +inf``."""
    if not strict:
        return threshold
    return float("nan") if threshold == math.inf else float(np.nextafter(threshold, np.inf))


def threshold_counts(preds, target, cut, samplewise, ignore_index, backend):
    """``(rows, 4)`` int64 TP, FP, FN, TN of ``score >= cut``: one row, or one per sample."""
    where = A.resolve_backend(backend, preds, target)
    V.check_ignore_index(ignore_index)
    p = A.array_on(where, preds, "preds")
    t = A.array_on(where, target, "target")
    V.check_pair(p, t)
    rows = FT.sample_rows(p, t, samplewise, "average")
    if where == "cuda":
        return _device_counts(p, t, cut, rows, ignore_index)
    if p.dtype.kind in "iu" and p.dtype.itemsize == 8:
        V.check_integer_scores_exact("preds", p)
    scores = A.exact_scores(p, "preds").reshape(rows, -1)
    labels = A.labels(t)
    has_ignore, ignore = A.ignore_value(labels, ignore_index)
    out = np.zeros((rows, 4), np.int64)
    n_bad, n_nan = KS.threshold_counts(scores, labels.reshape(rows, -1), has_ignore, ignore, np.float64(cut), out)
    V.raise_if_nan("preds", n_nan)
    V.raise_bad_labels("target", labels, has_ignore, ignore, ignore_index, n_bad)
    return out


def _device_counts(p, t, cut, rows, ignore_index):
    """:func:`threshold_counts` on the device, with F1Score's confusion-count kernel: TP, FP, FN
    of ``score >= cut``, then of ``score >= -inf`` (every kept element), whose FP is the number of
    negatives N of each row: TN = N - FP. Only the integer counts cross to the host."""
    from ..kernels.cuda import _driver as D

    scores = A.device_scores(p, "preds")
    labels = A.device_labels(t)
    has_ignore, ignore = A.ignore_value(labels, ignore_index)
    _, _, n_nan = D.min_max(scores, labels if has_ignore else None, ignore)
    V.raise_if_nan("preds", n_nan)
    counts, n_bad = D.confusion_counts(scores, labels, has_ignore, ignore, cut, rows)
    if n_bad:
        V.raise_bad_labels("target", labels.copy_to_host(), has_ignore, ignore, ignore_index, n_bad)
    every, _ = D.confusion_counts(scores, labels, has_ignore, ignore, -math.inf, rows)
    out = np.zeros((rows, 4), np.int64)
    out[:, :3] = counts
    out[:, 3] = every[:, 1] - counts[:, 1]
    return out


def rates(counts):
    """precision, recall, F1, IoU per row of ``(rows, 4)`` counts (float64, 0 where the denominator is 0).

    Each is the correctly rounded ratio of two integer counts: one IEEE division while both are below
    2**53, else a quotient of exact double-doubles (``count_ratios``). The sums are int64 (F1's
    ``2 TP + FP + FN`` below 2**63, so up to 2**62 elements).
    """
    tp, fp, fn = (counts[:, i].astype(np.int64) for i in range(3))

    def ratio(num, den):
        return np.where(den > 0, count_ratios(num, np.maximum(den, 1)), 0.0)

    return {"precision": ratio(tp, tp + fp), "recall": ratio(tp, tp + fn),
            "f1": ratio(2 * tp, 2 * tp + fp + fn), "iou": ratio(tp, tp + fp + fn)}


def scores_from_counts(counts, samplewise):
    values = rates(counts)
    if not samplewise:
        out = {name: int(counts[0, i]) for i, name in enumerate(("tp", "fp", "fn", "tn"))}
        out.update({name: float(values[name][0]) for name in RATES})
        return out
    out = {name: counts[:, i].copy() for i, name in enumerate(("tp", "fp", "fn", "tn"))}
    out.update(values)
    n = counts.shape[0]
    out.update({f"mean_{name}": math.fsum(values[name].tolist()) / n for name in RATES})
    return out


def segmentation_scores(preds, target, threshold, *, strict=True, average="global", ignore_index=None,
                        backend="auto"):
    """Pixel confusion counts, precision, recall, F1 and IoU at a fixed threshold.

    Defined in ``docs/definitions.md``, section "Segmentation scores at a threshold".

    Parameters
    ----------
    preds : array_like
        Scores of any shape (maps ``(B, H, W)``); NaN rejected, +-inf allowed.
    target : array_like
        Binary labels {0, 1}, as many elements as ``preds``.
    threshold : float
        A pixel is predicted positive when ``score > threshold`` (``strict=True``, the default)
        or ``score >= threshold`` (``strict=False``). No sigmoid is ever applied.
    strict : bool
    average : {"global", "samplewise"}
        ``"global"``: counts summed over every pixel. ``"samplewise"``: one row per sample along
        the first axis, and the mean of each rate over the samples.
    ignore_index : int or float, optional
        Elements whose target equals it are dropped.
    backend : {"auto", "cpu", "cuda"}

    Returns
    -------
    dict
        ``tp``, ``fp``, ``fn``, ``tn`` (ints; int64 arrays per sample) and ``precision = TP/(TP+FP)``,
        ``recall = TP/(TP+FN)``, ``f1 = 2TP/(2TP+FP+FN)``, ``iou = TP/(TP+FP+FN)`` (floats;
        float64 arrays per sample). Samplewise adds ``mean_precision``, ``mean_recall``,
        ``mean_f1``, ``mean_iou``: the correctly rounded sum (``math.fsum``) divided by the
        number of samples.

    Notes
    -----
    A rate whose denominator is 0 is 0 (no predicted positive: precision 0; no positive pixel:
    recall 0; neither: F1 and IoU 0), as scikit-learn's ``zero_division=0``, torchmetrics and
    :func:`refmetrics.functional.f1_score` return. Each rate is one division of exact integer
    counts, hence correctly rounded.

    See Also
    --------
    validation_threshold : MVTec AD 2's threshold for these scores.
    ader_segmentation : ADer's mF1 / mAcc / mIoU, built on these counts.

    Examples
    --------
    >>> from refmetrics.functional import segmentation_scores
    >>> s = segmentation_scores([0.2, 0.6, 0.7, 0.5], [0, 1, 0, 1], 0.5)
    >>> s["tp"], s["fp"], s["fn"], s["tn"], s["f1"], s["iou"]
    (1, 1, 1, 1, 0.5, 0.3333333333333333)
    >>> segmentation_scores([0.2, 0.6, 0.7, 0.5], [0, 1, 0, 1], 0.5, strict=False)["tp"]
    2
    """
    V.check_choice("average", average, _AVERAGES)
    threshold = V.check_real("threshold", threshold)
    if not isinstance(strict, (bool, np.bool_)):
        raise TypeError(f"strict: expected True or False, received {strict!r}")
    samplewise = average == "samplewise"
    counts = threshold_counts(preds, target, positive_cut(threshold, bool(strict)), samplewise, ignore_index,
                              backend)
    return scores_from_counts(counts, samplewise)


# ---------------------------------------------------------------------------
# the validation threshold: exact moments
# ---------------------------------------------------------------------------

class Moments:
    """Exact sum and sum of squares of every value seen, as integers (see
    ``kernels/cpu/segmentation.py``): ``total = sums * 2**-SUM_OFFSET``,
    ``total_sq = squares * 2**-SQ_OFFSET``. Order-free: any batching or merge gives the same state.
    """

    __slots__ = ("count", "neginf", "posinf", "squares", "sums")

    def __init__(self):
        self.count, self.sums, self.squares, self.posinf, self.neginf = 0, 0, 0, 0, 0

    def add_buckets(self, count, sums, squares, posinf, neginf):
        self.count += count
        self.posinf += posinf
        self.neginf += neginf
        self.sums += sum(int(v) << j for j, v in enumerate(sums.tolist()) if v)
        self.squares += sum(int(v) << j for j, v in enumerate(squares.tolist()) if v)

    def merge(self, other):
        self.count += other.count
        self.posinf += other.posinf
        self.neginf += other.neginf
        self.sums += other.sums
        self.squares += other.squares

    def mean_var(self):
        """``(mean, variance)`` as exact Fractions (ddof 0; finite values only)."""
        mean = Fraction(self.sums, 1 << KS.SUM_OFFSET) / self.count
        second = Fraction(self.squares, 1 << KS.SQ_OFFSET) / self.count
        return mean, second - mean * mean


def add_maps(state, maps, backend):
    """Validate one array of maps (any shape, every pixel counts) and add it to ``state``."""
    where = A.resolve_backend(backend, maps)
    arr = A.array_on(where, maps, "maps")
    V.check_nonempty("maps", arr)
    if where == "cuda":
        from ..kernels.cuda import segmentation as DS

        flat = A.device_scores(arr, "maps")
        chunks = [DS.moments(flat[i:i + KS.MAX_CHUNK]) for i in range(0, flat.size, KS.MAX_CHUNK)]
    else:
        if arr.dtype.kind in "iu" and arr.dtype.itemsize == 8:
            V.check_integer_scores_exact("maps", arr)
        flat = A.exact_scores(arr, "maps")
        chunks = []
        for i in range(0, flat.size, KS.MAX_CHUNK):
            sums = np.zeros(KS.SUM_BUCKETS, np.int64)
            squares = np.zeros(KS.SQ_BUCKETS, np.int64)
            counts = KS.moment_buckets(flat[i:i + KS.MAX_CHUNK], sums, squares)
            chunks.append((sums, squares) + tuple(counts))
    V.raise_if_nan("maps", sum(c[2] for c in chunks))
    for sums, squares, _, posinf, neginf in chunks:
        state.add_buckets(0, sums, squares, posinf, neginf)
    state.count += flat.size


def sqrt_fraction(value):
    """The float64 nearest to ``sqrt(value)`` (a non-negative Fraction), correctly rounded."""
    if value == 0:
        return 0.0
    p, q = value.numerator, value.denominator
    # scale by 4**k so that the integer square root has at least 64 bits
    k = max(0, (128 - (p.bit_length() - q.bit_length())) // 2 + 1)
    num = p << (2 * k)
    root = math.isqrt(num // q)
    if root * root * q != num:  # inexact: a sticky bit below the rounding position
        root |= 1
    return math.ldexp(float(root), -k) if root.bit_length() <= 1023 else float(Fraction(root, 1 << k))


def threshold_from_moments(state, n_std):
    if not state.count:
        V.warn_undefined("validation_threshold is undefined without any pixel; returning nan", stacklevel=4)
        return float("nan")
    if state.posinf or state.neginf:
        V.warn_undefined(f"validation_threshold is undefined: the maps hold {state.posinf + state.neginf:,} "
                         "infinite pixels, so their standard deviation is not a number; returning nan",
                         stacklevel=4)
        return float("nan")
    mean, var = state.mean_var()
    return float(mean) + n_std * sqrt_fraction(var)


def validation_threshold(maps, *, n_std=3.0, backend="auto"):
    """MVTec AD 2's threshold: ``mean + n_std * std`` of every pixel of defect-free validation maps.

    Defined in ``docs/definitions.md``, section "Segmentation scores at a threshold".

    Parameters
    ----------
    maps : array_like or sequence of array_like
        Anomaly maps of defect-free validation images: one array (any shape, e.g. ``(B, H, W)``)
        or a list of arrays (e.g. one per image, sizes may differ). Every pixel counts once.
    n_std : float
        How many standard deviations above the mean (MVTec AD 2: 3).
    backend : {"auto", "cpu", "cuda"}

    Returns
    -------
    float
        ``mean + n_std * std`` with the population standard deviation (ddof 0).

    Notes
    -----
    The sum and the sum of squares of the pixels are accumulated exactly, as integers per power
    of two, so the result does not depend on how the maps are split or ordered. ``mean`` is the
    exact mean rounded to float64, ``std`` the exact ``sqrt(E[x^2] - mean^2)`` rounded to
    float64, and the result is ``mean + n_std * std`` in float64 (two roundings). No pixel, or
    an infinite pixel: NaN with an UndefinedMetricWarning.

    See Also
    --------
    ValidationThreshold : the same, fed batch by batch.
    segmentation_scores : the scores at that threshold.

    References
    ----------
    Heckler-Kram et al., "The MVTec AD 2 Dataset: Advanced Scenarios for Unsupervised Anomaly
    Detection", 2025 (SegF1 at the mean + 3 std of the validation maps).

    Examples
    --------
    >>> from refmetrics.functional import validation_threshold
    >>> validation_threshold([[1.0, 3.0], [1.0, 3.0]])
    5.0
    >>> validation_threshold([[1.0, 3.0], [5.0]], n_std=0)
    3.0
    """
    n_std = V.check_real("n_std", n_std)
    state = Moments()
    items = maps if isinstance(maps, (list, tuple)) and maps and not np.isscalar(maps[0]) else [maps]
    for item in items:
        add_maps(state, item, backend)
    return threshold_from_moments(state, n_std)


# ---------------------------------------------------------------------------
# ADer's mF1 / mAcc / mIoU
# ---------------------------------------------------------------------------

ADER_THRESHOLDS = tuple(float(t) for t in np.arange(0.2, 0.8 + 1e-3, 0.1))
"""ADer's thresholds on the normalised maps, as its ``np.arange(0.2, 0.8 + 1e-3, 0.1)`` makes them
(0.2, 0.30000000000000004, ..., 0.8000000000000003)."""


def normalised_cut(lo, hi, t):
    """The smallest float64 ``x`` with ``(x - lo) / (hi - lo) > t`` in float64 arithmetic (monotone in
    ``x``), found by bisection over the float64 order, so comparing ``x >= cut`` reproduces the
    per-pixel rule exactly without computing the normalised map."""
    span = hi - lo

    def above(x):
        return (x - lo) / span > t

    a, b = _key(lo), _key(hi)  # above(lo) is False (0 > t), above(hi) is True (1 > t) for t in [0, 1)
    while b - a > 1:
        mid = (a + b) // 2
        if above(_value(mid)):
            b = mid
        else:
            a = mid
    return _value(b)


def ader_segmentation(preds, target, *, thresholds=ADER_THRESHOLDS, backend="auto"):
    """ADer's pixel ``mF1``, ``mAcc`` and ``mIoU`` of one category.

    Defined in ``docs/definitions.md``, section "Segmentation scores at a threshold".

    Parameters
    ----------
    preds : array_like
        The category's anomaly maps ``(B, H, W)``.
    target : array_like
        Their {0, 1} masks.
    thresholds : sequence of float
        Thresholds on the min-max normalised maps, each in [0, 1); ADer's default
        ``np.arange(0.2, 0.8 + 1e-3, 0.1)`` (seven values, 0.2 to 0.8).
    backend : {"auto", "cpu", "cuda"}

    Returns
    -------
    dict
        ``mF1``, ``mAcc``, ``mIoU``: over the thresholds ``t``, the mean (``math.fsum / T``) of
        ``2TP/(2TP+FP+FN)``, ``TP/P`` and ``TP/(TP+FP+FN)``, the counts pooled over every pixel of
        the category with a pixel positive when its normalised score ``(x - min) / (max - min)``
        (float64) is ``> t``.

    Notes
    -----
    ADer normalises each category's maps by their own minimum and maximum, thresholds them at
    0.2, 0.3, ..., 0.8 and averages; report the mean over categories as ADer does. Two
    differences from ADer's code, by design: the normalisation is done in float64 (ADer uses
    the maps' dtype, float32 in practice), and the rates are exact ratios (ADer adds 1e-8 to each
    denominator, and to F1's from precision and recall). A rate with a zero denominator is 0.
    Constant maps (max = min): NaN with an UndefinedMetricWarning.

    References
    ----------
    Zhang et al., "ADer: A Comprehensive Benchmark for Multi-class Visual Anomaly Detection",
    2024 (``util/metric.py``: ``mF1_px_0.2_0.8_0.1``, ``mAcc_px_...``, ``mIoU_px_...``).

    Examples
    --------
    >>> from refmetrics.functional import ader_segmentation
    >>> ader_segmentation([[0.0, 0.5, 1.0, 0.9]], [[0, 0, 1, 1]])
    {'mF1': 0.9142857142857144, 'mAcc': 1.0, 'mIoU': 0.8571428571428571}
    """
    from .stats import score_range

    try:
        ts = [V.check_real("thresholds", t) for t in thresholds]
    except TypeError as exc:
        raise TypeError(f"thresholds: expected a sequence of numbers in [0, 1), received {thresholds!r}") from exc
    if not ts or any(not 0.0 <= t < 1.0 for t in ts):
        raise ValueError(f"thresholds: expected a non-empty sequence of numbers in [0, 1), received {thresholds!r}")
    lo, hi = score_range(preds, backend)
    return ader_from_counts(
        lo, hi, ts, lambda cut: threshold_counts(preds, target, cut, False, None, backend)[0], stacklevel=4)


def ader_from_counts(lo, hi, thresholds, counts_at, stacklevel=3, cuts=None):
    """:func:`ader_segmentation` from the maps' ``lo``/``hi`` (float64) and ``counts_at(cut)``, the pooled
    TP, FP, FN, TN of ``score >= cut``: what a streaming state (``refmetrics.state.PixelState``) gives
    once every map is read. The undefined cases warn and return NaN as :func:`ader_segmentation`.
    ``cuts``: the ``normalised_cut(lo, hi, t)`` of each threshold when already known (a caller with many
    count sets of one ``lo``/``hi``, ``evaluate --ci``'s resamples), else computed here."""
    nan = {"mF1": float("nan"), "mAcc": float("nan"), "mIoU": float("nan")}
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi == lo:
        why = "the maps are constant" if hi == lo else "the maps hold infinite scores"
        V.warn_undefined(f"ader_segmentation is undefined: {why}, so min-max normalisation is not defined; "
                         "returning nan", stacklevel=stacklevel)
        return nan
    if not math.isfinite(hi - lo):  # the span overflows float64: no finite normalised value
        V.warn_undefined("ader_segmentation is undefined: max - min overflows float64; returning nan",
                         stacklevel=stacklevel)
        return nan
    f1, acc, iou = [], [], []
    for i, t in enumerate(thresholds):
        cut = normalised_cut(lo, hi, t) if cuts is None else cuts[i]
        r = rates(np.asarray(counts_at(cut), np.int64).reshape(1, 4))
        f1.append(float(r["f1"][0]))
        acc.append(float(r["recall"][0]))
        iou.append(float(r["iou"][0]))
    n = len(thresholds)
    return {"mF1": math.fsum(f1) / n, "mAcc": math.fsum(acc) / n, "mIoU": math.fsum(iou) / n}
