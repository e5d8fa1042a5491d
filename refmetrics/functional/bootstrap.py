"""Image-level bootstrap: percentile intervals of any metric, and the paired test of two methods.

Besides :func:`bootstrap_ci` and :func:`bootstrap_test`, this module is the door to the resampling engine
that ``refmetrics evaluate --ci`` and ``refmetrics compare`` use: :func:`resample_counts` (the resamples'
definition), the resamplers (:class:`ImageResampler`, :class:`PixelResampler`, :class:`AupimoResampler`,
:class:`SproResampler`: each one's ``replicates(W, ...)`` gives the metric on every resample, exactly),
:func:`percentile_interval` and :func:`paired_p_value`.
"""

import warnings
from typing import NamedTuple

import numpy as np

from .. import _arrays as A
from .. import _validation as V
from . import _resample as RS
from ._resample import ImageResampler, PixelResampler, paired_p_value, percentile_interval, resample_counts
from ._resample_images import AupimoResampler, SproResampler

__all__ = ["AupimoResampler", "BootstrapInterval", "BootstrapTest", "ImageResampler", "PixelResampler",
           "SproResampler", "bootstrap_ci", "bootstrap_test", "paired_p_value", "percentile_interval",
           "resample_counts"]

#: the metrics of each level: image scores (one per image) and maps (images on axis 0)
IMAGE_METRICS = RS.RANKING
PIXEL_METRICS = RS.RANKING + ("aupro", "aupimo", "au_spro")


class BootstrapInterval(NamedTuple):
    """:func:`bootstrap_ci`'s result: the metric on the data, its percentile interval, the replicates."""

    value: float
    low: float
    high: float
    level: float
    n_resamples: int
    replicates: np.ndarray


class BootstrapTest(NamedTuple):
    """:func:`bootstrap_test`'s result: both values, the difference ``a - b``, its paired percentile
    interval and two-sided p-value, and the replicates of the difference."""

    value_a: float
    value_b: float
    difference: float
    low: float
    high: float
    p_value: float
    level: float
    n_resamples: int
    replicates: np.ndarray


def _resampler(preds, target, metric, connectivity, name="preds"):
    """The resampler of the data's level (1-D scores: images; maps: pixels)."""
    if metric not in PIXEL_METRICS:
        raise ValueError(f"metric: expected one of {', '.join(PIXEL_METRICS)}, received {metric!r}")
    if metric == "au_spro":  # the target: one list of (mask, saturation threshold, relative) per image
        return SproResampler.from_maps(preds, target)
    p = A.host_array(preds, name)
    t = A.host_array(target, "target")
    V.check_nonempty(name, p)
    if p.ndim <= 1:
        if metric not in IMAGE_METRICS:
            raise ValueError(f"metric: {metric!r} needs maps (N, H, W) with masks; with one score per image "
                             f"(1-D {name}) expected one of {', '.join(IMAGE_METRICS)}")
        return ImageResampler(p, t, names=(name, "target"))
    if metric == "aupimo":
        if p.ndim < 3:
            raise ValueError(f"{name}: expected maps of shape (N, H, W), images on the first axis, received "
                             f"shape {p.shape}")
        return AupimoResampler.from_maps(p, t)
    return PixelResampler.from_maps(p, t, connectivity, names=(name, "target"))


#: each area's own default limit, where ``fpr_limit`` is None
DEFAULT_LIMIT = {"aupro": 0.3, "au_spro": 0.05}


def _check(metric, n_resamples, level, seed, fpr_limit=None):
    if not isinstance(metric, str):
        raise TypeError(f"metric: expected a metric name (str), received {type(metric).__name__}")
    if metric not in PIXEL_METRICS:
        raise ValueError(f"metric: expected one of {', '.join(PIXEL_METRICS)}, received {metric!r}")
    from .regions import check_fpr_limit

    if fpr_limit is not None:
        check_fpr_limit(fpr_limit)
    return RS.check_resamples(n_resamples), RS.check_level(level), RS.check_seed(seed)


def _limit(metric, fpr_limit):
    return DEFAULT_LIMIT.get(metric) if fpr_limit is None else fpr_limit


def _values(resampler, weights, metric, fpr_limit, fpr_bounds):
    if metric == "aupro":
        return resampler.replicates(weights, metric, fpr_limit=fpr_limit)
    if metric == "aupimo":
        return resampler.replicates(weights, fpr_bounds=fpr_bounds)
    if metric == "au_spro":
        return resampler.replicates(weights, fpr_limit=fpr_limit)
    return resampler.replicates(weights, metric)


def _value_and_replicates(resampler, weights, metric, fpr_limit, fpr_bounds, what):
    """The metric on the data (the all-ones resample: exactly the ordinary function) and its replicates."""
    ones = np.ones((1, resampler.n_images), np.int64)
    values = _values(resampler, np.vstack([ones, weights]), metric, fpr_limit, fpr_bounds)
    value, reps = float(values[0]), values[1:]
    if np.isnan(value):
        V.warn_undefined(f"{metric} is undefined on the data{what}; returning nan", stacklevel=4)
    return value, reps


def _warn_nan(reps, metric, value):
    n = int(np.isnan(reps).sum())
    if n and not np.isnan(value):  # (undefined on the data: said already)
        warnings.warn(f"{metric} is undefined on {n} of {reps.size} resamples: they are left out of the interval"
                      + (" (so there is none)" if n == reps.size else ""), V.UndefinedMetricWarning, stacklevel=4)


def bootstrap_ci(preds, target, *, metric="auroc", n_resamples=1000, level=0.95, seed=0, fpr_limit=None,
                 fpr_bounds=(1e-5, 1e-4), connectivity=None):
    """Percentile interval of a metric from a stratified image-level bootstrap.

    Defined in ``docs/definitions.md``, section "Bootstrap".

    Parameters
    ----------
    preds : array_like
        One score per image (1-D: image-level metrics), or maps ``(N, H, W)`` with
        the images on axis 0 (pixel and region metrics).
    target : array_like
        The images' {0, 1} labels, or the maps' {0, 1} masks; for ``au_spro``, one list of defects
        ``(mask, saturation_threshold, relative_saturation)`` per image, as
        :func:`refmetrics.functional.au_spro` takes them.
    metric : {"auroc", "average_precision", "f1_max", "aupro", "aupimo", "au_spro"}
        ``aupro``, ``aupimo`` and ``au_spro`` need maps.
    n_resamples : int
        ``B``, the number of resamples.
    level : float
        The interval's coverage, in (0, 1).
    seed : int
        Seeds :func:`numpy.random.default_rng`: the same seed draws the same resamples.
    fpr_limit : float, optional
        AUPRO's or AU-sPRO's limit (default: each one's own, 0.3 and 0.05).
    fpr_bounds : (float, float)
        AUPIMO's shared-FPR bounds (as :func:`refmetrics.functional.aupimo`).
    connectivity : int, optional
        AUPRO's region connectivity (as :func:`refmetrics.functional.aupro`).

    Returns
    -------
    BootstrapInterval
        ``(value, low, high, level, n_resamples, replicates)``: ``value`` is the
        metric on the data (as its ordinary function); ``replicates[b]`` the
        metric on resample ``b``, exactly (NaN where undefined, left out of the
        interval with a warning).

    Notes
    -----
    The images are the unit: normal and anomalous images are drawn apart, with
    replacement, as many as there are (a stratified bootstrap), from
    ``numpy.random.default_rng(seed)``; resample ``b`` holds image ``i``
    ``W[b, i]`` times (:func:`resample_counts`), and its value is the metric of
    ``np.repeat(preds, W[b], axis=0)`` (and the target likewise), bit for bit,
    computed by a weighted walk of the once-sorted data. The interval is the
    ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles (linear) of the
    replicates.

    References
    ----------
    Efron, B., & Tibshirani, R. J. (1993). *An Introduction to the Bootstrap*. Chapman & Hall.

    Examples
    --------
    >>> from refmetrics.functional import bootstrap_ci
    >>> r = bootstrap_ci([0.1, 0.4, 0.35, 0.8, 0.2, 0.7], [0, 0, 1, 1, 0, 1], n_resamples=200, seed=0)
    >>> r.value, r.replicates.size, r.low <= r.value <= r.high
    (0.8888888888888888, 200, True)
    """
    n_resamples, level, seed = _check(metric, n_resamples, level, seed, fpr_limit)
    fpr_limit = _limit(metric, fpr_limit)
    resampler = _resampler(preds, target, metric, connectivity)
    weights = RS.resample_counts(resampler.anomalous, n_resamples, seed)
    value, reps = _value_and_replicates(resampler, weights, metric, fpr_limit, fpr_bounds, "")
    _warn_nan(reps, metric, value)
    low, high = RS.percentile_interval(reps, level)
    return BootstrapInterval(value, low, high, level, n_resamples, reps)


def bootstrap_test(preds_a, preds_b, target, *, metric="auroc", n_resamples=1000, level=0.95, seed=0,
                   fpr_limit=None, fpr_bounds=(1e-5, 1e-4), connectivity=None):
    """Paired bootstrap of the difference of a metric between two methods on the same images.

    Defined in ``docs/definitions.md``, section "Bootstrap".

    Both methods are evaluated on the same resamples (the same images, drawn
    as :func:`bootstrap_ci` draws them); the difference ``a - b`` of each
    resample gives the percentile interval and the two-sided p-value
    ``min(1, 2 min(1 + #{d <= 0}, 1 + #{d >= 0}) / (B + 1))``.

    Parameters
    ----------
    preds_a, preds_b : array_like
        The two methods' scores or maps, of the same shape.
    target : array_like
        The labels or masks both are evaluated against.
    metric, n_resamples, level, seed, fpr_limit, fpr_bounds, connectivity
        As :func:`bootstrap_ci`.

    Returns
    -------
    BootstrapTest
        ``(value_a, value_b, difference, low, high, p_value, level, n_resamples, replicates)``.

    Examples
    --------
    >>> from refmetrics.functional import bootstrap_test
    >>> t = bootstrap_test([0.1, 0.4, 0.35, 0.8, 0.2, 0.7], [0.1, 0.2, 0.35, 0.8, 0.3, 0.7],
    ...                    [0, 0, 1, 1, 0, 1], n_resamples=200, seed=0)
    >>> round(t.difference, 6), t.p_value > 0.05
    (-0.111111, True)
    """
    n_resamples, level, seed = _check(metric, n_resamples, level, seed, fpr_limit)
    fpr_limit = _limit(metric, fpr_limit)
    a = A.host_array(preds_a, "preds_a")
    b = A.host_array(preds_b, "preds_b")
    if a.shape != b.shape:
        raise ValueError(f"preds_b: expected the shape of preds_a {a.shape}, received {b.shape}")
    ra = _resampler(a, target, metric, connectivity, "preds_a")
    rb = _resampler(b, target, metric, connectivity, "preds_b")
    weights = RS.resample_counts(ra.anomalous, n_resamples, seed)
    value_a, reps_a = _value_and_replicates(ra, weights, metric, fpr_limit, fpr_bounds, " of preds_a")
    value_b, reps_b = _value_and_replicates(rb, weights, metric, fpr_limit, fpr_bounds, " of preds_b")
    diffs = reps_a - reps_b
    _warn_nan(diffs, metric, value_a - value_b)
    low, high = RS.percentile_interval(diffs, level)
    return BootstrapTest(value_a, value_b, value_a - value_b, low, high, RS.paired_p_value(diffs), level,
                         n_resamples, diffs)
