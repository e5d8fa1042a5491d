"""PIMO curve and AUPIMO against the brute-force oracle (tests/naive.py): values, undefined cases,
errors, batch and merge independence, per-image results."""

import copy
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
from .checks import quiet, same

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TOL = 1e-9  # log-space areas: the oracle takes its logarithms differently (ln p - ln q of exact fractions)


def close9(value, expected):
    if expected is None:
        return math.isnan(value)
    return abs(value - expected) <= TOL


@st.composite
def image_sets(draw):
    """A list of batches ``(maps (b, h, w), masks)``, image sizes differing between batches, with ties."""
    n_batches = draw(st.integers(1, 3))
    kind = draw(st.sampled_from(["ties", "continuous", "float32", "inf"]))
    batches = []
    for _ in range(n_batches):
        b = draw(st.integers(1, 3))
        h, w = draw(st.integers(1, 3)), draw(st.integers(1, 4))
        n = b * h * w
        if kind == "ties":
            values = draw(st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0]), min_size=n, max_size=n))
        elif kind == "inf":
            values = draw(st.lists(st.sampled_from([-np.inf, 0.0, 0.5, np.inf]), min_size=n, max_size=n))
        else:
            values = draw(st.lists(st.floats(-3, 3), min_size=n, max_size=n))
        maps = np.array(values, np.float32 if kind == "float32" else np.float64).reshape(b, h, w)
        density = draw(st.sampled_from([0.0, 0.3, 0.7]))
        masks = np.array(draw(st.lists(st.floats(0, 1), min_size=n, max_size=n))).reshape(b, h, w) < density
        normal = draw(st.lists(st.booleans(), min_size=b, max_size=b))
        masks[np.array(normal)] = False
        batches.append((maps, masks.astype(np.uint8)))
    return batches


def _flatten(batches):
    return [m for maps, _ in batches for m in maps], [g for _, masks in batches for g in masks]


def _smallest(maps, masks):
    _, shfpr, _, classes = naive.pimo_curve(maps, masks)
    if not any(classes) or all(classes):
        return None
    return min(x for x in shfpr if x > 0)


@SETTINGS
@given(image_sets(), st.sampled_from([1.0, 1.5, 0.5]), st.sampled_from([2.0, 10.0, 1e6]))
def test_aupimo_matches_oracle_with_ties_and_several_image_sizes(batches, lower_factor, ratio):
    maps, masks = _flatten(batches)
    smallest = _smallest(maps, masks)
    lower = 0.01 if smallest is None else min(0.5, float(smallest) * lower_factor)
    if smallest is not None and abs(lower / float(smallest) - 1) < 1e-12:
        lower = float(smallest) * (1 + 1e-9)  # the exact boundary has its own test
    bounds = (lower, min(1.0, lower * ratio))
    expected_mean, expected = naive.aupimo(maps, masks, bounds)
    metric = rm.AUPIMO(fpr_bounds=bounds)
    for b_maps, b_masks in batches:
        metric.update(b_maps, b_masks)
    mean = quiet(metric.compute)
    assert close9(mean, expected_mean)
    assert metric.per_image.dtype == np.float64 and metric.per_image.size == len(expected)
    for got, want in zip(metric.per_image.tolist(), expected):
        assert close9(got, want)
    if len({m.shape for m in maps}) == 1:  # one array: the functional form
        f_mean, f_per = quiet(F.aupimo, np.stack(maps), np.stack(masks), fpr_bounds=bounds,
                              return_per_image=True)
        assert same(f_mean, mean) and np.array_equal(f_per, metric.per_image, equal_nan=True)


@SETTINGS
@given(image_sets())
def test_pimo_curve_matches_oracle(batches):
    maps, masks = _flatten(batches)
    if len({m.shape for m in maps}) != 1:
        maps, masks = [maps[0]], [masks[0]]
    thr, shfpr, tpr, classes = quiet(F.pimo_curve, np.stack(maps), np.stack(masks))
    e_thr, e_shfpr, e_tpr, e_classes = naive.pimo_curve(maps, masks)
    assert thr.tolist() == e_thr and classes.tolist() == e_classes
    for x, e in zip(shfpr.tolist(), e_shfpr):
        assert (e is None and math.isnan(x)) or abs(Fraction(x) - e) <= Fraction(1, 10**12)
    for row, e_row in zip(tpr, e_tpr):
        assert np.isnan(row).all() if e_row is None else row.tolist() == [float(v) for v in e_row]
    assert np.all(np.diff(shfpr[~np.isnan(shfpr)]) >= 0)


def _example():
    maps = np.array([[[0.1, 0.2, 0.3, 0.9]], [[0.1, 0.2, 0.4, 0.5]], [[0.8, 0.45, 0.2, 0.1]]])
    masks = np.array([[[0, 0, 0, 0]], [[0, 0, 0, 0]], [[1, 1, 0, 0]]])
    return maps, masks


def test_hand_computed_value():
    # shFPR: 1/8 at 0.9, 2/8 at 0.5, 3/8 at 0.4 (normal scores); TPR of image 2: 1/2 from 0.8, 1 from 0.45.
    # 0.45 lies between the normal scores 0.5 and 0.4, where the shFPR stays 1/4: the curve rises
    # vertically at ln 1/4 (no area). TPR 1/2 on [ln 1/8, ln 1/4], 1 on [ln 1/4, ln 3/8]:
    # area 0.5 ln 2 + ln 1.5, over ln 3
    maps, masks = _example()
    expected = (0.5 * math.log(2) + math.log(1.5)) / math.log(3)
    mean, per_image = F.aupimo(maps, masks, fpr_bounds=(0.125, 0.375), return_per_image=True)
    assert abs(mean - expected) < 1e-15 and abs(mean - naive.aupimo(maps, masks, (0.125, 0.375))[0]) < 1e-15
    assert np.isnan(per_image[:2]).all() and per_image[2] == mean


def test_interpolation_inside_a_segment():
    maps, masks = _example()
    # bounds strictly inside segments on both sides
    bounds = (0.15, 0.3)
    assert close9(F.aupimo(maps, masks, fpr_bounds=bounds), naive.aupimo(maps, masks, bounds)[0])


def test_lower_bound_equal_to_the_smallest_reachable_is_defined():
    # 2 normal images of 4 pixels: the smallest positive shFPR is exactly 1/8 in float64
    maps, masks = _example()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert F.aupimo(maps, masks, fpr_bounds=(0.125, 0.25)) == 0.5


def test_lower_bound_below_reachable_warns_with_the_range():
    maps, masks = _example()
    with pytest.warns(rm.UndefinedMetricWarning, match=r"reachable shared FPR range is \[0\.125, 1\]"):
        mean, per_image = F.aupimo(maps, masks, return_per_image=True)  # default (1e-5, 1e-4)
    assert math.isnan(mean) and per_image.shape == (3,) and np.isnan(per_image).all()


@pytest.mark.parametrize("which", ["normal", "anomalous"])
def test_one_class_of_images_is_undefined(which):
    maps, masks = _example()
    if which == "normal":  # every image anomalous
        masks = masks.copy()
        masks[:, :, 0] = 1
        match = "no normal image"
    else:
        masks = np.zeros_like(masks)
        match = "no anomalous image"
    with pytest.warns(rm.UndefinedMetricWarning, match=match):
        assert math.isnan(F.aupimo(maps, masks, fpr_bounds=(0.1, 0.5)))
    metric = rm.AUPIMO()
    with pytest.warns(rm.UndefinedMetricWarning, match="no images"):
        assert math.isnan(metric.compute())


@pytest.mark.parametrize("bounds, error, message", [
    ((0.0, 0.1), ValueError, r"fpr_bounds: expected 0 < lower < upper <= 1, received \(0.0, 0.1\)"),
    ((0.2, 0.1), ValueError, r"fpr_bounds: expected 0 < lower < upper <= 1, received \(0.2, 0.1\)"),
    ((0.1, 1.5), ValueError, "fpr_bounds: expected 0 < lower < upper <= 1"),
    ((0.1, 0.1), ValueError, "fpr_bounds: expected 0 < lower < upper <= 1"),
    ((float("nan"), 0.1), ValueError, r"fpr_bounds\[0\]: expected a real number, received NaN"),
    (0.1, TypeError, "fpr_bounds: expected a pair"),
    ((0.1, 0.2, 0.3), TypeError, "fpr_bounds: expected a pair"),
    (("a", 0.2), TypeError, r"fpr_bounds\[0\]: expected a real number, received 'a'"),
])
def test_bad_fpr_bounds(bounds, error, message):
    maps, masks = _example()
    with pytest.raises(error, match=message):
        F.aupimo(maps, masks, fpr_bounds=bounds)
    with pytest.raises(error, match=message):
        rm.AUPIMO(fpr_bounds=bounds)


def test_bad_inputs():
    maps, masks = _example()
    with pytest.raises(ValueError, match=r"preds: expected no NaN values, received 1 NaN"):
        F.aupimo(np.where(maps == 0.9, np.nan, maps), masks)
    with pytest.raises(ValueError, match=r"target: expected binary labels in \{0, 1\}.*255"):
        F.aupimo(maps, masks * 255)
    with pytest.raises(ValueError, match=r"preds and target: expected the same shape"):
        F.aupimo(maps, masks[:2])
    with pytest.raises(ValueError, match=r"preds: expected maps of shape \(B, H, W\).*received shape \(4,\)"):
        F.aupimo(maps[0, 0], masks[0, 0])
    with pytest.raises(TypeError, match="return_per_image: expected True or False, received 1"):
        F.aupimo(maps, masks, return_per_image=1)
    with pytest.raises(ValueError, match="expected at least one element"):
        F.aupimo(np.empty((0, 2, 2)), np.empty((0, 2, 2)))


def test_batches_merges_and_image_order_are_bit_identical():
    rng = np.random.default_rng(20261128)
    maps = np.round(rng.normal(size=(12, 6, 7)), 2).astype(np.float32)
    masks = np.zeros(maps.shape, np.uint8)
    for i in range(5, 12):
        y, x = rng.integers(0, 5, 2)
        masks[i, y:y + 2, x:x + 3] = 1
        maps[i][masks[i] == 1] += 1.0
    bounds = (1 / 70, 0.2)
    whole, per_whole = F.aupimo(maps, masks, fpr_bounds=bounds, return_per_image=True)
    assert close9(whole, naive.aupimo(maps, masks, bounds)[0])
    for cuts in ([3], [1, 2, 7, 11], list(range(1, 12))):
        parts = [rm.AUPIMO(fpr_bounds=bounds) for _ in range(len(cuts) + 1)]
        for part, (a, b) in zip(parts, zip([0] + cuts, cuts + [12])):
            part.update(maps[a:b], masks[a:b])
        merged = rm.AUPIMO(fpr_bounds=bounds)  # a fresh state: merging changes the receiving state
        for part in parts:
            merged.merge(part)
        assert same(merged.compute(), whole)
        assert np.array_equal(merged.per_image, per_whole, equal_nan=True)
        # another merge order: the mean is the same bit for bit, the per-image values follow the images
        backwards = rm.AUPIMO(fpr_bounds=bounds)
        for part in parts[::-1]:
            backwards.merge(part)
        assert same(backwards.compute(), whole)
        order = np.concatenate([np.arange(a, b) for a, b in list(zip([0] + cuts, cuts + [12]))[::-1]])
        assert np.array_equal(backwards.per_image, per_whole[order], equal_nan=True)
    shuffled = rng.permutation(12)
    assert same(F.aupimo(maps[shuffled], masks[shuffled], fpr_bounds=bounds), whole)


def test_image_sizes_and_dtypes_mixed_across_batches():
    rng = np.random.default_rng(20261129)
    small = rng.normal(size=(4, 3, 3))
    large = rng.normal(size=(3, 5, 4)).astype(np.float32)
    small_masks = np.zeros(small.shape, np.uint8)
    small_masks[2:, 1, 1] = 1
    large_masks = np.zeros(large.shape, np.uint8)
    large_masks[0, :2, :2] = 1
    bounds = (0.05, 0.5)
    expected_mean, expected = naive.aupimo(list(small) + list(large), list(small_masks) + list(large_masks),
                                           bounds)
    a, b = rm.AUPIMO(fpr_bounds=bounds), rm.AUPIMO(fpr_bounds=bounds)
    a.update(small, small_masks)
    b.update(large, large_masks)
    value = a.merge(b).compute()
    assert close9(value, expected_mean)
    assert all(close9(x, e) for x, e in zip(a.per_image.tolist(), expected))
    c, d = rm.AUPIMO(fpr_bounds=bounds), rm.AUPIMO(fpr_bounds=bounds)
    c.update(large, large_masks)
    d.update(small, small_masks)
    assert same(c.merge(d).compute(), value)


def test_channel_layout_and_call_and_copy():
    maps, masks = _example()
    bounds = (0.125, 0.375)
    expected = F.aupimo(maps, masks, fpr_bounds=bounds)
    assert same(F.aupimo(maps[:, None], masks, fpr_bounds=bounds), expected)
    metric = rm.AUPIMO(fpr_bounds=bounds)
    assert same(metric(maps, masks), expected)
    assert metric.per_image.tolist()[2] == expected
    clone = copy.copy(metric)
    metric.reset()
    assert same(clone.compute(), expected)
    assert repr(rm.AUPIMO()) == "AUPIMO(fpr_bounds=(1e-05, 0.0001), backend='auto')"


def test_large_window_uses_the_cut_and_matches_a_full_walk():
    # more normal pixels than one histogram bucket: the window is found from the keys' top bits
    rng = np.random.default_rng(20261130)
    maps = rng.normal(size=(30, 40, 40)).astype(np.float32)
    masks = np.zeros(maps.shape, np.uint8)
    masks[18:, 10:20, 10:20] = 1
    maps[masks == 1] += rng.uniform(0, 3, size=int(masks.sum())).astype(np.float32)
    thr, shfpr, tpr, classes = F.pimo_curve(maps, masks)  # the full exact curve (checked against the oracle)
    for bounds in [(1e-4, 1e-3), (1e-3, 0.3), (1e-2, 1.0), (float(shfpr[shfpr > 0][0]), 1e-3)]:
        mean, per_image = F.aupimo(maps, masks, fpr_bounds=bounds, return_per_image=True)
        expected = [_area_of_full_curve(shfpr, tpr[i], *bounds) for i in np.flatnonzero(classes)]
        assert np.allclose(per_image[classes == 1], expected, rtol=0, atol=1e-12)
        assert abs(mean - math.fsum(expected) / len(expected)) < 1e-12


def _area_of_full_curve(shfpr, tpr, lower, upper):
    """The definition applied to every point of the full curve (vectorised; not the window walk)."""
    xa, xb, ya, yb = shfpr[:-1], shfpr[1:], tpr[:-1], tpr[1:]
    keep = (xa > 0) & (xb > xa)
    la, lb, ya, yb = np.log(xa[keep]), np.log(xb[keep]), ya[keep], yb[keep]
    lo, hi = np.log(lower), np.log(upper)
    a, b = np.maximum(la, lo), np.minimum(lb, hi)
    inside = a < b
    la, lb, ya, yb, a, b = la[inside], lb[inside], ya[inside], yb[inside], a[inside], b[inside]
    at_a = ya + (yb - ya) * (a - la) / (lb - la)
    at_b = ya + (yb - ya) * (b - la) / (lb - la)
    return float(np.sum((b - a) * (at_a + at_b) / 2) / (hi - lo))
