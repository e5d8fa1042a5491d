"""F1Score and ManualThreshold against the oracle."""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import refmetrics as rm
from refmetrics import functional as F

from . import naive
from .strategies import labelled

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(labelled(), st.sampled_from([0.0, 0.3, 0.5, 0.99]))
def test_f1_score_matches_oracle(data, threshold):
    preds, target = data
    value = F.f1_score(preds, target, threshold=threshold)
    assert abs(Fraction(value) - naive.f1_score(preds, target, threshold)) <= Fraction(1, 10**12)


@SETTINGS
@given(labelled(min_size=2), st.integers(1, 5), st.sampled_from([0.2, 0.5]))
def test_f1_score_class_sums_per_batch_counts(data, parts, threshold):
    preds, target = data
    batches = [(p, t) for p, t in zip(np.array_split(preds, parts), np.array_split(target, parts)) if p.size]
    m = rm.F1Score(threshold=threshold)
    tp = fp = fn = 0
    for p, t in batches:
        m.update(p, t)
        use_sigmoid = any(float(s) < 0 or float(s) > 1 for s in p)
        for s, y in zip(p.tolist(), t.tolist()):
            positive = naive.sigmoid_gt(float(s), threshold) if use_sigmoid else float(s) > threshold
            tp += positive and y == 1
            fp += positive and y == 0
            fn += (not positive) and y == 1
    exact = Fraction(2 * tp, 2 * tp + fp + fn) if tp + fp + fn else Fraction(0)
    assert abs(Fraction(m.compute()) - exact) <= Fraction(1, 10**12)


def test_sigmoid_rule_is_per_batch():
    # one value outside [0, 1] switches the whole batch to sigmoid(pred) > 0.5, i.e. pred > 0
    preds = np.array([0.2, 0.4, 3.0, 0.6])
    target = np.array([1, 1, 1, 0])
    assert F.f1_score(preds, target) == float(Fraction(2 * 3, 2 * 3 + 1))  # all positive
    assert F.f1_score(preds[[0, 1, 3]], target[[0, 1, 3]]) == 0.0  # only 0.6 > 0.5: an FP
    m = rm.F1Score()
    m.update(preds[:2], target[:2])  # in [0, 1]: both negative -> 2 FN
    m.update(preds[2:], target[2:])  # sigmoid: both positive -> 1 TP, 1 FP
    assert m.compute() == float(Fraction(2, 2 + 1 + 2))


def test_strict_threshold_and_zero_division():
    assert F.f1_score([0.5, 0.5], [1, 1]) == 0.0  # 0.5 > 0.5 is false
    assert F.f1_score([0.1, 0.2], [0, 0]) == 0.0  # TP + FP + FN = 0


def test_samplewise_and_merge():
    rng = np.random.default_rng(20261125)
    preds = rng.random((6, 4, 5))
    target = rng.random((6, 4, 5)) < 0.4
    per_sample = F.f1_score(preds, target, multidim_average="samplewise")
    assert per_sample.shape == (6,)
    for i in range(6):
        assert per_sample[i] == float(naive.f1_score(preds[i], target[i]))
    a, b = rm.F1Score(multidim_average="samplewise"), rm.F1Score(multidim_average="samplewise")
    a.update(preds[:2], target[:2])
    b.update(preds[2:], target[2:])
    assert a.merge(b).compute().tolist() == per_sample.tolist()
    g1, g2 = rm.F1Score(), rm.F1Score()
    g1.update(preds[:2], target[:2])
    g2.update(preds[2:], target[2:])
    assert g1.merge(g2).compute() == F.f1_score(preds, target)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        F.f1_score(preds.reshape(-1), target.reshape(-1), multidim_average="samplewise")


def test_f1_score_ignore_index_drops_first():
    assert F.f1_score([0.9, 0.9, 0.1], [1, 255, 0], ignore_index=255) == 1.0
    assert F.f1_score([0.9, 0.9, 0.1], [1, 0, 0]) == float(Fraction(2, 3))
    # an ignored NaN is not looked at, and an ignored 5.0 does not switch on the sigmoid
    assert F.f1_score([np.nan, 0.4, 0.6, 0.9], [255, 1, 0, 1], ignore_index=255) == 0.5
    assert F.f1_score([5.0, 0.4, 0.6, 0.9], [255, 1, 0, 1], ignore_index=255) == 0.5
    assert F.f1_score([5.0, 0.4, 0.6, 0.9], [0, 1, 0, 1]) == float(Fraction(2, 3))  # sigmoid: all positive


def test_manual_threshold():
    m = rm.ManualThreshold(default_value=0.7)
    m.update([1.0, 2.0], [0, 1])
    assert m.compute() == 0.7 and isinstance(m.compute(), float)
    assert rm.ManualThreshold()([0.3], [1]) == 0.5
    assert m.merge(rm.ManualThreshold(default_value=0.7)).compute() == 0.7
    with pytest.raises(ValueError, match="same parameters"):
        m.merge(rm.ManualThreshold())
    assert not math.isnan(m.compute())


@SETTINGS
@given(labelled(min_size=4, max_size=40), st.sampled_from([0, 1]), st.sampled_from([0.0, 0.5]))
def test_f1_score_ignore_index_zero_or_one(data, ignore, threshold):
    preds, target = data
    value = F.f1_score(preds, target, threshold=threshold, ignore_index=ignore)
    assert abs(Fraction(value) - naive.f1_score(preds, target, threshold, ignore)) <= Fraction(1, 10**12)
    rows = (preds.size // 2) * 2
    p2, t2 = preds[:rows].reshape(2, -1), target[:rows].reshape(2, -1)
    per_sample = rm.F1Score(multidim_average="samplewise", threshold=threshold, ignore_index=ignore)(p2, t2)
    # the sigmoid rule is decided once for the whole update (its elements that are not ignored)
    sigmoid = any(s < 0 or s > 1 for s, y in zip(p2.ravel().tolist(), t2.ravel().tolist()) if y != ignore)
    assert per_sample.tolist() == [float(naive.f1_score(p, t, threshold, ignore, use_sigmoid=sigmoid))
                                   for p, t in zip(p2, t2)]


def test_f1_score_ignore_index_zero_or_one_examples():
    # ignore_index=0: only positives are left, F1 = 2TP / (2TP + FN)
    assert F.f1_score([0.9, 0.2, 0.7, 0.1], [1, 0, 1, 1], ignore_index=0) == float(Fraction(4, 5))
    # ignore_index=1: only negatives, TP + FP + FN counts the false positives
    assert F.f1_score([0.9, 0.2, 0.7, 0.1], [1, 0, 1, 1], ignore_index=1) == 0.0
    # an ignored 5.0 does not switch the sigmoid on, whatever label it carries
    assert F.f1_score([5.0, 0.4, 0.6], [0, 1, 1], ignore_index=0) == float(Fraction(2, 3))
    with pytest.raises(ValueError, match=r"\(or ignore_index=1\), received 1 other value \(e\.g\. 2\)"):
        F.f1_score([0.9, 0.2, 0.7], [1, 0, 2], ignore_index=1)
    samplewise = F.f1_score([[0.9, 0.2], [0.1, 0.7]], [[1, 0], [1, 0]], multidim_average="samplewise",
                            ignore_index=0)
    assert samplewise.tolist() == [1.0, 0.0]
