"""Launchers of the CUDA ranking kernels (work in progress, issue 5; not public yet)."""

import numpy as np
from numba import cuda

from ..cpu.ranking import key_constants
from . import ranking as K

_KEY_OF = {np.dtype(np.float32): np.dtype(np.uint32), np.dtype(np.float64): np.dtype(np.uint64)}


def _blocks(n, threads):
    return max(1, (n + threads - 1) // threads)


def radix_sort(d_keys):
    """Sort a device key array ascending (LSD, 11-bit digits); returns the sorted device array.

    Digit histograms per tile are scanned on the host: they are small metadata
    (2048 counts per tile), the keys never leave the device.
    """
    n = d_keys.size
    if n < 2:
        return d_keys
    threads = K.THREADS
    tiles = _blocks(n, threads)
    width = d_keys.dtype.itemsize * 8
    src = d_keys
    dst = cuda.device_array_like(d_keys)
    ktype = d_keys.dtype.type
    for shift in range(0, width, K.RADIX_BITS):
        d_hist = cuda.device_array((K.RADIX_SIZE, tiles), np.int64)
        K.tile_histogram[tiles, threads](src, ktype(shift), ktype(K.RADIX_SIZE - 1), d_hist)
        hist = d_hist.copy_to_host()
        if (hist.sum(axis=1) == n).any():
            continue  # every key has the same digit: nothing moves
        flat = hist.reshape(-1)
        offsets = (np.cumsum(flat) - flat).reshape(hist.shape)
        K.tile_scatter[tiles, threads](src, dst, ktype(shift), ktype(K.RADIX_SIZE - 1), cuda.to_device(offsets))
        src, dst = dst, src
    return src


def rank_of(d_labels, value):
    """Device exclusive scan of ``labels == value``: each element's rank among its class.

    Two levels: a scan inside each block, then the block totals (one number per
    block of ``THREADS`` elements) scanned on the host and added back.
    """
    n = d_labels.size
    threads = K.THREADS
    blocks = _blocks(n, threads)
    d_out = cuda.device_array(n, np.int64)
    d_sums = cuda.device_array(blocks, np.int64)
    K.flag_scan[blocks, threads](d_labels, np.int8(value), d_out, d_sums)
    sums = d_sums.copy_to_host()
    K.add_block_offsets[blocks, threads](d_out, cuda.to_device(np.cumsum(sums) - sums))
    return d_out


def split_sorted(scores, target):
    """Device ``(pos, neg)`` sorted keys and ``(n_nan, n_bad)`` for host NumPy inputs."""
    kd = _KEY_OF[scores.dtype]
    n = scores.size
    d_bits = cuda.to_device(np.ascontiguousarray(scores).view(kd))
    d_target = cuda.to_device(np.ascontiguousarray(target))
    d_keys = cuda.device_array(n, kd)
    d_labels = cuda.device_array(n, np.int8)
    d_counts = cuda.to_device(np.zeros(4, np.int64))
    threads = K.THREADS
    K.encode_keys[_blocks(n, threads), threads](d_bits, d_target, cuda.to_device(key_constants(kd)), d_keys,
                                                d_labels, d_counts)
    n_pos, n_neg, n_nan, n_bad = (int(c) for c in d_counts.copy_to_host())
    d_pos = cuda.device_array(n_pos, kd)
    d_neg = cuda.device_array(n_neg, kd)
    K.split_by_label[_blocks(n, threads), threads](d_keys, d_labels, rank_of(d_labels, 1), rank_of(d_labels, 0),
                                                   d_pos, d_neg)
    return radix_sort(d_pos), radix_sort(d_neg), n_nan, n_bad


def auroc_u2(d_pos, d_neg):
    """``2U`` on the device, as a Python int."""
    out = cuda.to_device(np.zeros(1, np.int64))
    if d_neg.size and d_pos.size:
        K.auroc_counts[_blocks(d_neg.size, K.THREADS), K.THREADS](d_pos, d_neg, out)
    return int(out.copy_to_host()[0])


def average_precision(d_pos, d_neg):
    """AP on the device: per-positive terms, block sums in a fixed order, block totals added on the
    host in block order (double-double), one rounding. Within a few ulps of the CPU's value."""
    from ..cpu._sum import add_dd, dd_over

    n_pos = d_pos.size
    if not n_pos or not d_neg.size:
        return float("nan")
    threads = K.THREADS
    blocks = _blocks(n_pos, threads)
    d_sums = cuda.device_array((blocks, 2), np.float64)
    K.ap_block_sums[blocks, threads](d_pos, d_neg, d_sums)
    sh = sl = 0.0
    for h, l in d_sums.copy_to_host():
        sh, sl = add_dd(sh, sl, h, l)
    return float(dd_over(sh, sl, float(n_pos)))


def f1_best(d_pos, d_neg):
    """``(tp, fp, key)`` at the largest F1 (ties to the lowest threshold), or ``(0, 0, None)``."""
    n = d_pos.size + d_neg.size
    if not n:
        return 0, 0, None
    threads = K.THREADS
    blocks = _blocks(n, threads)
    d_counts = cuda.device_array((blocks, 3), np.int64)
    d_keys = cuda.device_array(blocks, np.uint64)
    K.f1_block_best[blocks, threads](d_pos, d_neg, d_counts, d_keys)
    best = None
    p = d_pos.size
    for (tp, fp, ok), key in zip(d_counts.copy_to_host(), d_keys.copy_to_host()):
        if not ok:
            continue
        tp, fp, key = int(tp), int(fp), int(key)
        if best is None:
            best = (tp, fp, key)
            continue
        lhs, rhs = tp * (best[0] + best[1] + p), best[0] * (tp + fp + p)
        if lhs > rhs or (lhs == rhs and key < best[2]):
            best = (tp, fp, key)
    return best[0], best[1], np.array([best[2]], d_pos.dtype)


def binned_histogram(scores, target, thresholds):
    """``(hist (2, T+1), n_nan, n_bad)`` as ``kernels.cpu.binned.binned_histogram`` gives."""
    from . import binned as KB

    hist = cuda.to_device(np.zeros((2, thresholds.size + 1), np.int64))
    counts = cuda.to_device(np.zeros(2, np.int64))
    n = scores.size
    KB.binned_histogram[_blocks(n, K.THREADS), K.THREADS](cuda.to_device(scores), cuda.to_device(target),
                                                           cuda.to_device(thresholds), hist, counts)
    n_nan, n_bad = (int(c) for c in counts.copy_to_host())
    return hist.copy_to_host(), n_nan, n_bad


def min_max(values):
    """``(min, max, n_nan)`` as ``kernels.cpu.stats.min_max_nan`` gives."""
    from . import stats as KS

    n = values.size
    blocks = _blocks(n, K.THREADS)
    out = cuda.device_array((blocks, 2), np.float64)
    nan = cuda.to_device(np.zeros(1, np.int64))
    KS.block_min_max[blocks, K.THREADS](cuda.to_device(values), out, nan)
    parts = out.copy_to_host()
    return float(parts[:, 0].min()) + 0.0, float(parts[:, 1].max()) + 0.0, int(nan.copy_to_host()[0])
