"""Adapters: run another implementation of a metric on a case.

An adapter is ``fn(metric, case) -> float``; it raises ``NotImplementedError``
for a metric its implementation does not have. Stateful implementations get
the case batch by batch (``case.batches()``), as they would in an evaluation
loop. Each adapter is optional: :func:`available` says why it cannot run.

A user's own implementation plugs in through :func:`user_adapter`: a function
``f(metric, preds, target) -> float`` (``preds``/``target`` NumPy arrays: image
scores and labels for ``image_*`` metrics, maps ``(B, H, W)`` (volumes
``(B, D, H, W)`` in the 3-D case) and {0, 1} masks otherwise) raising
NotImplementedError for metrics it does not compute.
"""

import importlib
import importlib.metadata as md
import os
import sys

import numpy as np

from . import published

PIXEL_RANKING = ("pixel_auroc", "pixel_ap", "pixel_f1max")
IMAGE_RANKING = ("image_auroc", "image_ap")


class Adapter:
    def __init__(self, name, package, fn, description):
        self.name, self.package, self.fn, self.description = name, package, fn, description

    def version(self):
        if self.name == "refmetrics":
            from .. import __version__

            return __version__
        if self.package is None:
            return "user" if ":" in self.name or self.description.startswith("user") else "rewritten here"
        try:
            return md.version(self.package)
        except md.PackageNotFoundError:
            return None

    def missing(self):
        """None when the adapter can run, else the reason it cannot."""
        if self.package is None:
            return None
        try:
            importlib.import_module(self.package.replace("-", "_").lower() if self.package != "scikit-learn"
                                    else "sklearn")
        except Exception as exc:  # noqa: BLE001 - any import failure means: cannot run here
            return f"{self.package} not importable ({type(exc).__name__}: {exc})".splitlines()[0][:160]
        return None

    def __call__(self, metric, case):
        return float(self.fn(metric, case))


def _data(metric, case):
    if metric.startswith("image_"):
        return case.image_level()
    return case.maps, case.masks


# --- refmetrics itself -----------------------------------------------------------------

def _refmetrics(metric, case):
    from .causes import reference

    return reference(case, metric)


# --- scikit-learn ----------------------------------------------------------------------

def _sklearn(metric, case):
    from sklearn import metrics as skm

    if metric not in IMAGE_RANKING + PIXEL_RANKING:
        raise NotImplementedError
    preds, target = _data(metric, case)
    preds, target = preds.reshape(-1), target.reshape(-1)
    if metric.endswith("auroc"):
        return skm.roc_auc_score(target, preds)
    if metric.endswith("_ap"):
        return skm.average_precision_score(target, preds)
    precision, recall, _ = skm.precision_recall_curve(target, preds)
    with np.errstate(invalid="ignore"):
        f1 = 2 * precision * recall / (precision + recall)
    return np.nanmax(f1)


# --- torchmetrics -----------------------------------------------------------------------

def _batches_t(metric, case):
    import torch

    for maps, masks in case.batches():
        if metric.startswith("image_"):
            maps = maps.reshape(maps.shape[0], -1).max(axis=1)
            masks = masks.reshape(masks.shape[0], -1).max(axis=1)
        yield torch.from_numpy(np.ascontiguousarray(maps)).reshape(-1), \
            torch.from_numpy(np.ascontiguousarray(masks).astype(np.int64)).reshape(-1)


def _stateful_preds(metric_obj, case):
    import torch

    for maps, _ in case.batches():
        metric_obj.update(torch.from_numpy(np.ascontiguousarray(maps)))
    return [float(v) for v in metric_obj.compute()]


def _stateful(metric_obj, metric, case):
    for p, t in _batches_t(metric, case):
        metric_obj.update(p, t)
    return metric_obj.compute()


def _torchmetrics(metric, case):
    from torchmetrics.classification import (BinaryAUROC, BinaryAveragePrecision, BinaryF1Score,
                                             BinaryPrecisionRecallCurve)

    if metric == "pixel_f1_score":
        return _stateful(BinaryF1Score(threshold=0.5), metric, case)
    if metric.endswith("auroc"):
        return _stateful(BinaryAUROC(), metric, case)
    if metric.endswith("_ap"):
        return _stateful(BinaryAveragePrecision(), metric, case)
    if metric == "pixel_f1max":
        precision, recall, _ = _stateful(BinaryPrecisionRecallCurve(), metric, case)
        f1 = 2 * precision * recall / (precision + recall)
        return float(f1.nan_to_num(0.0).max())
    raise NotImplementedError


# --- anomalib ------------------------------------------------------------------------

def _anomalib(metric, case):
    # anomalib 2.x's public classes take Batch objects; the metric logic lives in these classes
    from anomalib.metrics.aupr import _AUPR
    from anomalib.metrics.aupro import _AUPRO
    from anomalib.metrics.auroc import _AUROC
    from anomalib.metrics.f1_score import _F1Max
    from anomalib.metrics.pro import _PRO

    if metric == "aupimo":
        return _anomalib_aupimo(case)  # defined at the end of this module
    if metric in ("image_pbn", "image_pgn"):
        return _anomalib_pgpb(metric, case)  # defined at the end of this module
    if metric.endswith("auroc"):
        return _stateful(_AUROC(), metric, case)
    if metric.endswith("_ap"):
        return _stateful(_AUPR(), metric, case)
    if metric == "pixel_f1max":
        return _stateful(_F1Max(), metric, case)
    if metric == "pixel_f1_threshold":
        from anomalib.metrics.threshold.f1_adaptive_threshold import _F1AdaptiveThreshold

        return _stateful(_F1AdaptiveThreshold(), metric, case)
    if metric == "pixel_f1_score":
        from anomalib.metrics.f1_score import BinaryF1Score  # anomalib's F1Score is torchmetrics' class

        return _stateful(BinaryF1Score(threshold=0.5), metric, case)
    if metric in ("min_score", "max_score"):
        from anomalib.metrics.min_max import _MinMax

        lo, hi = _stateful_preds(_MinMax(), case)
        return lo if metric == "min_score" else hi
    if case.spatial_dims != 2:
        raise NotImplementedError  # 2-D masks only
    import torch

    obj = _AUPRO(fpr_limit=0.3) if metric == "aupro" else _PRO(threshold=0.5) if metric == "pro" else None
    if obj is None:
        raise NotImplementedError
    for maps, masks in case.batches():
        obj.update(torch.from_numpy(np.ascontiguousarray(maps)), torch.from_numpy(masks.astype(bool)))
    return obj.compute()


# --- ADEval ---------------------------------------------------------------------------

_ADEVAL_KEYS = {"image_auroc": "i_auroc", "image_ap": "i_aupr", "pixel_auroc": "p_auroc", "pixel_ap": "p_aupr",
                "aupro": "p_aupro"}


def _adeval(metric, case, nstrips=None):
    """ADEval's EvalAccumulator (1000 histogram strips between the bounds it is given: here the exact
    smallest and largest score, the best a user can do)."""
    if metric not in _ADEVAL_KEYS or case.spatial_dims != 2:
        raise NotImplementedError
    from adeval import EvalAccumulator

    scores, labels = case.image_level()
    maps = case.maps if case.maps.dtype == np.float64 else case.maps.astype(np.float32)
    map_bounds = (float(maps.min()), float(maps.max()))
    # ADEval requires lower < upper for image scores even when only pixel metrics are asked for
    image_bounds = (float(scores.min()), float(scores.max())) if metric.startswith("image_") else map_bounds
    acc = EvalAccumulator(*image_bounds, *map_bounds, skip_pixel_aupro=metric != "aupro", nstrips=nstrips)
    restore = not hasattr(np, "trapz")
    if restore:  # ADEval 1.1.0 calls np.trapz, which NumPy 2.4 removed; np.trapezoid is the same function
        np.trapz = np.trapezoid
    try:
        for m, g in zip(maps, case.masks):
            acc.add_anomap(m, g.astype(np.uint8))
        if metric.startswith("image_"):
            acc.add_image(scores, labels)
        return acc.summary()[_ADEVAL_KEYS[metric]]
    finally:
        if restore:
            del np.trapz


# --- published algorithms --------------------------------------------------------------

def _published(fn):
    def run(metric, case):
        if metric != "aupro" or case.spatial_dims != 2:
            raise NotImplementedError
        return fn(case.maps, case.masks)
    return run


def _published_spro(metric, case):
    if metric != "au_spro":
        raise NotImplementedError
    from .cases import spro_data

    return published.mvtec_loco_au_spro(*spro_data(case.maps, case.masks), fpr_limit=0.05)


ADAPTERS = {
    "refmetrics": Adapter("refmetrics", None, _refmetrics, "this library (the reference)"),
    "scikit-learn": Adapter("scikit-learn", "scikit-learn", _sklearn,
                            "roc_auc_score, average_precision_score, precision_recall_curve"),
    "torchmetrics": Adapter("torchmetrics", "torchmetrics", _torchmetrics,
                            "BinaryAUROC, BinaryAveragePrecision, BinaryPrecisionRecallCurve (exact mode)"),
    "anomalib": Adapter("anomalib", "anomalib", _anomalib, "AUROC, AUPR, F1Max, AUPRO, PRO, AUPIMO, PBn, PGn"),
    "adeval": Adapter("adeval", "ADEval", _adeval, "ADEval's EvalAccumulator (binned AUROC, AUPR, AUPRO)"),
    "mvtec-ad": Adapter("mvtec-ad", None, _published(published.mvtec_ad_aupro),
                        "MVTec AD official AUPRO algorithm"),
    "mvtec-3d-ad": Adapter("mvtec-3d-ad", None, _published(published.mvtec3d_aupro),
                           "MVTec 3D-AD AUPRO, 100 sampled thresholds"),
    "aupro-200": Adapter("aupro-200", None, _published(published.aupro_200),
                         "the 200-threshold AUPRO many papers copied"),
    "mvtec-loco": Adapter("mvtec-loco", None, _published_spro,
                          "MVTec LOCO AD official AU-sPRO algorithm, sampled and refined thresholds"),
}


def user_adapter(spec):
    """An adapter for ``package.module:function`` (see the module docstring for the signature)."""
    if ":" not in spec:
        raise ValueError(f"--impl: expected a known name ({', '.join(ADAPTERS)}) or package.module:function, "
                         f"received {spec!r}")
    module, _, attr = spec.partition(":")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` would: modules beside the user are found
    try:
        fn = getattr(importlib.import_module(module), attr)
    except Exception as exc:  # noqa: BLE001 - reported as a usage error naming the spec
        raise ValueError(f"--impl {spec}: could not load it ({type(exc).__name__}: {exc})") from exc
    return from_function(spec, fn)


def from_function(name, fn):
    """An adapter around ``fn(metric, preds, target) -> float``."""
    def run(metric, case):
        preds, target = _data(metric, case)
        return fn(metric, np.asarray(preds), np.asarray(target))
    return Adapter(name, None, run, f"user implementation {name}")


# --- anomalib's AUPIMO (issue 13, section 1) ------------------------------------------------

def _anomalib_aupimo(case):
    """anomalib 2.7's ``_AUPIMO`` (the metric logic under its Batch wrapper ``AUPIMO``) with its defaults
    (300,000 thresholds, ``return_average=True``) but the suite's ``fpr_bounds``, fed batch by batch."""
    if case.spatial_dims != 2:
        raise NotImplementedError  # (N, H, W) maps only
    import torch
    from anomalib.metrics.pimo.pimo import _AUPIMO

    from .cases import AUPIMO_BOUNDS

    metric = _AUPIMO(fpr_bounds=AUPIMO_BOUNDS)
    for maps, masks in case.batches():
        metric.update(torch.from_numpy(np.ascontiguousarray(maps)), torch.from_numpy(masks.astype(bool)))
    return metric.compute()


# =====================================================================================================
# Issue 13, section 6: adapters for ADer's ADEval setting and the rewritten published routines
# =====================================================================================================

def _ader_adeval(metric, case):
    """ADer's ``use_adeval`` evaluation: ADEval with 50 strips between the maps' smallest and largest
    score, for the pixel metrics (ADer takes image metrics from scikit-learn). ADer runs ADEval's CUDA
    accumulator; this runs its CPU twin, the same histogram."""
    if metric not in ("pixel_auroc", "pixel_ap", "aupro"):
        raise NotImplementedError
    return _adeval(metric, case, nstrips=50)


def _published_metric(name, fn, two_d_only=True):
    def run(metric, case):
        if metric != name or (two_d_only and case.spatial_dims != 2):
            raise NotImplementedError
        return fn(case.maps, case.masks)
    return run


ADAPTERS.update({
    "ader-adeval": Adapter("ader-adeval", "ADEval", _ader_adeval,
                           "ADer's use_adeval setting: ADEval with 50 strips (pixel AUROC, AUPR, AUPRO)"),
    "aupro-100": Adapter("aupro-100", None, _published_metric("aupro", published.aupro_100),
                         "ADer's AUPRO: the min-max rescaled routine with 100 thresholds"),
    "anomalib-2.2-aupro": Adapter("anomalib-2.2-aupro", None,
                                  _published_metric("aupro", published.anomalib_legacy_aupro),
                                  "anomalib <= 2.2's AUPRO: index-resampled curves, end-point normalised"),
    "cflow-aupro": Adapter("cflow-aupro", None, _published_metric("aupro", published.cflow_aupro),
                           "cflow-ad's AUPRO: 1000 thresholds from the top, FPR <= 0.3 min-max rescaled"),
    "visa": Adapter("visa", None, _published_metric("pixel_auroc", published.visa_pixel_auroc, two_d_only=False),
                    "the VisA official pixel AUROC: 200 thresholds, rounded to 4 decimals"),
})


# --- issue 13, section 3: anomalib 2.7's PBn / PGn (``anomalib.metrics.pg_pb``) ---

def _anomalib_pgpb(metric, case):
    """anomalib's ``_PBn(fpr=0.05)`` / ``_PGn(fnr=0.05)`` fed the image scores (maximum of each map) and
    image labels batch by batch, as its Evaluator does. The scores are passed as float32, the dtype of
    anomalib's ``pred_score`` (its ``torch.quantile`` refuses float64 scores with its float32 rate)."""
    import torch
    from anomalib.metrics.pg_pb import _PBn, _PGn

    obj = _PBn(fpr=0.05) if metric == "image_pbn" else _PGn(fnr=0.05)
    for maps, masks in case.batches():
        scores = maps.reshape(maps.shape[0], -1).max(axis=1).astype(np.float32)
        labels = masks.reshape(masks.shape[0], -1).max(axis=1).astype(np.int64)
        obj.update(torch.from_numpy(scores), torch.from_numpy(labels))
    return float(obj.compute())
