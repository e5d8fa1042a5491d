"""image_scores: max, top-k mean and pooled max of anomaly maps, against exact oracles."""

import math
import warnings
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import refmetrics as rm
from refmetrics import functional as F

from . import naive
from .checks import close


def _rel_close(value, exact):
    """Within 1e-12 relative (means of large values) or absolute."""
    return abs(Fraction(value) - exact) <= Fraction(1, 10**12) * max(1, abs(exact))


def test_documented_values():
    maps = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    assert F.image_scores(maps).tolist() == [15.0]
    assert F.image_scores(maps, reduce="top_k_mean", k=0.25).tolist() == [13.5]  # (12+13+14+15)/4
    assert F.image_scores(maps, reduce="pooled_max", kernel=2).tolist() == [12.5]  # (10+11+14+15)/4
    assert F.image_scores(maps, reduce="pooled_max", kernel=4).tolist() == [7.5]  # the whole map
    assert F.image_scores(maps, reduce="top_k_mean", k=1.0).tolist() == [7.5]


def test_top_k_count_follows_dinomaly():
    # max(1, floor(k * n)), the product rounded to float64 first, as Dinomaly's int(n * ratio)
    assert F.image_scores.__module__.endswith("image_scores")
    from refmetrics.functional.image_scores import top_k_count

    assert top_k_count(0.01, 50) == 1 and top_k_count(0.01, 300) == 3 and top_k_count(0.29, 100) == 28
    assert top_k_count(1e-9, 10) == 1 and top_k_count(1.0, 7) == 7


@st.composite
def maps_strategy(draw):
    b = draw(st.integers(1, 3))
    h = draw(st.integers(1, 6))
    w = draw(st.integers(1, 6))
    kind = draw(st.sampled_from(["ties", "float32", "float64", "wide", "int"]))
    n = b * h * w
    if kind == "ties":
        values = draw(st.lists(st.sampled_from([0.0, -0.0, 0.25, 0.5, 1.0]), min_size=n, max_size=n))
        return np.array(values, np.float32).reshape(b, h, w)
    if kind == "int":
        return np.array(draw(st.lists(st.integers(-5, 5), min_size=n, max_size=n)), np.int16).reshape(b, h, w)
    if kind == "wide":  # values whose float64 sum rounds: the compensated sums must still be within 1e-12
        values = draw(st.lists(st.sampled_from([1e16, 1.0, -1e16, 3e-8, 0.1, 2.0**-30]), min_size=n, max_size=n))
        return np.array(values, np.float64).reshape(b, h, w)
    width = 32 if kind == "float32" else 64
    values = draw(st.lists(st.floats(-1e6, 1e6, width=width), min_size=n, max_size=n))
    return np.array(values, np.float32 if width == 32 else np.float64).reshape(b, h, w)


@settings(max_examples=60, deadline=None)
@given(maps_strategy(), st.floats(0.01, 1.0), st.data())
def test_against_the_oracles(maps, k, data):
    b, h, w = maps.shape
    kernel = data.draw(st.integers(1, min(h, w)))
    got_max = F.image_scores(maps)
    got_top = F.image_scores(maps, reduce="top_k_mean", k=k)
    got_pool = F.image_scores(maps, reduce="pooled_max", kernel=kernel)
    count = max(1, math.floor(k * h * w))
    for i in range(b):
        assert got_max[i] == naive.image_max(maps[i])
        assert _rel_close(got_top[i], naive.image_top_k_mean(maps[i], count))
        assert _rel_close(got_pool[i], naive.image_pooled_max(maps[i], kernel))
    assert got_max.dtype == got_top.dtype == got_pool.dtype == np.float64
    # one image at a time gives the same bits (each image is reduced on its own)
    for reduce, kw in (("top_k_mean", {"k": k}), ("pooled_max", {"kernel": kernel})):
        whole = F.image_scores(maps, reduce=reduce, **kw)
        parts = np.concatenate([F.image_scores(maps[i:i + 1], reduce=reduce, **kw) for i in range(b)])
        assert whole.tobytes() == parts.tobytes()


def test_rounding_sensitive_means_are_exact():
    # a plain float64 sum loses the 1.0 between +-1e16; the compensated sums keep it
    maps = np.array([[[1e16, 1.0], [-1e16, 1.0]]])
    assert F.image_scores(maps, reduce="pooled_max", kernel=2).tolist() == [0.5]
    assert F.image_scores(maps, reduce="top_k_mean", k=1.0).tolist() == [0.5]
    third = np.full((1, 3, 3), 0.1, np.float32)  # float32 0.1, exactly: its mean is itself
    assert F.image_scores(third, reduce="pooled_max", kernel=3).tolist() == [float(np.float32(0.1))]


def test_pixel_permutation_does_not_change_max_and_top_k():
    rng = np.random.default_rng(20261125)
    maps = rng.standard_normal((2, 8, 8)).astype(np.float32)
    shuffled = rng.permuted(maps.reshape(2, -1), axis=1).reshape(2, 8, 8)
    for reduce in ("max", "top_k_mean"):
        assert F.image_scores(maps, reduce=reduce, k=0.3).tobytes() == \
            F.image_scores(shuffled, reduce=reduce, k=0.3).tobytes()


def test_infinities():
    maps = np.array([[[np.inf, 1.0], [2.0, 3.0]], [[-np.inf, 1.0], [2.0, 3.0]]])
    assert F.image_scores(maps).tolist() == [np.inf, 3.0]
    assert F.image_scores(maps, reduce="top_k_mean", k=0.5).tolist() == [np.inf, 2.5]
    assert F.image_scores(maps, reduce="top_k_mean", k=1.0).tolist() == [np.inf, -np.inf]
    assert F.image_scores(maps, reduce="pooled_max", kernel=1).tolist() == [np.inf, 3.0]
    both = np.array([[[np.inf, -np.inf], [2.0, 3.0]]])
    with pytest.warns(rm.UndefinedMetricWarning, match="both \\+inf and -inf"):
        got = F.image_scores(both, reduce="pooled_max", kernel=2)
    assert math.isnan(got[0])
    with pytest.warns(rm.UndefinedMetricWarning, match="both \\+inf and -inf"):
        assert math.isnan(F.image_scores(both, reduce="top_k_mean", k=1.0)[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert F.image_scores(both, reduce="pooled_max", kernel=1).tolist() == [np.inf]


def test_channel_axis_and_dtypes():
    maps = np.arange(8, dtype=np.uint8).reshape(2, 1, 2, 2)
    assert F.image_scores(maps).tolist() == [3.0, 7.0]
    assert F.image_scores(maps.astype(np.float16), reduce="top_k_mean", k=0.5).tolist() == [2.5, 6.5]
    assert F.image_scores(maps.astype(bool)).tolist() == [1.0, 1.0]


def test_bad_input():
    maps = np.zeros((2, 4, 5), np.float32)
    cases = [
        ({"reduce": "mean"}, ValueError,
         "reduce: expected one of 'max', 'top_k_mean', 'pooled_max', received 'mean'"),
        ({"reduce": "top_k_mean", "k": 0.0}, ValueError,
         r"k: expected a fraction of the pixels in \(0, 1\], received 0.0"),
        ({"reduce": "top_k_mean", "k": 1.5}, ValueError, r"k: expected a fraction .* received 1.5"),
        ({"k": float("nan")}, ValueError, "k: expected a real number, received NaN"),
        ({"reduce": "pooled_max", "kernel": 5}, ValueError, r"kernel: expected an int in \[1, 4\] .* received 5"),
        ({"reduce": "pooled_max", "kernel": 0}, ValueError, r"kernel: expected an int in \[1, 4\]"),
        ({"reduce": "pooled_max", "kernel": 2.0}, TypeError, "kernel: expected a positive int"),
        ({"reduce": "pooled_max", "kernel": True}, TypeError, "kernel: expected a positive int"),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            F.image_scores(maps, **kwargs)
    with pytest.raises(ValueError, match=r"maps: expected a batch of maps \(B, H, W\) or \(B, 1, H, W\), "
                                         r"received shape \(4, 5\)"):
        F.image_scores(np.zeros((4, 5)))
    with pytest.raises(ValueError, match="maps: expected no NaN values, received 1 NaN"):
        F.image_scores(np.array([[[0.0, np.nan]]]), reduce="top_k_mean")
    with pytest.raises(ValueError, match="maps: expected at least one element"):
        F.image_scores(np.zeros((0, 2, 2)))
    # the kernel is checked only where it is used
    assert F.image_scores(maps, kernel=99).tolist() == [0.0, 0.0]
    assert close(F.image_scores(maps + 1, reduce="pooled_max", kernel=4)[0], Fraction(1))
