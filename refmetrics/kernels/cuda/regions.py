"""numba-cuda twins of ``kernels/cpu/regions.py``: the device side of PRO and AUPRO.

Regions are labelled on the host (scikit-image); the device receives one uint32
per pixel (the region's size for the PRO curve, its id for PRO) and does the
O(pixels) work: keys, the background histogram for the ``fpr_limit`` cut,
compaction, the sort (``ranking.py``) and the integer counts per group. The
double-double sums of ``1/size`` are formed on the host from those counts by
``cpu.regions.region_run_sums``, so the curve and the area are bit-identical to
the CPU's.
"""

import numpy as np
from numba import cuda

from ._jit import kernel
from .keys import is_nan as _is_nan
from .keys import score_key as _key
from .ranking import _warp_lanes

BACKGROUND, REGION, NAN = 0, 1, 2


@kernel
def encode_pixels(bits, payload, consts, keys, codes, counts):
    """Keys of float bits; ``codes[i]`` = 0 (background: ``payload == 0``), 1 (region) or
    2 (NaN score, counted into ``counts[0]``: one atomic per NaN, since only NaN scores,
    an error the driver reports, touch it)."""
    i = cuda.grid(1)
    if i >= bits.size:
        return
    b = bits[i]
    if _is_nan(b, consts[1], consts[2]):
        codes[i] = NAN
        keys[i] = consts[3]
        cuda.atomic.add(counts, 0, 1)
        return
    keys[i] = _key(b, consts[0], consts[3])
    codes[i] = REGION if payload[i] else BACKGROUND


@kernel
def top_histogram(keys, codes, use_codes, shift, hist):
    """``hist[key >> shift] += 1`` over background keys (all keys when not ``use_codes``).

    Up to 65 536 bins, too many for shared memory, and float keys concentrate in a few
    of them: warp aggregation (``ranking._warp_lanes``) adds each bin's count once per
    warp. Out-of-range and skipped keys take part in the match with the sentinel -1.
    """
    t = cuda.threadIdx.x
    i = cuda.grid(1)
    b = np.int64(-1)
    if i < keys.size and (not use_codes or codes[i] == BACKGROUND):
        b = np.int64(keys[i] >> shift)
    peers = cuda.match_any_sync(_warp_lanes(t, cuda.blockDim.x)[0], b)
    if b >= 0 and cuda.ffs(peers) - 1 == cuda.laneid:
        cuda.atomic.add(hist, b, np.int64(cuda.popc(peers)))


@kernel
def select_flags(keys, codes, use_codes, code, cut, flags):
    """``flags[i] = 1`` where ``codes[i] == code`` (any code when not ``use_codes``) and
    ``keys[i] >= cut``."""
    i = cuda.grid(1)
    if i < keys.size:
        keep = keys[i] >= cut and (not use_codes or codes[i] == code)
        flags[i] = 1 if keep else 0


@kernel
def collapse_starts(n_region, flags):
    """Groups that start an output group when runs of background-only groups are collapsed
    into one (as ``cpu.regions.next_region_groups`` with ``collapse``)."""
    g = cuda.grid(1)
    if g < n_region.size:
        merge = g > 0 and n_region[g] == 0 and n_region[g - 1] == 0
        flags[g] = 0 if merge else 1


@kernel
def segment_add(values, flags, ranks, out):
    """``out[j] +=`` the values of the groups of output group ``j`` (integer atomics).

    Consecutive groups fold into the same ``j`` (runs of background-only groups): the
    lanes of a warp with the same ``j`` are found with ``match_any_sync``, and the lowest
    adds their sum (read from shared memory) with one atomic.
    """
    buf = cuda.shared.array(1024, np.int64)
    t = cuda.threadIdx.x
    g = cuda.grid(1)
    j = np.int64(-1)
    v = np.int64(0)
    if g < values.size:
        j = np.int64(ranks[g] + flags[g] - 1)
        v = np.int64(values[g])
    buf[t] = v
    cuda.syncthreads()
    peers = cuda.match_any_sync(_warp_lanes(t, cuda.blockDim.x)[0], j)
    if j >= 0 and cuda.ffs(peers) - 1 == cuda.laneid:
        total = np.int64(0)
        warp = t - cuda.laneid
        for lane in range(32):
            if (peers >> lane) & 1:
                total += buf[warp + lane]
        cuda.atomic.add(out, j, total)


@kernel
def region_overlaps(scores, regions, threshold, above, nan):
    """``above[id] +=`` the pixels of region ``id`` with ``score > threshold``; NaNs into ``nan[0]``.

    The pixels of a region lie together (labelled per image), so a warp's pixels mostly
    share one or two ids: warp aggregation adds each id's count once per warp. ``nan``
    stays per element: only NaN scores, an error the driver reports, touch it.
    """
    t = cuda.threadIdx.x
    i = cuda.grid(1)
    r = np.int64(-1)
    if i < scores.size:
        v = np.float64(scores[i])
        if v != v:
            cuda.atomic.add(nan, 0, 1)
        elif regions[i] != 0 and v > threshold:
            r = np.int64(regions[i])
    peers = cuda.match_any_sync(_warp_lanes(t, cuda.blockDim.x)[0], r)
    if r >= 0 and cuda.ffs(peers) - 1 == cuda.laneid:
        cuda.atomic.add(above, r, np.int64(cuda.popc(peers)))
