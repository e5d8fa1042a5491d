"""The public API as a whole: signatures, result types, copies, parameters and array kinds.

Each test walks over every public function of :mod:`refmetrics.functional` and
every metric class, and checks that its table covers them all, so that a new
function or class cannot be added without being listed here.
"""

import copy
import inspect
import json
import math
import os
import pickle
import tempfile

import numpy as np
import pytest

import refmetrics as rm
from refmetrics import _arrays
from refmetrics import functional as F

from . import naive
from .checks import close, quiet

PREDS = np.array([0.1, 0.8, 0.3, 0.9, 0.5, 0.2, 0.8, 0.3])
TARGET = np.array([0, 1, 0, 1, 1, 0, 0, 1])
MAPS = np.array([[[0.9, 0.5, 0.1], [0.3, 0.7, 0.2]], [[0.6, 0.4, 0.8], [0.1, 0.2, 0.3]]])
MASKS = np.array([[[1, 0, 0], [0, 1, 0]], [[0, 0, 1], [0, 0, 0]]])

# sPRO: per image a list of (mask, saturation threshold, relative saturation); a defects_config.json
SPRO_DEFECTS = [[(MASKS[0], 1.0, True)], [(MASKS[1], 1, False)]]
_CONFIG_DIR = tempfile.mkdtemp(prefix="refmetrics-api-")
CONFIG_PATH = os.path.join(_CONFIG_DIR, "defects_config.json")
with open(CONFIG_PATH, "w") as _f:
    json.dump([{"defect_name": "missing", "pixel_value": 255, "saturation_threshold": 1.0,
                "relative_saturation": True}], _f)
CHANNEL = np.array([[0, 255], [255, 0]], np.uint8)
# AUPIMO needs normal and anomalous images, and bounds the few pixels reach
PIMO_MAPS = np.array([[[0.1, 0.2, 0.3, 0.9]], [[0.1, 0.2, 0.4, 0.5]], [[0.8, 0.45, 0.2, 0.1]]])
PIMO_MASKS = np.array([[[0, 0, 0, 0]], [[0, 0, 0, 0]], [[1, 1, 0, 0]]])
PIMO_BOUNDS = (0.125, 1.0)

FUNCTIONS = sorted(F.__all__)
CLASSES = sorted(name for name in rm.__all__
                 if isinstance(getattr(rm, name), type) and issubclass(getattr(rm, name), rm.Metric)
                 and name != "Metric")


def test_the_tables_cover_the_public_api():
    assert sorted(DATA_ARGS) == FUNCTIONS
    assert sorted(CALLS) == FUNCTIONS
    assert sorted(NAN_PARAMETERS) == sorted(FUNCTIONS + CLASSES)
    assert sorted(CLASS_CASES) == CLASSES
    assert sorted(FIRST_POSITIONAL) == CLASSES


# ---------------------------------------------------------------------------
# 5.2: everything after the data is keyword-only
# ---------------------------------------------------------------------------

# the data arguments of each function (positional), and a valid value for the next parameter
DATA_ARGS = {
    "roc_curve": ((PREDS, TARGET), 5),
    "auroc": ((PREDS, TARGET), 5),
    "precision_recall_curve": ((PREDS, TARGET), 5),
    "average_precision": ((PREDS, TARGET), 5),
    "aupr": ((PREDS, TARGET), "trapezoid"),
    "f1_adaptive_threshold": ((PREDS, TARGET), None),
    "f1_max": ((PREDS, TARGET), None),
    "f1_score": ((PREDS, TARGET), 0.4),
    "min_max": ((PREDS,), "cpu"),
    "anomaly_score_distribution": ((PREDS + 1, MAPS + 1), "cpu"),
    "label_regions": ((MASKS,), 1),
    "pro_curve": ((MAPS, MASKS), 5),
    "aupro": ((MAPS, MASKS), 0.5),
    "pro_score": ((MAPS, MASKS), 0.4),
    "spro_curve": ((MAPS, SPRO_DEFECTS), [0.5]),
    "au_spro": ((MAPS, SPRO_DEFECTS), 0.3),
    "read_defects_config": ((CONFIG_PATH,), "utf-8"),
    "defects_from_channels": (([CHANNEL],), F.read_defects_config(CONFIG_PATH)),
    "aupimo": ((PIMO_MAPS, PIMO_MASKS), PIMO_BOUNDS),
    "pimo_curve": ((PIMO_MAPS, PIMO_MASKS), "cpu"),
    "pbn": ((PREDS, TARGET), 0.1),
    "pgn": ((PREDS, TARGET), 0.1),
    "segmentation_scores": ((MAPS, MASKS, 0.5), False),
    "validation_threshold": ((MAPS,), 2.0),
    "ader_segmentation": ((MAPS, MASKS), (0.5,)),
    "image_scores": ((MAPS,), "top_k_mean"),
    "auroc_ci": ((PREDS, TARGET), 0.9),
    "delong_test": ((PREDS, PREDS[::-1], TARGET), TARGET),  # nothing after the data
    "bootstrap_ci": ((PREDS, TARGET), "average_precision"),
    "bootstrap_test": ((PREDS, PREDS[::-1], TARGET), "average_precision"),
}


@pytest.mark.parametrize("name", FUNCTIONS)
def test_everything_after_the_data_is_keyword_only(name):
    fn = getattr(F, name)
    data, extra = DATA_ARGS[name]
    params = list(inspect.signature(fn).parameters.values())
    assert [p.name for p in params[:len(data)]] == [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert all(p.kind is p.KEYWORD_ONLY for p in params[len(data):]), name
    if len(params) == len(data):  # no parameter after the data: one more positional is refused
        with pytest.raises(TypeError, match="positional argument"):
            fn(*data, extra)
        return
    next_name = params[len(data)].name
    with pytest.raises(TypeError, match="positional argument"):
        fn(*data, extra)
    quiet(fn, *data, **{next_name: extra})  # the same value by keyword is accepted


# anomalib's positional parameter of each class (where its metric takes one), None where it takes none
FIRST_POSITIONAL = {
    "AUPR": "thresholds",  # torchmetrics' BinaryPrecisionRecallCurve, which anomalib's AUPR extends
    "AUPRO": "fpr_limit",
    "AUROC": "thresholds",
    "AnomalyScoreDistribution": None,
    "BinaryPrecisionRecallCurve": "thresholds",
    "F1AdaptiveThreshold": "default_value",
    "F1Max": None,
    "F1Score": "threshold",
    "ManualThreshold": "default_value",
    "MinMax": None,
    "PRO": "threshold",
    "AUsPRO": "fpr_limit",
    "AUPIMO": None,  # anomalib's first positional is num_thresholds, which refmetrics lacks
    "PBn": "fpr",
    "PGn": "fnr",
    "ValidationThreshold": "n_std",
}


@pytest.mark.parametrize("name", CLASSES)
def test_class_constructors_take_one_positional_parameter_at_most(name):
    cls = getattr(rm, name)
    params = list(inspect.signature(cls).parameters.values())
    positional = [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
    first = FIRST_POSITIONAL[name]
    assert positional == ([] if first is None else [first])
    assert all(p.kind is p.KEYWORD_ONLY for p in params[len(positional):])
    with pytest.raises(TypeError, match="positional argument"):
        cls(*[params[0].default] * (len(positional) + 1))


def test_positional_first_parameters_mean_what_they_mean_in_anomalib():
    assert rm.AUPRO(0.5).fpr_limit == 0.5
    assert rm.PRO(0.25).threshold == 0.25
    assert rm.ManualThreshold(0.7).compute() == 0.7
    assert rm.F1Score(0.4)(PREDS, TARGET) == float(naive.f1_score(PREDS, TARGET, 0.4))
    assert rm.F1AdaptiveThreshold(0.3).value == 0.3 and quiet(rm.F1AdaptiveThreshold(0.3).compute) == 0.3
    thr = [0.0, 0.25, 0.5, 0.75, 1.0]
    assert close(rm.AUROC(5)(PREDS, TARGET), naive.binned_roc_auc(PREDS, TARGET, thr))
    assert close(rm.AUPR(5)(PREDS, TARGET), naive.binned_average_precision(PREDS, TARGET, thr))
    assert rm.BinaryPrecisionRecallCurve(5).thresholds == 5
    with pytest.raises(TypeError, match="thresholds: expected None, an int >= 2 or an array"):
        rm.AUPR("trapezoid")  # curve is keyword-only: AUPR(curve="trapezoid")


# ---------------------------------------------------------------------------
# 3.5: scalars are Python floats, curves float64 arrays, labels int64
# ---------------------------------------------------------------------------

SCALAR, CURVE, LABELS, COUNT = "float", "float64 array", "int64 array", "int"
_SEGMENTATION_KEYS = ("tp", "fp", "fn", "tn", "precision", "recall", "f1", "iou")


def _calls(data):
    """Every public function as ``name -> [(call, expected structure)]``; ``data`` converts arrays."""
    p, t, maps, masks = data(PREDS), data(TARGET), data(MAPS), data(MASKS)
    one_class = data(np.zeros(8, np.int64))
    scores, logmaps = data(PREDS + 1), data(MAPS + 1)
    pmaps, pmasks = data(PIMO_MAPS), data(PIMO_MASKS)
    return {
        "roc_curve": [(lambda: F.roc_curve(p, t), (CURVE,) * 3),
                      (lambda: F.roc_curve(p, t, thresholds=5), (CURVE,) * 3)],
        "auroc": [(lambda: F.auroc(p, t), SCALAR), (lambda: F.auroc(p, t, thresholds=5), SCALAR),
                  (lambda: F.auroc(p, one_class), SCALAR)],
        "precision_recall_curve": [(lambda: F.precision_recall_curve(p, t), (CURVE,) * 3),
                                   (lambda: F.precision_recall_curve(p, t, thresholds=[0.2, 0.5]), (CURVE,) * 3)],
        "average_precision": [(lambda: F.average_precision(p, t), SCALAR),
                              (lambda: F.average_precision(p, t, thresholds=5), SCALAR)],
        "aupr": [(lambda: F.aupr(p, t), SCALAR), (lambda: F.aupr(p, t, curve="trapezoid"), SCALAR),
                 (lambda: F.aupr(p, t, curve="trapezoid", thresholds=5), SCALAR)],
        "f1_adaptive_threshold": [(lambda: F.f1_adaptive_threshold(p, t), (SCALAR, SCALAR)),
                                  (lambda: F.f1_adaptive_threshold(p, one_class), (SCALAR, SCALAR))],
        "f1_max": [(lambda: F.f1_max(p, t), SCALAR)],
        "f1_score": [(lambda: F.f1_score(p, t), SCALAR),
                     (lambda: F.f1_score(data(PREDS.reshape(2, 4)), data(TARGET.reshape(2, 4)),
                                         multidim_average="samplewise"), CURVE)],
        "min_max": [(lambda: F.min_max(p), (SCALAR, SCALAR))],
        "anomaly_score_distribution": [
            (lambda: F.anomaly_score_distribution(scores, logmaps), (SCALAR, SCALAR, CURVE, CURVE)),
            (lambda: F.anomaly_score_distribution(scores), (SCALAR,) * 4)],
        "label_regions": [(lambda: F.label_regions(masks), LABELS),
                          (lambda: F.label_regions(masks, return_num=True), (LABELS, COUNT))],
        "pro_curve": [(lambda: F.pro_curve(maps, masks), (CURVE, CURVE)),
                      (lambda: F.pro_curve(maps, masks, num_thresholds=5), (CURVE, CURVE))],
        "aupro": [(lambda: F.aupro(maps, masks), SCALAR), (lambda: F.aupro(maps, masks, num_thresholds=5), SCALAR),
                  (lambda: F.aupro(maps, np.zeros_like(MASKS)), SCALAR)],
        "pro_score": [(lambda: F.pro_score(maps, masks), SCALAR)],
        "spro_curve": [(lambda: F.spro_curve(maps, [[(masks[0], 1.0, True)], []]), (CURVE, CURVE)),
                       (lambda: F.spro_curve(maps, [[(masks[0], 1.0, True)], []], thresholds=[0.5]),
                        (CURVE, CURVE))],
        "au_spro": [(lambda: F.au_spro(maps, [[(masks[0], 1.0, True)], []]), SCALAR),
                    (lambda: F.au_spro(maps, [[], []]), SCALAR)],
        # the readers return a dict and a list: their numbers are checked
        "read_defects_config": [(lambda: F.read_defects_config(CONFIG_PATH)[255].saturation_threshold, SCALAR)],
        "defects_from_channels": [(lambda: F.defects_from_channels([data(CHANNEL)],
                                                                   config=F.read_defects_config(CONFIG_PATH))[0][1],
                                   SCALAR)],
        "aupimo": [(lambda: F.aupimo(pmaps, pmasks, fpr_bounds=PIMO_BOUNDS), SCALAR),
                   (lambda: F.aupimo(pmaps, pmasks, fpr_bounds=PIMO_BOUNDS, return_per_image=True), (SCALAR, CURVE)),
                   (lambda: F.aupimo(pmaps, pmasks), SCALAR)],  # undefined: nan
        "pimo_curve": [(lambda: F.pimo_curve(pmaps, pmasks), (CURVE, CURVE, CURVE, LABELS))],
        "pbn": [(lambda: F.pbn(p, t), SCALAR)],
        "pgn": [(lambda: F.pgn(p, t, fnr=0.5), SCALAR)],
        "segmentation_scores": [
            (lambda: tuple(F.segmentation_scores(maps, masks, 0.5)[k] for k in _SEGMENTATION_KEYS),
             (COUNT,) * 4 + (SCALAR,) * 4),
            (lambda: tuple(F.segmentation_scores(maps, masks, 0.5, average="samplewise")[k]
                           for k in _SEGMENTATION_KEYS + ("mean_f1",)), (LABELS,) * 4 + (CURVE,) * 4 + (SCALAR,))],
        "validation_threshold": [(lambda: F.validation_threshold(maps), SCALAR)],
        "ader_segmentation": [(lambda: tuple(F.ader_segmentation(maps, masks).values()), (SCALAR,) * 3)],
        "image_scores": [(lambda r=r: F.image_scores(maps, reduce=r, kernel=2), CURVE)
                         for r in ("max", "top_k_mean", "pooled_max")],
        # named tuples of floats (read as plain tuples here)
        "auroc_ci": [(lambda: tuple(F.auroc_ci(p, t)), (SCALAR,) * 4),
                     (lambda: tuple(F.auroc_ci(p, one_class)), (SCALAR,) * 4)],
        "delong_test": [(lambda: tuple(F.delong_test(p, data(PREDS[::-1].copy()), t)), (SCALAR,) * 3)],
        "bootstrap_ci": [(lambda: tuple(F.bootstrap_ci(p, t, n_resamples=20)), (SCALAR,) * 4 + (COUNT, CURVE)),
                         (lambda: tuple(F.bootstrap_ci(maps, masks, metric="aupro", n_resamples=20)),
                          (SCALAR,) * 4 + (COUNT, CURVE))],
        "bootstrap_test": [(lambda: tuple(F.bootstrap_test(p, data(PREDS[::-1].copy()), t, n_resamples=20)),
                            (SCALAR,) * 7 + (COUNT, CURVE))],
    }


CALLS = _calls(np.asarray)


def _class_calls(data):
    """Every class: ``name -> [(metric, update args, update kwargs, expected structure, extra results)]``."""
    p, t, maps, masks = data(PREDS), data(TARGET), data(MAPS), data(MASKS)
    return {
        "AUROC": [(rm.AUROC(), (p, t), SCALAR, {"curve": (CURVE,) * 3}),
                  (rm.AUROC(thresholds=5), (p, t), SCALAR, {})],
        "AUPR": [(rm.AUPR(), (p, t), SCALAR, {"curve": (CURVE,) * 3}),
                 (rm.AUPR(curve="trapezoid"), (p, t), SCALAR, {})],
        "BinaryPrecisionRecallCurve": [(rm.BinaryPrecisionRecallCurve(), (p, t), (CURVE,) * 3, {}),
                                       (rm.BinaryPrecisionRecallCurve(thresholds=5), (p, t), (CURVE,) * 3, {})],
        "F1AdaptiveThreshold": [(rm.F1AdaptiveThreshold(), (p, t), SCALAR, {"value": SCALAR, "f1": SCALAR})],
        "F1Max": [(rm.F1Max(), (p, t), SCALAR, {"threshold": SCALAR})],
        "F1Score": [(rm.F1Score(), (p, t), SCALAR, {}),
                    (rm.F1Score(multidim_average="samplewise"),
                     (data(PREDS.reshape(2, 4)), data(TARGET.reshape(2, 4))), CURVE, {})],
        "ManualThreshold": [(rm.ManualThreshold(1), (p, t), SCALAR, {})],
        "MinMax": [(rm.MinMax(), (p,), (SCALAR, SCALAR), {})],
        "AnomalyScoreDistribution": [(rm.AnomalyScoreDistribution(), (data(PREDS + 1), data(MAPS + 1)),
                                      (SCALAR, SCALAR, CURVE, CURVE), {})],
        "AUPRO": [(rm.AUPRO(), (maps, masks), SCALAR, {"curve": (CURVE, CURVE)}),
                  (rm.AUPRO(num_thresholds=5), (maps, masks), SCALAR, {})],
        "PRO": [(rm.PRO(), (maps, masks), SCALAR, {})],
        "AUsPRO": [(rm.AUsPRO(), (maps, [[(masks[0], 1.0, True)], [(masks[1], 1, False)]]), SCALAR,
                    {"curve": (CURVE, CURVE)})],
        "AUPIMO": [(rm.AUPIMO(fpr_bounds=PIMO_BOUNDS), (data(PIMO_MAPS), data(PIMO_MASKS)), SCALAR,
                    {"per_image": CURVE})],
        "PBn": [(rm.PBn(), (p, t), SCALAR, {})],
        "PGn": [(rm.PGn(0.5), (p, t), SCALAR, {})],
        "ValidationThreshold": [(rm.ValidationThreshold(), (maps,), SCALAR, {})],
    }


CLASS_CASES = _class_calls(np.asarray)


def _has_structure(value, structure):
    if isinstance(structure, tuple):
        return type(value) is tuple and len(value) == len(structure) and all(
            _has_structure(v, s) for v, s in zip(value, structure))
    if structure == SCALAR:
        return type(value) is float and json.loads(json.dumps(value, allow_nan=True)) is not None
    if structure == COUNT:
        return type(value) is int
    dtype = np.float64 if structure == CURVE else np.int64
    return type(value) is np.ndarray and value.dtype == dtype


def _kinds():
    kinds = [("numpy", np.asarray)]
    try:
        import torch
    except ImportError:
        return kinds
    return kinds + [("torch", torch.as_tensor)]


@pytest.mark.parametrize("kind", [k for k, _ in _kinds()])
def test_result_types_for_numpy_and_torch_input(kind):
    data = dict(_kinds())[kind]
    for name, calls in _calls(data).items():
        for call, structure in calls:
            value = quiet(call)
            assert _has_structure(value, structure), (name, structure, value)
    for name, cases in _class_calls(data).items():
        for metric, args, structure, extras in cases:
            batch = quiet(metric, *args)  # __call__: this batch alone
            assert _has_structure(batch, structure), (name, "__call__", batch)
            value = quiet(metric.compute)
            assert _has_structure(value, structure), (name, value)
            for attr, attr_structure in extras.items():
                extra = quiet(getattr(metric, attr)) if callable(getattr(metric, attr)) else getattr(metric, attr)
                assert _has_structure(extra, attr_structure), (name, attr, extra)
    # before any update
    assert _has_structure(rm.MinMax().compute(), (SCALAR, SCALAR))
    assert _has_structure(quiet(rm.AUROC().compute), SCALAR)
    assert _has_structure(quiet(rm.F1AdaptiveThreshold(1).compute), SCALAR)


# ---------------------------------------------------------------------------
# 3.1: tensors that require grad are read detached, without a copy
# ---------------------------------------------------------------------------

def test_a_tensor_that_requires_grad_is_read_detached_without_a_copy(monkeypatch):
    torch = pytest.importorskip("torch")
    preds = torch.tensor(PREDS, requires_grad=True)
    preds32 = torch.tensor(PREDS, dtype=torch.float32, requires_grad=True)
    target = torch.tensor(TARGET)
    view = preds.detach().numpy()
    assert np.shares_memory(_arrays.host_array(preds, "preds"), view)

    read = []
    host_array = _arrays.host_array

    def spy(obj, name):
        arr = host_array(obj, name)
        read.append((obj, arr))
        return arr

    monkeypatch.setattr(_arrays, "host_array", spy)
    assert F.auroc(preds, target) == float(naive.auroc(PREDS, TARGET))
    metric = rm.AUROC()
    metric.update(preds[:4], target[:4])
    metric.update(preds[4:], target[4:])
    assert metric.compute() == float(naive.auroc(PREDS, TARGET))
    # the F1-maximising threshold is a score exactly as given (the float32 number, not a rounded one)
    threshold, f1 = F.f1_adaptive_threshold(preds32, target)
    exact_threshold, exact_f1 = naive.f1_adaptive(preds32.detach().numpy(), TARGET)
    assert threshold == exact_threshold and close(f1, exact_f1)
    assert rm.MinMax()(preds) == (0.1, 0.9)
    assert F.f1_score(preds, target, threshold=0.4) == float(naive.f1_score(PREDS, TARGET, 0.4))
    tensors = [(obj, arr) for obj, arr in read if getattr(obj, "requires_grad", False)]
    assert len(tensors) >= 6
    for obj, arr in tensors:
        assert np.shares_memory(arr, obj.detach().numpy())  # read in place: no copy
    assert preds.requires_grad and preds.grad is None and preds.grad_fn is None  # the tensor is untouched


# ---------------------------------------------------------------------------
# 3.6: MinMax.update ignores what follows preds
# ---------------------------------------------------------------------------

def test_min_max_update_ignores_extra_arguments():
    metric = rm.MinMax()
    metric.update(PREDS, TARGET, "anything", labels=TARGET, masks=None)
    assert metric.compute() == (0.1, 0.9)
    assert metric(np.array([-2.0, 3.0]), TARGET) == (-2.0, 3.0)
    assert metric.compute() == (-2.0, 3.0)


# ---------------------------------------------------------------------------
# 3.7: copies are independent; deepcopy and pickling keep working
# ---------------------------------------------------------------------------

def _result(metric):
    value = quiet(metric.compute)
    outputs = tuple(getattr(metric, name) for name in metric._outputs)
    return value, outputs


def _same_result(a, b):
    if isinstance(a, tuple):
        return len(a) == len(b) and all(_same_result(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b, equal_nan=True)
    return a == b or (math.isnan(a) and math.isnan(b))


def _extra_batch(args):
    """Another batch shaped like ``args`` that changes every metric's result."""
    return tuple(np.asarray(a)[::-1] * 1.5 - 0.2 if i == 0 else a[::-1] if isinstance(a, list)  # sPRO defects
                 else np.asarray(a)[::-1] for i, a in enumerate(args))


@pytest.mark.parametrize("name", CLASSES)
@pytest.mark.parametrize("how", ["copy", "deepcopy", "pickle"])
def test_copies_are_independent(name, how):
    duplicate = {"copy": copy.copy, "deepcopy": copy.deepcopy,
                 "pickle": lambda m: pickle.loads(pickle.dumps(m))}[how]
    for metric, args, _, _ in _class_calls(np.asarray)[name]:
        extra = _extra_batch(args)

        def fresh(*batches):
            m = type(metric)(**metric._config())
            for b in batches:
                m.update(*b)
            return _result(m)

        metric.update(*args)
        for computed_first in (False, True):  # an unsorted state, and one that compute() has sorted
            if computed_first:
                quiet(metric.compute)
            twin = duplicate(metric)
            assert type(twin) is type(metric) and twin._config() == metric._config()
            assert _same_result(_result(twin), fresh(args))
            twin.update(*extra)  # the copy changes, the original does not
            assert _same_result(_result(metric), fresh(args)), (name, how)
            assert _same_result(_result(twin), fresh(args, extra)), (name, how)
            other = duplicate(metric)
            metric.update(*extra)  # and the reverse
            assert _same_result(_result(other), fresh(args)), (name, how)
            assert _same_result(_result(metric), fresh(args, extra)), (name, how)
            metric.reset()
            assert _same_result(_result(other), fresh(args)), (name, how)
            metric.update(*args)


def test_copy_keeps_what_compute_set():
    metric = rm.F1Max()
    metric.update(PREDS, TARGET)
    best = metric.compute()
    twin = copy.copy(metric)
    assert twin.threshold == metric.threshold == float(naive.f1_adaptive(PREDS, TARGET)[0])
    assert close(best, naive.f1_adaptive(PREDS, TARGET)[1])


# ---------------------------------------------------------------------------
# 3.8: thresholds= takes what a curve returned, +-inf included
# ---------------------------------------------------------------------------

def test_thresholds_from_a_curve_include_inf():
    fpr, tpr, thr = F.roc_curve(PREDS, TARGET)
    assert thr[0] == np.inf  # a threshold above every score: nothing is predicted positive there
    for thresholds in (thr, np.concatenate([thr, [-np.inf]]), [np.inf, 0.5, -np.inf]):
        values = sorted(float(x) for x in thresholds)
        exact_auroc = naive.binned_roc_auc(PREDS, TARGET, values)
        assert close(quiet(F.auroc, PREDS, TARGET, thresholds=thresholds), exact_auroc)
        assert close(quiet(rm.AUROC(thresholds), PREDS, TARGET), exact_auroc)
        exact_ap = naive.binned_average_precision(PREDS, TARGET, values)
        assert close(quiet(F.average_precision, PREDS, TARGET, thresholds=thresholds), exact_ap)
        assert close(quiet(rm.AUPR(thresholds), PREDS, TARGET), exact_ap)
        exact_trapezoid = naive.binned_aupr_trapezoid(PREDS, TARGET, values)
        assert close(quiet(F.aupr, PREDS, TARGET, curve="trapezoid", thresholds=thresholds), exact_trapezoid)
        precision, recall, got_thr = quiet(rm.BinaryPrecisionRecallCurve(thresholds), PREDS, TARGET)
        exact_p, exact_r, _ = naive.binned_pr(PREDS, TARGET, values)
        assert got_thr.tolist() == values
        assert all(close(a, x) for a, x in zip(precision, exact_p)) and len(precision) == len(exact_p)
        assert all(close(a, x) for a, x in zip(recall, exact_r)) and len(recall) == len(exact_r)
        b_fpr, b_tpr, b_thr = quiet(F.roc_curve, PREDS, TARGET, thresholds=thresholds)
        assert b_thr.tolist() == [np.inf] + values[::-1]
    # at +inf nothing is positive (precision 1, recall 0); at -inf everything is
    precision, recall, _ = F.precision_recall_curve(PREDS, TARGET, thresholds=[-np.inf, np.inf])
    assert precision.tolist() == [0.5, 1.0, 1.0] and recall.tolist() == [1.0, 0.0, 0.0]
    # +inf scores reach a +inf threshold (score >= t), as the exact curve has it
    p = np.array([np.inf, 0.3, np.inf, -np.inf])
    t = np.array([1, 0, 0, 1])
    assert close(quiet(F.auroc, p, t, thresholds=[np.inf]), naive.binned_roc_auc(p, t, [np.inf]))
    assert quiet(F.roc_curve, p, t, thresholds=[np.inf])[1].tolist() == [0.0, 0.5]


# ---------------------------------------------------------------------------
# 3.10: NaN parameters and masked arrays
# ---------------------------------------------------------------------------

NAN = float("nan")
NAN_PARAMETERS = {
    # name -> (callable taking the parameter by keyword, [float parameters])
    "roc_curve": (lambda **kw: F.roc_curve(PREDS, TARGET, **kw), ["thresholds", "ignore_index"]),
    "auroc": (lambda **kw: F.auroc(PREDS, TARGET, **kw), ["thresholds", "ignore_index"]),
    "precision_recall_curve": (lambda **kw: F.precision_recall_curve(PREDS, TARGET, **kw),
                               ["thresholds", "ignore_index"]),
    "average_precision": (lambda **kw: F.average_precision(PREDS, TARGET, **kw), ["thresholds", "ignore_index"]),
    "aupr": (lambda **kw: F.aupr(PREDS, TARGET, **kw), ["thresholds", "ignore_index"]),
    "f1_adaptive_threshold": (lambda **kw: F.f1_adaptive_threshold(PREDS, TARGET, **kw), ["ignore_index"]),
    "f1_max": (lambda **kw: F.f1_max(PREDS, TARGET, **kw), ["ignore_index"]),
    "f1_score": (lambda **kw: F.f1_score(PREDS, TARGET, **kw), ["threshold", "ignore_index"]),
    "min_max": (lambda **kw: F.min_max(PREDS, **kw), []),
    "anomaly_score_distribution": (lambda **kw: F.anomaly_score_distribution(PREDS + 1, **kw), []),
    "label_regions": (lambda **kw: F.label_regions(MASKS, **kw), []),
    "pro_curve": (lambda **kw: F.pro_curve(MAPS, MASKS, **kw), []),
    "aupro": (lambda **kw: F.aupro(MAPS, MASKS, **kw), ["fpr_limit"]),
    "pro_score": (lambda **kw: F.pro_score(MAPS, MASKS, **kw), ["threshold"]),
    "AUROC": (rm.AUROC, ["thresholds", "ignore_index"]),
    "AUPR": (rm.AUPR, ["thresholds", "ignore_index"]),
    "BinaryPrecisionRecallCurve": (rm.BinaryPrecisionRecallCurve, ["thresholds", "ignore_index"]),
    "F1AdaptiveThreshold": (rm.F1AdaptiveThreshold, ["default_value", "ignore_index"]),
    "F1Max": (rm.F1Max, ["ignore_index"]),
    "F1Score": (rm.F1Score, ["threshold", "ignore_index"]),
    "ManualThreshold": (rm.ManualThreshold, ["default_value"]),
    "MinMax": (rm.MinMax, []),
    "AnomalyScoreDistribution": (rm.AnomalyScoreDistribution, []),
    "AUPRO": (rm.AUPRO, ["fpr_limit"]),
    "PRO": (rm.PRO, ["threshold"]),
    "spro_curve": (lambda **kw: F.spro_curve(MAPS, SPRO_DEFECTS, **kw), ["thresholds"]),
    "au_spro": (lambda **kw: F.au_spro(MAPS, SPRO_DEFECTS, **kw), ["fpr_limit"]),
    "read_defects_config": (lambda **kw: F.read_defects_config(CONFIG_PATH, **kw), []),
    "defects_from_channels": (lambda **kw: F.defects_from_channels([CHANNEL], config={}, **kw), []),
    "AUsPRO": (rm.AUsPRO, ["fpr_limit"]),
    "aupimo": (lambda **kw: F.aupimo(PIMO_MAPS, PIMO_MASKS, **kw), []),  # fpr_bounds: a pair, tested in test_pimo
    "pimo_curve": (lambda **kw: F.pimo_curve(PIMO_MAPS, PIMO_MASKS, **kw), []),
    "AUPIMO": (rm.AUPIMO, []),
    "pbn": (lambda **kw: F.pbn(PREDS, TARGET, **kw), ["fpr", "ignore_index"]),
    "pgn": (lambda **kw: F.pgn(PREDS, TARGET, **kw), ["fnr", "ignore_index"]),
    "segmentation_scores": (lambda **kw: F.segmentation_scores(MAPS, MASKS, **{"threshold": 0.5, **kw}),
                            ["threshold", "ignore_index"]),
    "validation_threshold": (lambda **kw: F.validation_threshold(MAPS, **kw), ["n_std"]),
    "ader_segmentation": (lambda **kw: F.ader_segmentation(MAPS, MASKS, **kw), []),
    "image_scores": (lambda **kw: F.image_scores(MAPS, **kw), ["k"]),
    "auroc_ci": (lambda **kw: F.auroc_ci(PREDS, TARGET, **kw), ["level"]),
    "delong_test": (lambda **kw: F.delong_test(PREDS, PREDS[::-1], TARGET, **kw), []),
    "bootstrap_ci": (lambda **kw: F.bootstrap_ci(PREDS, TARGET, n_resamples=10, **kw), ["level", "fpr_limit"]),
    "bootstrap_test": (lambda **kw: F.bootstrap_test(PREDS, PREDS[::-1], TARGET, n_resamples=10, **kw),
                       ["level", "fpr_limit"]),
    "PBn": (rm.PBn, ["fpr", "ignore_index"]),
    "PGn": (rm.PGn, ["fnr", "ignore_index"]),
    "ValidationThreshold": (rm.ValidationThreshold, ["n_std"]),
}


@pytest.mark.parametrize("name", sorted(NAN_PARAMETERS))
def test_nan_parameters_are_a_value_error(name):
    fn, params = NAN_PARAMETERS[name]
    target = getattr(rm, name, None) or getattr(F, name)
    # every float-valued parameter is listed: those whose default is a float, and the float-accepting ones
    defaults = {p.name for p in inspect.signature(target).parameters.values() if isinstance(p.default, float)}
    assert defaults <= set(params), defaults - set(params)
    for param in params:
        values = ([NAN], np.array([0.2, NAN], np.float32), [0.2, NAN, 0.5]) if param == "thresholds" else (
            NAN, np.float64(NAN), np.float32(NAN))
        for value in values:
            with pytest.raises(ValueError, match=rf"{param}: expected .*(NaN|nan)"):
                fn(**{param: value})


def test_nan_thresholds_message_counts_them():
    with pytest.raises(ValueError, match=r"thresholds: expected real thresholds \(\+-inf allowed\), "
                                         r"received 2 NaNs"):
        F.auroc(PREDS, TARGET, thresholds=[NAN, 0.5, NAN])


def _masked(a):
    return np.ma.masked_array(a, mask=np.zeros(np.shape(a), bool))


INTAKES = [
    ("auroc", lambda p, t: F.auroc(p, t)),
    ("auroc binned", lambda p, t: F.auroc(p, t, thresholds=5)),
    ("roc_curve", lambda p, t: F.roc_curve(p, t)),
    ("precision_recall_curve", lambda p, t: F.precision_recall_curve(p, t)),
    ("average_precision", lambda p, t: F.average_precision(p, t)),
    ("aupr", lambda p, t: F.aupr(p, t)),
    ("f1_max", lambda p, t: F.f1_max(p, t)),
    ("f1_adaptive_threshold", lambda p, t: F.f1_adaptive_threshold(p, t)),
    ("f1_score", lambda p, t: F.f1_score(p, t)),
    ("AUROC", lambda p, t: rm.AUROC().update(p, t)),
    ("AUPR", lambda p, t: rm.AUPR(thresholds=5).update(p, t)),
    ("BinaryPrecisionRecallCurve", lambda p, t: rm.BinaryPrecisionRecallCurve().update(p, t)),
    ("F1AdaptiveThreshold", lambda p, t: rm.F1AdaptiveThreshold().update(p, t)),
    ("F1Max", lambda p, t: rm.F1Max().update(p, t)),
    ("F1Score", lambda p, t: rm.F1Score().update(p, t)),
]
REGION_INTAKES = [
    ("pro_curve", lambda p, t: F.pro_curve(p, t)),
    ("aupro", lambda p, t: F.aupro(p, t)),
    ("pro_score", lambda p, t: F.pro_score(p, t)),
    ("AUPRO", lambda p, t: rm.AUPRO().update(p, t)),
    ("PRO", lambda p, t: rm.PRO().update(p, t)),
]


def test_masked_arrays_are_refused_in_every_intake_path():
    message = (r"expected an array, received a numpy\.ma masked array; refmetrics cannot know what its mask "
               r"means: pass ignore_index .* or drop the masked elements")
    for cases, p, t in ((INTAKES, PREDS, TARGET), (REGION_INTAKES, MAPS, MASKS)):
        for name, call in cases:
            for arrays, culprit in (((_masked(p), t), "preds"), ((p, _masked(t)), "target")):
                with pytest.raises(TypeError, match=rf"^{culprit}: " + message):
                    call(*arrays)
                quiet(call, *(np.asarray(a) for a in arrays))  # the same data unmasked is fine
    singles = [("preds", lambda a: F.min_max(a)), ("preds", lambda a: rm.MinMax().update(a)),
               ("anomaly_scores", lambda a: F.anomaly_score_distribution(a + 1)),
               ("anomaly_maps", lambda a: F.anomaly_score_distribution(anomaly_maps=a + 1)),
               ("anomaly_scores", lambda a: rm.AnomalyScoreDistribution().update(anomaly_scores=a + 1)),
               ("masks", lambda a: F.label_regions(a))]
    for culprit, call in singles:
        with pytest.raises(TypeError, match=rf"^{culprit}: " + message):
            call(_masked(MASKS if culprit == "masks" else MAPS))
