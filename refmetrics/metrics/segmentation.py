"""Stateful validation threshold (MVTec AD 2's mean + 3 std of defect-free validation maps)."""

from .. import _validation as V
from ..functional import segmentation as F
from .base import Metric


class ValidationThreshold(Metric):
    """``mean + n_std * std`` (ddof 0) of every pixel of the validation maps seen.

    Parameters
    ----------
    n_std : float
        How many standard deviations above the mean (MVTec AD 2: 3).
    backend : {"auto", "cpu", "cuda"}

    Notes
    -----
    See :func:`refmetrics.functional.validation_threshold`. The state is the exact sum and sum
    of squares of the pixels, as integers (a few kilobytes whatever the data): any split into
    ``update`` calls and any merge give the same, bit-identical threshold.

    Examples
    --------
    >>> from refmetrics import ValidationThreshold
    >>> metric = ValidationThreshold()
    >>> metric.update([[1.0, 3.0]])
    >>> metric.update([[1.0, 3.0]])
    >>> metric.compute()
    5.0
    """

    def __init__(self, n_std=3.0, *, backend="auto"):
        super().__init__(backend)
        self.n_std = V.check_real("n_std", n_std)
        self.reset()

    def _config(self):
        return {"n_std": self.n_std, "backend": self.backend}

    def reset(self):
        """Forget every pixel."""
        self._state = F.Moments()

    def update(self, maps):
        """Add validation maps (one array of any shape; every pixel counts)."""
        batch = F.Moments()
        F.add_maps(batch, maps, self.backend)  # validated before the state changes
        self._state.merge(batch)

    def _merge_state(self, other):
        self._state.merge(other._state)

    def compute(self):
        """The threshold (NaN with a warning without any pixel, or with infinite pixels)."""
        return F.threshold_from_moments(self._state, self.n_std)
