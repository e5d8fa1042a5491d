"""Hypothesis strategies shared by the tests: scores with heavy ties, integers, +-inf."""

import numpy as np
from hypothesis import strategies as st

FLOAT_DTYPES = [np.float16, np.float32, np.float64]
INT_DTYPES = [np.int8, np.uint8, np.int16, np.int32, np.uint32, np.int64, np.bool_]
SCORE_DTYPES = FLOAT_DTYPES + INT_DTYPES


@st.composite
def scores(draw, n, dtype=None):
    """``n`` scores of a drawn dtype: heavy ties, continuous values, extremes or +-inf."""
    dtype = np.dtype(draw(st.sampled_from(SCORE_DTYPES)) if dtype is None else dtype)
    if dtype == np.bool_:
        return np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo, hi = max(info.min, -(2**40)), min(info.max, 2**40)
        kind = draw(st.sampled_from(["ties", "wide"]))
        if kind == "ties":
            lo, hi = max(lo, -2), min(hi, 2)
        return np.array(draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n)), dtype)
    kind = draw(st.sampled_from(["ties", "continuous", "raw", "inf", "tiny"]))
    width = dtype.itemsize * 8
    if kind == "ties":
        elems = st.sampled_from([0.0, -0.0, 0.25, 0.5, 1.0, 3.0])
    elif kind == "continuous":
        elems = st.floats(0, 1, width=width)
    elif kind == "raw":
        elems = st.floats(-60000, 60000, width=width)
    elif kind == "inf":
        elems = st.one_of(st.sampled_from([np.inf, -np.inf, 0.5]), st.floats(-2, 2, width=width))
    else:  # values closer together than float32 can resolve
        base = 0.3
        elems = st.sampled_from([base, np.nextafter(base, 1), np.nextafter(base, 0), base + 1e-12])
    values = draw(st.lists(elems, min_size=n, max_size=n))
    return np.array(values, np.float64).astype(dtype)


@st.composite
def labelled(draw, min_size=1, max_size=40, dtype=None, both_classes=False):
    """``(preds, target)`` with target a {0, 1} array of a drawn dtype."""
    n = draw(st.integers(min_size, max_size))
    preds = draw(scores(n, dtype))
    if both_classes:
        n = max(n, 2)
        preds = draw(scores(n, preds.dtype))
        labels = draw(st.lists(st.booleans(), min_size=n - 2, max_size=n - 2)) + [True, False]
        order = draw(st.permutations(range(n)))
        labels = [labels[i] for i in order]
    else:
        mode = draw(st.sampled_from(["mixed", "mixed", "mixed", "ones", "zeros"]))
        if mode == "mixed":
            labels = draw(st.lists(st.booleans(), min_size=n, max_size=n))
        else:
            labels = [mode == "ones"] * n
    tdtype = draw(st.sampled_from([np.bool_, np.uint8, np.int64, np.float32, np.float64]))
    return preds, np.array(labels).astype(tdtype)


def split_points(draw, n):
    """Sorted cut points splitting range(n) into batches (some possibly empty)."""
    cuts = draw(st.lists(st.integers(0, n), max_size=5))
    return sorted(cuts)
