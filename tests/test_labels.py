"""Region labelling: connectivity as scikit-image defines it, against the oracle's own flood fill."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import refmetrics as rm
from refmetrics import functional as F

from . import naive
from .checks import close, quiet

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_oracle_neighbourhoods_have_the_documented_sizes():
    # scikit-image's label docstring: 4 / 8 neighbours in 2-D; 6 / 18 / 26 in 3-D
    sizes = {(nd, c): len(naive.neighbour_offsets(nd, c)) for nd, c in ((2, 1), (2, 2), (3, 1), (3, 2), (3, 3))}
    assert sizes == {(2, 1): 4, (2, 2): 8, (3, 1): 6, (3, 2): 18, (3, 3): 26}
    assert len(naive.neighbour_offsets(3)) == 26  # None: full


def test_oracle_flood_fill_on_drawn_cases():
    mask = [[1, 0, 1],
            [0, 1, 0],
            [1, 0, 0]]
    assert naive.flood_fill(mask, 1) == ([1, 0, 2, 0, 3, 0, 4, 0, 0], 4)
    assert naive.flood_fill(mask, 2) == ([1, 0, 1, 0, 1, 0, 1, 0, 0], 1)
    snake = [[1, 1, 1],
             [0, 0, 1],
             [1, 1, 1]]
    assert naive.flood_fill(snake, 1)[1] == 1


@st.composite
def masks(draw, spatial_dims):
    b = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(1, 6 if spatial_dims == 2 else 4)) for _ in range(spatial_dims))
    density = draw(st.sampled_from([0.0, 0.3, 0.5, 0.7, 1.0]))
    n = b * int(np.prod(shape))
    values = np.array(draw(st.lists(st.floats(0, 1), min_size=n, max_size=n))) < density
    layout = draw(st.sampled_from(["plain", "channel"]))
    full = (b, 1) + shape if layout == "channel" else (b,) + shape
    return values.reshape(full).astype(draw(st.sampled_from([bool, np.uint8, np.float32])))


def _partition(labels, num):
    flat = labels.reshape(-1)
    return sorted(np.flatnonzero(flat == k).tolist() for k in range(1, num + 1))


@SETTINGS
@given(st.sampled_from([2, 3]).flatmap(lambda sd: st.tuples(st.just(sd), masks(sd))), st.data())
def test_label_regions_agrees_with_the_oracle_flood_fill(drawn, data):
    spatial_dims, mask = drawn
    connectivity = data.draw(st.sampled_from([None] + list(range(1, spatial_dims + 1))))
    labels, num = F.label_regions(mask, connectivity=connectivity, spatial_dims=spatial_dims, return_num=True)
    assert labels.shape == mask.shape and labels.dtype == np.int64
    expected = [r for regions, _ in naive.regions_of(mask, connectivity, spatial_dims) for r in regions]
    assert num == len(expected)
    assert _partition(labels, num) == sorted(sorted(r) for r in expected)  # the same regions, up to renumbering
    # ids are unique across the batch: sample after sample
    per_sample = labels.reshape(labels.shape[0], -1)
    highest = 0
    for row in per_sample:
        ids = row[row > 0]
        if ids.size:
            assert ids.min() == highest + 1
            highest = int(ids.max())


def test_three_dimensional_connectivities():
    volume = np.zeros((2, 2, 2), bool)
    volume[0, 0, 0] = volume[1, 1, 0] = True  # share an edge only
    assert [F.label_regions(volume, connectivity=c, spatial_dims=3, return_num=True)[1]
            for c in (1, 2, 3, None)] == [2, 1, 1, 1]
    volume[1, 1, 0] = False
    volume[1, 1, 1] = True  # share a corner only
    assert [F.label_regions(volume, connectivity=c, spatial_dims=3, return_num=True)[1]
            for c in (1, 2, 3, None)] == [2, 2, 1, 1]


def test_region_metrics_take_the_18_neighbourhood():
    masks = np.zeros((1, 3, 3, 3), np.uint8)
    masks[0, 0, 0, 0] = masks[0, 1, 1, 0] = 1  # share an edge: one region under 18 and 26, two under 6
    masks[0, 2, 2, 1] = masks[0, 2, 2, 2] = masks[0, 2, 1, 2] = 1  # a face-connected region of 3 ...
    # ... whose voxel (2, 2, 1) shares only a corner with (1, 1, 0): 26 joins them, 18 does not.
    # Regions of unequal size, so that each connectivity gives another AUPRO.
    rng = np.random.default_rng(20261203)
    maps = rng.random(masks.shape)
    values = {}
    for c in (1, 2, 3):
        exact = naive.aupro(maps, masks, 1.0, c, spatial_dims=3)
        values[c] = F.aupro(maps, masks, fpr_limit=1.0, connectivity=c, spatial_dims=3)
        assert close(values[c], exact)
        assert close(rm.PRO(connectivity=c, spatial_dims=3)(maps, masks),
                     naive.pro_score(maps, masks, 0.5, c, spatial_dims=3))
        metric = rm.AUPRO(fpr_limit=1.0, connectivity=c, spatial_dims=3)
        metric.update(maps, masks)
        assert metric.compute() == values[c]
    assert [F.label_regions(masks, connectivity=c, spatial_dims=3, return_num=True)[1] for c in (1, 2, 3)] == [3, 2, 1]
    assert len(set(values.values())) == 3
    assert F.aupro(maps, masks, fpr_limit=1.0, spatial_dims=3) == values[3]  # default: full


def test_default_is_full_connectivity_and_2d_is_unchanged():
    assert rm.AUPRO().connectivity == 2 and rm.PRO(spatial_dims=3).connectivity == 3
    assert rm.AUPRO(connectivity=None).merge(rm.AUPRO(connectivity=2)).connectivity == 2
    mask = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    preds = np.array([[0.9, 0.1, 0.2], [0.3, 0.4, 0.5], [0.6, 0.7, 0.35]])
    assert F.label_regions(mask, return_num=True)[1] == F.label_regions(mask, connectivity=2, return_num=True)[1] == 1
    assert F.aupro(preds, mask) == F.aupro(preds, mask, connectivity=2)
    assert F.pro_score(preds, mask, threshold=0.38) == F.pro_score(preds, mask, threshold=0.38, connectivity=2)


@pytest.mark.parametrize("spatial_dims, bad, allowed", [
    (2, 3, r"an int from 1 to 2 for spatial_dims=2: 1 \(4 neighbours\) or 2 \(8 neighbours\)"),
    (2, 0, r"an int from 1 to 2 for spatial_dims=2"),
    (3, 4, r"an int from 1 to 3 for spatial_dims=3: 1 \(6 neighbours\), 2 \(18 neighbours\) or 3 \(26 neighbours\)"),
    (3, True, r"an int from 1 to 3"),
    (3, 1.0, r"an int from 1 to 3"),
    (3, "full", r"an int from 1 to 3"),
])
def test_connectivity_errors_name_the_range_and_the_value(spatial_dims, bad, allowed):
    message = r"connectivity: expected None \(full\) or " + allowed + r".*received " + repr(bad)
    shape = (1,) + (2,) * spatial_dims
    with pytest.raises(ValueError, match=message):
        F.label_regions(np.zeros(shape), connectivity=bad, spatial_dims=spatial_dims)
    with pytest.raises(ValueError, match=message):
        quiet(F.aupro, np.zeros(shape), np.zeros(shape), connectivity=bad, spatial_dims=spatial_dims)
    with pytest.raises(ValueError, match=message):
        rm.PRO(connectivity=bad, spatial_dims=spatial_dims)
