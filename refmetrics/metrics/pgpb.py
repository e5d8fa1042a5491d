"""Stateful PBn and PGn (anomalib's names and parameters)."""

from .. import _validation as V
from ..functional import pgpb as F
from .base import Metric


class _Presorted(Metric):
    """Keeps every (score, label) pair exactly, as the exact ranking metrics do."""

    def __init__(self, *, ignore_index=None, backend="auto"):
        super().__init__(backend)
        V.check_ignore_index(ignore_index)
        self.ignore_index = ignore_index
        self.reset()

    def reset(self):
        """Forget every sample."""
        self._state = F.new_state()

    def update(self, preds, target):
        """Add a batch of scores and {0, 1} labels (1 = bad)."""
        F.add_batch(self._state, preds, target, self.ignore_index, self.backend)

    def _merge_state(self, other):
        self._state.merge(other._state)


class PBn(_Presorted):
    """PBn: the fraction of bad samples above the ``1 - fpr`` quantile of the good ones.

    Parameters
    ----------
    fpr : float
        The fraction of good samples allowed above the threshold, in [0, 1] (default 0.05).
    ignore_index : int or float, optional
    backend : {"auto", "cpu", "cuda"}

    Attributes
    ----------
    name : str
        ``"PB" + str(int(fpr * 100))``, as anomalib names it.

    Notes
    -----
    See :func:`refmetrics.functional.pbn`. The state keeps every score (4 bytes per float32
    element), so results do not depend on how the data was split into ``update`` calls or merged.

    Examples
    --------
    >>> from refmetrics import PBn
    >>> metric = PBn(fpr=0.2)
    >>> metric.update([0.1, 0.4], [0, 0])
    >>> metric.update([0.35, 0.8], [1, 1])
    >>> metric.compute()
    1.0
    """

    def __init__(self, fpr=0.05, *, ignore_index=None, backend="auto"):
        self.fpr = F.check_rate("fpr", fpr)
        self.name = "PB" + str(int(self.fpr * 100))
        super().__init__(ignore_index=ignore_index, backend=backend)

    def _config(self):
        return {"fpr": self.fpr, "ignore_index": self.ignore_index, "backend": self.backend}

    def compute(self):
        """PBn of everything seen (NaN with a warning without a positive or a negative)."""
        return F.pbn_from_state(self._state, self.fpr)


class PGn(_Presorted):
    """PGn: the fraction of good samples below the ``fnr`` quantile of the bad ones.

    Parameters
    ----------
    fnr : float
        The fraction of bad samples allowed below the threshold, in [0, 1] (default 0.05).
    ignore_index : int or float, optional
    backend : {"auto", "cpu", "cuda"}

    Attributes
    ----------
    name : str
        ``"PG" + str(int(fnr * 100))``, as anomalib names it.

    Notes
    -----
    See :func:`refmetrics.functional.pgn`.

    Examples
    --------
    >>> from refmetrics import PGn
    >>> metric = PGn(fnr=0.2)
    >>> metric([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    1.0
    """

    def __init__(self, fnr=0.05, *, ignore_index=None, backend="auto"):
        self.fnr = F.check_rate("fnr", fnr)
        self.name = "PG" + str(int(self.fnr * 100))
        super().__init__(ignore_index=ignore_index, backend=backend)

    def _config(self):
        return {"fnr": self.fnr, "ignore_index": self.ignore_index, "backend": self.backend}

    def compute(self):
        """PGn of everything seen (NaN with a warning without a positive or a negative)."""
        return F.pgn_from_state(self._state, self.fnr)
