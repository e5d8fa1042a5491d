"""refmetrics.PixelState: the pooled pixel state that evaluate builds, as users build it."""

import numpy as np
import pytest

import refmetrics as rm
from refmetrics import functional as F
from refmetrics.kernels.cpu.keys import decode_keys

from . import naive
from .checks import close, same

_rng = np.random.default_rng(20261128)


def _images(n=5, shape=(6, 7), dtype=np.float32):
    maps = (_rng.integers(0, 16, (n, *shape)) / 15.0).astype(dtype)  # ties within and across images
    masks = np.zeros((n, *shape), np.uint8)
    masks[1, 1:3, 2:5] = 1
    masks[3, 4:, :2] = 255  # any nonzero value is a defect pixel
    masks[3, 0, 6] = 1
    return maps, masks


def _state(maps, masks, order):
    state = rm.PixelState(maps.size, maps.dtype)
    for i in order:
        state.add(maps[i], masks[i])
    return state


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_metrics_equal_the_functions_in_any_image_order(dtype):
    maps, masks = _images(dtype=dtype)
    binary = (masks != 0).astype(np.uint8)
    expected = (F.auroc(maps, binary), F.average_precision(maps, binary), F.f1_max(maps, binary),
                F.aupro(maps, binary, fpr_limit=0.3))
    assert close(expected[0], naive.auroc(maps, binary)) and close(expected[3], naive.aupro(maps, binary))
    for order in ([0, 1, 2, 3, 4], [4, 2, 0, 3, 1]):
        state = _state(maps, masks, order)
        state.finish()
        got = (state.auroc(), state.average_precision(), state.f1_max(), state.aupro(0.3))
        assert all(same(a, b) for a, b in zip(got, expected)), (order, got, expected)


def test_per_image_offsets_and_keys():
    maps, masks = _images()
    state = _state(maps, masks, range(5))
    per_image = state.pixels_per_image
    assert per_image.tolist() == [[42 - int(np.count_nonzero(m)), int(np.count_nonzero(m))] for m in masks]
    assert state.offsets[-1].tolist() == [state.n_bg, state.n_defect] and state.n_images == 5
    assert state.n_regions == 3  # one region in image 1, two in image 3 (8-connected)
    for i in (1, 3, -1):
        bg, defect = state.image_keys(i)
        m = masks[i].reshape(-1) != 0
        assert sorted(decode_keys(bg).tolist()) == sorted(maps[i].reshape(-1)[~m].astype(np.float64).tolist())
        assert sorted(decode_keys(defect).tolist()) == sorted(maps[i].reshape(-1)[m].astype(np.float64).tolist())


def test_curves_are_the_exact_points():
    maps, masks = _images()
    binary = (masks != 0).astype(np.uint8)
    state = _state(maps, masks, range(5))
    state.finish()
    fpr, tpr, _ = (np.concatenate(c) for c in zip(*state.roc_pr_points()))
    ref_fpr, ref_tpr, _ = F.roc_curve(maps, binary)
    assert np.array_equal(fpr, ref_fpr[1:]) and np.array_equal(tpr, ref_tpr[1:])
    pro_fpr, pro = (np.concatenate(c) for c in zip(*state.pro_points()))
    points = naive.pro_points(maps, binary)[1:]
    assert len(points) == pro.size
    assert all(close(x, px) and close(y, py) for x, y, (px, py) in zip(pro_fpr, pro, points))


def test_undefined_metrics_warn_as_the_functions_do():
    maps, masks = _images()
    state = _state(maps, np.zeros_like(masks), range(5))
    state.finish()
    with pytest.warns(rm.UndefinedMetricWarning):
        assert np.isnan(state.auroc())
    with pytest.warns(rm.UndefinedMetricWarning):
        assert np.isnan(state.aupro())


def test_misuse_is_a_clear_error():
    maps, masks = _images()
    with pytest.raises(ValueError, match="dtype: expected float32 or float64, received int32"):
        rm.PixelState(10, np.int32)
    with pytest.raises(TypeError, match="n_pixels: expected an integer, received 1.5"):
        rm.PixelState(1.5)
    state = rm.PixelState(50)
    with pytest.raises(ValueError, match="mask: expected the shape of scores"):
        state.add(maps[0], masks[0][:, :3])
    state.add(maps[1], masks[1])
    with pytest.raises(ValueError, match="scores: the state holds 50 pixels, 8 of them free; received 42 more"):
        state.add(maps[2])
    with pytest.raises(ValueError, match="map.tiff: expected scores without NaN, received 1 NaN values"):
        rm.PixelState(4).add(np.array([0.1, np.nan, 0.2, 0.3]), name="map.tiff")
    with pytest.raises(RuntimeError, match="call finish"):
        state.auroc()
    state.finish()
    with pytest.raises(RuntimeError, match="finished"):
        state.add(maps[1])
    with pytest.raises(RuntimeError, match="per-image keys are gone"):
        state.image_keys(0)
    assert same(state.auroc(), F.auroc(maps[1], masks[1]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_counts_above_and_region_overlap_against_the_oracle(dtype):
    """``counts_above`` (strict) and ``region_overlap_at_least`` against counts over the arrays and the
    oracle's regions: per-threshold sums of 1/size, exact to 1e-12 (and within 2 ulp of the exact sum),
    any weight exact up to its own rounding, in any image order."""
    from fractions import Fraction

    maps, masks = _images(dtype=dtype)
    masks[0, 0, 0] = masks[0, 5, 6] = masks[2, 2:5, 3] = 1  # more regions: sizes 1 and 3 too
    scores = [float(s) for s in maps.reshape(-1)]
    regions = [r for image, _ in naive.regions_of(masks != 0) for r in image]
    defect = (masks != 0).reshape(-1)
    cuts = sorted(set(scores)) + [-np.inf, np.inf, 0.5, 1e-300, float(np.nextafter(np.float32(0.4), 1))]
    thresholds = np.array(cuts[::-1] + cuts[:3])  # any order, repeats
    for order in ([0, 1, 2, 3, 4], [4, 2, 0, 3, 1]):
        state = _state(maps, masks, order)
        state.finish()
        assert state.n_regions == len(regions) == 6
        above = state.counts_above(thresholds)
        for strict in (False, True):
            got = state.region_overlap_at_least(thresholds, strict=strict)
            f32 = state.region_overlap_at_least(thresholds, strict=strict,
                                                weight=lambda s: (1.0 / s).astype(np.float32).astype(np.float64))
            for t, value, weighted, (n_bg, n_defect) in zip(thresholds.tolist(), got, f32, above.tolist()):
                hit = [s > t if strict else s >= t for s in scores]
                exact = sum(Fraction(sum(hit[i] for i in r), len(r)) for r in regions)
                assert close(value, exact) and abs(Fraction(value) - exact) <= 2 * 2.0 ** -52 * exact, (t, value)
                want = sum(Fraction(float(np.float32(1.0 / len(r)))) * sum(hit[i] for i in r) for r in regions)
                assert weighted == float(want), (t, weighted)  # exact weights: the sum rounded once
                if strict:
                    assert n_bg == sum(h and not d for h, d in zip(hit, defect))
                    assert n_defect == sum(h and d for h, d in zip(hit, defect))
        # the PRO at each distinct score is the oracle's PRO curve
        desc = sorted(set(scores), reverse=True)
        pro = state.region_overlap_at_least(desc) / state.n_regions
        assert all(close(p, q) for p, (_, q) in zip(pro, naive.pro_points(maps, masks != 0, thresholds_desc=desc)[1:]))
    assert state.counts_above([np.inf]).tolist() == [[0, 0]]
    with pytest.raises(ValueError, match="weight: expected one finite weight >= 0 per region size"):
        state.region_overlap_at_least([0.5], weight=lambda s: -1.0 / s)
    empty = rm.PixelState(4)
    empty.add(np.ones((2, 2), np.float32))
    empty.finish()
    assert empty.region_overlap_at_least([0.0, -np.inf]).tolist() == [0.0, 0.0]


def test_sorted_keys_after_finish():
    maps, masks = _images()
    state = _state(maps, masks, [3, 1, 0, 4, 2])
    with pytest.raises(RuntimeError, match="call finish"):
        state.sorted_keys()
    state.finish()
    bg, defect = state.sorted_keys()
    m = (masks != 0).reshape(-1)
    assert decode_keys(bg).tolist() == sorted(maps.reshape(-1)[~m].astype(np.float64).tolist())
    assert decode_keys(defect).tolist() == sorted(maps.reshape(-1)[m].astype(np.float64).tolist())
