"""PBn and PGn (functional and classes) against exact oracles built on np.quantile."""

import math
import warnings
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import refmetrics as rm
from refmetrics import functional as F
from refmetrics.functional import pgpb

from . import naive
from .checks import close, quiet, same
from .strategies import labelled, split_points

RATES = st.sampled_from([0.05, 0.0, 1.0, 0.2, 0.5, 0.3, 0.95, 1 / 3])


@settings(max_examples=120, deadline=None)
@given(labelled(max_size=40), RATES)
def test_against_the_oracle(data, rate):
    preds, target = data
    assert close(quiet(F.pbn, preds, target, fpr=rate), naive.pbn(preds, target, rate))
    assert close(quiet(F.pgn, preds, target, fnr=rate), naive.pgn(preds, target, rate))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.floats(-1e9, 1e9, width=64), min_size=1, max_size=30), st.floats(0, 1))
def test_the_quantile_is_numpy_s_bit_for_bit(values, q):
    keys = np.sort(np.array(values, np.float64))
    # keys of the sorted values, as the state holds them
    bits = keys.view(np.uint64)
    top = np.uint64(1 << 63)
    sorted_keys = np.sort(np.where(bits & top, ~bits, bits | top))
    got = pgpb.sorted_quantile(sorted_keys, q)
    assert same(got + 0.0, float(np.quantile(keys, q)) + 0.0)


def test_documented_values():
    preds, target = [0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]
    assert F.pbn(preds, target, fpr=0.2) == 1.0  # threshold 0.1 + 0.3 * 0.8 rounded = 0.34
    assert F.pbn(preds, target, fpr=0.0) == 0.5  # threshold 0.4, the largest negative
    assert F.pgn(preds, target, fnr=0.2) == 1.0  # threshold 0.44: both negatives below
    assert F.pgn(preds, target, fnr=0.0) == 0.5  # threshold 0.35: only 0.1 below
    assert rm.PBn(0.2).name == "PB20" and rm.PGn().name == "PG5"


def test_strict_comparisons_and_ties():
    # every negative equals the threshold: no positive at the same score counts
    preds = np.array([0.5, 0.5, 0.5, 0.5, 0.9], np.float32)
    target = np.array([0, 0, 1, 1, 1])
    assert F.pbn(preds, target) == float(Fraction(1, 3))
    assert F.pgn(preds, target, fnr=0.0) == 0.0
    # a float64 threshold between two adjacent float32 scores: compared exactly, not after a cast
    thr = float(np.quantile(np.array([0.0, 1.0]), 1 - 0.9))
    below = np.float32(thr) if np.float32(thr) < thr else np.nextafter(np.float32(thr), np.float32(0))
    preds = np.array([below, np.nextafter(below, np.float32(1)), 0.0, 1.0], np.float32)
    target = np.array([1, 1, 0, 0])
    assert float(preds[0]) < thr < float(preds[1])
    assert F.pbn(preds, target, fpr=0.9) == 0.5


def test_infinities():
    p = np.array([np.inf, 1.0, 2.0, -np.inf, 5.0])
    t = np.array([0, 0, 1, 0, 1])
    # negatives -inf, 1, inf: at q = 1 NumPy's arithmetic gives nan (inf - inf); the definition the limit, +inf
    assert F.pbn(p, t, fpr=0.0) == 0.0
    assert F.pbn(p, t, fpr=0.25) == 0.0  # between 1 and inf: +inf
    assert F.pbn(p, t, fpr=1.0) == 1.0  # the smallest negative, -inf: both positives above
    assert F.pbn(p, t, fpr=0.75) == 1.0  # between -inf and 1: -inf
    with pytest.warns(rm.UndefinedMetricWarning, match="between -inf and \\+inf"):
        assert math.isnan(F.pbn(np.array([np.inf, -np.inf, 1.0]), np.array([0, 0, 1]), fpr=0.5))


def test_undefined_cases_warn():
    for fn, kw in ((F.pbn, {"fpr": 0.1}), (F.pgn, {"fnr": 0.1})):
        for target, why in (([1, 1, 1], "no negative"), ([0, 0, 0], "no positive")):
            with pytest.warns(rm.UndefinedMetricWarning, match=why):
                assert math.isnan(fn([0.1, 0.2, 0.3], target, **kw))
    with pytest.warns(rm.UndefinedMetricWarning, match="PBn is undefined with no samples"):
        assert math.isnan(rm.PBn().compute())


def test_bad_input():
    with pytest.raises(ValueError, match=r"fpr: expected a rate in \[0, 1\], received 1.5"):
        F.pbn([0.1], [1], fpr=1.5)
    with pytest.raises(ValueError, match=r"fnr: expected a rate in \[0, 1\], received -0.1"):
        rm.PGn(-0.1)
    with pytest.raises(ValueError, match="fnr: expected a real number, received NaN"):
        F.pgn([0.1], [1], fnr=float("nan"))
    with pytest.raises(ValueError, match="preds: expected no NaN values, received 1 NaN"):
        F.pbn([np.nan, 0.1], [1, 0])
    with pytest.raises(ValueError, match=r"target: expected binary labels in \{0, 1\}"):
        F.pgn([0.3, 0.1], [2, 0])
    with pytest.raises(ValueError, match="other: expected a PBn with the same parameters"):
        rm.PBn(0.1).merge(rm.PBn(0.2))
    with pytest.raises(TypeError, match="other: expected a PBn to merge, received PGn"):
        rm.PBn().merge(rm.PGn())


@settings(max_examples=60, deadline=None)
@given(labelled(min_size=2, max_size=40, both_classes=True), RATES, st.data())
def test_classes_are_independent_of_batching_and_merging(data, rate, draw):
    preds, target = data
    cuts = split_points(draw.draw, preds.size)
    bounds = [0] + cuts + [preds.size]
    for cls, fn, key in ((rm.PBn, F.pbn, "fpr"), (rm.PGn, F.pgn, "fnr")):
        whole = quiet(fn, preds, target, **{key: rate})
        metric = cls(rate)
        halves = [cls(rate), cls(rate)]
        for i, (a, b) in enumerate((a, b) for a, b in zip(bounds, bounds[1:]) if b > a):
            metric.update(preds[a:b], target[a:b])
            halves[i % 2].update(preds[a:b], target[a:b])
        assert same(quiet(metric.compute), whole)
        assert same(quiet(halves[1].merge(halves[0]).compute), whole)
        perm = draw.draw(st.permutations(range(preds.size)))
        assert same(quiet(fn, preds[list(perm)], target[list(perm)], **{key: rate}), whole)


def test_ignore_index():
    preds = np.array([0.1, 0.4, 0.35, 0.8, 9.0])
    target = np.array([0, 0, 1, 1, -1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert F.pbn(preds, target, fpr=0.0, ignore_index=-1) == 0.5
        assert rm.PGn(0.0, ignore_index=-1)(preds, target) == 0.5


# ---------------------------------------------------------------------------
# conformance: anomalib 2.7's PBn / PGn
# ---------------------------------------------------------------------------

# image scores where anomalib's float32 quantile (q = float32(1) - float32(0.05)) moves the threshold
# across a score (found by a seeded search): PBn is 3/8 exactly, anomalib gives 1/4
FLOAT32_QUANTILE_SCORES = [0.3750002086162567, 0.8750001192092896, 0.7500001788139343, 0.25000008940696716,
                           0.12500010430812836, 0.875, 0.12500010430812836, 0.5000001192092896,
                           0.12500019371509552, 0.7500001192092896, 0.7500001788139343, 0.625, 0.75,
                           0.5000001192092896, 0.25000008940696716, 2.0000000233721948e-07]
FLOAT32_QUANTILE_LABELS = [0, 1, 0, 1, 0, 1, 0, 0, 0, 0, 1, 0, 1, 1, 1, 1]


def _case(scores, labels):
    from refmetrics.conformance.cases import Case

    maps = np.array(scores, np.float32).reshape(-1, 1, 1)
    masks = np.array(labels, np.uint8).reshape(-1, 1, 1)
    expected = {"image_pbn": naive.pbn(maps, masks, 0.05), "image_pgn": naive.pgn(maps, masks, 0.05)}
    entry = {"probes": "float32 quantile", "seed": 0,
             "expected": {k: {"fraction": f"{v.numerator}/{v.denominator}"} for k, v in expected.items()}}
    return Case("float32_quantile", entry, maps, masks, [8])


def test_the_float32_quantile_cause_reproduces_anomalib():
    from refmetrics.conformance.causes import CAUSE_BY_KEY, attribute, reference

    case = _case(FLOAT32_QUANTILE_SCORES, FLOAT32_QUANTILE_LABELS)
    assert case.expected["image_pbn"] == Fraction(3, 8) and reference(case, "image_pbn") == 0.375
    cause = CAUSE_BY_KEY["float32_quantile"]
    assert cause.model(case, "image_pbn") == [0.25]
    assert cause.explains(case, "image_pbn", 0.25) and not cause.explains(case, "image_pbn", 0.125)
    assert attribute(case, "image_pbn", 0.25) is cause
    pytest.importorskip("anomalib")
    from refmetrics.conformance.adapters import ADAPTERS

    assert ADAPTERS["anomalib"]("image_pbn", case) == 0.25  # anomalib's own number
    assert ADAPTERS["anomalib"]("image_pgn", case) == float(np.float32(case.expected_float("image_pgn")))
