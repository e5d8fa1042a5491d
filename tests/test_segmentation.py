"""segmentation_scores, validation_threshold / ValidationThreshold and ader_segmentation, against exact oracles."""

import math
import warnings
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import refmetrics as rm
from refmetrics import functional as F
from refmetrics.functional.segmentation import ADER_THRESHOLDS

from . import naive
from .checks import close
from .strategies import labelled

RATES = ("precision", "recall", "f1", "iou")


# ---------------------------------------------------------------------------
# segmentation_scores
# ---------------------------------------------------------------------------

@settings(max_examples=80, deadline=None)
@given(labelled(max_size=30), st.sampled_from([0.5, 0.0, 0.25, 1.0, -np.inf, np.inf, 3.0, -0.0]), st.booleans())
def test_global_scores_against_the_oracle(data, threshold, strict):
    preds, target = data
    got = F.segmentation_scores(preds, target, threshold, strict=strict)
    counts = naive.segmentation_counts(preds, target, threshold, strict)
    assert (got["tp"], got["fp"], got["fn"], got["tn"]) == counts
    assert all(type(got[k]) is int for k in ("tp", "fp", "fn", "tn"))
    exact = naive.segmentation_rates(*counts)
    for name in RATES:
        assert type(got[name]) is float and got[name] == float(exact[name]), name  # one rounding: exact


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4), st.integers(1, 6), st.data())
def test_samplewise_against_the_oracle(rows, cols, data):
    n = rows * cols
    preds = np.array(data.draw(st.lists(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]), min_size=n, max_size=n)),
                     np.float32).reshape(rows, cols)
    target = np.array(data.draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)), np.uint8).reshape(rows, cols)
    got = F.segmentation_scores(preds, target, 0.5, average="samplewise")
    per_image = []
    for i in range(rows):
        counts = naive.segmentation_counts(preds[i], target[i], 0.5)
        assert tuple(int(got[k][i]) for k in ("tp", "fp", "fn", "tn")) == counts
        per_image.append(naive.segmentation_rates(*counts))
        for name in RATES:
            assert got[name][i] == float(per_image[-1][name])
    for name in RATES:
        assert got[name].dtype == np.float64 and got["tp"].dtype == np.int64
        assert close(got[f"mean_{name}"], sum(r[name] for r in per_image) / rows)


def test_documented_values_and_zero_denominators():
    s = F.segmentation_scores([0.2, 0.6, 0.7, 0.5], [0, 1, 0, 1], 0.5)
    assert (s["tp"], s["fp"], s["fn"], s["tn"]) == (1, 1, 1, 1)
    assert (s["precision"], s["recall"], s["f1"], s["iou"]) == (0.5, 0.5, 0.5, 1 / 3)
    assert F.segmentation_scores([0.2, 0.6, 0.7, 0.5], [0, 1, 0, 1], 0.5, strict=False)["tp"] == 2
    # nothing predicted, nothing to find: every rate is 0 (no NaN, no warning), as F1Score
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = F.segmentation_scores(np.zeros((2, 3)), np.zeros((2, 3), np.uint8), 0.5)
    assert (s["tn"], s["precision"], s["recall"], s["f1"], s["iou"]) == (6, 0.0, 0.0, 0.0, 0.0)
    # no sigmoid, unlike F1Score: raw scores are compared as they are
    assert F.segmentation_scores([5.0, -3.0], [1, 0], 4.0)["f1"] == 1.0


def test_ignore_index_and_infinities():
    preds = np.array([np.inf, -np.inf, 0.5, 0.7, 0.1])
    target = np.array([1, 0, 255, 0, 1])
    s = F.segmentation_scores(preds, target, 0.5, ignore_index=255)
    assert (s["tp"], s["fp"], s["fn"], s["tn"]) == (1, 1, 1, 1)
    s = F.segmentation_scores(preds, np.array([1, 0, 0, 0, 1]), np.inf, strict=False)
    assert (s["tp"], s["fp"]) == (1, 0)
    s = F.segmentation_scores(preds, np.array([1, 0, 0, 0, 1]), -np.inf)
    assert (s["tp"], s["fp"], s["tn"]) == (2, 2, 1)  # -inf > -inf is false


def test_bad_input():
    p, t = np.array([0.2, 0.6]), np.array([0, 1])
    with pytest.raises(ValueError, match="average: expected one of 'global', 'samplewise', received 'macro'"):
        F.segmentation_scores(p, t, 0.5, average="macro")
    with pytest.raises(ValueError, match="threshold: expected a real number, received NaN"):
        F.segmentation_scores(p, t, float("nan"))
    with pytest.raises(TypeError, match="strict: expected True or False, received 'yes'"):
        F.segmentation_scores(p, t, 0.5, strict="yes")
    with pytest.raises(ValueError, match="preds: expected no NaN values, received 1 NaN"):
        F.segmentation_scores(np.array([np.nan, 0.1]), t, 0.5)
    with pytest.raises(ValueError, match=r"target: expected binary labels in \{0, 1\}, received 1 other value"):
        F.segmentation_scores(p, np.array([0, 255]), 0.5)
    with pytest.raises(ValueError, match="preds: average='samplewise' expects at least 2 dimensions"):
        F.segmentation_scores(p, t, 0.5, average="samplewise")
    with pytest.raises(ValueError, match=r"preds and target: expected the same shape"):
        F.segmentation_scores(p, np.array([0, 1, 1]), 0.5)


# ---------------------------------------------------------------------------
# validation_threshold / ValidationThreshold
# ---------------------------------------------------------------------------

def _oracle_threshold(values, n_std):
    mean, var = naive.mean_var_population(values)
    return Fraction(float(mean)) + Fraction(n_std) * naive.sqrt_fraction(var)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.floats(-1e6, 1e6, width=32), st.sampled_from([0.0, 1.0, 0.5]),
                          st.floats(-1e-30, 1e-30)), min_size=1, max_size=40),
       st.sampled_from([3.0, 0.0, 1.5]), st.sampled_from([np.float32, np.float64]), st.data())
def test_validation_threshold_against_the_oracle_and_any_batching(values, n_std, dtype, data):
    arr = np.array(values, dtype)
    got = F.validation_threshold(arr, n_std=n_std)
    exact = _oracle_threshold(arr.tolist(), n_std)
    assert abs(Fraction(got) - exact) <= Fraction(1, 10**12) * max(1, abs(exact))
    mean, _ = naive.mean_var_population(arr.tolist())
    if n_std == 0.0:
        assert got == float(mean)  # the exact mean, rounded once
    # any split into batches, in any order, and merges give the same bits
    cuts = sorted(data.draw(st.lists(st.integers(0, arr.size), max_size=4)))
    parts = [arr[a:b] for a, b in zip([0] + cuts, cuts + [arr.size]) if b > a]
    order = data.draw(st.permutations(range(len(parts))))
    metric = rm.ValidationThreshold(n_std)
    for i in order:
        metric.update(parts[i])
    assert math.copysign(1, metric.compute()) == math.copysign(1, got) and metric.compute() == got
    a, b = rm.ValidationThreshold(n_std), rm.ValidationThreshold(n_std)
    for i, part in enumerate(parts):
        (a if i % 2 else b).update(part)
    assert a.merge(b).compute() == got
    assert F.validation_threshold(parts, n_std=n_std) == got


def test_validation_threshold_documented_values():
    assert F.validation_threshold([[1.0, 3.0], [1.0, 3.0]]) == 5.0  # mean 2, std 1
    assert F.validation_threshold([[1.0, 3.0], [5.0]], n_std=0) == 3.0  # a list of maps of different sizes
    maps = np.random.default_rng(20261125).random((3, 5, 7)).astype(np.float32)
    wide = maps.astype(np.float64)
    assert F.validation_threshold(maps) == float(np.float64(wide.mean()) + 3 * wide.std())
    # catastrophic cancellation in E[x^2] - mean^2 in float64: exact here
    big = np.array([1e8 + 1, 1e8 - 1, 1e8 + 1, 1e8 - 1])
    assert F.validation_threshold(big, n_std=1) == 1e8 + 1


def test_validation_threshold_undefined_and_errors():
    with pytest.warns(rm.UndefinedMetricWarning, match="without any pixel"):
        assert math.isnan(rm.ValidationThreshold().compute())
    with pytest.warns(rm.UndefinedMetricWarning, match="2 infinite pixels"):
        assert math.isnan(F.validation_threshold(np.array([1.0, np.inf, -np.inf])))
    with pytest.raises(ValueError, match="maps: expected no NaN values, received 1 NaN"):
        F.validation_threshold(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="n_std: expected a real number, received NaN"):
        F.validation_threshold(np.ones(3), n_std=float("nan"))
    with pytest.raises(ValueError, match="maps: expected at least one element"):
        F.validation_threshold(np.ones(0))
    metric = rm.ValidationThreshold()
    metric.update(np.ones(2))
    with pytest.raises(ValueError, match="maps: expected no NaN"):
        metric.update(np.array([np.nan]))
    assert metric.compute() == 1.0  # the failed update left the state as it was
    with pytest.raises(ValueError, match="other: expected a ValidationThreshold with the same parameters"):
        metric.merge(rm.ValidationThreshold(2.0))


# ---------------------------------------------------------------------------
# ader_segmentation
# ---------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(labelled(min_size=2, max_size=30, dtype=np.float32))
def test_ader_against_the_oracle(data):
    preds, target = data
    finite = preds[np.isfinite(preds)]
    if finite.size < preds.size or finite.min() == finite.max():
        return
    got = F.ader_segmentation(preds, target)
    exact = naive.ader_segmentation(preds, target, ADER_THRESHOLDS)
    for name in ("mF1", "mAcc", "mIoU"):
        assert close(got[name], exact[name]), name


def test_ader_thresholds_and_values():
    from refmetrics.functional.segmentation import normalised_cut

    assert ADER_THRESHOLDS == tuple(np.arange(0.2, 0.8 + 1e-3, 0.1).tolist()) and len(ADER_THRESHOLDS) == 7
    got = F.ader_segmentation([[0.0, 0.5, 1.0, 0.9]], [[0, 0, 1, 1]])
    # t = 0.2, 0.3, 0.4: 0.5 is a false positive (F1 4/5, IoU 2/3); above 0.5000000000000001 none is
    assert got["mAcc"] == 1.0 and close(got["mF1"], (3 * Fraction(4, 5) + 4) / 7)
    assert close(got["mIoU"], (3 * Fraction(2, 3) + 4) / 7)
    # the cut reproduces the per-pixel float64 rule at its boundary
    lo, hi = 0.1, 0.7
    for t in ADER_THRESHOLDS:
        cut = normalised_cut(lo, hi, t)
        assert (cut - lo) / (hi - lo) > t and not (np.nextafter(cut, -1) - lo) / (hi - lo) > t
    with pytest.warns(rm.UndefinedMetricWarning, match="the maps are constant"):
        assert math.isnan(F.ader_segmentation(np.ones((1, 2, 2)), np.zeros((1, 2, 2)))["mIoU"])
    with pytest.warns(rm.UndefinedMetricWarning, match="infinite scores"):
        assert math.isnan(F.ader_segmentation(np.array([0.0, np.inf]), np.array([0, 1]))["mF1"])
    with pytest.raises(ValueError, match=r"thresholds: expected a non-empty sequence of numbers in \[0, 1\)"):
        F.ader_segmentation([0.0, 1.0], [0, 1], thresholds=[1.0])
