"""Ranking metrics: ROC and precision-recall curves, AUROC, AP/AUPR, F1-max.

All of them are computed from the same exact construction (see
:mod:`refmetrics.functional._ranked`): every score is kept at its exact value,
the distinct scores are the thresholds in decreasing order, an element is
predicted positive at threshold ``t`` when ``score >= t``, and elements with
equal scores are crossed together. Counts are int64; rates and areas float64.
"""

import warnings
from fractions import Fraction

import numpy as np

from .. import _validation as V
from ..kernels.cpu._int128 import count_ratios
from . import _ranked as R

_CURVES = ("step", "trapezoid")


# ---------------------------------------------------------------------------
# drivers shared with the stateful classes
# ---------------------------------------------------------------------------

def new_state(thresholds):
    """An empty state: exact when ``thresholds`` (checked) is None, else binned."""
    return R.ExactScores() if thresholds is None else R.BinnedScores(thresholds)


def add_batch(state, preds, target, ignore_index, backend):
    """Validate one batch and add it to ``state``."""
    batch = R.intake_pair(preds, target, ignore_index, backend)
    state.add(batch if isinstance(state, R.BinnedScores) else R.partition(batch))


def ranking_state(preds, target, thresholds, ignore_index, backend):
    """Validated data as an :class:`ExactScores` or :class:`BinnedScores`."""
    state = new_state(V.check_thresholds(thresholds))
    add_batch(state, preds, target, ignore_index, backend)
    return state


def _groups(state):
    if isinstance(state, R.BinnedScores):
        n_below = state.n_below
        if n_below:
            warnings.warn(f"{n_below:,} scores lie below the lowest threshold ({state.thresholds[0]:g}) and are "
                          "never predicted positive, so the binned curve stops short of (1, 1); binned mode "
                          "applies no sigmoid: rescale the scores or use the exact mode (thresholds=None)",
                          V.BinningWarning, stacklevel=4)
        return state.groups()
    if state.on_device:
        return R.device_groups(*state.device_sorted())
    pos, neg = state.sorted()
    return R.exact_groups(pos, neg)


def _curve_counts(state):
    if isinstance(state, R.BinnedScores):
        return state.curve_counts()
    if state.on_device:
        return R.device_curve_counts(*state.device_sorted())
    return R.exact_curve_counts(*state.sorted())


def _exact_on_device(state):
    return isinstance(state, R.ExactScores) and state.on_device


def _one_class(state, what):
    p, n = state.n_pos, state.n_neg
    if p and n:
        return False
    why = "no samples" if not (p or n) else ("no positive (anomalous) sample" if not p
                                             else "no negative (normal) sample")
    # stack: warn_undefined, _one_class, *_from_state, the public function or compute(), the caller
    V.warn_undefined(f"{what} is undefined with {why}; returning nan", stacklevel=5)
    return True


def _no_positive(state, what):
    """AP, AUPR and F1 need a positive only: with positives alone every precision is 1."""
    if state.n_pos:
        return False
    why = "no samples" if not state.n_neg else "no positive (anomalous) sample"
    V.warn_undefined(f"{what} is undefined with {why}; returning nan", stacklevel=5)
    return True


def auroc_from_state(state):
    if _one_class(state, "AUROC"):
        return float("nan")
    p, n = state.n_pos, state.n_neg
    if _exact_on_device(state):
        from ..kernels.cuda import _driver as D

        return float(Fraction(D.auroc_u2(*state.device_sorted()), 2 * p * n))
    if isinstance(state, R.ExactScores):
        return float(Fraction(R.exact_auroc_u2(state), 2 * p * n))
    return float(Fraction(R.auroc_u2(_groups(state)), 2 * p * n))


def average_precision_from_state(state):
    if _no_positive(state, "average precision"):
        return float("nan")
    if isinstance(state, R.ExactScores) and not state.on_device:
        return R.exact_average_precision(state)
    return R.average_precision(_groups(state), state.n_pos)


def aupr_from_state(state, curve):
    if curve == "step":
        return average_precision_from_state(state)
    if _no_positive(state, "AUPR"):
        return float("nan")
    return R.pr_trapezoid(_groups(state), state.n_pos)


def roc_from_state(state):
    thr, tp, fp = _curve_counts(state)
    p, n = state.n_pos, state.n_neg
    if not (p and n):
        _one_class(state, "the true or false positive rate")
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = np.concatenate([[0.0], count_ratios(tp, p)]) if p else np.full(tp.size + 1, np.nan)
        fpr = np.concatenate([[0.0], count_ratios(fp, n)]) if n else np.full(fp.size + 1, np.nan)
    return fpr, tpr, np.concatenate([[np.inf], thr])


def pr_from_state(state):
    thr, tp, fp = _curve_counts(state)
    p = state.n_pos
    if not p:
        _one_class(state, "recall")
    with np.errstate(invalid="ignore", divide="ignore"):
        predicted = tp + fp
        precision = np.where(predicted > 0, count_ratios(tp, np.maximum(predicted, 1)), 1.0)
        recall = count_ratios(tp, p) if p else np.full(tp.size, np.nan)
    return (np.concatenate([precision[::-1], [1.0]]), np.concatenate([recall[::-1], [0.0]]),
            thr[::-1].copy())


def _f1_best(state):
    """``(threshold, f1)`` at the largest F1, ties to the lowest threshold (needs a positive)."""
    p = state.n_pos
    if _exact_on_device(state):
        from ..kernels.cuda import _driver as D

        tp, fp, key = D.f1_best(*state.device_sorted())
    elif isinstance(state, R.ExactScores):
        tp, fp, key = R.exact_f1_best(state)
    else:
        tp, fp, key = R.f1_best(_groups(state), p)
    return state.threshold_of(key), float(Fraction(2 * tp, tp + fp + p))


def f1_from_state(state):
    """``(threshold, f1)`` at the largest F1 (ties to the lowest threshold), or None (and
    an UndefinedMetricWarning) without a positive: F1-max is then undefined."""
    if _no_positive(state, "F1"):
        return None
    return _f1_best(state)


def f1_adaptive_from_state(state):
    """anomalib's F1AdaptiveThreshold with its documented fall-backs; None without samples.

    No anomalous sample: the highest score, and F1 NaN (undefined there, as
    F1-max is). No normal sample: the lowest score, where F1 is the largest
    (every positive is predicted). In binned mode (scores not kept) the highest or
    lowest given threshold instead, as anomalib 2.x.
    """
    p, n = state.n_pos, state.n_neg
    if not (p or n):
        return None
    if p and n:
        return _f1_best(state)
    what = "given threshold" if isinstance(state, R.BinnedScores) else "score"
    V.warn_undefined("F1AdaptiveThreshold: " + (
        f"no anomalous sample: the threshold is the highest {what} and F1 is undefined (nan)" if not p
        else f"no normal sample: the threshold is the lowest {what}"), stacklevel=4)
    threshold = state.extreme_threshold(positive=bool(p), highest=not p)
    return threshold, (_f1_best(state)[1] if p else float("nan"))


# ---------------------------------------------------------------------------
# public functions
# ---------------------------------------------------------------------------

def roc_curve(preds, target, *, thresholds=None, ignore_index=None, backend="auto"):
    """Receiver operating characteristic curve.

    Defined in ``docs/definitions.md``, section "roc_curve" (the page a paper cites).

    Parameters
    ----------
    preds : array_like
        Anomaly scores, higher means more anomalous. Any shape; bool, integer
        or float16/32/64; +-inf allowed, NaN rejected.
    target : array_like
        Binary labels {0, 1} with as many elements as ``preds`` (a ``(B,1,H,W)``
        map with a ``(B,H,W)`` mask is fine).
    thresholds : None, int or array_like, optional
        None (default): the exact curve. An int ``T``: ``T`` thresholds evenly
        spaced in [0, 1]; an array: those thresholds (torchmetrics' binned mode),
        +-inf allowed, so the thresholds a curve returned can be passed back.
    ignore_index : int or float, optional
        Elements whose target equals it are dropped first.
    backend : {"auto", "cpu", "cuda"}
        Where to compute; ``"auto"`` follows the data.

    Returns
    -------
    fpr, tpr, thresholds : ndarray of float64
        One point per threshold in decreasing order, preceded by (0, 0) at
        threshold ``+inf``.

    Notes
    -----
    Thresholds are the distinct values of ``preds`` in decreasing order; an
    element is predicted positive at ``t`` when ``score >= t``, so equal scores
    are crossed together. ``tpr = TP(t)/P``, ``fpr = FP(t)/N``. With one class
    only, the undefined rate is NaN and an UndefinedMetricWarning is emitted.

    Examples
    --------
    >>> from refmetrics.functional import roc_curve
    >>> fpr, tpr, thr = roc_curve([0.1, 0.4, 0.4, 0.8], [0, 0, 1, 1])
    >>> fpr.tolist(), tpr.tolist(), thr.tolist()
    ([0.0, 0.0, 0.5, 1.0], [0.0, 0.5, 1.0, 1.0], [inf, 0.8, 0.4, 0.1])
    """
    return roc_from_state(ranking_state(preds, target, thresholds, ignore_index, backend))


def auroc(preds, target, *, thresholds=None, ignore_index=None, backend="auto"):
    """Area under the ROC curve, exactly (Mann-Whitney U).

    Defined in ``docs/definitions.md``, section "AUROC" (the page a paper cites).

    Parameters
    ----------
    preds, target, thresholds, ignore_index, backend
        As in :func:`roc_curve`.

    Returns
    -------
    float
        ``(#pairs pos > neg + 1/2 #pairs pos == neg) / (P N)``, computed from
        integer counts and rounded once; NaN with an UndefinedMetricWarning when
        only one class is present.

    Notes
    -----
    Equal to the trapezoid under :func:`roc_curve`. No sigmoid and no rounding
    to float32 is applied: raw scores far outside [0, 1] rank as they are, and
    any strictly increasing rescaling of the scores leaves the value unchanged.
    In binned mode it is the trapezoid under the binned curve, starting at (0, 0).

    Examples
    --------
    anomalib's documented example:

    >>> from refmetrics.functional import auroc
    >>> round(auroc([0.13, 0.26, 0.08, 0.92, 0.03], [0, 0, 1, 1, 0]), 4)
    0.6667
    >>> auroc([0.13, 0.26, 0.08, 0.92, 0.03], [0, 0, 1, 1, 0]) == 4 / 6
    True
    """
    return auroc_from_state(ranking_state(preds, target, thresholds, ignore_index, backend))


def precision_recall_curve(preds, target, *, thresholds=None, ignore_index=None, backend="auto"):
    """Precision-recall curve in torchmetrics/anomalib order.

    Defined in ``docs/definitions.md``, section "precision_recall_curve" (the page a paper cites).

    Parameters
    ----------
    preds, target, thresholds, ignore_index, backend
        As in :func:`roc_curve`.

    Returns
    -------
    precision, recall : ndarray of float64
        One point per threshold, thresholds increasing, then the end point
        (precision 1, recall 0) which has no threshold.
    thresholds : ndarray of float64
        The thresholds, increasing.

    Notes
    -----
    ``precision = TP/(TP+FP)`` and ``recall = TP/P`` at ``score >= t``. No
    sigmoid is ever applied (anomalib's BinaryPrecisionRecallCurve). In binned
    mode a threshold above every score has precision 1 (nothing predicted).

    Examples
    --------
    >>> from refmetrics.functional import precision_recall_curve
    >>> p, r, t = precision_recall_curve([0.1, 0.4, 0.4, 0.8], [0, 0, 1, 1])
    >>> p.tolist(), r.tolist(), t.tolist()
    ([0.5, 0.6666666666666666, 1.0, 1.0], [1.0, 1.0, 0.5, 0.0], [0.1, 0.4, 0.8])
    """
    return pr_from_state(ranking_state(preds, target, thresholds, ignore_index, backend))


def average_precision(preds, target, *, thresholds=None, ignore_index=None, backend="auto"):
    """Average precision: the step-wise area under the precision-recall curve.

    Defined in ``docs/definitions.md``, section "average precision" (the page a paper cites).

    Parameters
    ----------
    preds, target, thresholds, ignore_index, backend
        As in :func:`roc_curve`.

    Returns
    -------
    float
        ``sum_k (R_k - R_{k-1}) P_k`` over thresholds in decreasing order,
        ``R_0 = 0`` (scikit-learn's definition, anomalib 2.x's AUPR). NaN with
        an UndefinedMetricWarning when there is no positive; 1.0 with
        positives only (every precision is 1), as scikit-learn and torchmetrics.

    Examples
    --------
    >>> from refmetrics.functional import average_precision
    >>> true = [0, 1, 1, 1, 0, 0, 0, 0, 1, 1]
    >>> pred = [0.59, 0.35, 0.72, 0.33, 0.73, 0.81, 0.30, 0.05, 0.04, 0.48]
    >>> average_precision(pred, true)
    0.46095238095238095
    """
    return average_precision_from_state(ranking_state(preds, target, thresholds, ignore_index, backend))


def aupr(preds, target, *, curve="step", thresholds=None, ignore_index=None, backend="auto"):
    """Area under the precision-recall curve.

    Defined in ``docs/definitions.md``, section "AUPR (step and trapezoid)" (the page a paper cites).

    Parameters
    ----------
    curve : {"step", "trapezoid"}
        ``"step"`` (default): average precision (:func:`average_precision`).
        ``"trapezoid"``: anomalib 1.x's value, the trapezoid rule over the
        :func:`precision_recall_curve` points taken in their order, then stably
        sorted by recall ascending (so, within equal recall, by increasing
        threshold, with the end point (0, 1) last among recall 0).
    preds, target, thresholds, ignore_index, backend
        As in :func:`roc_curve`.

    Returns
    -------
    float
        NaN with an UndefinedMetricWarning when there is no positive; 1.0 with
        positives only (every precision is 1), with either ``curve``.

    Examples
    --------
    anomalib's documented example:

    >>> from refmetrics.functional import aupr
    >>> true = [0, 1, 1, 1, 0, 0, 0, 0, 1, 1]
    >>> pred = [0.59, 0.35, 0.72, 0.33, 0.73, 0.81, 0.30, 0.05, 0.04, 0.48]
    >>> round(aupr(pred, true, curve="trapezoid"), 4)
    0.4899
    >>> aupr(pred, true)
    0.46095238095238095
    """
    V.check_choice("curve", curve, _CURVES)
    return aupr_from_state(ranking_state(preds, target, thresholds, ignore_index, backend), curve)


def f1_max(preds, target, *, ignore_index=None, backend="auto"):
    """The largest F1 score over all thresholds.

    Defined in ``docs/definitions.md``, section "F1-max" (the page a paper cites).

    Parameters
    ----------
    preds, target, ignore_index, backend
        As in :func:`roc_curve`.

    Returns
    -------
    float
        ``max_t 2TP/(2TP+FP+FN)`` over the distinct scores ``t`` (``score >= t``),
        compared exactly in integers. NaN with an UndefinedMetricWarning when
        there is no positive (recall is undefined).

    Examples
    --------
    >>> from refmetrics.functional import f1_max
    >>> f1_max([2.3, 1.6, 2.6, 7.9, 3.3], [0, 0, 0, 1, 1])
    1.0
    >>> import warnings, refmetrics
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", refmetrics.UndefinedMetricWarning)
    ...     f1_max([0.2, 0.7], [0, 0])
    nan
    """
    state = ranking_state(preds, target, None, ignore_index, backend)
    best = f1_from_state(state)
    return float("nan") if best is None else best[1]


def f1_adaptive_threshold(preds, target, *, ignore_index=None, backend="auto"):
    """The threshold that maximises F1, and that F1.

    Defined in ``docs/definitions.md``, section "F1AdaptiveThreshold" (the page a paper cites).

    Parameters
    ----------
    preds, target, ignore_index, backend
        As in :func:`roc_curve`.

    Returns
    -------
    threshold, f1 : float
        Over the :func:`precision_recall_curve` thresholds, the one with the
        largest exact ``F1 = 2TP/(2TP+FP+FN)``; ties go to the lowest threshold.
        ``(nan, nan)`` with a warning when every element was ignored.

    Notes
    -----
    anomalib's fall-backs, each with an UndefinedMetricWarning: without an
    anomalous sample the threshold is the highest score and the F1 is NaN
    (undefined without a positive, as :func:`f1_max`); without a normal
    sample, the lowest score, with its F1.

    Examples
    --------
    anomalib's documented example:

    >>> from refmetrics.functional import f1_adaptive_threshold
    >>> f1_adaptive_threshold([2.3, 1.6, 2.6, 7.9, 3.3], [0, 0, 0, 1, 1])
    (3.3, 1.0)

    The threshold is a score, exactly as given: float32 scores (anomalib's
    tensors) give the float32 number nearest 3.3.

    >>> import numpy as np
    >>> f1_adaptive_threshold(np.float32([2.3, 1.6, 2.6, 7.9, 3.3]), [0, 0, 0, 1, 1])
    (3.299999952316284, 1.0)
    """
    state = ranking_state(preds, target, None, ignore_index, backend)
    best = f1_adaptive_from_state(state)
    if best is None:
        V.warn_undefined("F1 adaptive threshold is undefined with no samples; returning (nan, nan)")
        return float("nan"), float("nan")
    return best
