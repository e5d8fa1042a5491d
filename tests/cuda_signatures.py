"""Launch the CUDA kernels with every dtype the intake accepts, under the numba-cuda simulator.

Run by the compile check of ``tests/test_cuda_sim.py`` as
``NUMBA_ENABLE_CUDASIM=1 REFMETRICS_RECORD_LAUNCHES=<file> python -m tests.cuda_signatures``:
``tests/cudasim.py`` records every launch (kernel and argument types), and
``tests/cuda_compile.py`` then compiles each recorded signature for real GPUs.

The backend suite launches the kernels with the dtypes of its cases; this sweep adds the rest.
The dtypes come from the intake itself: every NumPy dtype that
``refmetrics._validation.check_numeric_dtype`` accepts. After the intake every kernel sees
float32 or float64 scores, which the backend suite covers; the kernels that read an input's own
dtype (casts, strided copies of 1 to 4 dimensions in C, F and arbitrary layouts, min/max, logs,
the label readers, F1Score's counts) run here with every accepted dtype, through the public
functions, labels with and without ``ignore_index``. The inputs are chosen so that no radix
sort runs a pass (the simulator is slow). Every call must succeed except the documented refusal
of int64 scores beyond 2**53.
"""

import os
import sys
import warnings

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
    sys.exit("tests/cuda_signatures.py runs under the simulator: set NUMBA_ENABLE_CUDASIM=1")

import importlib  # noqa: E402

importlib.import_module("tests.cudasim")  # small launch shapes, launch recording

import numpy as np  # noqa: E402
from numba import cuda  # noqa: E402

from refmetrics import _validation as V  # noqa: E402
from refmetrics import functional as F  # noqa: E402

rng = np.random.default_rng(12)


def accepted_dtypes():
    """Every NumPy dtype the intake accepts, once each."""
    found = {}
    for code in np.typecodes["All"]:
        try:
            dt = np.dtype(code)
            V.check_numeric_dtype("x", np.zeros(1, dt))
        except TypeError:
            continue
        found[dt.str] = dt
    return [found[k] for k in sorted(found)]


def values(dtype, n, top=5):
    """``n`` small values of ``dtype`` (0 and 1 for bool), with ties."""
    v = rng.integers(0, 2 if dtype == np.bool_ else top, n)
    return v.astype(dtype)


def binary(dtype, n):
    t = np.zeros(n, dtype)
    t[rng.permutation(n)[: n // 3]] = 1
    t[0], t[1] = 1, 0
    return t


BINS = np.linspace(0.0, 4.0, 5)  # binned mode: the scores' cast and histogram, no sort


def as_scores(dtype):
    """The kernels that read the scores' own dtype: the cast (binned mode), F1Score's counts, min/max,
    the logs, and strided copies of 1 to 4 dimensions (C, F and arbitrary layouts)."""
    n = 16
    F.auroc(values(dtype, n), binary(np.uint8, n), thresholds=BINS, backend="cuda")
    F.f1_score(values(dtype, n), binary(np.uint8, n), backend="cuda")
    F.min_max(values(dtype, n), backend="cuda")
    constant = np.ones(4, dtype)  # equal keys: the column sorts skip every pass
    F.anomaly_score_distribution(anomaly_scores=constant, anomaly_maps=constant.reshape(2, 2), backend="cuda")
    base = values(dtype, 2 * 3 * 4 * 4).reshape(2, 3, 4, 4)
    d_base, d_labels = cuda.to_device(base), cuda.to_device(binary(np.uint8, base.size).reshape(base.shape))
    views = [lambda a: a.reshape(a.size)[::2], lambda a: a.reshape(6, 16)[:, ::2],
             lambda a: a.reshape(6, 16).T, lambda a: a.reshape(6, 4, 4)[:, :, ::2],
             lambda a: a.reshape(6, 4, 4).T, lambda a: a[..., ::2]]
    for view in views:
        F.auroc(view(d_base), view(d_labels), thresholds=BINS)


def as_labels(dtype):
    """The kernels that read the labels' own dtype, at both key widths, with and without ignore_index:
    the exact path's key encoder (constant scores: every radix pass is skipped), the binned histogram,
    F1Score's counts."""
    n = 12
    for score_dtype in (np.float32, np.float64):
        for ignore in (None, 0):
            kw = {"ignore_index": ignore, "backend": "cuda"}
            F.auroc(np.full(n, 0.5, score_dtype), binary(dtype, n), **kw)
            F.auroc(values(score_dtype, n), binary(dtype, n), thresholds=BINS, **kw)
            F.f1_score(values(score_dtype, n), binary(dtype, n), **kw)


def main():
    dtypes = accepted_dtypes()
    print("dtypes the intake accepts:", ", ".join(str(d) for d in dtypes), flush=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for dtype in dtypes:
            as_scores(dtype)
            as_labels(dtype)
            print(dtype, "done", flush=True)
        for score_dtype in dtypes:  # F1Score reads both as given: every pair
            for label_dtype in dtypes:
                F.f1_score(values(score_dtype, 4), binary(label_dtype, 4), ignore_index=0, backend="cuda")
        print("F1Score pairs done", flush=True)
        for dtype in (np.int64, np.uint64):  # the refusal of integer scores beyond 2**53 (counted on the device)
            big = np.array([2 ** 60, 1, 2, 3], dtype)
            try:
                F.auroc(big, np.array([1, 0, 1, 0], np.uint8), backend="cuda")
            except ValueError:
                pass
            else:
                raise AssertionError(f"{np.dtype(dtype)} scores beyond 2**53 were not refused")
    print("sweep done", flush=True)


if __name__ == "__main__":
    main()
