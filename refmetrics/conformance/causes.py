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
    if metric == "image_pbn":
        return _quiet(F.pbn, *data, fpr=0.05)
    if metric == "image_pgn":
        return _quiet(F.pgn, *data, fnr=0.05)
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
    if metric == "aupimo":  # issue 13, section 1
        from .cases import AUPIMO_BOUNDS

        return _quiet(F.aupimo, maps, masks, fpr_bounds=AUPIMO_BOUNDS)
    if metric == "au_spro":
        from .cases import spro_data

        return _quiet(F.au_spro, *spro_data(maps, masks), fpr_limit=0.05)
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
    """The exact PRO (refmetrics) at 200 (the routine many papers copied) or 100 (ADer's max_step_aupro)
    thresholds from min to max, FPR kept below 0.3 and min-max rescaled."""
    if metric != "aupro" or not case.masks.any() or case.masks.all():
        return []
    return [_rescaled_area(case, steps) for steps in (200, 100)]


def _rescaled_area(case, steps):
    scores = case.maps.astype(np.float64)
    lo, hi = scores.min(), scores.max()
    if hi == lo:
        return float("nan")
    thresholds = np.arange(lo, hi, (hi - lo) / steps)
    bg = np.sort(scores[case.masks == 0])
    fpr = (bg.size - np.searchsorted(bg, thresholds, side="right")) / bg.size
    pro = _pro_above(case, thresholds)
    keep = fpr < 0.3
    fpr, pro = fpr[keep], pro[keep]
    if fpr.size < 2 or fpr.max() == fpr.min():
        return float("nan")  # 0/0 in the rescale: a finding (findings.py), never a cause
    fpr = (fpr - fpr.min()) / (fpr.max() - fpr.min())
    order = np.argsort(fpr, kind="stable")
    return _trapz(pro[order], fpr[order])


def _model_binning(case, metric):
    """refmetrics' binned mode on the per-batch sigmoided scores; for AUROC also the trapezoid over the
    binned points alone, without the (0, 0) start (torchmetrics' binned ROC). (ADEval's strips have their
    own, exact model: :func:`_model_adeval`.)"""
    if metric not in ("image_auroc", "pixel_auroc", "image_ap", "pixel_ap"):
        return []
    out = []
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


def _model_loco_refined(case, metric):
    """The official MVTec LOCO AD threshold selection (50 quantile thresholds, refined to 0.01) with
    refmetrics' exact curve at those thresholds, integrated the official way."""
    if metric != "au_spro" or case.expected[metric] is None:
        return []
    from . import published
    from .cases import spro_data

    maps, defects = spro_data(case.maps, case.masks)

    def points(thresholds):
        fpr, spro = _quiet(F.spro_curve, maps, defects, thresholds=np.asarray(thresholds, np.float64))
        return spro, fpr

    return [published.mvtec_loco_au_spro(maps, defects, fpr_limit=0.05, points=points)]


# =====================================================================================================
# Issue 13, section 6: ADEval's conventions, and the rewritten published routines' models.
# Each model re-runs the case: refmetrics' exact counts at the implementation's thresholds, then the
# implementation's own way of turning them into a number (or the error it raises, as a Raises).
# =====================================================================================================

class Raises:
    """A model's prediction that the implementation raises ``name`` (an exception type) on the case."""

    def __init__(self, name, why):
        self.name, self.why = name, why

    def __repr__(self):
        return f"Raises({self.name!r}, {self.why!r})"


def adeval_inputs(case, metric):
    """What the ADEval adapters feed: image maxima and labels, or the maps (cast to float32 unless
    float64, as ADEval's OpenCV resize needs) and masks."""
    if metric.startswith("image_"):
        return case.image_level()
    return (case.maps if case.maps.dtype == np.float64 else case.maps.astype(np.float32)), case.masks


def adeval_edges(lo, hi, nstrips):
    """ADEval's finite bin edges (``_AccumulateStatCurve``): ``nstrips + 1`` points evenly spaced in [0, 1]
    in float32, times ``float32(hi - lo)``, plus ``float32(lo)``, in float32 arithmetic. Two overflow bins,
    [-inf, e_0) and [e_n, +inf], hold the rest but are never a threshold: its curves have no end points."""
    unit = np.linspace(0.0, 1.0, nstrips + 1).astype(np.float32)
    return (unit * np.float32(hi - lo) + np.float32(lo)).astype(np.float64)


def _counts_at(values, edges):
    """How many ``values`` are ``>= edge`` for each edge (a histogram's upper cumulative counts)."""
    values = np.sort(values.astype(np.float64))
    return values.size - np.searchsorted(values, edges, side="left")


def adeval_model(case, metric, nstrips=1000, fpr_limit=0.3):
    """ADEval's ``EvalAccumulator`` result on the case, bounds the exact smallest and largest score (what
    the adapters give it): a float, or a :class:`Raises`; None for a metric it does not compute.

    At each edge ``e`` a score is positive when ``score >= e``. AUROC and AUPR are the trapezoid over the
    edges' points alone, from the highest edge down (no (0, 0) start, no recall-0 end; precision 1 where
    nothing is predicted). AUPRO weights each defect pixel by float32 ``1 / area`` of its 8-connected region
    (the weighted TPR is the PRO up to those weights), integrates the points with FPR <= limit, and adds the
    exact area under the straight segment to the next point, cut at the limit (its "quadratic" formula:
    ``rect * t + tri * t**2`` with ``t`` the fraction of the segment's width, which is that area). That
    formula divides by the segment's mean height, so it is NaN when the PRO is 0 on both sides of the
    limit; it indexes the points on each side without a check, so an empty side raises IndexError.
    """
    scores, labels = adeval_inputs(case, metric)
    lo, hi = float(scores.min()), float(scores.max())
    if not lo < hi:
        return Raises("AssertionError", "its bins need lower < upper bound: every score is equal")
    edges = adeval_edges(lo, hi, nstrips)
    if metric in ("image_auroc", "pixel_auroc"):
        fpr, tpr, _ = _quiet(F.roc_curve, scores, labels, thresholds=edges)
        return _trapz(tpr[1:], fpr[1:])  # [1:]: without refmetrics' (0, 0) start
    if metric in ("image_ap", "pixel_ap"):
        precision, recall, _ = _quiet(F.precision_recall_curve, scores, labels, thresholds=edges)
        return _trapz(precision[-2::-1], recall[-2::-1])  # without refmetrics' (recall 0, precision 1) end
    if metric != "aupro":
        return None
    regions = np.asarray(_quiet(F.label_regions, labels))
    sizes = np.bincount(regions.ravel())
    if sizes.size < 2 or not sizes[0]:
        return None  # no region or no background: undefined (undefined_policy)
    weights = (1.0 / sizes[1:]).astype(np.float32).astype(np.float64)
    flat, ids = scores.reshape(-1), regions.reshape(-1)
    fpr = _counts_at(flat[ids == 0], edges) / sizes[0]
    weighted = sum(w * _counts_at(flat[ids == r], edges) for r, w in enumerate(weights, start=1))
    pro = weighted / float(np.sum(weights * sizes[1:]))
    x, y = fpr[::-1], pro[::-1]  # increasing FPR
    n_below = int(np.count_nonzero(x <= fpr_limit))
    if n_below in (0, x.size):
        return Raises("IndexError", "no bin edge on one side of the FPR limit")
    x0, x1, y0, y1 = x[n_below - 1], x[n_below], y[n_below - 1], y[n_below]
    if y0 + y1 == 0:
        return float("nan")
    cut = fpr_limit - x0
    partial = cut * y0 + cut * cut * (y1 - y0) / (x1 - x0) / 2
    return (_trapz(y[:n_below], x[:n_below]) + partial) / fpr_limit


ADEVAL_NSTRIPS = (1000, 50)  # ADEval's default; ADer's use_adeval setting


def _model_adeval(case, metric):
    out = [adeval_model(case, metric, n) for n in ADEVAL_NSTRIPS]
    return [v for v in out if isinstance(v, float) and not math.isnan(v)]


def _model_adeval_bounds(case, metric):
    out = [adeval_model(case, metric, n) for n in ADEVAL_NSTRIPS[:1]]
    return [v for v in out if isinstance(v, Raises) and v.name == "AssertionError"]


def _pro_fpr_above(case, thresholds):
    """refmetrics' exact (FPR, PRO) with a pixel positive when ``score > t``, at each threshold: the exact
    curve's point after the distinct scores above ``t``."""
    fpr, pro = _quiet(F.pro_curve, case.maps, case.masks, spatial_dims=case.spatial_dims)
    distinct = np.unique(case.maps.astype(np.float64))
    above = distinct.size - np.searchsorted(distinct, thresholds, side="right")
    return fpr[above], pro[above]


def _model_cflow(case, metric):
    """cflow-ad's grid (1000 thresholds from the largest score down, FPR <= limit kept, min-max rescaled)
    on refmetrics' exact curve; the filled-region overlap is the plain overlap for regions without holes."""
    if metric != "aupro" or case.spatial_dims != 2 or not case.masks.any() or case.masks.all():
        return []
    scores = case.maps.astype(np.float64)
    lo, hi = scores.min(), scores.max()
    if hi == lo:
        return [float("nan")]
    fpr, pro = _pro_fpr_above(case, hi - np.arange(1000) * ((hi - lo) / 1000))
    keep = fpr <= 0.3
    fpr, pro = fpr[keep], pro[keep]
    if fpr.size < 2 or fpr.max() == fpr.min():
        return [float("nan")]  # 0/0 in the rescale: a finding (findings.py)
    fpr = (fpr - fpr.min()) / (fpr.max() - fpr.min())
    return [_trapz(pro, fpr)]


def _model_visa(case, metric):
    """refmetrics' binned ROC at the VisA thresholds (``score > t`` is ``score >= nextafter(t)``), the
    trapezoid over those points in threshold order, rounded to 4 decimals."""
    if metric != "pixel_auroc" or not case.masks.any() or case.masks.all():
        return []
    from . import published

    thresholds = published.visa_thresholds(case.maps, case.masks).astype(np.float64)
    above = np.nextafter(thresholds, np.inf)
    fpr, tpr, thr = _quiet(F.roc_curve, case.maps, case.masks, thresholds=above)
    # refmetrics' binned points come one per distinct threshold, decreasing, after its (0, 0) start
    at = {t: (f, r) for t, f, r in zip(thr[1:], fpr[1:], tpr[1:])}
    points = np.array([at[t] for t in above])
    return [round(_trapz(points[:, 1], points[:, 0]), 4)]


def _model_legacy_anomalib(case, metric):
    """refmetrics' exact ROC per region (against the background alone) and over all pixels, aggregated as
    anomalib <= 2.2 did (published.legacy_resampled_aupro)."""
    if metric != "aupro" or case.spatial_dims != 2:
        return []
    from . import published

    regions = np.asarray(_quiet(F.label_regions, case.masks)).reshape(-1)
    if regions.max() == 0 or not (regions == 0).any():
        return []
    scores = case.maps.reshape(-1)
    background = regions == 0
    global_fpr = _quiet(F.roc_curve, scores, ~background)[0]
    curves = []
    for r in range(1, int(regions.max()) + 1):
        keep = background | (regions == r)
        fpr, tpr, _ = _quiet(F.roc_curve, scores[keep], regions[keep] == r)
        curves.append((fpr, tpr))
    return [published.legacy_resampled_aupro(global_fpr, curves)]


class Cause:
    """A named cause: ``model(case, metric)`` gives the values the cause predicts.

    A value is explained when it equals a predicted value within ``tol``; a
    value that is itself a float32 number (computed in float32) may also differ
    by float32 rounding (``F32_ULPS``, relative), so any cause combines with
    float32 arithmetic. A NaN where the exact value exists is never explained.
    """

    def __init__(self, key, title, sentence, model, tol, impls=()):
        self.key, self.title, self.sentence, self.model, self.tol = key, title, sentence, model, tol
        self.impls = tuple(impls)  # the implementations it is modelled on: tried first for them

    def explains(self, case, metric, value, error=None):
        """Whether the model reproduces ``value``, or (``error``: the exception type's name) the error."""
        for modelled in self.model(case, metric):
            if isinstance(modelled, Raises) or error is not None:
                if error is not None and isinstance(modelled, Raises) and modelled.name == error:
                    return True
                continue
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
          "The metric is undefined on this data (no positive; for AUROC, PBn and PGn, one class; no region "
          "or no background; for AUPIMO, no normal or no anomalous image, or a lower bound below the "
          "smallest shared FPR reachable); the implementation returns a number (0, 0.5, ...) or raises "
          "where refmetrics returns NaN with a warning.",
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
          "after a sigmoid (torchmetrics' thresholds=T) (model: refmetrics' binned mode at those thresholds).",
          _model_binning, 1e-6),
    Cause("sampled_thresholds", "sampled thresholds",
          "The PRO curve is evaluated at T thresholds evenly spaced from the smallest to the largest score "
          "(anomalib 1.x num_thresholds) instead of every distinct score.", _model_sampled, 1e-6),
    Cause("sampled_thresholds_quantiles", "sampled thresholds at background quantiles",
          "The PRO curve is evaluated at 100 thresholds taken at evenly spaced positions of the sorted "
          "background scores, with overlaps counted strictly above them (MVTec 3D-AD's evaluation).",
          _model_mvtec3d, 1e-9),
    Cause("sampled_thresholds_fpr_rescaled", "sampled thresholds with min-max rescaled FPR",
          "200 thresholds (the routine many papers copied; 100 in ADer's evaluator) from min to max, only the "
          "points below the FPR limit kept, their FPR rescaled to [0, 1] and no interpolation at the limit; "
          "the value is not a normalised area to the limit.", _model_rescaled, 1e-9),
    Cause("connectivity", "connected-component differences",
          "Regions are labelled with 4-connectivity (face neighbours) instead of 8-connectivity, so regions "
          "touching at a corner are split.", _model_connectivity, 1e-9),
    Cause("per_batch_normalisation", "per-batch normalisation",
          "Scores are min-max normalised per batch before the metric, so batches are put on different scales.",
          _model_batch_norm, 1e-9),
    Cause("sampled_thresholds_refined", "sampled thresholds refined to a curve resolution",
          "The sPRO curve is evaluated only at sampled thresholds: 50 at evenly spaced positions of the sorted "
          "scores, then more between adjacent points further than 0.01 apart (MVTec LOCO AD's evaluation); "
          "steps between them are cut as straight lines (model: refmetrics' exact curve at the thresholds "
          "that evaluation selects, integrated its way).", _model_loco_refined, 1e-9),
    # --- issue 13, section 6: ADEval's conventions ---
    Cause("adeval_binned_curve", "ADEval's binned curves",
          "ADEval (and ADer's use of it, 50 strips) counts scores in nstrips (1000) float32 bins between "
          "the bounds it is given plus two +-inf overflow bins that are never a threshold, and takes "
          "trapezoids over the bin edges' points only (no (0, 0) or recall-0 end point); AUPRO weights "
          "defect pixels by float32 1/area and closes at the limit with the exact area of the cut segment "
          "(model: refmetrics' counts at those edges, integrated the same way).", _model_adeval, 1e-12,
          impls=("adeval", "ader-adeval")),
    Cause("adeval_equal_bounds", "ADEval needs lower < upper bound",
          "Every score is equal, so the bounds the data gives are equal, and ADEval asserts "
          "lower < upper when it builds its bins (AssertionError; a user must invent wider bounds).",
          _model_adeval_bounds, 0.0, impls=("adeval", "ader-adeval")),
    # --- issue 13, section 6: rewritten published routines ---
    Cause("visa_sampled_thresholds", "VisA's 200 thresholds, rounded",
          "The VisA evaluation's pixel AUROC: 100 percentiles of the defect-pixel scores, 100 evenly spaced "
          "between their extremes and the score range widened by 1e-8; positive when strictly above; the "
          "trapezoid over those points, rounded to 4 decimals (model: refmetrics' counts at those "
          "thresholds).", _model_visa, 1e-12, impls=("visa",)),
    Cause("sampled_thresholds_fpr_rescaled_cflow", "cflow-ad's 1000 thresholds with min-max rescaled FPR",
          "cflow-ad's AUPRO: 1000 thresholds from the largest score down (the smallest never reached), the "
          "points with FPR <= 0.3 kept, their FPR rescaled to [0, 1] and no interpolation at the limit "
          "(model: refmetrics' exact curve at those thresholds; cflow-ad's overlap counts a region's holes, "
          "which no case here has).", _model_cflow, 1e-9, impls=("cflow-aupro",)),
    Cause("averaged_end_point_normalisation", "index-resampled curves, normalised by their end point",
          "anomalib <= 2.2's AUPRO: each region's ROC against the background is resampled by index (not by "
          "FPR) onto as many points as the global curve has below the limit, the curves are averaged, and "
          "the area is divided by the averaged curve's last FPR instead of the limit, which inflates it "
          "(model: refmetrics' exact per-region curves, aggregated the same way).",
          _model_legacy_anomalib, 1e-9, impls=("anomalib-2.2-aupro",)),
]
CAUSE_BY_KEY = {c.key: c for c in CAUSES}


def attribute(case, metric, value, error=None, impl=None):
    """The first finding of ``impl`` (findings.py) whose model reproduces ``value`` (or ``error``, the
    exception type's name), else the first cause modelled on ``impl`` that does, else the first other
    cause that does, or None."""
    from .findings import FINDINGS

    mine = [c for c in CAUSES if impl is not None and impl in c.impls]
    candidates = [f for f in FINDINGS if impl is not None and impl in f.impls] + mine + \
        [c for c in CAUSES if c not in mine]
    for cause in candidates:
        try:
            if cause.explains(case, metric, value, error):
                return cause
        except Exception:  # noqa: BLE001 - a model that cannot run on this case explains nothing
            continue
    return None


# --- PIMO / AUPIMO (issue 13, section 1) -----------------------------------------------------

AUPIMO_THRESHOLDS = 300_000  # anomalib 2.7's AUPIMO default


def _linspace_like_torch(lo, hi, n, dtype):
    """``n`` thresholds from ``lo`` to ``hi`` in ``dtype`` as torch.linspace gives them (torch's own
    values where torch is importable: its vectorised CPU kernel rounds a few percent of them one ulp
    away from NumPy's; else the formula of its scalar loop: the first half ``lo + step * i``, the second
    ``hi - step * (n - 1 - i)``, ``step = (hi - lo) / (n - 1)``, all in ``dtype``)."""
    try:
        import torch

        tdt = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[np.dtype(dtype)]
        return torch.linspace(float(lo), float(hi), n, dtype=tdt).numpy()
    except ImportError:
        dt = np.dtype(dtype)
        start, end = dt.type(lo), dt.type(hi)
        step = (end - start) / dt.type(n - 1)
        i = np.arange(n)
        half = n // 2
        return np.concatenate([start + step * i[:half].astype(dt), end - step * (n - 1 - i[half:]).astype(dt)])


def _model_aupimo_sampled(case, metric):
    """anomalib 2.7's AUPIMO, rewritten from its description: thresholds evenly spaced (300,000, in the
    maps' dtype) from the smallest to the largest score of the *normal* images; per image the counts at
    ``score >= t``; the shared FPR the float64 mean of the normal images' FPRs; the integration range cut
    at the thresholds whose shared FPR is *nearest* each bound (no interpolation; the first such index
    on ties); points with shared FPR 0 dropped; ``np.trapezoid`` in ``ln shFPR``, divided by
    ``ln(U / L)``, clipped to [0, 1]; the mean over anomalous images. Cases anomalib refuses (no normal
    or anomalous image, a bound outside the reachable range, 30 points or fewer) predict nothing."""
    if metric != "aupimo" or case.spatial_dims != 2:
        return []
    from .cases import AUPIMO_BOUNDS

    lower, upper = AUPIMO_BOUNDS
    b = case.maps.shape[0]
    maps = case.maps.reshape(b, -1)
    masks = case.masks.reshape(b, -1).astype(bool)
    anomalous = masks.any(axis=1)
    if anomalous.all() or not anomalous.any():
        return []
    normal = maps[~anomalous]
    thresholds = _linspace_like_torch(normal.min(), normal.max(), AUPIMO_THRESHOLDS, maps.dtype)
    if np.any(np.diff(thresholds) <= 0):
        return []  # anomalib requires strictly increasing thresholds
    fprs = [(img.size - np.searchsorted(np.sort(img), thresholds, side="left")) / np.float64(img.size)
            for img in normal]
    shared = np.mean(np.stack(fprs), axis=0)
    if not shared.min() <= lower <= upper <= shared.max():
        return []
    i_low = int(np.argmin(np.abs(shared - lower)))  # the higher threshold
    i_up = int(np.argmin(np.abs(shared - upper)))
    if i_up >= i_low:
        return []
    with np.errstate(divide="ignore"):
        x = np.log(shared[i_up:i_low + 1][::-1])
    keep = np.isfinite(x)
    if keep.sum() <= 30:
        return []
    areas = []
    for img, gt in zip(maps[anomalous], masks[anomalous]):
        pos = np.sort(img[gt])
        tpr = (pos.size - np.searchsorted(pos, thresholds[i_up:i_low + 1], side="left")) / np.float64(pos.size)
        areas.append(min(1.0, max(0.0, _trapz(tpr[::-1][keep], x[keep]) / float(np.log(upper / lower)))))
    return [float(np.mean(areas))]


CAUSES.append(Cause(
    "aupimo_sampled_thresholds", "AUPIMO on sampled thresholds with nearest-index bounds",
    "anomalib's AUPIMO evaluates the curve at 300,000 thresholds evenly spaced (in float32 for float32 maps) "
    "over the normal images' score range instead of at every distinct score, and integrates between the "
    "thresholds whose shared FPR is nearest each bound instead of interpolating at the bounds (model: that "
    "computation, re-run).", _model_aupimo_sampled, 1e-9))
CAUSE_BY_KEY[CAUSES[-1].key] = CAUSES[-1]


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
