"""numba-cuda twin of ``kernels/cpu/stats.py`` (work in progress, issue 5; not wired yet)."""

import numpy as np
from numba import cuda


@cuda.jit
def block_min_max(values, out, nan):
    """Per block, ``out[b] = (min, max)`` of its values (float64, NaN skipped and counted into
    ``nan[0]``); min and max are exact, so the reduction order does not matter."""
    lo_buf = cuda.shared.array(1024, np.float64)
    hi_buf = cuda.shared.array(1024, np.float64)
    t = cuda.threadIdx.x
    i = cuda.grid(1)
    lo = np.inf
    hi = -np.inf
    if i < values.size:
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
