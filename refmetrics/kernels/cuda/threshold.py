"""numba-cuda twin of ``kernels/cpu/threshold.py``: F1Score's confusion counts."""

import numpy as np
from numba import cuda

from ._jit import kernel
from .ranking import _warp_lanes

MAX_ROWS = 1024  # rows one block can span: at most one per thread (blockDim <= 1024)
CELLS = 3 * MAX_ROWS  # the shared counters (a shared array's size must be a compile-time constant)


@kernel
def confusion_counts(preds, target, has_ignore, ignore, cut, row_size, out, bad):
    """``out[row] += [tp, fp, fn]`` of ``pred >= cut`` (integer atomics).

    The driver turns the CPU's rule (``pred > threshold``, after a float64 sigmoid
    when asked) into the single float64 ``cut`` with the same outcome for every
    pred, found on the host with the CPU's own sigmoid, so no device ``exp``
    (which may differ from the host's in the last bit) decides a count.
    ``row = i // row_size``; ``bad[0]`` counts labels not in {0, 1}.

    Every element of a row adds to one of its three counters, so per-element global
    atomics would serialise on them. The block keeps shared counters for the rows it
    spans (consecutive rows from ``first // row_size``: one per element at most, as
    when ``row_size`` is 1); within each warp, the elements with the same counter are
    counted once (``match_any_sync``) and the lowest of them adds that count to the
    shared counter; then each non-zero shared counter is added to ``out`` with one
    global atomic per block. ``bad`` stays per element: only invalid labels touch it.
    """
    local = cuda.shared.array(CELLS, np.int32)
    t = cuda.threadIdx.x
    nt = cuda.blockDim.x
    n = preds.size
    first = cuda.grid(1) - t  # the block's first element
    last = min(first + nt, n) - 1
    r0 = first // row_size
    cells = 3 * (last // row_size - r0 + 1) if last >= first else 0
    for c in range(t, cells, nt):
        local[c] = 0
    cuda.syncthreads()
    i = first + t
    cell = np.int64(-1)  # the shared counter this element adds to, -1 for none
    if i < n:
        y = target[i]
        if not (has_ignore and y == ignore):
            positive = np.float64(preds[i]) >= cut
            r = 3 * (i // row_size - r0)
            if y == 1:
                cell = r if positive else r + 2
            elif y == 0:
                if positive:
                    cell = r + 1
            else:
                cuda.atomic.add(bad, 0, 1)
    peers = cuda.match_any_sync(_warp_lanes(t, nt)[0], cell)
    if cell >= 0 and cuda.ffs(peers) - 1 == cuda.laneid:
        cuda.atomic.add(local, cell, np.int32(cuda.popc(peers)))
    cuda.syncthreads()
    for c in range(t, cells, nt):
        v = local[c]
        if v != 0:
            cuda.atomic.add(out, (r0 + c // 3, c % 3), np.int64(v))
