"""Stateful AU-sPRO (MVTec LOCO AD): a thin wrapper over :mod:`refmetrics.functional.spro`."""

from ..functional import spro as functional_spro
from .base import Metric


class AUsPRO(Metric):
    """Area under the saturated per-region overlap curve up to a false positive rate (exact).

    Parameters
    ----------
    fpr_limit : float or sequence of floats
        Integration limit(s) in (0, 1]; 0.05 by default. With a sequence,
        ``compute()`` returns one value per limit (the official evaluation's
        ``(0.01, 0.05, 0.1, 0.3, 1.0)``).
    backend : {"auto", "cpu", "cuda"}

    Notes
    -----
    See :func:`refmetrics.functional.au_spro` (Bergmann et al., IJCV 2022).
    The state keeps every defect-free pixel's score key (4 bytes for float32)
    and, per defect, the keys of its ``S`` highest-scoring pixels with ``S``;
    results are identical for any batch split, batch order or merge.

    Examples
    --------
    >>> import numpy as np
    >>> from refmetrics import AUsPRO
    >>> metric = AUsPRO(fpr_limit=1.0)
    >>> metric.update(np.array([[[0.9, 0.8, 0.1, 0.5]]]), [[(np.array([[1, 1, 0, 0]]), 1, False)]])
    >>> metric.update(np.array([[[0.2, 0.3]]]), [[]])  # a defect-free image
    >>> metric.compute()
    1.0
    """

    def __init__(self, fpr_limit=0.05, *, backend="auto"):
        super().__init__(backend)
        self._limits, self._scalar = functional_spro.check_fpr_limits(fpr_limit)
        self.fpr_limit = self._limits[0] if self._scalar else self._limits
        self.reset()

    def _config(self):
        return {"fpr_limit": self.fpr_limit, **super()._config()}

    def reset(self):
        """Forget every image."""
        self._state = functional_spro.DefectScores()

    def update(self, preds, defects):
        """Add anomaly maps ``(B, H, W)`` and their defects (see :func:`refmetrics.functional.spro_curve`)."""
        functional_spro.add_batch(self._state, preds, defects, self.backend)

    def _merge_state(self, other):
        self._state.merge(other._state)

    def compute(self):
        """The AU-sPRO of everything seen (a list with several limits; NaN with a warning when undefined)."""
        values = functional_spro.au_spro_from_state(self._state, self._limits)
        return values[0] if self._scalar else values

    def curve(self):
        """``(fpr, spro)`` of everything seen."""
        return functional_spro.spro_curve_from_state(self._state)
