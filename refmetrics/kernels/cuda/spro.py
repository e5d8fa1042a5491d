"""numba-cuda twins of ``kernels/cpu/spro.py``: the device side of sPRO and AU-sPRO.

The masks are read on the host, which sends one byte per pixel (in some defect
or not) and, per defect pixel, its flat index and its defect's number. On the
device: the keys of every pixel and the background compaction
(``regions.encode_pixels`` / ``_driver.select``), then each defect's pixels are
gathered and ranked with two stable radix sorts (by key, then by defect), and
the ``S`` highest of each defect are kept with their ``S``: the multiset of
(key, ``S``) pairs the CPU keeps with ``np.partition`` (ties at the saturation
boundary have equal keys, so which of them is kept does not matter). The groups
and the host-side sums are those of the PRO curve (``regions.py``), so the
results are bit-identical to the CPU's.
"""

import numpy as np
from numba import cuda

from . import _driver as driver
from ._jit import kernel


@kernel
def gather_keys(keys, idx, out):
    """``out[e] = keys[idx[e]]``: the keys of the defect pixels, defect after defect."""
    e = cuda.grid(1)
    if e < idx.size:
        out[e] = keys[idx[e]]


@kernel
def saturation_flags(ids, seg_end, sat, payload, flags):
    """For entries sorted by (defect, key ascending): keep (``flags = 1``, ``payload = S``)
    the ``S`` highest keys of each defect, i.e. the entries whose rank from the end of
    their defect's segment (``seg_end[d] - e``, 1 for the highest) is at most ``S``."""
    e = cuda.grid(1)
    if e < ids.size:
        d = np.int64(ids[e])
        s = sat[d]
        keep = np.uint64(seg_end[d] - e) <= s
        payload[e] = s if keep else np.uint64(0)
        flags[e] = 1 if keep else 0


def saturated_keys(d_keys, idx, ids, seg_end, sat):
    """Device ``(keys, S)`` of the ``S`` highest-scoring pixels of every defect.

    ``idx``: host int64 flat pixel indices of the defects' pixels, defect after
    defect; ``ids``: host uint64 defect number of each; ``seg_end``: host int64
    end of each defect's run in ``idx``; ``sat``: host uint64 ``S`` per defect (> 0).
    """
    n = idx.size
    d_idx = cuda.to_device(idx)
    ekeys = cuda.device_array(n, d_keys.dtype)
    gather_keys[driver.grid(n)](d_keys, d_idx, ekeys)
    del d_idx
    ekeys, d_ids = driver.radix_sort(ekeys, cuda.to_device(ids), payload_bits=0)  # by key (ids carried)
    d_ids, ekeys = driver.radix_sort(d_ids, ekeys, payload_bits=0)  # then by defect, stably
    payload = cuda.device_array(n, np.uint64)
    flags = cuda.device_array(n, np.int8)
    saturation_flags[driver.grid(n)](d_ids, cuda.to_device(seg_end), cuda.to_device(sat), payload, flags)
    return driver.compact(ekeys, flags, payload, np.uint64)


saturated_keys = driver._quiet(saturated_keys)  # small grids are the normal case of small inputs
