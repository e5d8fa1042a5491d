"""Bootstrap replicates of AUPIMO and AU-sPRO (functional/_resample_images.py) against the naive loop.

The oracle is the definition itself: for each resample ``b``, refmetrics' ordinary function on the
images repeated ``W[b, i]`` times, in image order. Every replicate must equal it bit for bit (NaN where
it is NaN). ``W`` comes from ``resample_counts`` (stratified, seeded).
"""

import math
import warnings

import numpy as np
import pytest

from refmetrics import functional as F
from refmetrics.functional import pimo as pimo_module
from refmetrics.functional._resample import resample_counts as counts
from refmetrics.functional._resample_images import AupimoResampler, SproResampler

from .checks import quiet, same


def assert_same(got, want, where):
    assert same(float(got), float(want)), f"{where}: replicate {got!r}, naive {want!r}"


# ---------------------------------------------------------------------------
# AUPIMO
# ---------------------------------------------------------------------------

def pimo_case(seed, n_images=8, side=8, levels=200, dtype=np.float64):
    """Maps with ties (``levels`` distinct scores), about half the images normal (at least one of each)."""
    rng = np.random.default_rng(seed)
    maps = (rng.integers(0, levels, size=(n_images, side, side)) / levels).astype(dtype)
    masks = np.zeros(maps.shape, np.uint8)
    for i in range(n_images):
        if i % 2 == 0:
            continue
        masks[i][rng.random((side, side)) < rng.choice([0.05, 0.3])] = 1
        masks[i, rng.integers(side), rng.integers(side)] = 1
        maps[i][masks[i] == 1] += dtype(rng.choice([0.0, 0.25]))  # defects sometimes score higher
    return maps, masks


def naive_aupimo(maps, masks, w, bounds):
    return quiet(F.aupimo, np.repeat(maps, w, axis=0), np.repeat(masks, w, axis=0), fpr_bounds=bounds)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_aupimo_replicates_equal_the_naive_loop(seed, dtype):
    maps, masks = pimo_case(seed, dtype=dtype)
    engine = AupimoResampler.from_maps(maps, masks)
    assert engine.anomalous.tolist() == masks.reshape(len(masks), -1).any(1).tolist()
    W = counts(engine.anomalous, 25, seed)
    bounds = (0.02, 0.1)
    got = engine.replicates(W, fpr_bounds=bounds)
    assert got.shape == (25,) and got.dtype == np.float64
    defined = 0
    for b in range(W.shape[0]):
        want = naive_aupimo(maps, masks, W[b], bounds)
        assert_same(got[b], want, f"seed {seed} resample {b}")
        defined += not math.isnan(want)
    assert defined >= 15  # the case exercises the areas, not only the undefined path
    assert int(np.isnan(got).sum()) == sum(engine.last_undefined.values())


@pytest.mark.parametrize("bounds", [(1e-3, 1e-2), (0.05, 0.5), (0.2, 1.0), (1e-5, 1e-4)])
def test_aupimo_bounds(bounds):
    maps, masks = pimo_case(11, n_images=7, side=12, levels=1000)
    engine = AupimoResampler.from_maps(maps, masks)
    W = counts(engine.anomalous, 15, 3)
    got = engine.replicates(W, fpr_bounds=bounds)
    for b in range(W.shape[0]):
        assert_same(got[b], naive_aupimo(maps, masks, W[b], bounds), f"{bounds} resample {b}")


def test_aupimo_undefined_lower_bound():
    """Every score tied: the smallest reachable shared FPR is 1, above the lower bound (NaN, counted)."""
    maps = np.zeros((4, 3, 3))
    masks = np.zeros((4, 3, 3), np.uint8)
    masks[2:, 0, 0] = 1
    engine = AupimoResampler.from_maps(maps, masks)
    W = counts(engine.anomalous, 5, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # undefined resamples warn nothing: NaN and last_undefined say it
        got = engine.replicates(W, fpr_bounds=(0.1, 0.5))
    assert np.isnan(got).all()
    assert all(math.isnan(naive_aupimo(maps, masks, w, (0.1, 0.5))) for w in W)
    assert engine.last_undefined == {"lower bound below the reachable shared FPR": 5}


def test_aupimo_undefined_one_class():
    maps, masks = pimo_case(2)
    normal = ~masks.reshape(len(masks), -1).any(1)
    engine = AupimoResampler.from_maps(maps[normal], masks[normal])
    W = counts(engine.anomalous, 4, 1)
    assert np.isnan(engine.replicates(W)).all()
    assert engine.last_undefined == {"no anomalous image": 4}
    assert math.isnan(naive_aupimo(maps[normal], masks[normal], W[0], (1e-5, 1e-4)))
    # a hand-made W that drops every normal image
    engine = AupimoResampler.from_maps(maps, masks)
    W = np.where(engine.anomalous, 1, 0)[np.newaxis].astype(np.int64)
    assert np.isnan(engine.replicates(W)).all() and engine.last_undefined == {"no normal image": 1}
    assert math.isnan(naive_aupimo(maps, masks, W[0], (1e-5, 1e-4)))


def test_aupimo_unstratified_weights_walk_every_key():
    """More normal images than the data has (not a stratified resample): the top keys kept per image may
    not reach the upper bound, and the engine walks every key instead; still the naive value."""
    maps, masks = pimo_case(5, n_images=6, side=10, levels=1000)
    normal = np.flatnonzero(~masks.reshape(6, -1).any(1))
    maps[normal[0]] += 2.0  # every pixel of this normal image scores above every other normal pixel
    engine = AupimoResampler.from_maps(maps, masks)
    W = counts(engine.anomalous, 6, 5)
    W[:, normal[1]] += np.array([0, 1, 5, 20, 60, 200])
    bounds = (0.01, 0.05)
    got = engine.replicates(W, fpr_bounds=bounds)
    assert None in engine._candidates  # the full walk ran
    for b in range(W.shape[0]):
        assert_same(got[b], naive_aupimo(maps, masks, W[b], bounds), f"resample {b}")


def test_aupimo_from_state_mixed_sizes_and_dtypes():
    """A state of batches of different image sizes and dtypes: the replicate equals the AUPIMO of the state
    that holds each image ``W[b, i]`` times (the definition for a state)."""
    rng = np.random.default_rng(20261128)
    batches = []
    for side, dtype in [(6, np.float64), (9, np.float32), (6, np.float32)]:
        maps, masks = pimo_case(int(rng.integers(1000)), n_images=4, side=side, dtype=dtype)
        batches.append((maps, masks))
    state = pimo_module.PimoState()
    images = []
    for maps, masks in batches:
        state.add(pimo_module.intake_images(maps, masks, "cpu", keep_other=False))
        images += [(maps[i:i + 1], masks[i:i + 1]) for i in range(len(maps))]
    engine = AupimoResampler.from_state(state)
    W = counts(engine.anomalous, 20, 7)
    bounds = (0.005, 0.05)
    got = engine.replicates(W, fpr_bounds=bounds)
    defined = 0
    for b in range(W.shape[0]):
        rep = pimo_module.PimoState()
        for (m, t), w in zip(images, W[b]):
            for _ in range(w):
                rep.add(pimo_module.intake_images(m, t, "cpu", keep_other=False))
        want = quiet(pimo_module.aupimo_from_state, rep, bounds)[0]
        assert_same(got[b], want, f"resample {b}")
        defined += not math.isnan(want)
    assert defined >= 5


def test_aupimo_single_resample_of_ones_is_aupimo():
    maps, masks = pimo_case(4, levels=7)
    engine = AupimoResampler.from_maps(maps, masks)
    ones = np.ones((1, len(maps)), np.int64)
    assert_same(engine.replicates(ones, fpr_bounds=(0.02, 0.2))[0],
                quiet(F.aupimo, maps, masks, fpr_bounds=(0.02, 0.2)), "W = 1")


def test_aupimo_errors_name_the_argument():
    maps, masks = pimo_case(0)
    engine = AupimoResampler.from_maps(maps, masks)
    with pytest.raises(ValueError, match=r"W: expected integer multiplicities of shape \(resamples, 8\)"):
        engine.replicates(np.ones((2, 7), np.int64))
    with pytest.raises(ValueError, match="W: expected integer multiplicities"):
        engine.replicates(np.ones((2, 8)))
    with pytest.raises(ValueError, match="W: expected multiplicities >= 0"):
        engine.replicates(-np.ones((2, 8), np.int64))
    with pytest.raises(ValueError, match="fpr_bounds"):
        engine.replicates(np.ones((2, 8), np.int64), fpr_bounds=(0.5, 0.1))


# ---------------------------------------------------------------------------
# AU-sPRO
# ---------------------------------------------------------------------------

def spro_case(seed, n_images=7, side=6, levels=12, dtype=np.float64):
    """Tied maps; per image 0 to 3 defects (overlapping, relative and absolute saturation, some with S = 0,
    some covering the whole image), at least one defect-free image and one with a defect."""
    rng = np.random.default_rng(seed)
    maps = (rng.integers(0, levels, size=(n_images, side, side)) / levels).astype(dtype)
    defects = []
    for i in range(n_images):
        items = []
        n = 0 if i == 0 else (1 if i == 1 else int(rng.integers(0, 4)))
        for _ in range(n):
            mask = rng.random((side, side)) < rng.choice([0.1, 0.4, 1.0])
            mask[rng.integers(side), rng.integers(side)] = True
            kind = rng.integers(3)
            if kind == 0:
                items.append((mask, float(rng.choice([0.01, 0.3, 0.5, 1.0])), True))  # 0.01: S may be 0
            else:
                items.append((mask, int(rng.integers(0, 6)), False))
            maps[i][mask] += dtype(rng.choice([0.0, 0.3]))
        defects.append(items)
    return maps, defects


def naive_au_spro(maps, defects, w, limits):
    idx = np.repeat(np.arange(len(maps)), w)
    return quiet(F.au_spro, maps[idx], [defects[i] for i in idx], fpr_limit=limits)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("limits", [[0.01, 0.05, 0.1, 0.3, 1.0], [0.02, 0.2]])  # the second: keys cut
def test_au_spro_replicates_equal_the_naive_loop(seed, dtype, limits):
    maps, defects = spro_case(seed, dtype=dtype)
    engine = quiet(SproResampler.from_maps, maps, defects)
    assert engine.anomalous.tolist() == [bool(d) for d in defects]
    W = counts(engine.anomalous, 20, seed)
    got = engine.replicates(W, fpr_limit=limits)
    assert got.shape == (20, len(limits))
    for b in range(W.shape[0]):
        want = naive_au_spro(maps, defects, W[b], limits)
        for j, limit in enumerate(limits):
            assert_same(got[b, j], want[j], f"seed {seed} resample {b} limit {limit}")
    one = engine.replicates(W, fpr_limit=limits[1])  # a scalar limit: (B,), the keys cut for it alone
    assert one.shape == (20,) and all(same(a, c) for a, c in zip(one, got[:, 1]))


def test_au_spro_defects_saturated_at_zero_pixels():
    """Defects with S = 0 only (no kept defect key): the curve is flat at n_full / K."""
    maps = np.random.default_rng(8).random((4, 5, 5))
    mask = np.zeros((5, 5), bool)
    mask[1:3, 1:3] = True
    defects = [[], [(mask, 0, False)], [(mask, 0.1, True), (mask, 0, False)], []]
    engine = quiet(SproResampler.from_maps, maps, defects)
    W = counts(engine.anomalous, 8, 2)
    got = engine.replicates(W, fpr_limit=[0.1, 1.0])
    for b in range(W.shape[0]):
        want = naive_au_spro(maps, defects, W[b], [0.1, 1.0])
        assert_same(got[b, 0], want[0], f"resample {b}")
        assert_same(got[b, 1], want[1], f"resample {b}")
    assert (got == 1.0).all()


def test_au_spro_large_multiplicities():
    """Terms added many times over (one image drawn again and again) and unstratified weights."""
    maps, defects = spro_case(9, n_images=5, side=8, levels=30)
    engine = quiet(SproResampler.from_maps, maps, defects)
    W = np.array([[1, 1, 1, 1, 1], [0, 5, 0, 0, 0], [3, 0, 7, 0, 2], [40, 1, 0, 0, 0], [0, 0, 0, 0, 9],
                  [2, 50, 1, 0, 3]], np.int64)
    limits = [0.02, 0.3, 1.0]
    got = engine.replicates(W, fpr_limit=limits)
    for b in range(W.shape[0]):
        want = naive_au_spro(maps, defects, W[b], limits)
        for j in range(len(limits)):
            assert_same(got[b, j], want[j], f"W {W[b].tolist()} limit {limits[j]}")


def test_au_spro_undefined():
    maps, defects = spro_case(3, n_images=4)
    engine = quiet(SproResampler.from_maps, maps, defects)
    W = np.zeros((2, 4), np.int64)
    W[0, ~engine.anomalous] = 2  # no defect
    W[1, 0] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = engine.replicates(W, fpr_limit=0.3)
    assert np.isnan(got).all()
    assert math.isnan(naive_au_spro(maps, defects, W[0], 0.3))
    assert engine.last_undefined == {"no defect": 2}  # W[1] draws no image at all
    # an image whose one defect covers it whole: no defect-free pixel when it is drawn alone
    full = [[(np.ones((3, 3), bool), 2, False)], []]
    maps = np.arange(18, dtype=float).reshape(2, 3, 3)
    engine = SproResampler.from_maps(maps, full)
    W = np.array([[3, 0], [1, 1]], np.int64)
    got = engine.replicates(W, fpr_limit=0.5)
    assert math.isnan(got[0]) and engine.last_undefined == {"no defect-free pixel": 1}
    assert math.isnan(naive_au_spro(maps, full, W[0], 0.5))
    assert_same(got[1], naive_au_spro(maps, full, W[1], 0.5), "W = [1, 1]")


def test_au_spro_errors_name_the_argument():
    maps, defects = spro_case(1, n_images=3)
    engine = quiet(SproResampler.from_maps, maps, defects)
    with pytest.raises(ValueError, match=r"W: expected integer multiplicities of shape \(resamples, 3\)"):
        engine.replicates(np.ones(3, np.int64))
    with pytest.raises(ValueError, match="fpr_limit"):
        engine.replicates(np.ones((1, 3), np.int64), fpr_limit=0.0)


def test_au_spro_from_parts_of_a_per_image_state():
    """As the mvtec-loco protocol fills it: a DefectScores with one batch per image; each image's count of
    defects with S = 0 read off the state's n_full as it grows. Same replicates as from the maps."""
    from refmetrics.functional import spro as spro_module

    maps, defects = spro_case(4)
    state = spro_module.DefectScores()
    n_full = []
    for i in range(len(maps)):
        before = state.n_full
        quiet(spro_module.add_batch, state, maps[i:i + 1], [defects[i]], "cpu")
        n_full.append(state.n_full - before)
    engine = SproResampler.from_parts(state.parts, n_full)
    W = counts(engine.anomalous, 15, 4)
    got = engine.replicates(W, fpr_limit=[0.05, 1.0])
    want = quiet(SproResampler.from_maps, maps, defects).replicates(W, fpr_limit=[0.05, 1.0])
    assert all(same(a, b) for a, b in zip(got.ravel().tolist(), want.ravel().tolist()))
    assert_same(got[0, 0], naive_au_spro(maps, defects, W[0], [0.05, 1.0])[0], "resample 0")


def test_aupimo_from_the_stateful_metric():
    """The state refmetrics.AUPIMO accumulates over batches gives the replicates of the whole set."""
    import refmetrics as rm

    maps, masks = pimo_case(6)
    metric = rm.AUPIMO(fpr_bounds=(0.02, 0.1))
    metric.update(maps[:3], masks[:3])
    metric.update(maps[3:], masks[3:])
    W = counts(np.asarray(masks.reshape(len(masks), -1).any(1)), 12, 6)
    got = AupimoResampler.from_state(metric._state).replicates(W, fpr_bounds=(0.02, 0.1))
    for b in range(W.shape[0]):
        assert_same(got[b], naive_aupimo(maps, masks, W[b], (0.02, 0.1)), f"resample {b}")
