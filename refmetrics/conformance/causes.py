"""Named causes of deviation, each with the model that reproduces it.

A disagreement is attributed to a cause only when re-running the case under
that cause's model (refmetrics on the transformed data, or with the changed
definition) gives the implementation's value within the cause's tolerance.
"""

import math
import warnings

import numpy as np

from .. import functional as F
from .._validation import BinningWarning, UndefinedMetricWarning

AGREE_TOL = 1e-9  # float64 implementations agree to ~1e-15; this leaves room, nothing more
F32_ULPS = 16 * 2.0 ** -24  # a float32 result within 16 float32 ulps (relative) of its model


def is_float32(value):
    """Whether ``value`` is exactly a float32 number: the mark of a result computed in float32."""
    return math.isfinite(value) and float(np.float32(value)) == value


def _trapz(y, x):
    return float((getattr(np, "trapezoid", None) or np.trapz)(y, x))


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.simplefilter("ignore", BinningWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(*args, **kwargs)


def reference(case, metric, maps=None, curve="step", connectivity=None, num_thresholds=None, thresholds=None,
              batches=None):
    """refmetrics' value of ``metric`` on the case (optionally on transformed data)."""
    if batches is not None:
        maps = np.concatenate([b for b in batches])
    maps = case.maps if maps is None else maps
    masks = case.masks
    if metric.startswith("image_"):
        scores = maps.reshape(maps.shape[0], -1).max(axis=1)
        labels = masks.reshape(masks.shape[0], -1).max(axis=1)
        data = (scores, labels)
    else:
        data = (maps, masks)
    if metric in ("image_auroc", "pixel_auroc"):
        return _quiet(F.auroc, *data, thresholds=thresholds)
    if metric in ("image_ap", "pixel_ap"):
        return _quiet(F.aupr, *data, curve=curve, thresholds=thresholds)
    if metric == "pixel_f1max":
        return _quiet(F.f1_max, *data)
    if metric == "aupro":
        return _quiet(F.aupro, *data, connectivity=connectivity, num_thresholds=num_thresholds,
                      spatial_dims=case.spatial_dims)
    if metric == "pro":
        return _quiet(F.pro_score, *data, connectivity=connectivity, spatial_dims=case.spatial_dims)
    if metric == "pixel_f1_threshold":
        return _quiet(F.f1_adaptive_threshold, *data)[0]
    if metric == "pixel_f1_score":
        from ..metrics import F1Score

        m = F1Score()
        for b_maps, b_masks in (case.batches() if batches is None else zip(batches, [b[1] for b in case.batches()])):
            m.update(b_maps, b_masks)
        return m.compute()
    if metric == "min_score":
        return F.min_max(maps)[0]
    if metric == "max_score":
        return F.min_max(maps)[1]
    raise ValueError(metric)


def _sigmoid32_batches(case):
    out = []
    for maps, _ in case.batches():
        m = maps.astype(np.float32)
        if m.min() < 0 or m.max() > 1:
            with np.errstate(over="ignore"):
                m = (np.float32(1) / (np.float32(1) + np.exp(-m))).astype(np.float32)
        out.append(m)
    return out


def _minmax_batches(case):
    out = []
    for maps, _ in case.batches():
        lo, hi = maps.min(), maps.max()
        out.append((maps - lo) / (hi - lo) if hi > lo else np.zeros_like(maps))
    return out


def _model_sigmoid(case, metric):
    if metric in ("aupro", "pro"):
        return []
    return [reference(case, metric, batches=_sigmoid32_batches(case))]


def _model_exact(case, metric):
    return [case.expected_float(metric)]


def _model_float32(case, metric):
    return [reference(case, metric, maps=case.maps.astype(np.float32))]


def _model_trapezoid(case, metric):
    return [reference(case, metric, curve="trapezoid")] if metric.endswith("_ap") else []


def _model_sampled(case, metric):
    return [reference(case, metric, num_thresholds=t) for t in (100, 200, 1000)] if metric == "aupro" else []


def _pro_above(case, thresholds):
    """refmetrics' PRO (score > t) at each threshold."""
    return np.array([reference_pro(case, t) for t in thresholds])


def reference_pro(case, threshold):
    return _quiet(F.pro_score, case.maps, case.masks, threshold=float(threshold), spatial_dims=case.spatial_dims)


def _model_mvtec3d(case, metric):
    """The exact PRO (refmetrics) at thresholds at evenly spaced background-score positions."""
    if metric != "aupro" or not case.masks.any() or case.masks.all():
        return []
    ok = np.sort(case.maps[case.masks == 0].astype(np.float64))
    positions = np.linspace(0, ok.size - 1, num=100, dtype=int)
    fpr = np.concatenate([[1.0], 1.0 - (positions + 1) / ok.size])[::-1]
    pro = np.concatenate([[1.0], _pro_above(case, ok[positions])])[::-1]
    inside = fpr <= 0.3
    x = np.append(fpr[inside], 0.3)
    y = np.append(pro[inside], np.interp(0.3, fpr, pro))
    return [_trapz(y, x) / 0.3]


def _model_rescaled(case, metric):
    """The exact PRO (refmetrics) at 200 thresholds from min to max, FPR kept below 0.3 and min-max rescaled."""
    if metric != "aupro" or not case.masks.any() or case.masks.all():
        return []
    scores = case.maps.astype(np.float64)
    lo, hi = scores.min(), scores.max()
    if hi == lo:
        return [float("nan")]
    thresholds = np.arange(lo, hi, (hi - lo) / 200)
    bg = np.sort(scores[case.masks == 0])
    fpr = (bg.size - np.searchsorted(bg, thresholds, side="right")) / bg.size
    pro = _pro_above(case, thresholds)
    keep = fpr < 0.3
    fpr, pro = fpr[keep], pro[keep]
    if fpr.size < 2 or fpr.max() == fpr.min():
        return [float("nan")]
    fpr = (fpr - fpr.min()) / (fpr.max() - fpr.min())
    order = np.argsort(fpr, kind="stable")
    return [_trapz(pro[order], fpr[order])]


def _model_binning(case, metric):
    """refmetrics' binned mode on the per-batch sigmoided scores; for AUROC also the trapezoid over the
    binned points alone, without the (0, 0) start (torchmetrics' binned ROC)."""
    if metric not in ("image_auroc", "pixel_auroc", "image_ap", "pixel_ap"):
        return []
    out = []
    # ADEval: 1000 strips between the smallest and largest score (float32 edges), trapezoid areas
    values = case.maps if metric.startswith("pixel") else case.image_level()[0]
    lo, hi = float(values.min()), float(values.max())
    if hi > lo:
        edges = np.linspace(0.0, 1.0, 1001, dtype=np.float32) * np.float32(hi - lo) + np.float32(lo)
        edges = np.unique(edges.astype(np.float64))
        out.append(reference(case, metric, thresholds=edges, curve="trapezoid"))
        out.append(reference(case, metric, thresholds=edges))
    sig = np.concatenate(_sigmoid32_batches(case))
    for t in (100, 200, 1000):
        out.append(reference(case, metric, thresholds=t, maps=sig))
        if metric.endswith("auroc"):
            data = (sig, case.masks) if metric == "pixel_auroc" else (
                sig.reshape(sig.shape[0], -1).max(axis=1), case.masks.reshape(case.masks.shape[0], -1).max(axis=1))
            fpr, tpr, _ = _quiet(F.roc_curve, *data, thresholds=t)
            out.append(_trapz(tpr[1:], fpr[1:]))
    return out


def _model_batch_norm(case, metric):
    return [reference(case, metric, batches=_minmax_batches(case))]


def _model_undefined(case, metric):
    return ["undefined"] if case.expected[metric] is None else []


def _model_connectivity(case, metric):
    return [reference(case, metric, connectivity=1)] if metric in ("aupro", "pro") else []


class Cause:
    """A named cause: ``model(case, metric)`` gives the values the cause predicts.

    A value is explained when it equals a predicted value within ``tol``; a
    value that is itself a float32 number (computed in float32) may also differ
    by float32 rounding (``F32_ULPS``, relative), so any cause combines with
    float32 arithmetic. A NaN where the exact value exists is never explained.
    """

    def __init__(self, key, title, sentence, model, tol):
        self.key, self.title, self.sentence, self.model, self.tol = key, title, sentence, model, tol

    def explains(self, case, metric, value):
        for modelled in self.model(case, metric):
            if isinstance(modelled, str):  # undefined-case policy: any finite answer where none exists
                if not math.isnan(value):
                    return True
                continue
            if modelled is None:
                continue
            if math.isnan(modelled) or math.isnan(value):
                continue
            tol = self.tol
            if is_float32(value):
                tol = max(tol, F32_ULPS * max(1.0, abs(modelled)))
            if abs(value - modelled) <= tol:
                return True
        return False


CAUSES = [
    Cause("undefined_policy", "undefined-case policy",
          "The metric is undefined on this data (no positive; for AUROC, one class; no region or no "
          "background); the implementation returns a number (0, 0.5, ...) or raises where refmetrics returns "
          "NaN with a warning.",
          _model_undefined, 0.0),
    Cause("float32_accumulation", "float32 arithmetic",
          "The result is a float32 number within 16 float32 ulps of the exact value: counts, rates or areas "
          "computed in float32.", _model_exact, 0.0),
    Cause("float32_scores", "float32 saturation ties",
          "Scores are cast to float32 first, so float64 scores closer than float32 can resolve tie "
          "(reproduced: refmetrics on the float32-cast scores).", _model_float32, 1e-12),
    Cause("sigmoid_float32", "sigmoid applied to raw scores",
          "Scores of an update that leave [0, 1] go through a float32 sigmoid first; every score above ~17 "
          "becomes 1.0 and ties, so rankings collapse (reproduced: refmetrics on per-batch float32-sigmoided "
          "scores).", _model_sigmoid, 1e-12),
    Cause("trapezoid_vs_step", "trapezoid vs step-wise AP",
          "The area under the PR curve is taken with the trapezoid rule (anomalib 1.x AUPR) instead of the "
          "step-wise average precision; the trapezoid overestimates between operating points.",
          _model_trapezoid, 1e-9),
    Cause("histogram_binning", "histogram binning",
          "Scores are binned to a fixed set of thresholds instead of using every distinct score: T in [0, 1] "
          "after a sigmoid (torchmetrics' thresholds=T), or 1000 strips between the smallest and largest "
          "score (ADEval) (model: refmetrics' binned mode at those thresholds).", _model_binning, 1e-6),
    Cause("sampled_thresholds", "sampled thresholds",
          "The PRO curve is evaluated at T thresholds evenly spaced from the smallest to the largest score "
          "(anomalib 1.x num_thresholds) instead of every distinct score.", _model_sampled, 1e-6),
    Cause("sampled_thresholds_quantiles", "sampled thresholds at background quantiles",
          "The PRO curve is evaluated at 100 thresholds taken at evenly spaced positions of the sorted "
          "background scores, with overlaps counted strictly above them (MVTec 3D-AD's evaluation).",
          _model_mvtec3d, 1e-9),
    Cause("sampled_thresholds_fpr_rescaled", "sampled thresholds with min-max rescaled FPR",
          "200 thresholds from min to max, only the points below the FPR limit kept, their FPR rescaled to "
          "[0, 1] and no interpolation at the limit (the routine many papers copied); the value is not a "
          "normalised area to the limit.", _model_rescaled, 1e-9),
    Cause("connectivity", "connected-component differences",
          "Regions are labelled with 4-connectivity (face neighbours) instead of 8-connectivity, so regions "
          "touching at a corner are split.", _model_connectivity, 1e-9),
    Cause("per_batch_normalisation", "per-batch normalisation",
          "Scores are min-max normalised per batch before the metric, so batches are put on different scales.",
          _model_batch_norm, 1e-9),
]
CAUSE_BY_KEY = {c.key: c for c in CAUSES}


def attribute(case, metric, value):
    """The first cause whose model reproduces ``value``, or None."""
    for cause in CAUSES:
        try:
            if cause.explains(case, metric, value):
                return cause
        except Exception:  # noqa: BLE001 - a model that cannot run on this case explains nothing
            continue
    return None


# --- issue 13, section 3: PBn / PGn ---
_reference_before_issue_13 = reference


def reference(case, metric, maps=None, **kwargs):  # noqa: F811 - extends reference() above
    """refmetrics' value of ``metric`` on the case; PBn and PGn here, every other metric above."""
    if metric not in ("image_pbn", "image_pgn"):
        return _reference_before_issue_13(case, metric, maps=maps, **kwargs)
    if kwargs.get("batches") is not None:
        maps = np.concatenate(list(kwargs["batches"]))
    maps = case.maps if maps is None else maps
    scores = maps.reshape(maps.shape[0], -1).max(axis=1)
    labels = case.masks.reshape(case.masks.shape[0], -1).max(axis=1)
    if metric == "image_pbn":
        return _quiet(F.pbn, scores, labels, fpr=0.05)
    return _quiet(F.pgn, scores, labels, fnr=0.05)


def _torch_quantile32(values, q):
    """torch.quantile's linear interpolation in float32 (anomalib's): rank ``q * (n - 1)``, its
    truncation and ceiling, the weight ``rank - below`` and torch's ``lerp``, every step in float32."""
    f = np.float32
    xs = np.sort(np.asarray(values, f))
    rank = f(q) * f(xs.size - 1)
    below, above = int(rank), int(np.ceil(rank))
    w = f(rank - f(below))
    a, b = xs[below], xs[above]
    with np.errstate(invalid="ignore", over="ignore"):
        return a + w * (b - a) if w < f(0.5) else b - (b - a) * (f(1) - w)


def _model_float32_quantile(case, metric):
    """PBn/PGn with the image scores cast to float32, the rate a float32 (``1 - fpr`` in float32 for
    PBn) and the quantile interpolated in float32, as anomalib's ``torch.quantile`` does."""
    if metric not in ("image_pbn", "image_pgn"):
        return []
    scores = case.maps.reshape(case.maps.shape[0], -1).max(axis=1).astype(np.float32)
    labels = case.masks.reshape(case.masks.shape[0], -1).max(axis=1)
    pos, neg = scores[labels == 1], scores[labels == 0]
    if not pos.size or not neg.size:
        return []
    if metric == "image_pbn":
        thr = _torch_quantile32(neg, np.float32(1) - np.float32(0.05))
        return [float(np.sum(pos > thr)) / pos.size]
    thr = _torch_quantile32(pos, np.float32(0.05))
    return [float(np.sum(neg < thr)) / neg.size]


CAUSES.append(Cause(
    "float32_quantile", "float32 quantile",
    "The quantile is computed in float32 (torch.quantile on float32 scores, with a float32 rate, so "
    "1 - 0.05 is 0.95000005): the threshold moves by float32 rounding and can cross a score (reproduced: "
    "the same quantile in float32 arithmetic).", _model_float32_quantile, 1e-9))
CAUSE_BY_KEY["float32_quantile"] = CAUSES[-1]
