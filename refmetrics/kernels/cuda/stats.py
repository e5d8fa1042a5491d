"""numba-cuda twins of ``kernels/cpu/stats.py``: min/max, logs and column statistics."""

import math

import numpy as np
from numba import cuda

from ._jit import kernel

from ._sum import neumaier


@kernel
def block_min_max(values, labels, has_ignore, ignore, out, nan):
    """Per block, ``out[b] = (min, max)`` of its values (float64, NaN skipped and counted into
    ``nan[0]``; with ``has_ignore``, elements whose label equals ``ignore`` are skipped); min and
    max are exact, so the reduction order does not matter. ``nan`` takes one atomic per NaN:
    only NaN values, an error the driver reports, touch it."""
    lo_buf = cuda.shared.array(1024, np.float64)
    hi_buf = cuda.shared.array(1024, np.float64)
    t = cuda.threadIdx.x
    i = cuda.grid(1)
    lo = np.inf
    hi = -np.inf
    if i < values.size and not (has_ignore and labels[i] == ignore):
        v = np.float64(values[i])
        if v != v:
            cuda.atomic.add(nan, 0, 1)
        else:
            lo = v
            hi = v
    lo_buf[t] = lo
    hi_buf[t] = hi
    cuda.syncthreads()
    step = 1
    while step < cuda.blockDim.x:
        if t % (2 * step) == 0 and t + step < cuda.blockDim.x:
            lo_buf[t] = min(lo_buf[t], lo_buf[t + step])
            hi_buf[t] = max(hi_buf[t], hi_buf[t + step])
        cuda.syncthreads()
        step *= 2
    if t == 0:
        out[cuda.blockIdx.x, 0] = lo_buf[0] + 0.0
        out[cuda.blockIdx.x, 1] = hi_buf[0] + 0.0


@kernel
def log_values(values, out, counts):
    """``out[i] = log(values[i])`` in float64; ``counts = [n_nan, n_nonpositive]``.

    Zeros are common in anomaly maps (clipped or ReLU outputs), so the counts are kept
    in shared counters and added to ``counts`` with one atomic per block and counter.
    """
    local = cuda.shared.array(2, np.int32)
    t = cuda.threadIdx.x
    for c in range(t, 2, cuda.blockDim.x):
        local[c] = 0
    cuda.syncthreads()
    i = cuda.grid(1)
    if i < values.size:
        v = np.float64(values[i])
        if v != v:
            cuda.atomic.add(local, 0, 1)
            out[i] = v
        elif v <= 0.0:
            cuda.atomic.add(local, 1, 1)
            out[i] = -np.inf if v == 0.0 else np.nan
        else:
            out[i] = math.log(v)
    cuda.syncthreads()
    for c in range(t, 2, cuda.blockDim.x):
        if local[c] != 0:
            cuda.atomic.add(counts, c, np.int64(local[c]))


@kernel
def column_of(n_columns, out):
    """``out[i] = i % n_columns``: the column of each element of a row-major matrix."""
    i = cuda.grid(1)
    if i < out.size:
        out[i] = i % n_columns


@kernel
def column_mean_std(values, n, mean, std):
    """As ``cpu.stats.column_mean_std`` on column-major ``values`` (column ``j`` is
    ``values[j*n:(j+1)*n]``, sorted): one thread per column, the same compensated sums
    in the same order."""
    j = cuda.grid(1)
    if j >= mean.size:
        return
    start = j * n
    s = 0.0
    c = 0.0
    plain = 0.0
    for i in range(n):
        s, c = neumaier(s, c, values[start + i])
        plain += values[start + i]
    if math.isfinite(plain):
        mu = (s + c) / n
    else:
        mu = plain / n
    s = 0.0
    c = 0.0
    for i in range(n):
        d = values[start + i] - mu
        s, c = neumaier(s, c, d * d)
    mean[j] = mu
    if n > 1:
        std[j] = math.sqrt((s + c) / (n - 1))
    else:
        std[j] = np.nan
