"""numba-cuda twins of ``kernels/cpu/stats.py``: min/max, logs and column statistics."""

import math

import numba
import numpy as np
from numba import cuda

from ._jit import device, kernel
from ._sum import neumaier

if numba.config.ENABLE_CUDASIM:

    @device
    def _mul_rn(a, b):
        """``a * b`` rounded to nearest (Python floats are IEEE binary64: nothing to fuse)."""
        return a * b

else:
    from numba.cuda import libdevice

    @device
    def _mul_rn(a, b):
        """``a * b`` rounded to nearest, never fused with a following add: NVVM contracts
        ``x * y + z`` into an FMA by default (``-fma=1``), and libdevice's ``dmul_rn``
        (``mul.rn.f64``, an explicit rounding) is exempt from contraction."""
        return libdevice.dmul_rn(a, b)


@device
def _min_max_tree(lo_buf, hi_buf):
    """Reduce the block's ``lo_buf``/``hi_buf`` into index 0 (a tree; every thread calls it, it
    synchronises). min and max are exact, so the order does not matter (the sign of a zero
    may: the results are normalised with ``+ 0.0``)."""
    t = cuda.threadIdx.x
    step = 1
    while step < cuda.blockDim.x:
        if t % (2 * step) == 0 and t + step < cuda.blockDim.x:
            lo_buf[t] = min(lo_buf[t], lo_buf[t + step])
            hi_buf[t] = max(hi_buf[t], hi_buf[t + step])
        cuda.syncthreads()
        step *= 2


@kernel
def block_min_max(values, labels, has_ignore, ignore, out, nan):
    """Per block, ``out[b] = (min, max)`` of its values (float64, NaN skipped and counted into
    ``nan[0]``; with ``has_ignore``, elements whose label equals ``ignore`` are skipped); min and
    max are exact, so the reduction order does not matter. ``nan`` takes one atomic per NaN:
    only NaN values, an error the driver reports, touch it. :func:`reduce_min_max` then
    reduces the block results on the device."""
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
    _min_max_tree(lo_buf, hi_buf)
    if t == 0:
        out[cuda.blockIdx.x, 0] = lo_buf[0] + 0.0
        out[cuda.blockIdx.x, 1] = hi_buf[0] + 0.0


@kernel
def reduce_min_max(parts, out):
    """One level of the device reduction of :func:`block_min_max`'s results: block ``b``
    reduces rows ``[b*blockDim, (b+1)*blockDim)`` of ``parts`` into ``out[b]``. The driver
    repeats it until one row is left, so one row, not one per block, crosses to the host."""
    lo_buf = cuda.shared.array(1024, np.float64)
    hi_buf = cuda.shared.array(1024, np.float64)
    t = cuda.threadIdx.x
    i = cuda.grid(1)
    lo = np.inf
    hi = -np.inf
    if i < parts.shape[0]:
        lo = parts[i, 0]
        hi = parts[i, 1]
    lo_buf[t] = lo
    hi_buf[t] = hi
    cuda.syncthreads()
    _min_max_tree(lo_buf, hi_buf)
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


@device
def _tree_sum(s_buf, c_buf, p_buf):
    """Combine the block's compensated partial sums ``(s_buf[t], c_buf[t])`` and plain sums
    ``p_buf[t]`` into index 0, in a fixed tree order (so the same data always gives the same
    bits): ``(s, c) + (s', c')`` is one Neumaier step adding ``s'`` (its rounding error goes
    into the compensation) plus ``c'``. Every thread calls it (it synchronises); a barrier
    ends it."""
    t = cuda.threadIdx.x
    nt = cuda.blockDim.x
    step = 1
    while step < nt:
        if t % (2 * step) == 0 and t + step < nt:
            o = t + step
            s, c = neumaier(s_buf[t], c_buf[t], s_buf[o])
            s_buf[t] = s
            c_buf[t] = c + c_buf[o]
            p_buf[t] += p_buf[o]
        cuda.syncthreads()
        step *= 2


@kernel
def column_mean_std(values, n, mean, std):
    """Mean and std (ddof=1) of each column of column-major ``values`` (column ``j`` is
    ``values[j*n:(j+1)*n]``, sorted, so the sums see an order fixed by the multiset):
    as ``cpu.stats.column_mean_std``, the same compensated (Neumaier) sums, summed in
    parallel.

    One block per column: thread ``t`` sums the elements ``t, t + blockDim, ...`` of the
    column in order (reads coalesce), and :func:`_tree_sum` combines the threads' sums in
    a fixed order. So the device gives the same bits for the same data and launch shape;
    the sum's order is not the CPU's sequential one, which makes the result differ from
    the CPU's by an ulp or so at most (SPEC's 1e-12 holds: both are compensated sums).
    A plain sum runs alongside: when it is not finite (+-inf or NaN terms) the mean is
    ``plain / n``, as on the CPU. The squares ``d * d`` are rounded before the add
    (:func:`_mul_rn`), as the CPU computes them.
    """
    s_buf = cuda.shared.array(1024, np.float64)
    c_buf = cuda.shared.array(1024, np.float64)
    p_buf = cuda.shared.array(1024, np.float64)
    t = cuda.threadIdx.x
    nt = cuda.blockDim.x
    j = cuda.blockIdx.x
    start = np.int64(j) * n
    s = 0.0
    c = 0.0
    plain = 0.0
    for i in range(t, n, nt):
        x = values[start + i]
        s, c = neumaier(s, c, x)
        plain += x
    s_buf[t] = s
    c_buf[t] = c
    p_buf[t] = plain
    cuda.syncthreads()
    _tree_sum(s_buf, c_buf, p_buf)
    if math.isfinite(p_buf[0]):
        mu = (s_buf[0] + c_buf[0]) / n
    else:  # +-inf or NaN terms: the compensation is meaningless, keep IEEE semantics
        mu = p_buf[0] / n
    cuda.syncthreads()  # every thread has read the sums before they are overwritten
    s = 0.0
    c = 0.0
    for i in range(t, n, nt):
        d = values[start + i] - mu
        s, c = neumaier(s, c, _mul_rn(d, d))
    s_buf[t] = s
    c_buf[t] = c
    p_buf[t] = 0.0
    cuda.syncthreads()
    _tree_sum(s_buf, c_buf, p_buf)
    if t == 0:
        mean[j] = mu
        if n > 1:
            std[j] = math.sqrt((s_buf[0] + c_buf[0]) / (n - 1))
        else:
            std[j] = np.nan
