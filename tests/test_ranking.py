"""Ranking metrics against the exact oracles of tests/naive.py."""

import math
import warnings
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import refmetrics as rm
from refmetrics import functional as F

from . import naive
from .checks import close, quiet, same
from .strategies import labelled, split_points

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])





def both(target):
    t = np.asarray(target).reshape(-1)
    return bool((t == 1).any() and (t == 0).any())


# ---------------------------------------------------------------------------
# documented numbers
# ---------------------------------------------------------------------------

ANOMALIB_TRUE = [0, 1, 1, 1, 0, 0, 0, 0, 1, 1]
ANOMALIB_PRED = [0.59, 0.35, 0.72, 0.33, 0.73, 0.81, 0.30, 0.05, 0.04, 0.48]


def test_anomalib_documented_numbers():
    assert round(F.auroc([0.13, 0.26, 0.08, 0.92, 0.03], [0, 0, 1, 1, 0]), 4) == 0.6667
    assert round(F.aupr(ANOMALIB_PRED, ANOMALIB_TRUE, curve="trapezoid"), 4) == 0.4899
    assert F.aupr(ANOMALIB_PRED, ANOMALIB_TRUE) == float(Fraction(242, 525))  # 0.46095238...
    assert F.f1_adaptive_threshold([2.3, 1.6, 2.6, 7.9, 3.3], [0, 0, 0, 1, 1]) == (3.3, 1.0)
    assert close(F.aupr(ANOMALIB_PRED, ANOMALIB_TRUE, curve="trapezoid"),
                 naive.aupr_trapezoid(ANOMALIB_PRED, ANOMALIB_TRUE))


def test_float32_example_keeps_float32_value():
    thr, f1 = F.f1_adaptive_threshold(np.float32([2.3, 1.6, 2.6, 7.9, 3.3]), [0, 0, 0, 1, 1])
    assert thr == float(np.float32(3.3)) and f1 == 1.0


# ---------------------------------------------------------------------------
# scalar metrics vs oracle
# ---------------------------------------------------------------------------

@SETTINGS
@given(labelled())
def test_auroc_matches_pairwise_oracle(data):
    preds, target = data
    assert close(quiet(F.auroc, preds, target), naive.auroc(preds, target))


@SETTINGS
@given(labelled())
def test_average_precision_and_aupr_match_oracle(data):
    preds, target = data
    exact = naive.average_precision(preds, target)
    assert close(quiet(F.average_precision, preds, target), exact)
    assert close(quiet(F.aupr, preds, target), exact)
    assert close(quiet(F.aupr, preds, target, curve="trapezoid"), naive.aupr_trapezoid(preds, target))


@SETTINGS
@given(labelled())
def test_f1_adaptive_and_f1_max_match_oracle(data):
    preds, target = data
    thr, f1 = quiet(F.f1_adaptive_threshold, preds, target)
    exact_thr, exact_f1 = naive.f1_adaptive(preds, target)
    assert thr == exact_thr
    assert close(f1, exact_f1)
    assert close(quiet(F.f1_max, preds, target), exact_f1)  # None (nan) without a positive


@SETTINGS
@given(labelled())
def test_roc_curve_matches_oracle(data):
    preds, target = data
    fpr, tpr, thr = quiet(F.roc_curve, preds, target)
    efpr, etpr, ethr = naive.roc_curve(preds, target)
    assert thr.tolist() == ethr
    assert all(close(a, b) for a, b in zip(fpr.tolist(), efpr)) and len(fpr) == len(efpr)
    assert all(close(a, b) for a, b in zip(tpr.tolist(), etpr)) and len(tpr) == len(etpr)
    if both(target):
        # the AUROC is the trapezoid under this curve
        area = naive.trapezoid(list(zip(efpr, etpr)))
        assert close(F.auroc(preds, target), area)


@SETTINGS
@given(labelled())
def test_precision_recall_curve_matches_oracle(data):
    preds, target = data
    prec, rec, thr = quiet(F.precision_recall_curve, preds, target)
    eprec, erec, ethr = naive.pr_curve(preds, target)
    assert thr.tolist() == ethr
    assert len(prec) == len(eprec) == len(rec) == len(thr) + 1
    assert all(close(a, b) for a, b in zip(prec.tolist(), eprec))
    assert all(close(a, b) for a, b in zip(rec.tolist(), erec))


def test_undefined_cases_warn_and_return_nan():
    for target in ([1, 1, 1], [0, 0, 0]):
        with pytest.warns(rm.UndefinedMetricWarning, match="undefined"):
            assert math.isnan(F.auroc([0.1, 0.2, 0.3], target))
    for fn in (F.average_precision, F.aupr, F.f1_max):
        with pytest.warns(rm.UndefinedMetricWarning, match="undefined with no positive"):
            assert math.isnan(fn([0.1, 0.2, 0.3], [0, 0, 0]))
    with pytest.warns(rm.UndefinedMetricWarning, match="highest score and F1 is undefined"):
        thr, f1 = F.f1_adaptive_threshold([0.1, 0.7, 0.3], [0, 0, 0])
    assert thr == 0.7 and math.isnan(f1)
    with pytest.warns(rm.UndefinedMetricWarning, match="lowest score"):
        assert F.f1_adaptive_threshold([0.1, 0.7, 0.3], [1, 1, 1]) == (0.1, 1.0)
    with pytest.warns(rm.UndefinedMetricWarning):
        fpr, tpr, _ = F.roc_curve([0.1, 0.2], [0, 0])
    assert np.isnan(tpr).all() and fpr.tolist() == [0.0, 0.5, 1.0]


def test_single_element_and_all_ties():
    with pytest.warns(rm.UndefinedMetricWarning):
        assert math.isnan(F.auroc([0.3], [1]))
    assert F.auroc([0.5] * 7, [0, 1, 0, 1, 1, 0, 0]) == 0.5
    assert F.average_precision([0.5] * 4, [0, 1, 0, 0]) == 0.25
    assert F.aupr([0.5] * 4, [0, 1, 0, 0], curve="trapezoid") == float(naive.aupr_trapezoid([0.5] * 4, [0, 1, 0, 0]))


def test_infinities_order_as_scores():
    preds = [-np.inf, -1e300, 0.0, 1e300, np.inf, np.inf]
    target = [0, 1, 0, 1, 0, 1]
    assert F.auroc(preds, target) == float(naive.auroc(preds, target))
    _, _, thr = F.roc_curve(preds, target)
    assert thr.tolist() == [np.inf, np.inf, 1e300, 0.0, -1e300, -np.inf]


def test_negative_zero_ties_with_zero():
    preds = np.array([-0.0, 0.0, 0.0, -0.0], np.float32)
    assert F.auroc(preds, [0, 1, 0, 1]) == 0.5
    _, _, thr = F.precision_recall_curve(preds, [0, 1, 0, 1])
    assert thr.tolist() == [0.0] and math.copysign(1, thr[0]) == 1


def test_float64_scores_closer_than_float32_stay_distinct():
    a = 0.3
    preds = np.array([a, np.nextafter(a, 1), a, np.nextafter(a, 1)])
    assert np.float32(preds[0]) == np.float32(preds[1])
    assert F.auroc(preds, [0, 1, 0, 1]) == 1.0
    assert F.auroc(preds.astype(np.float32), [0, 1, 0, 1]) == 0.5


def test_raw_scores_have_no_sigmoid_and_no_float32_saturation():
    rng = np.random.default_rng(20261125)
    target = rng.random(20_000) < 0.1
    preds = rng.normal(20, 3, target.size) + 2.0 * target  # all >> 17: sigmoid would tie them in float32
    expected = F.auroc(preds, target)
    assert 0.6 < expected < 0.8
    assert expected == float(naive.auroc_midranks(preds, target))
    for transform in (lambda x: (x - 20) / 3, lambda x: x * 1e6 + 7, np.exp, lambda x: x ** 3,
                      lambda x: 1 / (1 + np.exp(-(x - 20) / 3))):
        assert F.auroc(transform(preds), target) == expected
    sig32 = (1 / (1 + np.exp(-preds))).astype(np.float32)  # what a float32 sigmoid does: ties above ~17
    assert F.auroc(sig32, target) < expected - 0.1


def test_large_input_against_midrank_oracle_all_dtypes():
    rng = np.random.default_rng(20261126)
    target = rng.random(300_000) < 0.03
    base = rng.normal(0, 1, target.size) + 1.5 * target
    for preds in (base.astype(np.float32), base, np.round(base * 4).astype(np.int16),
                  np.round(base * 4).astype(np.float16)):
        assert F.auroc(preds, target) == float(naive.auroc_midranks(preds.astype(np.float64), target))


def test_multi_pass_radix_sort_on_wide_float64_range():
    rng = np.random.default_rng(20261127)
    values = rng.standard_normal(5000) * 10.0 ** rng.integers(-300, 300, 5000)
    target = rng.random(5000) < 0.4
    assert F.auroc(values, target) == float(naive.auroc_midranks(values, target))
    _, _, thr = F.precision_recall_curve(values, target)
    assert thr.tolist() == np.unique(values).tolist()


# ---------------------------------------------------------------------------
# binned mode
# ---------------------------------------------------------------------------

@SETTINGS
@given(labelled(dtype=np.float64), st.one_of(st.integers(2, 12),
                                              st.lists(st.floats(-2, 2), min_size=1, max_size=8)))
def test_binned_mode_matches_oracle(data, thresholds):
    preds, target = data
    thr = np.linspace(0, 1, thresholds).tolist() if isinstance(thresholds, int) else sorted(thresholds)
    assert close(quiet(F.auroc, preds, target, thresholds=thresholds), naive.binned_roc_auc(preds, target, thr))
    assert close(quiet(F.average_precision, preds, target, thresholds=thresholds),
                 naive.binned_average_precision(preds, target, thr))
    assert close(quiet(F.aupr, preds, target, curve="trapezoid", thresholds=thresholds),
                 naive.binned_aupr_trapezoid(preds, target, thr))
    prec, rec, t = quiet(F.precision_recall_curve, preds, target, thresholds=thresholds)
    eprec, erec, et = naive.binned_pr(preds, target, thr)
    assert t.tolist() == et
    assert all(close(a, b) for a, b in zip(prec.tolist(), eprec))
    assert all(close(a, b) for a, b in zip(rec.tolist(), erec))


def test_binned_mode_warns_for_scores_below_its_range():
    with pytest.warns(rm.BinningWarning, match="4 scores lie below the lowest threshold"):
        assert F.auroc([-2.0, -1.0, -0.5, -0.2], [0, 1, 0, 1], thresholds=5) == 0.0
    assert F.auroc([9.0, 10.0, 11.0, 12.0], [0, 1, 0, 1], thresholds=5) == 0.5  # all above: one bin


def test_binned_classes_merge_counts():
    rng = np.random.default_rng(20261128)
    preds, target = rng.random(1000), rng.random(1000) < 0.2
    a, b = rm.AUROC(thresholds=50), rm.AUROC(thresholds=50)
    a.update(preds[:300], target[:300])
    b.update(preds[300:], target[300:])
    assert a.merge(b).compute() == F.auroc(preds, target, thresholds=50)
    with pytest.raises(ValueError, match="same parameters"):
        rm.AUROC(thresholds=50).merge(rm.AUROC())


# ---------------------------------------------------------------------------
# batching, merging, permutation: bit-identical
# ---------------------------------------------------------------------------

CLASSES = [
    (lambda: rm.AUROC(), lambda p, t: F.auroc(p, t)),
    (lambda: rm.AUPR(), lambda p, t: F.aupr(p, t)),
    (lambda: rm.AUPR(curve="trapezoid"), lambda p, t: F.aupr(p, t, curve="trapezoid")),
    (lambda: rm.F1Max(), lambda p, t: F.f1_max(p, t)),
    (lambda: rm.F1AdaptiveThreshold(), lambda p, t: F.f1_adaptive_threshold(p, t)[0]),
    (lambda: rm.AUROC(thresholds=7), lambda p, t: F.auroc(p, t, thresholds=7)),
]


@st.composite
def batched(draw):
    preds, target = draw(labelled(min_size=2, max_size=60, both_classes=True))
    cuts = split_points(draw, preds.size)
    bounds = [0] + cuts + [preds.size]
    batches = [(preds[a:b], target[a:b]) for a, b in zip(bounds, bounds[1:]) if b > a]
    return preds, target, batches, draw(st.permutations(range(preds.size)))


@pytest.mark.filterwarnings("ignore::refmetrics.BinningWarning")
@SETTINGS
@given(batched(), st.sampled_from(range(len(CLASSES))))
def test_batches_merges_and_permutations_are_bit_identical(data, which):
    preds, target, batches, perm = data
    make, fn = CLASSES[which]
    expected = fn(preds, target)
    one = make()
    for p, t in batches:
        one.update(p, t)
    assert same(one.compute(), expected)
    parts = []
    for p, t in batches:
        m = make()
        m.update(p, t)
        parts.append(m)
    merged = parts[-1]
    for m in reversed(parts[:-1]):  # merge in another order than the data
        merged.merge(m)
    assert same(merged.compute(), expected)
    perm = np.asarray(perm)
    assert same(fn(preds[perm], target[perm]), expected)


def test_mixed_float32_and_float64_batches():
    rng = np.random.default_rng(20261129)
    p32 = rng.random(500).astype(np.float32)
    p64 = rng.random(500)
    t = rng.random(1000) < 0.3
    m = rm.AUPR()
    m.update(p32, t[:500])
    m.update(p64, t[500:])
    both_ = np.concatenate([p32.astype(np.float64), p64])
    assert m.compute() == F.aupr(both_, t)
    m2 = rm.AUROC()
    m2.update(p64, t[500:])
    m2.update(p32, t[:500])
    assert m2.compute() == F.auroc(both_, t)


def test_call_returns_batch_value_and_accumulates():
    m = rm.AUROC()
    assert m([0.1, 0.9], [0, 1]) == 1.0
    assert m([0.9, 0.1], [0, 1]) == 0.0
    assert m.compute() == 0.5
    m.reset()
    with pytest.warns(rm.UndefinedMetricWarning, match="no samples"):
        assert math.isnan(m.compute())


def test_compute_twice_and_update_after_compute():
    rng = np.random.default_rng(20261130)
    p, t = rng.random(200), rng.random(200) < 0.5
    m = rm.AUPR()
    m.update(p[:100], t[:100])
    first = m.compute()
    assert m.compute() == first
    m.update(p[100:], t[100:])
    assert m.compute() == F.aupr(p, t)


def test_pr_curve_class_and_f1_attributes():
    m = rm.BinaryPrecisionRecallCurve()
    m.update([0.1, 0.4], [0, 0])
    m.update([0.4, 0.8], [1, 1])
    prec, rec, thr = m.compute()
    assert rec.tolist() == [1.0, 1.0, 0.5, 0.0] and thr.tolist() == [0.1, 0.4, 0.8]
    f = rm.F1AdaptiveThreshold(default_value=0.25)
    with pytest.warns(rm.UndefinedMetricWarning):
        assert f.compute() == 0.25
    f.update([0.2, 0.6, 0.4, 0.9], [0, 1, 0, 1])
    assert f.compute() == 0.6 and f.value == 0.6 and f.f1 == 1.0
    g = rm.F1Max()
    g.update([0.2, 0.6, 0.4, 0.9], [0, 1, 1, 1])
    assert g.compute() == 1.0 and g.threshold == 0.4  # TP=3, FP=0 at score >= 0.4


def test_ignore_index_drops_elements():
    preds = [0.1, 0.9, 0.5, 0.7, 0.2]
    target = [0, 1, 255, 0, -1]
    with pytest.raises(ValueError, match="ignore_index=255"):
        F.auroc(preds, target, ignore_index=255)
    target = [0, 1, 255, 0, 255]
    assert F.auroc(preds, target, ignore_index=255) == float(naive.auroc([0.1, 0.9, 0.7], [0, 1, 0]))
    assert rm.AUPR(ignore_index=255)(preds, target) == F.aupr([0.1, 0.9, 0.7], [0, 1, 0])


@pytest.mark.parametrize("chunk", [1, 2, 3, 7])
def test_accumulators_carry_state_across_chunks(monkeypatch, chunk):
    from refmetrics.functional import _ranked

    rng = np.random.default_rng(20261131)
    preds = np.round(rng.random(300) * 40) / 40  # ties
    target = rng.random(300) < 0.3
    expected = [F.auroc(preds, target), F.average_precision(preds, target),
                F.aupr(preds, target, curve="trapezoid"), F.f1_adaptive_threshold(preds, target)]
    monkeypatch.setattr(_ranked, "CHUNK", chunk)
    got = [F.auroc(preds, target), F.average_precision(preds, target),
           F.aupr(preds, target, curve="trapezoid"), F.f1_adaptive_threshold(preds, target)]
    assert got == expected
    assert close(got[1], naive.average_precision(preds, target))
    assert close(got[2], naive.aupr_trapezoid(preds, target))


# ---------------------------------------------------------------------------
# ignore_index 0 or 1, AP with positives only, F1 without a positive (issue 10)
# ---------------------------------------------------------------------------

def test_midrank_oracle_agrees_with_the_pairwise_one():
    rng = np.random.default_rng(20261201)
    for _ in range(20):
        preds = np.round(rng.random(30) * 6) / 6
        target = rng.random(30) < 0.4
        assert naive.auroc_midranks(preds, target) == naive.auroc(preds, target)


@SETTINGS
@given(labelled(), st.sampled_from([0, 1]), st.sampled_from([None, 5, [-1.0, 0.0, 0.25, 0.5, 3.0]]))
def test_ignore_index_zero_or_one_matches_oracle(data, ignore, thresholds):
    preds, target = data
    scores, labels = naive.drop_ignored(preds, target, ignore)
    assert set(labels) <= {1 - ignore}
    kw = {"ignore_index": ignore, "thresholds": thresholds}
    if not labels:  # every element ignored
        with pytest.warns(rm.UndefinedMetricWarning, match="no samples"):
            assert math.isnan(F.auroc(preds, target, **kw))
        return
    with pytest.warns(rm.UndefinedMetricWarning, match="AUROC is undefined"):  # one class is left
        assert math.isnan(F.auroc(preds, target, **kw))
    if thresholds is None:
        exact_ap, exact_trap = naive.average_precision(scores, labels), naive.aupr_trapezoid(scores, labels)
        exact_f1 = naive.f1_adaptive(scores, labels)
        assert quiet(F.f1_adaptive_threshold, preds, target, ignore_index=ignore)[0] == exact_f1[0]
        assert close(quiet(F.f1_max, preds, target, ignore_index=ignore), exact_f1[1])
    else:
        thr = np.linspace(0, 1, thresholds).tolist() if isinstance(thresholds, int) else thresholds
        exact_ap = naive.binned_average_precision(scores, labels, thr)
        exact_trap = naive.binned_aupr_trapezoid(scores, labels, thr)
        exact_f1 = naive.binned_f1_adaptive(scores, labels, thr)
        metric = rm.F1AdaptiveThreshold(thresholds=thresholds, ignore_index=ignore)
        metric.update(preds, target)
        assert quiet(metric.compute) == exact_f1[0] and close(metric.f1, exact_f1[1])
    assert close(quiet(F.average_precision, preds, target, **kw), exact_ap)
    assert close(quiet(F.aupr, preds, target, curve="trapezoid", **kw), exact_trap)
    assert close(quiet(rm.AUPR(**kw), preds, target), exact_ap)
    prec, rec, _ = quiet(F.precision_recall_curve, preds, target, **kw)
    assert prec.size == rec.size


def test_ignore_index_zero_or_one_examples():
    preds = [0.1, 0.9, 0.5, 0.7, 0.2]
    # ignore_index=0: the negatives are dropped, the positives alone are left: AP is 1, AUROC undefined
    assert F.average_precision(preds, [0, 1, 1, 0, 1], ignore_index=0) == 1.0
    assert rm.AUPR(ignore_index=0)(preds, [0, 1, 1, 0, 1]) == 1.0
    with pytest.warns(rm.UndefinedMetricWarning, match="no negative"):
        assert math.isnan(rm.AUROC(ignore_index=0)(preds, [0, 1, 1, 0, 1]))
    with pytest.warns(rm.UndefinedMetricWarning, match="no positive"):
        assert math.isnan(F.average_precision(preds, [0, 1, 1, 0, 1], ignore_index=1))
    # the label left valid is the other one: 255 is still an error, and says what was allowed
    with pytest.raises(ValueError, match=r"\{0, 1\} \(or ignore_index=0\), received 1 other value \(e\.g\. 255\)"):
        F.auroc(preds, [0, 1, 255, 0, 1], ignore_index=0)
    # bool and float labels compare with 0/1 in their own dtype
    assert F.average_precision(preds, np.array([0, 1, 1, 0, 1], bool), ignore_index=0) == 1.0
    assert F.f1_max(preds, np.array([0, 1, 1, 0, 1], np.float32), ignore_index=0) == 1.0
    with pytest.warns(rm.UndefinedMetricWarning, match="F1 is undefined with no positive"):
        assert math.isnan(F.f1_max(preds, np.array([0, 1, 1, 0, 1], bool), ignore_index=1))
    with pytest.warns(rm.UndefinedMetricWarning, match="no samples"):
        assert math.isnan(F.auroc(preds, [1] * 5, ignore_index=1))


def test_average_precision_with_positives_only_is_one():
    preds = [0.3, 0.1, 0.3, 0.8]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # defined: no warning
        for curve in ("step", "trapezoid"):
            assert F.aupr(preds, [1, 1, 1, 1], curve=curve) == 1.0
            assert F.aupr(preds, [1, 1, 1, 1], curve=curve, thresholds=11) == 1.0
            assert rm.AUPR(curve=curve)(preds, [1, 1, 1, 1]) == 1.0
        assert F.average_precision(preds, [1, 1, 1, 1]) == 1.0
        assert F.average_precision([0.5], [1]) == 1.0
    for fn in (F.average_precision, lambda p, t: F.aupr(p, t, curve="trapezoid", thresholds=5)):
        with pytest.warns(rm.UndefinedMetricWarning, match="no positive"):
            assert math.isnan(fn(preds, [0, 0, 0, 0]))
    # scikit-learn returns the same number
    from sklearn.metrics import average_precision_score

    assert average_precision_score([1, 1, 1, 1], preds) == 1.0


def test_f1_max_without_a_positive_is_nan():
    with pytest.warns(rm.UndefinedMetricWarning, match="F1 is undefined with no positive"):
        assert math.isnan(F.f1_max([0.2, 0.7, 0.7], [0, 0, 0]))
    m = rm.F1Max()
    with pytest.warns(rm.UndefinedMetricWarning, match="F1 is undefined with no positive"):
        assert math.isnan(m([0.2, 0.7], [0, 0]))
    assert math.isnan(m.threshold)
    m.update([0.9], [1])  # a positive arrives: defined again
    assert m.compute() == 1.0 and m.threshold == 0.9
    with pytest.warns(rm.UndefinedMetricWarning, match="no samples"):
        assert math.isnan(rm.F1Max().compute())


@pytest.mark.filterwarnings("ignore::refmetrics.BinningWarning")
def test_f1_adaptive_threshold_fallbacks_and_f1_attribute():
    f = rm.F1AdaptiveThreshold()
    with pytest.warns(rm.UndefinedMetricWarning, match="highest score and F1 is undefined"):
        assert f([0.1, 0.7, 0.3], [0, 0, 0]) == 0.7
    assert f.value == 0.7 and math.isnan(f.f1)
    g = rm.F1AdaptiveThreshold()
    with pytest.warns(rm.UndefinedMetricWarning, match="lowest score"):
        assert g([0.1, 0.7, 0.3], [1, 1, 1]) == 0.1
    assert g.f1 == 1.0
    # binned: the scores are not kept, so the highest / lowest given threshold (anomalib 2.x)
    b = rm.F1AdaptiveThreshold(thresholds=[0.2, 0.5, 0.9])
    with pytest.warns(rm.UndefinedMetricWarning, match="highest given threshold"):
        assert b([0.1, 0.7, 0.3], [0, 0, 0]) == 0.9
    assert math.isnan(b.f1)
    b = rm.F1AdaptiveThreshold(thresholds=[0.2, 0.5, 0.9])
    with pytest.warns(rm.UndefinedMetricWarning, match="lowest given threshold"):
        assert b([0.1, 0.7, 0.3], [1, 1, 1]) == 0.2
    assert b.f1 == float(Fraction(2 * 2, 2 * 2 + 1))  # 0.7 and 0.3 are >= 0.2, 0.1 is missed
    d = rm.F1AdaptiveThreshold(default_value=0.25, thresholds=4)
    with pytest.warns(rm.UndefinedMetricWarning, match="before any sample"):
        assert d.compute() == 0.25
    assert math.isnan(d.f1)


@SETTINGS
@given(labelled(dtype=np.float64), st.one_of(st.integers(2, 12),
                                              st.lists(st.floats(-2, 2), min_size=1, max_size=8)))
def test_f1_adaptive_threshold_binned_matches_oracle(data, thresholds):
    preds, target = data
    thr = np.linspace(0, 1, thresholds).tolist() if isinstance(thresholds, int) else thresholds
    exact_thr, exact_f1 = naive.binned_f1_adaptive(preds, target, thr)
    metric = rm.F1AdaptiveThreshold(thresholds=thresholds)
    metric.update(preds, target)
    assert quiet(metric.compute) == exact_thr
    assert close(metric.f1, exact_f1)


def test_f1_adaptive_threshold_binned_merges_and_keeps_its_config():
    rng = np.random.default_rng(20261202)
    preds, target = rng.random(400), rng.random(400) < 0.3
    a, b = rm.F1AdaptiveThreshold(thresholds=25), rm.F1AdaptiveThreshold(thresholds=25)
    a.update(preds[:150], target[:150])
    b.update(preds[150:], target[150:])
    exact_thr, exact_f1 = naive.binned_f1_adaptive(preds, target, np.linspace(0, 1, 25).tolist())
    assert a.merge(b).compute() == exact_thr and close(a.f1, exact_f1)
    assert repr(rm.F1AdaptiveThreshold(thresholds=[0.5, 0.1])) == (
        "F1AdaptiveThreshold(default_value=0.5, thresholds=(0.1, 0.5), ignore_index=None, backend='auto')")
    with pytest.raises(ValueError, match="same parameters"):
        rm.F1AdaptiveThreshold(thresholds=25).merge(rm.F1AdaptiveThreshold())
    with pytest.raises(ValueError, match="thresholds: expected None, an int"):
        rm.F1AdaptiveThreshold(thresholds=1)
