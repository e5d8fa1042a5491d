"""Stateful region metrics: AUPRO and PRO (anomalib's names and parameters)."""

from .. import _labels as L
from .. import _validation as V
from ..functional import _regions as G
from ..functional import regions as F
from .base import Metric


class _Regional(Metric):
    """Shared by the region metrics: how masks are split into regions."""

    def __init__(self, connectivity, spatial_dims, backend):
        super().__init__(backend)
        L.check_spatial_dims(spatial_dims)
        self.connectivity = L.check_connectivity(connectivity, spatial_dims)  # None -> spatial_dims
        self.spatial_dims = spatial_dims

    def _config(self):
        return {"connectivity": self.connectivity, "spatial_dims": self.spatial_dims, "backend": self.backend}


class AUPRO(_Regional):
    """Area under the per-region overlap curve up to a false positive rate (exact).

    Parameters
    ----------
    fpr_limit : float
        Integration limit in (0, 1]; 0.3 by default.
    num_thresholds : int, optional
        None: the exact curve. ``T``: anomalib 1.x's sampled curve at ``T``
        thresholds evenly spaced from the smallest to the largest score.
    connectivity : int in 1..spatial_dims, optional
        scikit-image's region connectivity; None (default): full (8 neighbours
        in 2D, 26 in 3D). See :func:`refmetrics.functional.label_regions`.
    spatial_dims : {2, 3}
        3 for volumes ``(B, D, H, W)``.
    backend : {"auto", "cpu", "cuda"}

    Notes
    -----
    See :func:`refmetrics.functional.aupro` (Bergmann et al., IJCV 2021).
    Each ``update`` labels its masks sample by sample; the state keeps every
    background pixel's score key (4 bytes for float32) and, per defect pixel,
    its key and its region's size. Results are identical for any batch split,
    batch order or merge.

    Examples
    --------
    >>> import numpy as np
    >>> from refmetrics import AUPRO
    >>> metric = AUPRO(fpr_limit=1.0)
    >>> metric.update(np.array([[[0.9, 0.5]]]), np.array([[[1, 0]]]))
    >>> metric.update(np.array([[[0.1, 0.3]]]), np.array([[[0, 1]]]))
    >>> metric.compute()
    0.75
    """

    def __init__(self, fpr_limit=0.3, *, num_thresholds=None, connectivity=None, spatial_dims=2, backend="auto"):
        super().__init__(connectivity, spatial_dims, backend)
        self.fpr_limit = F.check_fpr_limit(fpr_limit)
        self.num_thresholds = F.check_num_thresholds(num_thresholds)
        self.reset()

    def _config(self):
        return {"fpr_limit": self.fpr_limit, "num_thresholds": self.num_thresholds, **super()._config()}

    def reset(self):
        """Forget every sample."""
        self._state = G.RegionScores()

    def update(self, preds, target):
        """Add anomaly maps and their {0, 1} masks (see :func:`refmetrics.functional.pro_curve`)."""
        F.add_region_batch(self._state, preds, target, self.connectivity, self.spatial_dims, self.backend,
                           finite=self.num_thresholds is not None)

    def _merge_state(self, other):
        self._state.merge(other._state)

    def compute(self):
        """The AUPRO of everything seen (NaN with a warning without region or background)."""
        return F.aupro_from_state(self._state, self.fpr_limit, self.num_thresholds)

    def curve(self):
        """``(fpr, pro)`` of everything seen."""
        return F.pro_curve_from_state(self._state, self.num_thresholds)

    def generate_figure(self):
        """The PRO curve up to ``fpr_limit``, the area in the title; returns ``(figure, "PRO")``."""
        from .. import plotting

        fpr, pro = self.curve()
        return plotting.pro_figure(fpr, pro, self.compute(), self.fpr_limit), "PRO"


class PRO(_Regional):
    """Per-region overlap at a fixed threshold (``score > threshold``).

    Parameters
    ----------
    threshold : float
        0.5 by default.
    connectivity, spatial_dims, backend
        As in :class:`AUPRO`.

    Examples
    --------
    >>> from refmetrics import PRO
    >>> metric = PRO(threshold=0.5)
    >>> metric([[0.9, 0.6, 0.4, 0.5, 0.1]], [[1, 1, 0, 1, 1]])
    0.5
    """

    def __init__(self, threshold=0.5, *, connectivity=None, spatial_dims=2, backend="auto"):
        super().__init__(connectivity, spatial_dims, backend)
        self.threshold = V.check_real("threshold", threshold)
        self.reset()

    def _config(self):
        return {"threshold": self.threshold, **super()._config()}

    def reset(self):
        """Forget every sample."""
        self._state = G.RegionOverlaps()

    def update(self, preds, target):
        """Add anomaly maps and their {0, 1} masks."""
        F.pro_state_add(self._state, preds, target, self.threshold, self.connectivity, self.spatial_dims,
                        self.backend)

    def _merge_state(self, other):
        self._state.merge(other._state)

    def compute(self):
        """The PRO of everything seen (NaN with a warning without any region)."""
        return F.pro_from_state(self._state)
