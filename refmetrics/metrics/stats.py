"""Stateful score statistics: MinMax and AnomalyScoreDistribution."""

from ..functional import stats as F
from .base import Metric


class MinMax(Metric):
    """Smallest and largest score seen (anomalib's MinMax, used for normalisation).

    Examples
    --------
    anomalib's documented example:

    >>> from refmetrics import MinMax
    >>> minmax = MinMax()
    >>> minmax([0.0807, 0.6329, 0.0559, 0.9860, 0.3595])
    (0.0559, 0.986)
    >>> minmax.update([0.3251, 0.3169, 0.3072, 0.6247, 0.9999])
    >>> minmax.compute()
    (0.0559, 0.9999)
    """

    def __init__(self, *, backend="auto"):
        super().__init__(backend)
        self.reset()

    def reset(self):
        """Back to ``(inf, -inf)``."""
        self.min = float("inf")
        self.max = float("-inf")

    def update(self, preds, *args, **kwargs):
        """Fold a batch of scores (any shape) into the running min and max.

        Anything after ``preds`` (labels, masks, ...) is ignored, as by anomalib's MinMax.
        """
        del args, kwargs
        lo, hi = F.score_range(preds, self.backend)
        self.min = min(self.min, lo)
        self.max = max(self.max, hi)

    def _merge_state(self, other):
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def compute(self):
        """``(min, max)`` as floats; ``(inf, -inf)`` before any update."""
        return self.min, self.max


class AnomalyScoreDistribution(Metric):
    """Mean and std of the log image scores and, per pixel, of the log maps.

    Examples
    --------
    >>> import numpy as np
    >>> from refmetrics import AnomalyScoreDistribution
    >>> metric = AnomalyScoreDistribution()
    >>> metric.update(anomaly_scores=np.exp([1.0, 3.0]))
    >>> metric.update(anomaly_scores=np.exp([2.0]), anomaly_maps=np.ones((1, 2, 2)))
    >>> image_mean, image_std, pixel_mean, pixel_std = metric.compute()
    >>> round(image_mean, 12), round(image_std, 12), pixel_mean.tolist()
    (2.0, 1.0, [[0.0, 0.0], [0.0, 0.0]])

    Notes
    -----
    See :func:`refmetrics.functional.anomaly_score_distribution`. The state
    keeps the log values (8 bytes each), as anomalib keeps the tensors.
    """

    def __init__(self, *, backend="auto"):
        super().__init__(backend)
        self.reset()

    def reset(self):
        """Forget every score and map."""
        self._scores = []
        self._maps = []

    def update(self, anomaly_scores=None, anomaly_maps=None):
        """Add image scores and/or a batch of maps ``(B, ...)``."""
        scores = None if anomaly_scores is None else F.log_values(anomaly_scores, "anomaly_scores", self.backend)
        maps = None
        if anomaly_maps is not None:
            maps = F.maps_batch(anomaly_maps, self.backend)
            F.check_map_shapes(self._maps[0] if self._maps else None, maps)
        if scores is not None:
            self._scores.append(scores)
        if maps is not None:
            self._maps.append(maps)

    def _merge_state(self, other):
        if self._maps and other._maps:
            F.check_map_shapes(self._maps[0], other._maps[0])
        self._scores = self._scores + other._scores
        self._maps = self._maps + other._maps

    def compute(self):
        """``(image_mean, image_std, pixel_mean, pixel_std)``; NaN for what was never given."""
        return F.distribution(self._scores, self._maps)
