"""Findings: named defects of one implementation, each with a one-line reproduction.

A *cause* (causes.py) is a convention: a deliberate or documented choice (binning, float32, another
definition, a stated precondition) whose model reproduces the implementation's value. A *finding* is a
defect: the implementation contradicts its own definition or crashes on valid input (a NaN from 0/0 where
its formula has a value, a dtype it accepts but cannot handle, regions it loses). A finding is reported
with the verdict ``"finding"``: it is explained (its model reproduces the value or the error, so it is not
an unexplained disagreement) but it is not excused as a convention, and the report prints its
reproduction so that it can be filed upstream.

A finding belongs to the implementations named in ``impls`` (adapter names); like a cause, it explains a
row only when re-running its model on the case gives the implementation's value (a NaN counts here) or
predicts the error it raised.
"""

import math

import numpy as np

from .. import functional as F
from .causes import Raises, _model_cflow, _model_rescaled, _quiet, adeval_model


class Finding:
    """A named defect of ``impls``: ``model(case, metric)`` predicts the values (NaN included) or the
    :class:`~refmetrics.conformance.causes.Raises` the defect produces; ``reproduction`` is one shell line
    that shows it with the implementation alone."""

    def __init__(self, key, impls, title, sentence, reproduction, model, tol=1e-12):
        self.key, self.impls, self.title, self.sentence = key, tuple(impls), title, sentence
        self.reproduction, self.model, self.tol = reproduction, model, tol

    def explains(self, case, metric, value, error=None):
        for modelled in self.model(case, metric):
            if isinstance(modelled, Raises):
                if error is not None and modelled.name == error:
                    return True
                continue
            if error is not None or modelled is None:
                continue
            if math.isnan(modelled) or math.isnan(value):
                if math.isnan(modelled) and math.isnan(value):
                    return True
                continue
            if abs(value - modelled) <= self.tol:
                return True
        return False


def _adeval_outcomes(case, metric):
    return [adeval_model(case, metric, n) for n in (1000, 50)]


def _model_adeval_nan(case, metric):
    if metric != "aupro" or case.expected[metric] is None:
        return []
    return [v for v in _adeval_outcomes(case, metric) if isinstance(v, float) and math.isnan(v)]


def _model_adeval_index_error(case, metric):
    if case.expected[metric] is None:
        return []
    return [v for v in _adeval_outcomes(case, metric) if isinstance(v, Raises) and v.name == "IndexError"]


def _model_rescaled_nan(case, metric):
    if case.expected[metric] is None:
        return []
    return [v for v in _model_rescaled(case, metric) + _model_cflow(case, metric) if math.isnan(v)]


def _model_anomalib_float64(case, metric):
    return [Raises("TypeError", "float64 maps")] if metric == "pro" and case.maps.dtype == np.float64 else []


def _model_anomalib_full_masks(case, metric):
    """refmetrics on the masks with every image that has no background pixel emptied (anomalib's labelling
    drops its region, and AUPRO then counts its pixels as background); where no region is left, anomalib's
    answer without regions (PRO 1.0, AUPRO 0.0)."""
    if metric not in ("pro", "aupro") or case.spatial_dims != 2:
        return []
    full = case.masks.reshape(case.masks.shape[0], -1).min(axis=1) > 0
    if not full.any():
        return []
    masks = case.masks.copy()
    masks[full] = 0
    if not masks.any():
        return [1.0 if metric == "pro" else 0.0]
    maps = case.maps.astype(np.float32)
    if metric == "pro":
        return [_quiet(F.pro_score, maps, masks, threshold=0.5)]
    return [_quiet(F.aupro, maps, masks)]


FINDINGS = [
    Finding("adeval_aupro_nan", ("adeval", "ader-adeval"), "ADEval's AUPRO is NaN when the PRO is 0 at the limit",
            "ADEval closes the AUPRO at the FPR limit with a formula that divides by the mean PRO of the two "
            "points around the limit (_trapezoid_intep's rect_ratio), so it returns NaN (0/0) where that PRO "
            "is 0 on both sides, although the area is 0.",
            "python -c \"import numpy as np; from adeval import EvalAccumulator as E; np.trapz = np.trapezoid; "
            "a = E(0., 1., skip_pixel_aupro=False); a.add_anomap(np.array([[.9, .1, .5, .3]], np.float32), "
            "np.array([[0, 1, 0, 0]], np.uint8)); print(a.summary()['p_aupro'])\"",
            _model_adeval_nan),
    Finding("adeval_aupro_index_error", ("adeval", "ader-adeval"),
            "ADEval's AUPRO crashes with no bin edge on one side of the limit",
            "When every bin edge has FPR above 0.3 (or every one has FPR <= 0.3), ADEval indexes the empty "
            "side's first point and raises IndexError, e.g. when float64 scores closer than float32 make its "
            "float32 edges collapse.",
            "python -c \"import numpy as np; from adeval import EvalAccumulator as E; np.trapz = np.trapezoid; "
            "m = 1 + np.arange(4.)[None] * 1e-12; a = E(m.min(), m.max(), skip_pixel_aupro=False); "
            "a.add_anomap(m, np.array([[0, 1, 0, 0]], np.uint8)); a.summary()\"",
            _model_adeval_index_error),
    Finding("anomalib_pro_float64", ("anomalib",), "anomalib's PRO raises TypeError on float64 maps",
            "anomalib 2.7's PRO binarises predictions only when their dtype is torch.float (float32); float64 "
            "maps reach `~predictions` unbinarised and raise TypeError.",
            "python -c \"import torch; from anomalib.metrics.pro import _PRO; m = _PRO(); "
            "m.update(torch.rand(1, 4, 4, dtype=torch.float64), torch.ones(1, 4, 4, dtype=torch.bool)); "
            "m.compute()\"",
            _model_anomalib_float64),
    Finding("anomalib_full_mask_region_lost", ("anomalib",),
            "anomalib loses the region of a mask with no background pixel",
            "anomalib 2.7's connected_components_cpu skips the first label of each image (np.unique(...)[1:], "
            "meant to skip the background 0); a mask that is all defect (every one-pixel map with a defect) "
            "has no 0, so its region is dropped: PRO and AUPRO ignore it (no region left: PRO 1.0, AUPRO 0).",
            "python -c \"import torch; from anomalib.utils.cv import connected_components_cpu as c; "
            "print(c(torch.ones(1, 1, 2, 2)).unique())\"",
            _model_anomalib_full_masks),
    Finding("rescaled_aupro_degenerate", ("aupro-200", "aupro-100", "cflow-aupro"),
            "the min-max rescaled AUPRO has no value with < 2 FPR values below the limit",
            "The routine many papers copied (200 steps; ADer's, 100; cflow-ad's, 1000) rescales the FPR of its "
            "sampled points below the limit by min-max; with fewer than two distinct values there it divides 0 "
            "by 0 (NaN; the original then fails in sklearn's auc), although the exact AUPRO exists.",
            "python -c \"import numpy as np; from refmetrics.conformance.published import aupro_200; "
            "print(aupro_200(np.array([[[0., 1.]]]), np.array([[[0, 1]]])))\"",
            _model_rescaled_nan),
]
FINDING_BY_KEY = {f.key: f for f in FINDINGS}
