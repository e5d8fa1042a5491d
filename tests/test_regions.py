"""Region metrics (label_regions, pro_curve, AUPRO, PRO) against exact oracles."""

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

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])




@st.composite
def maps_and_masks(draw, max_side=7, volumes=False):
    spatial_dims = 3 if volumes else 2
    b = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(1, max_side if not volumes else 3)) for _ in range(spatial_dims))
    n = b * int(np.prod(shape))
    density = draw(st.sampled_from([0.0, 0.15, 0.4, 0.8, 1.0]))
    masks = np.array(draw(st.lists(st.floats(0, 1), min_size=n, max_size=n))) < density
    kind = draw(st.sampled_from(["continuous", "ties", "binary", "float32"]))
    if kind == "ties":
        values = draw(st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0]), min_size=n, max_size=n))
    elif kind == "binary":
        values = draw(st.lists(st.sampled_from([0.0, 1.0]), min_size=n, max_size=n))
    else:
        values = draw(st.lists(st.floats(-5, 5), min_size=n, max_size=n))
    preds = np.array(values, np.float32 if kind == "float32" else np.float64)
    layout = draw(st.sampled_from(["plain", "channel"]))
    masks = masks.reshape((b,) + shape)
    preds = preds.reshape((b, 1) + shape if layout == "channel" else (b,) + shape)
    return preds, masks.astype(draw(st.sampled_from([bool, np.uint8, np.float32]))), spatial_dims


LIMITS = st.sampled_from([1.0, 0.3, 0.05, 0.5, 1e-3, 0.999])


@SETTINGS
@given(maps_and_masks(), LIMITS, st.sampled_from([1, 2, None]))
def test_aupro_and_curve_match_oracle(data, limit, connectivity):
    preds, masks, sd = data
    got = quiet(F.aupro, preds, masks, fpr_limit=limit, connectivity=connectivity)
    assert close(got, naive.aupro(preds, masks, limit, connectivity))
    fpr, pro = quiet(F.pro_curve, preds, masks, connectivity=connectivity)
    points = naive.pro_points(preds, masks, connectivity)
    assert len(fpr) == len(points)
    for (x, y), (ex, ey) in zip(zip(fpr.tolist(), pro.tolist()), points):
        assert close(x, ex) and close(y, ey)


@SETTINGS
@given(maps_and_masks(volumes=True), LIMITS, st.sampled_from([1, 2, 3, None]))
def test_volumes_match_oracle(data, limit, connectivity):
    preds, masks, sd = data
    got = quiet(F.aupro, preds, masks, fpr_limit=limit, connectivity=connectivity, spatial_dims=3)
    assert close(got, naive.aupro(preds, masks, limit, connectivity, spatial_dims=3))
    assert close(quiet(F.pro_score, preds, masks, threshold=0.25, connectivity=connectivity, spatial_dims=3),
                 naive.pro_score(preds, masks, 0.25, connectivity, spatial_dims=3))


@SETTINGS
@given(maps_and_masks(), st.sampled_from([0.0, 0.25, 0.5, -1.0]), st.sampled_from([1, 2, None]))
def test_pro_score_matches_oracle(data, threshold, connectivity):
    preds, masks, _ = data
    got = quiet(F.pro_score, preds, masks, threshold=threshold, connectivity=connectivity)
    assert close(got, naive.pro_score(preds, masks, threshold, connectivity))


@SETTINGS
@given(maps_and_masks(), LIMITS, st.integers(2, 9))
def test_sampled_thresholds_match_oracle(data, limit, num_thresholds):
    preds, masks, _ = data
    got = quiet(F.aupro, preds, masks, fpr_limit=limit, num_thresholds=num_thresholds)
    assert close(got, naive.aupro(preds, masks, limit, num_thresholds=num_thresholds))


def test_diagonal_touching_regions():
    mask = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    assert F.label_regions(mask, return_num=True)[1] == 1
    assert F.label_regions(mask, connectivity=1, return_num=True)[1] == 3
    preds = np.array([[0.9, 0.1, 0.2], [0.3, 0.4, 0.5], [0.6, 0.7, 0.35]])
    for c in (1, 2):
        assert close(F.aupro(preds, mask, connectivity=c), naive.aupro(preds, mask, 0.3, c))
        assert close(F.pro_score(preds, mask, threshold=0.38, connectivity=c),
                     naive.pro_score(preds, mask, 0.38, c))
    # a 2-pixel and a 1-pixel region touching at a corner: one region of 3 under full connectivity
    mask = np.array([[1, 1, 0], [0, 0, 1], [0, 0, 0]])
    assert F.label_regions(mask, return_num=True)[1] == 1
    assert F.label_regions(mask, connectivity=1, return_num=True)[1] == 2
    full, face = F.aupro(preds, mask, fpr_limit=1.0), F.aupro(preds, mask, fpr_limit=1.0, connectivity=1)
    assert full != face
    assert close(full, naive.aupro(preds, mask, 1.0, 2)) and close(face, naive.aupro(preds, mask, 1.0, 1))


def test_border_and_one_pixel_regions():
    mask = np.zeros((6, 6), bool)
    mask[0, :] = True  # a border row
    mask[5, 5] = True  # a one-pixel corner region
    mask[3, 0] = True  # a one-pixel border region
    rng = np.random.default_rng(20261125)
    preds = rng.random((6, 6))
    assert F.label_regions(mask, return_num=True)[1] == 3
    for limit in (0.3, 1.0):
        assert close(F.aupro(preds, mask, fpr_limit=limit), naive.aupro(preds, mask, limit))


def test_long_snake_region():
    side = 101
    mask = np.zeros((side, side), bool)
    mask[::2, :] = True  # rows joined alternately at the right and left ends: one 1-pixel-wide path
    mask[1::4, -1] = True
    mask[3::4, 0] = True
    labels, num = F.label_regions(mask, connectivity=1, return_num=True)
    assert num == 1 and mask.sum() > 5000
    rng = np.random.default_rng(20261126)
    preds = np.round(rng.random((side, side)) * 40) / 40 + 0.3 * mask
    assert close(F.aupro(preds, mask), naive.aupro(preds, mask, 0.3))
    assert close(F.pro_score(preds, mask, threshold=0.6), naive.pro_score(preds, mask, 0.6))


def test_images_without_defects_and_undefined_cases():
    preds = np.array([[[0.1, 0.9], [0.2, 0.3]], [[0.8, 0.7], [0.6, 0.5]]])
    masks = np.array([[[0, 1], [0, 0]], [[0, 0], [0, 0]]])  # second image defect-free
    assert close(F.aupro(preds, masks), naive.aupro(preds, masks, 0.3))
    with pytest.warns(rm.UndefinedMetricWarning, match="no defect region"):
        assert math.isnan(F.aupro(preds, np.zeros_like(masks)))
    with pytest.warns(rm.UndefinedMetricWarning, match="no background pixel"):
        assert math.isnan(F.aupro(preds, np.ones_like(masks)))
    with pytest.warns(rm.UndefinedMetricWarning, match="PRO is undefined"):
        assert math.isnan(F.pro_score(preds, np.zeros_like(masks)))
    assert F.pro_score(preds, np.ones_like(masks), threshold=0.55) == 0.5  # one region per image
    with pytest.warns(rm.UndefinedMetricWarning):
        fpr, pro = F.pro_curve(preds, np.zeros_like(masks))
    assert np.isnan(pro[1:]).all() and fpr[-1] == 1.0


def test_float64_scores_closer_than_float32_stay_distinct():
    a = 0.3
    preds = np.array([[a, np.nextafter(a, 1), a, np.nextafter(a, 1)]])
    masks = np.array([[0, 1, 0, 1]], bool)  # regions: the two single pixels
    assert F.aupro(preds, masks, fpr_limit=1.0) == 1.0
    assert F.aupro(preds.astype(np.float32), masks, fpr_limit=1.0) == 0.5


def test_fpr_limit_anywhere_in_the_unit_interval():
    rng = np.random.default_rng(20261127)
    preds = np.round(rng.random((4, 9, 9)) * 30) / 30
    masks = rng.random((4, 9, 9)) < 0.2
    for limit in (1e-9, 0.01, 0.1, 0.3, 0.7, 1.0, float(np.nextafter(1.0, 0))):
        assert close(F.aupro(preds, masks, fpr_limit=limit), naive.aupro(preds, masks, limit))
    for bad in (0.0, -0.1, 1.5, float("nan")):
        with pytest.raises((ValueError, TypeError), match="fpr_limit"):
            F.aupro(preds, masks, fpr_limit=bad)


@st.composite
def image_batches(draw):
    preds, masks, _ = draw(maps_and_masks())
    b = preds.shape[0]
    cuts = sorted(draw(st.lists(st.integers(1, max(1, b - 1)), max_size=2))) if b > 1 else []
    bounds = [0] + [c for c in cuts if 0 < c < b] + [b]
    batches = [(preds[i:j], masks[i:j]) for i, j in zip(bounds, bounds[1:]) if j > i]
    return preds, masks, batches, draw(st.permutations(range(b)))



@SETTINGS
@given(image_batches(), LIMITS, st.sampled_from([None, 4]))
def test_batch_split_merge_and_image_order_are_bit_identical(data, limit, num_thresholds):
    preds, masks, batches, perm = data
    expected = quiet(F.aupro, preds, masks, fpr_limit=limit, num_thresholds=num_thresholds)
    one = rm.AUPRO(fpr_limit=limit, num_thresholds=num_thresholds)
    parts = []
    for p, m in batches:
        one.update(p, m)
        part = rm.AUPRO(fpr_limit=limit, num_thresholds=num_thresholds)
        part.update(p, m)
        parts.append(part)
    assert same(quiet(one.compute), expected)
    merged = parts[-1]
    for part in reversed(parts[:-1]):
        merged.merge(part)
    assert same(quiet(merged.compute), expected)
    perm = np.asarray(perm)
    assert same(quiet(F.aupro, preds[perm], masks[perm], fpr_limit=limit, num_thresholds=num_thresholds),
                expected)
    pro_one, pro_merged = rm.PRO(threshold=0.25), rm.PRO(threshold=0.25)
    for p, m in reversed(batches):
        pro_one.update(p, m)
    for p, m in batches:
        pro_merged.merge(rm.PRO(threshold=0.25).merge(_pro_of(p, m)))
    assert same(quiet(pro_one.compute), quiet(F.pro_score, preds, masks, threshold=0.25))
    assert same(quiet(pro_merged.compute), quiet(pro_one.compute))


def _pro_of(p, m):
    metric = rm.PRO(threshold=0.25)
    metric.update(p, m)
    return metric


def test_mixed_float32_and_float64_batches():
    rng = np.random.default_rng(20261128)
    p = rng.random((4, 8, 8))
    m = rng.random((4, 8, 8)) < 0.25
    a = rm.AUPRO()
    a.update(p[:2].astype(np.float32), m[:2])
    a.update(p[2:], m[2:])
    both = np.concatenate([p[:2].astype(np.float32).astype(np.float64), p[2:]])
    assert a.compute() == F.aupro(both, m)


def test_errors():
    with pytest.raises(ValueError, match=r"target: expected a mask of shape \(H,W\), \(B,H,W\) or \(B,1,H,W\)"):
        F.aupro(np.zeros((2, 2, 2, 2)), np.zeros((2, 2, 2, 2)))
    with pytest.raises(ValueError, match=r"target: expected binary labels.*e.g. 255"):
        F.aupro(np.zeros((2, 2)), np.array([[0, 255], [0, 0]]))
    with pytest.raises(ValueError, match="NaN"):
        F.aupro(np.array([[np.nan, 0.1]]), np.array([[1, 0]]))
    with pytest.raises(ValueError, match=r"connectivity: expected None \(full\) or an int from 1 to 2 for "
                                         r"spatial_dims=2: 1 \(4 neighbours\) or 2 \(8 neighbours\), received 8"):
        F.aupro(np.zeros((2, 2)), np.zeros((2, 2)), connectivity=8)
    with pytest.raises(ValueError, match="spatial_dims: expected 2 or 3"):
        rm.AUPRO(spatial_dims=4)
    with pytest.raises(ValueError, match="num_thresholds: expected None or an int"):
        F.aupro(np.zeros((2, 2)), np.zeros((2, 2)), num_thresholds=1)
    with pytest.raises(ValueError, match="finite scores"):
        F.aupro(np.array([[np.inf, 0.1]]), np.array([[1, 0]]), num_thresholds=5)
    assert F.aupro(np.array([[np.inf, 0.1, -np.inf]]), np.array([[1, 0, 0]])) == 1.0


def test_pro_figure(tmp_path):
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(20261129)
    metric = rm.AUPRO()
    metric.update(rng.random((3, 16, 16)), rng.random((3, 16, 16)) < 0.1)
    fig, title = metric.generate_figure()
    ax = fig.axes[0]
    assert title == "PRO" and f"{metric.compute():.4f}" in ax.get_title()
    x = ax.lines[0].get_xdata()
    assert x[0] == 0.0 and x[-1] == pytest.approx(0.3, abs=0)
    fig.savefig(tmp_path / "pro.png")


def test_cut_and_collapsed_groups_give_the_full_curve_area():
    """The functional AUPRO keeps only the pixels at or above a cut, and collapses
    background-only runs; both must give what the full, uncut curve gives."""
    from refmetrics.functional import _regions as G

    rng = np.random.default_rng(20261130)
    preds = np.round(rng.standard_normal((6, 40, 40)) * 20) / 20  # many ties
    masks = rng.random((6, 40, 40)) < 0.05
    masks[0] = False
    for limit in (0.001, 0.05, 0.3, 0.8):
        full = G.RegionScores()
        full.add(G.partition_regions(G.intake_regions(preds, masks, 2, "cpu"), 2))
        n_bg, k = full.n_bg, full.n_regions
        uncut = G.aupro_from_groups(G.exact_region_groups(*full.sorted()), n_bg, k, limit)
        assert F.aupro(preds, masks, fpr_limit=limit) == pytest.approx(uncut, abs=1e-15)
        metric = rm.AUPRO(fpr_limit=limit)
        metric.update(preds[:3], masks[:3])
        metric.update(preds[3:], masks[3:])
        assert metric.compute() == F.aupro(preds, masks, fpr_limit=limit)
        assert close(uncut, naive.aupro(preds, masks, limit))


def test_failed_update_leaves_state_unchanged():
    m = np.zeros((1, 4, 4), np.uint8)
    m[0, 1:3, 1:3] = 1
    bad = np.full((1, 4, 4), 0.9)
    bad[0, 0, 0] = np.nan
    for metric in (rm.PRO(), rm.AUPRO()):
        with pytest.raises(ValueError, match="NaN"):
            metric.update(bad, m)
        metric.update(np.zeros((1, 4, 4)), m)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert metric.compute() == (0.0 if isinstance(metric, rm.PRO) else F.aupro(np.zeros((1, 4, 4)), m))


def test_sampled_thresholds_over_the_whole_float64_range():
    p = np.array([[-1e308, 0.0, 1e308, 5e307, -5e307, 1.0]])
    t = np.array([[1, 0, 0, 1, 0, 1]])
    thr = (-1e308 * (1 - np.arange(5) / 4) + 1e308 * (np.arange(5) / 4))[::-1].tolist()
    fpr, pro = F.pro_curve(p, t, num_thresholds=5)
    points = naive.pro_points(p, t, thresholds_desc=thr)
    assert len(fpr) == len(points)
    assert all(close(x, ex) and close(y, ey) for x, y, (ex, ey) in zip(fpr.tolist(), pro.tolist(), points))
    assert close(F.aupro(p, t, fpr_limit=1.0, num_thresholds=5), Fraction(7, 18))
    with pytest.raises(ValueError, match="needs finite scores"):
        rm.AUPRO(num_thresholds=5).update(np.array([[np.inf, 0.0]]), np.array([[1, 0]]))


def test_empty_metrics_and_connectivity_types():
    for metric in (rm.AUPRO(), rm.AUPRO(num_thresholds=4)):
        with pytest.warns(rm.UndefinedMetricWarning, match="no samples"):
            fpr, pro = metric.curve()
        assert fpr.tolist() == [0.0] and pro.tolist() == [0.0]
        with pytest.warns(rm.UndefinedMetricWarning):
            assert math.isnan(metric.compute())
    for bad in (np.True_, True, 1.0, 2.0, 0, 8):
        with pytest.raises(ValueError, match="connectivity"):
            rm.AUPRO(connectivity=bad)
    assert rm.PRO(connectivity=np.int64(1)).connectivity == 1


def test_collapsed_groups_do_not_depend_on_the_buffer_size(monkeypatch):
    """Background-only runs fold into one group also across the chunks the sweep writes (a run
    that straddles a full buffer is not split): the groups, and so the AUPRO, are those the CUDA
    backend forms in one piece, whatever the buffer size."""
    from refmetrics.functional import _regions as G

    rng = np.random.default_rng(20261125)
    maps = np.round(rng.standard_normal((3, 9, 9)) * 8).astype(np.float32)
    masks = np.zeros((3, 9, 9), bool)
    masks[0, 2:5, 2:5] = masks[2, 6:, :3] = True
    maps[masks] += 3
    state = G.RegionScores()
    state.add(G.partition_regions(G.intake_regions(maps, masks, 2, "cpu"), 2))
    bg, rkeys, rsizes = state.sorted()

    def groups():
        chunks = [[a.copy() for a in c] for c in G.exact_region_groups(bg, rkeys, rsizes, collapse=True)]
        return [np.concatenate([c[i] for c in chunks]).tolist() for i in range(3)]

    reference = groups()
    assert len(reference[0]) < bg.size  # background-only runs were folded
    for chunk in (1, 2, 3, 7):
        monkeypatch.setattr(G, "CHUNK", chunk)
        assert groups() == reference, chunk
    assert close(F.aupro(maps, masks, fpr_limit=1.0), naive.aupro(maps, masks, 1.0))


def test_pro_curve_spanning_several_chunks_of_groups(monkeypatch):
    # the group walk hands out chunks of CHUNK groups in reused buffers; a curve made of several chunks
    # must keep each chunk's points (it once kept the last chunk's in every place, past 65,536 groups)
    import refmetrics.functional._regions as G

    rng = np.random.default_rng(5)
    maps = rng.random((2, 5, 6))
    masks = np.zeros((2, 5, 6), np.uint8)
    masks[0, 1:3, 1:4] = 1
    masks[1, 3:, 4:] = 1
    monkeypatch.setattr(G, "CHUNK", 7)
    fpr, pro = F.pro_curve(maps, masks)
    points = naive.pro_points(maps, masks)
    assert fpr.size == len(points) > 3 * 7
    assert all(close(x, px) and close(y, py) for x, y, (px, py) in zip(fpr, pro, points))
