"""numba-cuda twin of ``kernels/cpu/segmentation.py``'s exact moments (the validation threshold).

The counts of ``segmentation_scores`` reuse F1Score's confusion-count kernel (``threshold.py``).
Here every value is split into the same integer chunks as on the CPU (``mantissa_chunks``, compiled
from the CPU's Python source) and added into int64 buckets: integer sums in any order, so the
buckets, and the threshold computed from them on the host, are the CPU's exactly.
"""

import numpy as np
from numba import cuda

from ..cpu import segmentation as C
from ._jit import device, kernel

_mantissa_chunks = device(C.mantissa_chunks.py_func)
SUM_BUCKETS, SQ_BUCKETS, SUM_OFFSET, SQ_OFFSET = C.SUM_BUCKETS, C.SQ_BUCKETS, C.SUM_OFFSET, C.SQ_OFFSET
BLOCKS = 128  # blocks of the grid-stride launch: each flushes its shared buckets once


@kernel
def moment_buckets(values, squares_pass, buckets, counts):
    """Add every value's chunks into ``buckets`` (int64): the sums (``squares_pass`` False, size
    ``SUM_BUCKETS``) or the squares (size ``SQ_BUCKETS``), as ``cpu.segmentation.moment_buckets``.
    ``counts = [n_nan, n_posinf, n_neginf]`` (sums pass only).

    The values of an anomaly map share a few exponents, so global atomics would serialise on a
    few buckets: each block adds into shared buckets (a grid-stride loop over the values), then
    adds each non-zero shared bucket to ``buckets`` once. Two passes, because the shared buckets
    of both would not fit in the 48 KiB a block may use.
    """
    local = cuda.shared.array(SQ_BUCKETS, np.int64)
    size = SQ_BUCKETS if squares_pass else SUM_BUCKETS
    t = cuda.threadIdx.x
    nt = cuda.blockDim.x
    for c in range(t, size, nt):
        local[c] = 0
    cuda.syncthreads()
    for i in range(cuda.grid(1), values.size, cuda.gridsize(1)):
        x = np.float64(values[i])
        if x != x or x == np.inf or x == -np.inf:
            if not squares_pass:
                cuda.atomic.add(counts, 0 if x != x else (1 if x > 0 else 2), 1)
            continue
        if x == 0.0:
            continue
        a, b, c, e = _mantissa_chunks(x)
        if squares_pass:
            k = 2 * e + SQ_OFFSET
            cuda.atomic.add(local, k, c * c)
            cuda.atomic.add(local, k + 18, 2 * b * c)
            cuda.atomic.add(local, k + 36, 2 * a * c + b * b)
            cuda.atomic.add(local, k + 54, 2 * a * b)
            cuda.atomic.add(local, k + 72, a * a)
        else:
            j = e + SUM_OFFSET
            cuda.atomic.add(local, j, c)
            cuda.atomic.add(local, j + 18, b)
            cuda.atomic.add(local, j + 36, a)
    cuda.syncthreads()
    for c in range(t, size, nt):
        v = local[c]
        if v != 0:
            cuda.atomic.add(buckets, c, v)


def moments(d_values):
    """``(sums, squares, n_nan, n_posinf, n_neginf)`` of a flat float32/float64 device array of at most
    ``cpu.segmentation.MAX_CHUNK`` values (host int64 buckets, as the CPU kernel fills them)."""
    from . import _driver as D
    from . import ranking as K

    @D._quiet
    def run():
        blocks = max(1, min(BLOCKS, -(-d_values.size // K.THREADS)))
        counts = D.zeros(3, np.int64)
        sums = D.zeros(SUM_BUCKETS, np.int64)
        squares = D.zeros(SQ_BUCKETS, np.int64)
        moment_buckets[blocks, K.THREADS](d_values, False, sums, counts)
        moment_buckets[blocks, K.THREADS](d_values, True, squares, counts)
        n_nan, posinf, neginf = (int(c) for c in counts.copy_to_host())
        return sums.copy_to_host(), squares.copy_to_host(), n_nan, posinf, neginf

    return run()
