"""Fixed-threshold metrics: F1Score (torchmetrics' BinaryF1Score semantics)."""

import numpy as np

from .. import _arrays as A
from .. import _validation as V
from ..kernels.cpu import keys as KEYS
from ..kernels.cpu import threshold as KT

_AVERAGES = ("global", "samplewise")


def sample_rows(p, t, samplewise, option):
    """The rows counts are kept for: 1, or with ``samplewise`` one per sample along the first axis
    (``option`` names the argument that asked for it, for the error)."""
    if not samplewise:
        return 1
    if p.ndim < 2:
        raise ValueError(f"preds: {option}='samplewise' expects at least 2 dimensions (N, ...), "
                         f"received shape {p.shape}")
    rows = p.shape[0]
    if t.ndim < 1 or t.shape[0] != rows:
        raise ValueError(f"target: expected {rows} samples along the first axis like preds, "
                         f"received shape {t.shape}")
    return rows


def f1_counts(preds, target, threshold, multidim_average, ignore_index, backend):
    """``(rows, 3)`` int64 TP, FP, FN: one row, or one per sample when samplewise."""
    V.check_choice("multidim_average", multidim_average, _AVERAGES)
    threshold = V.check_real("threshold", threshold)
    where = A.resolve_backend(backend, preds, target)
    V.check_ignore_index(ignore_index)
    p = A.array_on(where, preds, "preds")
    t = A.array_on(where, target, "target")
    V.check_pair(p, t)
    rows = sample_rows(p, t, multidim_average == "samplewise", "multidim_average")
    if where == "cuda":
        return _device_counts(p, t, threshold, rows, ignore_index)
    scores = np.ascontiguousarray(p).reshape(rows, -1)
    if scores.dtype == np.float16 or scores.dtype == np.bool_:
        scores = scores.astype(np.float32)
    labels = A.labels(t)
    has_ignore, ignore = A.ignore_value(labels, ignore_index)
    labels2d = labels.reshape(rows, -1)
    # ignored elements are dropped before anything else: the NaN check and the sigmoid rule
    lo, hi, n_nan = KT.kept_range(scores, labels2d, has_ignore, ignore)
    V.raise_if_nan("preds", n_nan)
    sigmoid = bool(lo < 0.0 or hi > 1.0)
    out = np.zeros((rows, 3), np.int64)
    n_bad = KT.confusion_counts(scores, labels2d, has_ignore, ignore, threshold, sigmoid, out)
    V.raise_bad_labels("target", labels, has_ignore, ignore, ignore_index, n_bad)
    return out


def positive_cut(threshold, sigmoid):
    """The float64 ``cut`` with ``x >= cut`` iff ``x`` is predicted positive by the CPU rule
    (``x > threshold``, after the CPU's float64 sigmoid when ``sigmoid``); NaN when no
    ``x`` is. The CUDA backend compares with it, so no device ``exp`` decides a count.

    Found by bisection over the float64 order with the CPU's own sigmoid, which is
    monotone (``exp`` is), so the cut reproduces the CPU's decisions exactly.
    """
    if not sigmoid:
        return float("nan") if threshold == np.inf else float(np.nextafter(threshold, np.inf))
    if KT.sigmoid_above(-np.inf, threshold):
        return -np.inf
    if not KT.sigmoid_above(np.inf, threshold):
        return float("nan")
    lo, hi = KEYS.key_of(-np.inf), KEYS.key_of(np.inf)  # sigmoid_above(lo) false, (hi) true
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if KT.sigmoid_above(KEYS.value_of(mid), threshold):
            hi = mid
        else:
            lo = mid
    return KEYS.value_of(hi)


def _device_counts(p, t, threshold, rows, ignore_index):
    """:func:`f1_counts` on the device: the scores never leave it."""
    from ..kernels.cuda import _driver as D

    scores = p.reshape(p.size)
    if scores.dtype in (np.float16, np.bool_):
        scores = D.to_float(scores, np.float32)[0]
    labels = A.device_labels(t)
    has_ignore, ignore = A.ignore_value(labels, ignore_index)
    lo, hi, n_nan = D.min_max(scores, labels if has_ignore else None, ignore)
    V.raise_if_nan("preds", n_nan)
    cut = positive_cut(threshold, bool(lo < 0.0 or hi > 1.0))
    out, n_bad = D.confusion_counts(scores, labels, has_ignore, ignore, cut, rows)
    if n_bad:
        V.raise_bad_labels("target", labels.copy_to_host(), has_ignore, ignore, ignore_index, n_bad)
    return out


def f1_from_counts(counts):
    """F1 per row from TP, FP, FN; 0 where TP + FP + FN = 0."""
    tp, fp, fn = counts[:, 0], counts[:, 1], counts[:, 2]
    denom = 2 * tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)


def f1_score(preds, target, *, threshold=0.5, multidim_average="global", ignore_index=None,
             backend="auto"):
    """F1 score at a fixed threshold (torchmetrics' BinaryF1Score, wrapped by anomalib).

    Defined in ``docs/definitions.md``, section "F1Score" (the page a paper cites).

    Parameters
    ----------
    preds : array_like
        Scores or probabilities. If any value of this call (ignored elements
        aside) lies outside [0, 1], a sigmoid (in float64) is applied to all of
        them first.
    target : array_like
        Binary labels {0, 1}, as many elements as ``preds``.
    threshold : float
        An element is positive iff ``pred > threshold`` (strict).
    multidim_average : {"global", "samplewise"}
        ``"global"``: one F1 from the summed TP/FP/FN. ``"samplewise"``: one F1
        per sample along the first axis.
    ignore_index, backend
        As in :func:`refmetrics.functional.roc_curve`.

    Returns
    -------
    float or ndarray of float64
        ``2TP / (2TP + FP + FN)``, 0 where ``TP + FP + FN = 0``.

    Notes
    -----
    The sigmoid rule follows torchmetrics and therefore depends on the batch:
    the stateful :class:`refmetrics.F1Score` applies it per ``update`` call.

    Examples
    --------
    >>> from refmetrics.functional import f1_score
    >>> f1_score([0.2, 0.6, 0.7, 0.4], [0, 1, 0, 1])
    0.5
    >>> f1_score([[0.2, 0.6], [0.7, 0.4]], [[0, 1], [0, 1]], multidim_average="samplewise").tolist()
    [1.0, 0.0]
    """
    f1 = f1_from_counts(f1_counts(preds, target, threshold, multidim_average, ignore_index, backend))
    return float(f1[0]) if multidim_average == "global" else f1
