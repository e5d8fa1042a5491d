"""sPRO curve and AU-sPRO (MVTec LOCO AD) against the exact oracle (``naive.spro_points``)."""

import itertools
import json
import math
import warnings
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import refmetrics as rm
from refmetrics import functional as F
from refmetrics.functional import spro as spro_module

from . import naive
from .checks import close, quiet, same
from .strategies import scores

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
OFFICIAL = [0.01, 0.05, 0.1, 0.3, 1.0]


@st.composite
def images_and_defects(draw, max_side=5, max_images=3):
    """``(preds (B, H, W), defects)``: heavy ties, overlapping defects, relative and absolute
    saturation (zero saturation areas included), defect-free images."""
    b = draw(st.integers(1, max_images))
    h, w = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    preds = draw(scores(b * h * w, draw(st.sampled_from([np.float32, np.float64, np.float16, np.uint8]))))
    preds = preds.reshape(b, h, w)
    defects = []
    for _ in range(b):
        items = []
        for _ in range(draw(st.integers(0, 3))):
            cells = draw(st.lists(st.booleans(), min_size=h * w, max_size=h * w))
            if not any(cells):
                cells[draw(st.integers(0, h * w - 1))] = True
            mask = np.array(cells).reshape(h, w).astype(draw(st.sampled_from([bool, np.uint8, np.float64])))
            if draw(st.booleans()):
                thr = draw(st.sampled_from([1.0, 0.5, 0.3, 0.25, 0.7, 0.99, 1e-3]))
                items.append((mask, thr, True))
            else:
                items.append((mask, draw(st.integers(0, h * w + 2)), False))
        defects.append(items)
    return preds, defects


def _split(preds, defects, cuts):
    bounds = [0] + sorted(cuts) + [preds.shape[0]]
    return [(preds[a:c], defects[a:c]) for a, c in itertools.pairwise(bounds) if c > a]


@SETTINGS
@given(images_and_defects(), st.sampled_from([1.0, 0.3, 0.05, 0.5, 1e-3, 0.999, 0.01]))
def test_au_spro_and_curve_match_the_oracle(data, limit):
    preds, defects = data
    got = quiet(F.au_spro, preds, defects, fpr_limit=limit)
    assert close(got, naive.au_spro(preds, defects, limit))
    fpr, spro = quiet(F.spro_curve, preds, defects)
    points = naive.spro_points(preds, defects)
    assert len(fpr) == len(points)
    for x, y, (ex, ey) in zip(fpr.tolist(), spro.tolist(), points):
        assert close(x, ex) and close(y, ey)


@SETTINGS
@given(images_and_defects(), st.lists(st.sampled_from([0.0, 0.5, 1.0, -1.0, 3.0, 0.25, np.inf, -np.inf, 1e-3]),
                                      min_size=1, max_size=6))
def test_the_curve_at_given_thresholds_matches_the_oracle(data, thresholds):
    preds, defects = data
    fpr, spro = quiet(F.spro_curve, preds, defects, thresholds=thresholds)
    points = naive.spro_points(preds, defects, thresholds)
    assert len(fpr) == len(thresholds)
    for x, y, (ex, ey) in zip(fpr.tolist(), spro.tolist(), points):
        assert close(x, ex) and close(y, ey)


@SETTINGS
@given(images_and_defects(), st.lists(st.integers(0, 3), max_size=3), st.randoms(use_true_random=False))
def test_batches_merges_and_orders_are_bit_identical(data, cuts, rnd):
    preds, defects = data
    whole = quiet(F.au_spro, preds, defects, fpr_limit=OFFICIAL)
    one = rm.AUsPRO(fpr_limit=OFFICIAL)
    quiet(one.update, preds, defects)
    parts = _split(preds, defects, [c for c in cuts if c <= preds.shape[0]])
    rnd.shuffle(parts)
    merged = None
    for p, d in parts:
        m = rm.AUsPRO(fpr_limit=OFFICIAL)
        quiet(m.update, p, d)
        merged = m if merged is None else merged.merge(m)
    streamed = rm.AUsPRO(fpr_limit=OFFICIAL)
    for p, d in parts:
        quiet(streamed.update, p, d)
    for metric in (one, merged, streamed):
        values = quiet(metric.compute)
        assert all(same(a, b) for a, b in zip(values, whole)), (values, whole)
    fpr, spro = quiet(F.spro_curve, preds, defects)
    mf, ms = quiet(merged.curve)
    assert np.array_equal(fpr, mf, equal_nan=True) and np.array_equal(spro, ms, equal_nan=True)


def test_a_worked_example():
    # image 0: background 0.9 and 0.2; a 2-pixel defect (0.4, 0.1) saturated by 1 pixel (relative 0.5),
    # and a 3-pixel absolute-threshold defect (0.4, 0.1, 0.9 overlapping the first) needing 2 pixels.
    maps = np.array([[[0.9, 0.4, 0.1], [0.2, 0.6, 0.6]]])
    d1 = (np.array([[0, 1, 1], [0, 0, 0]]), 0.5, True)
    d2 = (np.array([[0, 1, 1], [0, 1, 0]]), 2, False)
    # background: 0.9, 0.2, 0.6 (3 pixels). Crossing 0.9: fpr 1/3. 0.6: d2 gets 1/2, fpr 2/3.
    # 0.4: d1 full, d2 full. 0.2: fpr 1.
    fpr, spro = F.spro_curve(maps, [[d1, d2]])
    assert fpr.tolist() == [0.0, 1 / 3, 2 / 3, 2 / 3, 1.0]
    assert spro.tolist() == [0.0, 0.0, 0.25, 1.0, 1.0]
    expected = (Fraction(1, 3) * Fraction(1, 8) + Fraction(1, 3) * 1) / 1
    assert close(F.au_spro(maps, [[d1, d2]], fpr_limit=1.0), expected)
    # at 0.5 the curve is at 0.25 + (1 - 0.25) * 0 ... the segment (1/3, 0) -> (2/3, 0.25) is cut at 0.5
    assert close(F.au_spro(maps, [[d1, d2]], fpr_limit=0.5), naive.au_spro(maps, [[d1, d2]], 0.5))
    assert F.au_spro(maps, [[d1, d2]], fpr_limit=(0.5, 1.0)) == [F.au_spro(maps, [[d1, d2]], fpr_limit=0.5),
                                                               F.au_spro(maps, [[d1, d2]], fpr_limit=1.0)]


def test_ties_at_the_saturation_boundary_are_crossed_together():
    # 4 defect pixels, S = 2: three tie at the top. Crossing them gives min(3, 2) / 2 = 1 at once.
    maps = np.array([[[0.5, 0.5, 0.5, 0.1, 0.3]]])
    defect = (np.array([[1, 1, 1, 1, 0]]), 2, False)
    fpr, spro = F.spro_curve(maps, [[defect]])
    assert fpr.tolist() == [0.0, 0.0, 1.0]
    assert spro.tolist() == [0.0, 1.0, 1.0]


def test_relative_saturation_uses_the_float64_product():
    # floor(0.7 * 10) = 7 in float64 (0.7 * 10 == 7.0), although the binary 0.7 is below 7/10
    assert spro_module.saturation_area(10, 0.7, True) == 7
    assert spro_module.saturation_area(100, 0.29, True) == 28  # 0.29 * 100 = 28.999999999999996
    assert spro_module.saturation_area(5, 9, False) == 5 and spro_module.saturation_area(5, 3, False) == 3


def test_zero_saturation_area_counts_one_with_a_warning():
    maps = np.array([[[0.9, 0.1, 0.5]]])
    zero = (np.array([[0, 1, 0]]), 0.5, True)  # floor(0.5 * 1) = 0
    with pytest.warns(rm.UndefinedMetricWarning, match="saturation area is 0"):
        fpr, spro = F.spro_curve(maps, [[zero]])
    assert spro.tolist() == [1.0, 1.0, 1.0] and fpr.tolist() == [0.0, 0.5, 1.0]
    with pytest.warns(rm.UndefinedMetricWarning, match="saturation area is 0"):
        # the second defect's only pixel (0.1) is crossed after every background pixel: 1/2 throughout
        assert F.au_spro(maps, [[zero, (np.array([[0, 1, 0]]), 1, False)]], fpr_limit=1.0) == 0.5


def test_defect_free_images_only_add_background():
    maps = np.array([[[0.9, 0.1]], [[0.5, 0.2]]])
    d = (np.array([[1, 0]]), 1.0, True)
    fpr, spro = F.spro_curve(maps, [[d], []])
    assert fpr.tolist() == [0.0, 0.0, 1 / 3, 2 / 3, 1.0]
    assert spro.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0]


@pytest.mark.parametrize("defects, reason", [
    ([[], []], "no defect"),
    ([[(np.ones((1, 2)), 1.0, True)], [(np.ones((1, 2)), 1, False)]], "no defect-free pixel"),
])
def test_undefined_cases_are_nan_with_the_reason(defects, reason):
    maps = np.array([[[0.9, 0.1]], [[0.5, 0.2]]])
    with pytest.warns(rm.UndefinedMetricWarning, match=reason):
        assert math.isnan(F.au_spro(maps, defects))
    with pytest.warns(rm.UndefinedMetricWarning, match=reason):
        assert all(math.isnan(v) for v in F.au_spro(maps, defects, fpr_limit=OFFICIAL))
    with pytest.warns(rm.UndefinedMetricWarning, match=reason):
        fpr, spro = F.spro_curve(maps, defects)
    assert np.isnan(spro).all() if reason == "no defect" else np.isnan(fpr).all()
    metric = rm.AUsPRO()
    with pytest.warns(rm.UndefinedMetricWarning, match="no image"):
        assert math.isnan(metric.compute())


@pytest.mark.parametrize("call, error, match", [
    (lambda: F.au_spro(np.zeros((1, 2, 2)), [[(np.ones((2, 3)), 1.0, True)]]), ValueError,
     r"defects\[0\]\[0\]: expected a mask of the image's shape \(2, 2\), received shape \(2, 3\)"),
    (lambda: F.au_spro(np.zeros((1, 2, 2)), [[(np.zeros((2, 2)), 1.0, True)]]), ValueError, "empty mask"),
    (lambda: F.au_spro(np.zeros((1, 2, 2)), [[(np.full((2, 2), 255), 1.0, True)]]), ValueError, "> 0"),
    (lambda: F.au_spro(np.zeros((1, 2, 2)), [[(np.ones((2, 2)), 1.5, True)]]), ValueError,
     r"relative saturation_threshold in \(0, 1\], received 1.5"),
    (lambda: F.au_spro(np.zeros((1, 2, 2)), [[(np.ones((2, 2)), 0.0, True)]]), ValueError, r"\(0, 1\]"),
    (lambda: F.au_spro(np.zeros((1, 2, 2)), [[(np.ones((2, 2)), float("nan"), True)]]), ValueError, "NaN"),
    (lambda: F.au_spro(np.zeros((1, 2, 2)), [[(np.ones((2, 2)), 2.5, False)]]), TypeError, "as an int"),
    (lambda: F.au_spro(np.zeros((1, 2, 2)), [[(np.ones((2, 2)), -1, False)]]), ValueError, ">= 0, received -1"),
    (lambda: F.au_spro(np.zeros((1, 2, 2)), [[(np.ones((2, 2)), 1, "yes")]]), TypeError, "True or False"),
    (lambda: F.au_spro(np.zeros((1, 2, 2)), [[(np.ones((2, 2)), 1)]]), TypeError, "tuple, received tuple of length 2"),
    (lambda: F.au_spro(np.zeros((2, 2, 2)), [[]]), ValueError, r"one list of defects per image \(2\), received 1"),
    (lambda: F.au_spro(np.zeros((1, 2, 2)), None), TypeError, "defects: expected a list"),
    (lambda: F.au_spro(np.zeros((1, 2, 2)), [None]), TypeError, r"defects\[0\]: expected"),
    (lambda: F.au_spro(np.zeros((2, 2)), [[]]), ValueError, r"preds: expected anomaly maps of shape \(B, H, W\)"),
    (lambda: F.au_spro(np.full((1, 1, 2), np.nan), [[(np.ones((1, 2)), 1.0, True)]]), ValueError, "NaN"),
    (lambda: F.au_spro(np.zeros((1, 1, 2)), [[]], fpr_limit=0.0), ValueError, r"fpr_limit: expected numbers in \(0, 1\]"),
    (lambda: F.au_spro(np.zeros((1, 1, 2)), [[]], fpr_limit=[]), ValueError, "fpr_limit: expected"),
    (lambda: rm.AUsPRO(fpr_limit=[0.3, 2.0]), ValueError, "fpr_limit"),
    (lambda: F.spro_curve(np.zeros((1, 1, 2)), [[]], thresholds=[0.5, np.nan]), ValueError, "thresholds: .*NaN"),
    (lambda: F.spro_curve(np.zeros((1, 1, 2)), [[]], thresholds=[]), ValueError, "thresholds: expected a non-empty"),
])
def test_bad_inputs_name_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_a_failed_update_leaves_the_state_unchanged():
    metric = rm.AUsPRO(fpr_limit=1.0)
    metric.update(np.array([[[0.9, 0.1]]]), [[(np.array([[1, 0]]), 1.0, True)]])
    with pytest.raises(ValueError):
        metric.update(np.array([[[np.nan, 0.1]]]), [[(np.array([[1, 0]]), 1.0, True)]])
    assert metric.compute() == 1.0


def test_merging_other_parameters_is_refused():
    with pytest.raises(ValueError, match="same parameters"):
        rm.AUsPRO(fpr_limit=0.3).merge(rm.AUsPRO(fpr_limit=0.05))


def test_defects_config_reader_and_channels(tmp_path):
    from PIL import Image

    entries = [
        {"defect_name": "missing_part", "pixel_value": 255, "saturation_threshold": 1.0, "relative_saturation": True},
        {"defect_name": "extra_part", "pixel_value": 7, "saturation_threshold": 3, "relative_saturation": False},
    ]
    path = tmp_path / "defects_config.json"
    path.write_text(json.dumps(entries))
    config = F.read_defects_config(path)
    assert sorted(config) == [7, 255]
    assert config[7] == spro_module.DefectType("extra_part", 7, 3, False)
    assert config[255].saturation_threshold == 1.0 and config[255].relative_saturation is True
    a = np.zeros((2, 3), np.uint8)
    a[0, :2] = 255
    b = np.zeros((2, 3), np.uint8)
    b[1, :] = 7
    Image.fromarray(a).save(tmp_path / "000.png")
    Image.fromarray(b).save(tmp_path / "001.png")
    defects = F.defects_from_channels([tmp_path / "000.png", str(tmp_path / "001.png")], config=config)
    assert [(m.tolist(), t, r) for m, t, r in defects] == [
        ([[True, True, False], [False, False, False]], 1.0, True),
        ([[False, False, False], [True, True, True]], 3, False)]
    maps = np.arange(6, dtype=np.float64).reshape(1, 2, 3)
    assert F.au_spro(maps, [defects], fpr_limit=1.0) == naive.au_spro(maps, [defects], 1.0)
    with pytest.raises(ValueError, match="pixel value listed in the defects config"):
        F.defects_from_channels([np.array([[0, 9]])], config=config)
    with pytest.raises(ValueError, match="exactly one positive pixel value"):
        F.defects_from_channels([np.array([[7, 255]])], config=config)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"defect_name": "x", "pixel_value": 300, "saturation_threshold": 1,
                                "relative_saturation": False}]))
    with pytest.raises(ValueError, match="pixel_value to be an int in 1..255, received 300"):
        F.read_defects_config(bad)
    bad.write_text(json.dumps([{"defect_name": "x", "pixel_value": 3}]))
    with pytest.raises(ValueError, match="keys defect_name"):
        F.read_defects_config(bad)


def test_official_limits_at_once_equal_each_limit():
    rng = np.random.default_rng(20261128)
    maps = rng.random((3, 6, 7))
    masks = rng.random((3, 6, 7)) < 0.3
    defects = [[(masks[0], 0.5, True), (masks[0] | masks[1], 10, False)], [], [(masks[2], 1.0, True)]]
    values = F.au_spro(maps, defects, fpr_limit=OFFICIAL)
    for limit, value in zip(OFFICIAL, values):
        assert same(value, F.au_spro(maps, defects, fpr_limit=limit))
        assert close(value, naive.au_spro(maps, defects, limit))
    metric = rm.AUsPRO(fpr_limit=OFFICIAL)
    assert metric(maps, defects) == values and metric.fpr_limit == tuple(OFFICIAL)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert metric.compute() == values


@pytest.mark.parametrize("chunk", [1, 2, 5])
def test_curves_and_areas_longer_than_one_chunk_of_groups(chunk, monkeypatch):
    """The group walk hands out chunks of CHUNK groups in reused buffers (65 536 groups: maps of
    a few hundred thousand distinct scores); a tiny CHUNK makes every chunk boundary show."""
    from refmetrics.functional import _regions

    monkeypatch.setattr(_regions, "CHUNK", chunk)
    rng = np.random.default_rng(20261129)
    maps = np.round(rng.random((3, 4, 5)) * 12) / 12
    masks = rng.random((3, 4, 5)) < 0.4
    defects = [[(masks[0], 0.5, True), (masks[0] | masks[1], 3, False)], [], [(masks[2] | ~masks[1], 1.0, True)]]
    maps[0][masks[0]] += 0.2
    fpr, spro = F.spro_curve(maps, defects)
    points = naive.spro_points(maps, defects)
    assert len(fpr) == len(points) > 3 * chunk
    assert all(close(x, ex) and close(y, ey) for x, y, (ex, ey) in zip(fpr.tolist(), spro.tolist(), points))
    values = F.au_spro(maps, defects, fpr_limit=OFFICIAL)
    for limit, value in zip(OFFICIAL, values):
        assert close(value, naive.au_spro(maps, defects, limit)), limit
