"""Numba CPU kernels for fixed-threshold metrics (F1Score)."""

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def confusion_counts(preds, target, has_ignore, ignore, threshold, sigmoid, out):
    """Per-row TP, FP, FN of ``pred > threshold`` (after a float64 sigmoid if asked).

    ``preds`` and ``target`` are ``(rows, m)``; ``out[r] = [tp, fp, fn]`` is added to.
    Returns the number of invalid labels.
    """
    bad = 0
    for r in range(preds.shape[0]):
        tp = 0
        fp = 0
        fn = 0
        for i in range(preds.shape[1]):
            t = target[r, i]
            if has_ignore and t == ignore:
                continue
            x = np.float64(preds[r, i])
            if sigmoid:
                x = 1.0 / (1.0 + np.exp(-x))
            positive = x > threshold
            if t == 1:
                if positive:
                    tp += 1
                else:
                    fn += 1
            elif t == 0:
                if positive:
                    fp += 1
            else:
                bad += 1
        out[r, 0] += tp
        out[r, 1] += fp
        out[r, 2] += fn
    return bad


@njit(cache=True, nogil=True)
def kept_range(preds, target, has_ignore, ignore):
    """``(min, max, n_nan)`` of the preds whose label is not ``ignore`` (float64)."""
    lo = np.inf
    hi = -np.inf
    nan = 0
    for r in range(preds.shape[0]):
        for i in range(preds.shape[1]):
            if has_ignore and target[r, i] == ignore:
                continue
            v = np.float64(preds[r, i])
            if v != v:
                nan += 1
            else:
                lo = min(lo, v)
                hi = max(hi, v)
    return lo, hi, nan


@njit(cache=True, nogil=True)
def sigmoid_above(x, threshold):
    """``sigmoid(x) > threshold`` with the float64 sigmoid of :func:`confusion_counts`."""
    return 1.0 / (1.0 + np.exp(-x)) > threshold
