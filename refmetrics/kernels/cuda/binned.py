"""numba-cuda twin of ``kernels/cpu/binned.py``: the binned (``thresholds=``) histogram."""

import numba
import numpy as np
from numba import cuda

from ._jit import kernel
from .ranking import _warp_lanes


@kernel
def binned_histogram(scores, target, has_ignore, ignore, thresholds, items, use_shared, hist, counts):
    """``hist[side, b] +=`` elements with exactly ``b`` thresholds ``<=`` their score (side 0 =
    positives), with integer atomics (so the counts do not depend on scheduling).
    Elements whose target equals ``ignore`` are skipped; ``counts = [n_nan, n_bad]``.

    Block ``b`` takes the ``blockDim * items`` elements from ``b * blockDim * items``, in
    ``items`` rounds of ``blockDim`` consecutive ones. Scores concentrate in a few bins, so
    per-element global atomics would serialise there:

    - within each warp, the elements of one bin are counted once (``match_any_sync``) and
      the lowest of them adds the count;
    - with ``use_shared``, into a per-block histogram of ``hist.size`` int32 in dynamic
      shared memory (the driver sizes the launch for it), added to ``hist`` with one
      global atomic per non-zero bin at the end; without (a histogram too large for
      shared memory), straight into ``hist``.

    The driver chooses ``items`` so that a block has about as many elements as bins,
    which pays for zeroing and flushing the shared histogram. ``counts`` stay per element:
    only invalid data (NaN scores, labels not in {0, 1}) touches them.
    """
    local = cuda.shared.array(0, numba.int32)  # a numba type: the simulator sizes dynamic arrays by it
    t = cuda.threadIdx.x
    nt = cuda.blockDim.x
    width = thresholds.size + 1
    if use_shared:
        for c in range(t, hist.size, nt):
            local[c] = 0
    cuda.syncthreads()
    mask = _warp_lanes(t, nt)[0]
    base = (cuda.grid(1) - t) * items
    for r in range(items):
        i = base + r * nt + t
        cell = np.int64(-1)  # side * width + bin, -1 for none
        if i < scores.size:
            y = target[i]
            if not (has_ignore and y == ignore):
                s = scores[i]
                if s != s:
                    cuda.atomic.add(counts, 0, 1)
                elif y == 1 or y == 0:
                    lo = 0
                    hi = thresholds.size
                    while lo < hi:  # first threshold > s
                        mid = (lo + hi) // 2
                        if thresholds[mid] <= s:
                            lo = mid + 1
                        else:
                            hi = mid
                    cell = np.int64(lo) if y == 1 else np.int64(width + lo)
                else:
                    cuda.atomic.add(counts, 1, 1)
        peers = cuda.match_any_sync(mask, cell)
        if cell >= 0 and cuda.ffs(peers) - 1 == cuda.laneid:
            if use_shared:
                cuda.atomic.add(local, cell, np.int32(cuda.popc(peers)))
            else:
                cuda.atomic.add(hist, (cell // width, cell % width), np.int64(cuda.popc(peers)))
    cuda.syncthreads()
    if use_shared:
        for c in range(t, hist.size, nt):
            v = local[c]
            if v != 0:
                cuda.atomic.add(hist, (c // width, c % width), np.int64(v))


@kernel
def add_into(dst, src):
    """``dst += src`` elementwise (merging two device states)."""
    i = cuda.grid(1)
    if i < dst.size:
        dst[i] += src[i]
