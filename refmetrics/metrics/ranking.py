"""Stateful ranking metrics with anomalib's names and parameters."""

import numpy as np

from .. import _validation as V
from ..functional import ranking as F
from .base import Metric


def _thresholds_config(thresholds):
    if thresholds is None or isinstance(thresholds, (int, np.integer)) and not isinstance(thresholds, bool):
        return thresholds if thresholds is None else int(thresholds)
    return tuple(float(t) for t in V.check_thresholds(thresholds))


class _Ranking(Metric):
    """Keeps every (score, label) pair exactly, or per-bin counts with ``thresholds``."""

    def __init__(self, thresholds=None, *, ignore_index=None, validate_args=True, backend="auto"):
        super().__init__(backend)
        self._thr = V.check_thresholds(thresholds)
        self.thresholds = _thresholds_config(thresholds)
        V.check_ignore_index(ignore_index)
        self.ignore_index = ignore_index
        self.validate_args = bool(validate_args)
        self.reset()

    def _config(self):
        return {"thresholds": self.thresholds, "ignore_index": self.ignore_index,
                "validate_args": self.validate_args, "backend": self.backend}

    def reset(self):
        """Forget every sample."""
        self._state = F.new_state(self._thr)

    def update(self, preds, target):
        """Add a batch of scores and labels (see :func:`refmetrics.functional.roc_curve`)."""
        F.add_batch(self._state, preds, target, self.ignore_index, self.backend)

    def _merge_state(self, other):
        self._state.merge(other._state)


_VALIDATE_NOTE = """
    ``validate_args`` is accepted for anomalib compatibility; refmetrics always
    validates (NaN and label checks are fused into the pass that reads the
    data, so they cost nothing measurable)."""


class AUROC(_Ranking):
    __doc__ = """Area under the ROC curve (exact Mann-Whitney U by default).

    Parameters
    ----------
    thresholds : None, int or array_like
        None: exact. An int ``T``: ``T`` thresholds evenly spaced in [0, 1]; an
        array: those thresholds (torchmetrics' binned mode, memory O(T)).
    ignore_index : int or float, optional
        Elements whose target equals it are dropped.
    validate_args : bool
    backend : {"auto", "cpu", "cuda"}

    Notes
    -----
    See :func:`refmetrics.functional.auroc`. The exact state keeps every score
    (4 bytes per float32 element); results do not depend on how the data was
    split into ``update`` calls or merged.""" + _VALIDATE_NOTE + """

    Examples
    --------
    anomalib's documented example:

    >>> from refmetrics import AUROC
    >>> preds = [0.13, 0.26, 0.08, 0.92, 0.03]
    >>> target = [0, 0, 1, 1, 0]
    >>> metric = AUROC()
    >>> round(metric(preds, target), 4)
    0.6667
    >>> metric.reset()
    >>> metric.update(preds[:2], target[:2])
    >>> metric.update(preds[2:], target[2:])
    >>> round(metric.compute(), 4)
    0.6667
    """

    def compute(self):
        """The AUROC of everything seen (NaN with a warning for one class)."""
        return F.auroc_from_state(self._state)

    def curve(self):
        """``(fpr, tpr, thresholds)`` of everything seen."""
        return F.roc_from_state(self._state)

    def generate_figure(self):
        """The ROC curve with the chance diagonal; returns ``(figure, "ROC")``."""
        from .. import plotting

        fpr, tpr, _ = self.curve()
        return plotting.roc_figure(fpr, tpr, self.compute()), "ROC"


class AUPR(_Ranking):
    __doc__ = """Area under the precision-recall curve.

    Parameters
    ----------
    thresholds : None, int or array_like
        As in :class:`AUROC` (the one positional parameter, as in torchmetrics).
    curve : {"step", "trapezoid"}
        ``"step"`` (default): average precision. ``"trapezoid"``: anomalib 1.x.
    ignore_index, validate_args, backend
        As in :class:`AUROC`.

    Notes
    -----
    See :func:`refmetrics.functional.aupr`.""" + _VALIDATE_NOTE + """

    Examples
    --------
    anomalib's documented example:

    >>> from refmetrics import AUPR
    >>> true = [0, 1, 1, 1, 0, 0, 0, 0, 1, 1]
    >>> pred = [0.59, 0.35, 0.72, 0.33, 0.73, 0.81, 0.30, 0.05, 0.04, 0.48]
    >>> round(AUPR(curve="trapezoid")(pred, true), 4)
    0.4899
    >>> AUPR()(pred, true)
    0.46095238095238095
    """

    def __init__(self, thresholds=None, *, curve="step", ignore_index=None, validate_args=True, backend="auto"):
        V.check_choice("curve", curve, F._CURVES)
        self.curve_kind = curve
        super().__init__(thresholds, ignore_index=ignore_index, validate_args=validate_args,
                         backend=backend)

    def _config(self):
        return {"curve": self.curve_kind, **super()._config()}

    def compute(self):
        """The AUPR of everything seen (NaN with a warning without a positive; 1.0 with positives only)."""
        return F.aupr_from_state(self._state, self.curve_kind)

    def curve(self):
        """``(precision, recall, thresholds)`` of everything seen."""
        return F.pr_from_state(self._state)

    def generate_figure(self):
        """The PR curve with the prevalence baseline; returns ``(figure, "PR")``."""
        from .. import plotting

        precision, recall, _ = self.curve()
        p, n = self._state.n_pos, self._state.n_neg
        prevalence = p / (p + n) if p + n else float("nan")
        return plotting.pr_figure(precision, recall, self.compute(), prevalence), "PR"


class BinaryPrecisionRecallCurve(_Ranking):
    __doc__ = """Precision-recall curve, without any sigmoid (anomalib's semantics).

    Parameters
    ----------
    thresholds, ignore_index, validate_args, backend
        As in :class:`AUROC`.

    Notes
    -----
    See :func:`refmetrics.functional.precision_recall_curve`.""" + _VALIDATE_NOTE + """

    Examples
    --------
    >>> from refmetrics import BinaryPrecisionRecallCurve
    >>> metric = BinaryPrecisionRecallCurve()
    >>> metric.update([0.1, 0.4, 0.4, 0.8], [0, 0, 1, 1])
    >>> [a.tolist() for a in metric.compute()]
    [[0.5, 0.6666666666666666, 1.0, 1.0], [1.0, 1.0, 0.5, 0.0], [0.1, 0.4, 0.8]]
    """

    def compute(self):
        """``(precision, recall, thresholds)``, thresholds increasing, end point appended."""
        return F.pr_from_state(self._state)


class F1AdaptiveThreshold(_Ranking):
    """The threshold that maximises F1 over the precision-recall curve.

    Parameters
    ----------
    default_value : float
        Returned (with a warning) when ``compute`` is called before any sample.
    thresholds : None, int or array_like
        None: every distinct score is a candidate (exact). An int ``T``: ``T``
        thresholds evenly spaced in [0, 1]; an array: those thresholds
        (torchmetrics' binned mode, anomalib 2.x's ``thresholds``): the candidates
        are then the given thresholds, and the state holds counts per bin.
    ignore_index : int or float, optional
    backend : {"auto", "cpu", "cuda"}

    Attributes
    ----------
    value : float
        The last computed threshold (``default_value`` before).
    f1 : float
        The F1 at that threshold (NaN before, and without an anomalous sample).

    Notes
    -----
    See :func:`refmetrics.functional.f1_adaptive_threshold`: ties go to the
    lowest threshold; without an anomalous sample the highest score is returned,
    without a normal sample the lowest, each with an UndefinedMetricWarning. In
    binned mode, where the scores are not kept, these fall-backs are the highest
    and the lowest given threshold (as anomalib 2.x's).

    Examples
    --------
    anomalib's documented example:

    >>> import numpy as np
    >>> from refmetrics import F1AdaptiveThreshold
    >>> threshold = F1AdaptiveThreshold(default_value=0.5)
    >>> threshold(np.array([2.3, 1.6, 2.6, 7.9, 3.3]), np.array([0, 0, 0, 1, 1]))
    3.3
    >>> threshold.f1
    1.0

    Binned mode: the candidates are the given thresholds.

    >>> binned = F1AdaptiveThreshold(thresholds=[0.0, 2.5, 3.0, 5.0])
    >>> binned(np.array([2.3, 1.6, 2.6, 7.9, 3.3]), np.array([0, 0, 0, 1, 1]))
    3.0
    """

    _outputs = ("value", "f1")

    def __init__(self, default_value=0.5, *, thresholds=None, ignore_index=None, backend="auto"):
        self.default_value = V.check_real("default_value", default_value)
        super().__init__(thresholds, ignore_index=ignore_index, backend=backend)

    def _config(self):
        return {"default_value": self.default_value, "thresholds": self.thresholds,
                "ignore_index": self.ignore_index, "backend": self.backend}

    def reset(self):
        super().reset()
        self.value = self.default_value
        self.f1 = float("nan")

    def compute(self):
        """The F1-maximising threshold of everything seen."""
        best = F.f1_adaptive_from_state(self._state)
        if best is None:
            V.warn_undefined("F1AdaptiveThreshold.compute() before any sample: returning default_value",
                             stacklevel=2)
            return self.default_value
        self.value, self.f1 = best
        return self.value


class F1Max(_Ranking):
    """The largest F1 score over all thresholds.

    Parameters
    ----------
    ignore_index : int or float, optional
    backend : {"auto", "cpu", "cuda"}

    Attributes
    ----------
    threshold : float
        The threshold that achieves it (the lowest one among ties). Without a
        positive sample F1-max is undefined: ``compute`` returns NaN with an
        UndefinedMetricWarning and the threshold is NaN.

    Examples
    --------
    >>> from refmetrics import F1Max
    >>> metric = F1Max()
    >>> metric([0.2, 0.6, 0.4, 0.9], [0, 1, 0, 1])
    1.0
    >>> metric.threshold
    0.6
    """

    _outputs = ("threshold",)

    def __init__(self, *, ignore_index=None, backend="auto"):
        super().__init__(None, ignore_index=ignore_index, backend=backend)

    def _config(self):
        return {"ignore_index": self.ignore_index, "backend": self.backend}

    def reset(self):
        super().reset()
        self.threshold = float("nan")

    def compute(self):
        """The F1-max of everything seen (NaN with a warning without a positive)."""
        best = F.f1_from_state(self._state)
        if best is None:
            return float("nan")
        self.threshold, f1 = best
        return f1


__all__ = ["AUPR", "AUROC", "BinaryPrecisionRecallCurve", "F1AdaptiveThreshold", "F1Max"]
