"""Stateful fixed-threshold metrics: F1Score and ManualThreshold."""

import numpy as np

from .. import _validation as V
from ..functional import threshold as F
from .base import Metric


class F1Score(Metric):
    """F1 score at a fixed threshold (torchmetrics' BinaryF1Score, as anomalib wraps it).

    Parameters
    ----------
    threshold : float
        An element is positive iff ``pred > threshold``.
    multidim_average : {"global", "samplewise"}
        One F1 from the summed counts, or one per sample (first axis).
    ignore_index : int or float, optional
    validate_args : bool
        Accepted for compatibility; input is always validated.
    backend : {"auto", "cpu", "cuda"}

    Notes
    -----
    As in torchmetrics, if any pred of an ``update`` call lies outside [0, 1], a
    sigmoid (float64) is applied to that whole call's preds. TP/FP/FN are int64
    and summed over calls; F1 is 0 where ``TP + FP + FN = 0``.

    Examples
    --------
    >>> from refmetrics import F1Score
    >>> metric = F1Score()
    >>> metric.update([0.2, 0.6], [0, 1])
    >>> metric.update([0.7, 0.4], [0, 1])
    >>> metric.compute()
    0.5
    """

    def __init__(self, threshold=0.5, *, multidim_average="global", ignore_index=None, validate_args=True,
                 backend="auto"):
        super().__init__(backend)
        self.threshold = V.check_real("threshold", threshold)
        V.check_choice("multidim_average", multidim_average, F._AVERAGES)
        self.multidim_average = multidim_average
        V.check_ignore_index(ignore_index)
        self.ignore_index = ignore_index
        self.validate_args = bool(validate_args)
        self.reset()

    def _config(self):
        return {"threshold": self.threshold, "multidim_average": self.multidim_average,
                "ignore_index": self.ignore_index, "validate_args": self.validate_args,
                "backend": self.backend}

    def reset(self):
        """Forget every sample."""
        self._counts = []

    def update(self, preds, target):
        """Add a batch (see :func:`refmetrics.functional.f1_score`)."""
        counts = F.f1_counts(preds, target, self.threshold, self.multidim_average, self.ignore_index,
                             self.backend)
        if self.multidim_average == "global" and self._counts:
            self._counts[0] = self._counts[0] + counts
        else:
            self._counts.append(counts)

    def _merge_state(self, other):
        if self.multidim_average == "global":
            total = sum(other._counts, np.zeros((1, 3), np.int64))
            self._counts = [sum(self._counts, np.zeros((1, 3), np.int64)) + total]
        else:
            self._counts = self._counts + other._counts

    def compute(self):
        """F1 (float), or one F1 per sample seen (ndarray) when samplewise."""
        if not self._counts:
            counts = np.zeros((1 if self.multidim_average == "global" else 0, 3), np.int64)
        else:
            counts = np.concatenate(self._counts)
        f1 = F.f1_from_counts(counts)
        return float(f1[0]) if self.multidim_average == "global" else f1


class ManualThreshold(Metric):
    """A fixed threshold chosen by the user (anomalib's ManualThreshold).

    Parameters
    ----------
    default_value : float
        The threshold; ``compute`` returns it as a float whatever the data.

    Examples
    --------
    >>> from refmetrics import ManualThreshold
    >>> ManualThreshold(default_value=0.7)([0.1, 0.9], [0, 1])
    0.7
    """

    def __init__(self, default_value=0.5, *, backend="auto"):
        super().__init__(backend)
        self.default_value = V.check_real("default_value", default_value)
        self.value = self.default_value

    def _config(self):
        return {"default_value": self.default_value, "backend": self.backend}

    def reset(self):
        """Nothing to forget."""

    def update(self, *args, **kwargs):
        """Ignore the data (kept for the metric protocol)."""
        del args, kwargs

    def _merge_state(self, other):
        del other

    def compute(self):
        """``default_value``."""
        return self.default_value
