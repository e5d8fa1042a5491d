"""Stateful bootstrap: :class:`Bootstrap` and :class:`PairedBootstrap` (update / compute / reset / merge).

They keep the batches they are given (images on axis 0, or one score per image)
and resample them when ``compute()`` is called; merging concatenates the
images, so states built on parts of a test set and merged give the result of
one state that saw it all, image order included (the resamples are drawn in
image order).
"""

import numpy as np

from .. import _arrays as A
from .. import _validation as V
from ..functional import bootstrap as FB


class _Batches:
    """The common part: the configuration and the stored batches."""

    _arrays = ()

    def __init__(self, metric="auroc", n_resamples=1000, level=0.95, seed=0, fpr_limit=None,
                 fpr_bounds=(1e-5, 1e-4), connectivity=None):
        FB._check(metric, n_resamples, level, seed, fpr_limit)
        self.metric, self.n_resamples, self.level, self.seed = metric, n_resamples, level, seed
        self.fpr_limit, self.fpr_bounds, self.connectivity = fpr_limit, tuple(fpr_bounds), connectivity
        self.reset()

    def _config(self):
        return {"metric": self.metric, "n_resamples": self.n_resamples, "level": self.level, "seed": self.seed,
                "fpr_limit": self.fpr_limit, "fpr_bounds": self.fpr_bounds, "connectivity": self.connectivity}

    def reset(self):
        """Forget every batch."""
        self._batches = {name: [] for name in self._arrays}

    def merge(self, other):
        """Add the other state's images after this one's (same class and parameters). Returns ``self``."""
        V.check_same_config(self, other)
        for name in self._arrays:
            self._batches[name] += other._batches[name]
        return self

    def _add(self, **arrays):
        # au_spro's target is one list of defects per image: kept as a list; the rest as array copies
        lists = {name: list(arrays.pop(name)) for name in ("target",) if self.metric == "au_spro" and name in arrays}
        held = {name: np.array(A.host_array(value, name), copy=True) for name, value in arrays.items()}
        name = self._arrays[0]
        shape = held[name].shape[1:] if held[name].ndim > 1 else ()
        first = self._batches[name]
        if first:
            before = first[0].shape[1:] if first[0].ndim > 1 else ()
            if shape != before:
                raise ValueError(f"{name}: expected images of shape {before} as in the earlier batches, "
                                 f"received {shape}")
        for key, a in held.items():
            self._batches[key].append(a.reshape(-1) if a.ndim == 0 else a)
        for key, value in lists.items():
            self._batches[key].append(value)

    def _joined(self, name):
        parts = self._batches[name]
        if not parts:
            raise ValueError(f"{type(self).__name__}.compute: no batch was given (call update first)")
        if self.metric == "au_spro" and name == "target":
            return [defects for part in parts for defects in part]
        return np.concatenate(parts, axis=0)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._config().items())
        return f"{type(self).__name__}({args})"


class Bootstrap(_Batches):
    """Stratified image-level bootstrap of one metric (:func:`refmetrics.functional.bootstrap_ci`).

    ``update(preds, target)`` adds images: one score per image with its label,
    or maps ``(N, H, W)`` with their masks; ``compute()`` returns the
    :class:`~refmetrics.functional.bootstrap.BootstrapInterval`.

    >>> from refmetrics import Bootstrap
    >>> b = Bootstrap(metric="auroc", n_resamples=200)
    >>> b.update([0.1, 0.4, 0.35], [0, 0, 1])
    >>> b.update([0.8, 0.2, 0.7], [1, 0, 1])
    >>> b.compute().value
    0.8888888888888888
    """

    _arrays = ("preds", "target")

    def update(self, preds, target):
        """Add a batch of images (scores and labels, or maps and masks)."""
        self._add(preds=preds, target=target)

    def compute(self):
        return FB.bootstrap_ci(self._joined("preds"), self._joined("target"), **self._config())


class PairedBootstrap(_Batches):
    """Paired bootstrap of two methods on the same images (:func:`refmetrics.functional.bootstrap_test`).

    ``update(preds_a, preds_b, target)``; ``compute()`` returns the
    :class:`~refmetrics.functional.bootstrap.BootstrapTest`.
    """

    _arrays = ("preds_a", "preds_b", "target")

    def update(self, preds_a, preds_b, target):
        """Add a batch of images scored by both methods."""
        self._add(preds_a=preds_a, preds_b=preds_b, target=target)

    def compute(self):
        return FB.bootstrap_test(self._joined("preds_a"), self._joined("preds_b"), self._joined("target"),
                                 **self._config())


__all__ = ["Bootstrap", "PairedBootstrap"]
