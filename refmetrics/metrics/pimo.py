"""Stateful AUPIMO (anomalib's name; Bertoldo et al., BMVC 2024)."""

import numpy as np

from ..functional import pimo as F
from .base import Metric


class AUPIMO(Metric):
    """Area under the per-image overlap curve, averaged over anomalous images (exact).

    Parameters
    ----------
    fpr_bounds : (float, float)
        Shared-FPR integration range ``(L, U)``, ``0 < L < U <= 1``;
        ``(1e-5, 1e-4)`` by default, as anomalib's ``AUPIMO``. Keyword-only:
        anomalib's first positional parameter is ``num_thresholds``, which
        refmetrics does not have (every distinct score is a threshold).
    backend : {"auto", "cpu", "cuda"}

    Attributes
    ----------
    per_image : ndarray of float64
        Set by :meth:`compute`: one AUPIMO per image seen, in update order (then
        merged states' images), NaN for normal images (anomalib's
        ``AUPIMOResult.aupimos``, which its ``return_average=False`` gives).

    Notes
    -----
    See :func:`refmetrics.functional.aupimo`. Unlike anomalib's class, there
    is no ``num_thresholds``: every distinct score is a threshold. The state
    keeps one key per pixel of the normal images and per defect pixel of the
    anomalous ones (4 bytes each for float32 maps); the other pixels of
    anomalous images reach no count and are dropped at ``update``. Results are
    identical for any batch split, batch order or merge (per-image values
    follow the images).

    Examples
    --------
    >>> import numpy as np
    >>> from refmetrics import AUPIMO
    >>> metric = AUPIMO(fpr_bounds=(0.125, 0.25))
    >>> metric.update(np.array([[[0.1, 0.2, 0.3, 0.9]], [[0.1, 0.2, 0.4, 0.5]]]), np.zeros((2, 1, 4), int))
    >>> metric.update(np.array([[[0.8, 0.4, 0.2, 0.1]]]), np.array([[[1, 1, 0, 0]]]))
    >>> metric.compute()
    0.5
    >>> metric.per_image.tolist()
    [nan, nan, 0.5]
    """

    _outputs = ("per_image",)

    def __init__(self, *, fpr_bounds=(1e-5, 1e-4), backend="auto"):
        super().__init__(backend)
        self.fpr_bounds = F.check_fpr_bounds(fpr_bounds)
        self.reset()

    def _config(self):
        return {"fpr_bounds": self.fpr_bounds, "backend": self.backend}

    def reset(self):
        """Forget every image."""
        self._state = F.PimoState()
        self.per_image = np.empty(0)

    def update(self, preds, target):
        """Add anomaly maps ``(B, H, W)`` (or ``(B, ...)``) and their {0, 1} masks."""
        self._state.add(F.intake_images(preds, target, self.backend, keep_other=False))

    def _merge_state(self, other):
        self._state.merge(other._state)

    def compute(self):
        """The mean AUPIMO over the anomalous images seen (NaN with a warning when undefined);
        sets :attr:`per_image`."""
        mean, self.per_image = F.aupimo_from_state(self._state, self.fpr_bounds)
        return mean
