"""Launchers of the CUDA kernels: allocation, launch shapes, scans, sorts, groups.

What crosses the bus (host <-> device), besides the inputs the caller chose to
copy: scalars (counts, the key of one element), two words per radix sort (the
bits in which its keys and its payloads differ, read once before the first
pass to skip passes where every key has the same digit; a pass itself copies
nothing either way and uploads nothing), the total of a scan where it sizes an
array (compaction), and the results themselves (the per-group integer counts
for curves and areas, one row of counts per sample for F1Score, the region
overlaps for PRO, one row for F1-max's best threshold and for MinMax: their
per-block results are reduced on the device). Scores and keys stay on the
device.

Counters that many elements update (confusion counts, 2U, histograms, region
overlaps) are aggregated in shared memory or across a warp before one global
atomic per block or warp; counters that only invalid data touches (NaN scores,
bad labels, inexact casts) take one atomic per offending element.
"""

import functools
import warnings

import numpy as np
from numba import cuda

from ..cpu.keys import decode_keys, key_constants
from . import ranking as K

KEY_OF = {np.dtype(np.float32): np.dtype(np.uint32), np.dtype(np.float64): np.dtype(np.uint64)}
_CONSTS = {}


def consts(key_dtype):
    """``key_constants`` of a key dtype, on the current device (cached per device)."""
    key = (getattr(cuda.get_current_device(), "id", 0), np.dtype(key_dtype))  # the simulator's device: no id
    if key not in _CONSTS:
        _CONSTS[key] = cuda.to_device(key_constants(key[1]))
    return _CONSTS[key]


def grid(n):
    """``(blocks, threads)`` covering ``n`` elements, one per thread."""
    threads = K.THREADS
    return max(1, (n + threads - 1) // threads), threads


def zeros(shape, dtype):
    return cuda.to_device(np.zeros(shape, dtype))


def scalar(d_array, index):
    """One element of a device array, on the host."""
    return d_array[index:index + 1].copy_to_host()[0] if index >= 0 else d_array[index:].copy_to_host()[0]


def concatenate(arrays, dtype):
    """Device concatenation into a new array (device-to-device copies), also of a single array:
    the sorts work in their input, and parts may be held by several merged states."""
    arrays = [a for a in arrays if a.size]
    out = cuda.device_array(sum(a.size for a in arrays), dtype)
    start = 0
    for a in arrays:
        out[start:start + a.size].copy_to_device(a)
        start += a.size
    return out


# ---------------------------------------------------------------------------
# scans and compaction
# ---------------------------------------------------------------------------

def scan_scratch(n):
    """The block-total arrays of every level of a scan of ``n`` values, allocated once so
    that repeated scans of the same size (one per radix pass) allocate nothing."""
    sums = []
    while True:
        blocks, _ = grid(n)
        sums.append(cuda.device_array(blocks, np.int64))
        if blocks == 1:
            return sums
        n = blocks


def scan_into(d_values, d_out, sums, level=0):
    """Exclusive prefix sum of ``d_values`` into ``d_out`` (int64; may be ``d_values``
    itself, each element is read and written by one thread) with the scratch of
    :func:`scan_scratch`. Nothing crosses the bus: the total stays on the device, in
    ``sums[-1][0]``.

    Blocks scan in shared memory; the block totals are scanned the same way, in
    place, recursively, until one block holds them all.
    """
    blocks, threads = grid(d_values.size)
    K.exclusive_block_scan[blocks, threads](d_values, d_out, sums[level])
    if blocks > 1:
        scan_into(sums[level], sums[level], sums, level + 1)
        K.add_block_offsets[blocks, threads](d_out, sums[level])


def exclusive_scan(d_values):
    """Exclusive prefix sum of a device integer array: ``(device int64 array, total)``;
    the total (one number) is copied to the host, for callers that size an array by it."""
    sums = scan_scratch(d_values.size)
    d_out = cuda.device_array(d_values.size, np.int64)
    scan_into(d_values, d_out, sums)
    return d_out, int(sums[-1].copy_to_host()[0])


def compact(d_keys, d_flags, d_payload=None, payload_dtype=np.uint64):
    """The keys (and payload) where ``flags`` is set, in order: ``(keys, payload or None)``."""
    d_ranks, total = exclusive_scan(d_flags)
    out_k = cuda.device_array(total, d_keys.dtype)
    has_payload = d_payload is not None
    out_p = cuda.device_array(total if has_payload else 1, payload_dtype)
    K.compact[grid(d_keys.size)](d_keys, d_payload if has_payload else out_p, has_payload, d_flags, d_ranks,
                                 out_k, out_p)
    return out_k, (out_p if has_payload else None)


# ---------------------------------------------------------------------------
# sort
# ---------------------------------------------------------------------------

SORT_MAX_THREADS = K.SORT_WARPS * K.WARP  # tile_scatter's per-warp digit tables


def radix_sort(d_keys, d_payload=None, payload_bits=0):
    """Sort device keys ascending (LSD, ``RADIX_BITS``-bit digits, stable): ``(keys, payload or None)``.

    With a payload, the payload's low ``payload_bits`` are sorted first, so the
    result is ordered by ``(key, payload)``. A pass whose digit is the same for
    every key moves nothing and is skipped: one kernel finds, before the first
    pass, the bits in which the keys (and payloads) differ, and those two words are
    the only thing that crosses the bus. Each pass then runs three launches and no
    copy (tile histogram, scan in place, scatter), in scratch allocated once per
    sort. The input arrays serve as scratch: pass arrays nobody else holds
    (``concatenate`` makes them).

    Raises ``ValueError`` if ``ranking.THREADS`` exceeds ``SORT_MAX_THREADS`` (256).
    """
    n = d_keys.size
    if n < 2:
        return d_keys, d_payload
    threads, items = K.THREADS, K.ITEMS
    if threads > SORT_MAX_THREADS:
        raise ValueError(f"expected refmetrics.kernels.cuda.ranking.THREADS <= {SORT_MAX_THREADS} for the radix "
                         f"sort (its per-warp digit tables hold {K.SORT_WARPS} warps), received THREADS = {threads}")
    tiles = (n + threads * items - 1) // (threads * items)
    has_payload = d_payload is not None
    kt = d_keys.dtype.type
    src_k, src_p = d_keys, (d_payload if has_payload else cuda.device_array(1, np.uint64))
    pt = src_p.dtype.type
    bits, mask = K.RADIX_BITS, K.RADIX_SIZE - 1
    d_diff = cuda.device_array(2, np.uint64)
    K.fill_zero[grid(2)](d_diff)
    K.digit_differences[tiles, threads](src_k, src_p, has_payload and payload_bits > 0, d_diff)
    diff_k, diff_p = (int(x) for x in d_diff.copy_to_host())  # the sort's one copy to the host
    passes = [(True, s) for s in range(0, payload_bits, bits) if diff_p >> s & mask] if has_payload else []
    passes += [(False, s) for s in range(0, 8 * d_keys.dtype.itemsize, bits) if diff_k >> s & mask]
    if not passes:
        return src_k, (src_p if has_payload else None)
    dst_k = cuda.device_array_like(d_keys)
    dst_p = cuda.device_array_like(d_payload) if has_payload else src_p
    d_hist = cuda.device_array(K.RADIX_SIZE * tiles, np.int64)  # then, scanned in place, the offsets
    sums = scan_scratch(d_hist.size)
    for by_payload, shift in passes:
        args = (by_payload, kt(shift), kt(mask), pt(shift), pt(mask), items)
        K.tile_histogram[tiles, threads](src_k, src_p, *args, d_hist)
        scan_into(d_hist, d_hist, sums)
        K.tile_scatter[tiles, threads](src_k, src_p, dst_k, dst_p, has_payload, *args, d_hist)
        src_k, dst_k = dst_k, src_k
        if has_payload:
            src_p, dst_p = dst_p, src_p
    return src_k, (src_p if has_payload else None)


# ---------------------------------------------------------------------------
# keys
# ---------------------------------------------------------------------------

def contiguous(d_array):
    """A C-contiguous flat device copy of a strided device array (up to 4 dimensions)."""
    n = d_array.size
    out = cuda.device_array(n, d_array.dtype)
    gather = {1: K.gather1, 2: K.gather2, 3: K.gather3, 4: K.gather4}.get(d_array.ndim)
    if gather is None:
        raise ValueError(f"expected a contiguous device array or a strided one of at most 4 dimensions, "
                         f"received a strided one of {d_array.ndim}")
    gather[grid(n)](d_array, out)
    return out.reshape(d_array.shape)


def to_float(d_values, name_dtype):
    """A float32/float64 device array with the same values (a cast kernel where needed):
    ``(array, n_inexact)`` where ``n_inexact`` counts int64 values beyond 2**53."""
    dt = d_values.dtype
    if dt in (np.float32, np.float64):
        return d_values, 0
    out = cuda.device_array(d_values.size, name_dtype)
    counts = zeros(1, np.int64)
    if dt.kind in "iu" and dt.itemsize == 8:
        lo, hi = dt.type(0 if dt.kind == "u" else -(2 ** 53)), dt.type(2 ** 53)
    else:
        lo, hi = np.float64(-np.inf), np.float64(np.inf)
    src = d_values.view(np.uint8) if dt == np.bool_ else d_values
    K.cast[grid(d_values.size)](src, out, lo, hi, counts)
    return out, int(counts.copy_to_host()[0])


def encode_batch(d_scores, d_target, has_ignore, ignore):
    """Keys of one batch split by label: ``(pos, neg, n_nan, n_bad)`` (unsorted device keys)."""
    kd = KEY_OF[d_scores.dtype]
    n = d_scores.size
    d_keys = cuda.device_array(n, kd)
    d_labels = cuda.device_array(n, np.int8)
    d_counts = zeros(2, np.int64)
    K.encode_keys[grid(n)](d_scores.view(kd), d_target, has_ignore, ignore, consts(kd), d_keys, d_labels,
                           d_counts)
    n_nan, n_bad = (int(c) for c in d_counts.copy_to_host())
    out = []
    for value in (K.POSITIVE, K.NEGATIVE):
        d_flags = cuda.device_array(n, np.int8)
        K.label_flags[grid(n)](d_labels, np.int8(value), d_flags)
        out.append(compact(d_keys, d_flags)[0])
    return out[0], out[1], n_nan, n_bad


def widen(d_keys32):
    """float32 keys re-keyed as float64 keys (exact)."""
    n = d_keys32.size
    bits = cuda.device_array(n, np.uint32)
    K.decode_bits[grid(n)](d_keys32, consts(np.uint32), bits)
    values = bits.view(np.float32)
    wide = cuda.device_array(n, np.float64)
    K.cast[grid(n)](values, wide, np.float64(-np.inf), np.float64(np.inf), zeros(1, np.int64))
    keys = cuda.device_array(n, np.uint64)
    K.encode_plain[grid(n)](wide.view(np.uint64), consts(np.uint64), keys)
    return keys


decode = decode_keys  # host float64 values of host keys (one definition: cpu/keys.py)


# ---------------------------------------------------------------------------
# reductions of sorted keys
# ---------------------------------------------------------------------------

def auroc_u2(d_pos, d_neg):
    """``2U`` (twice Mann-Whitney's U) as a Python int (one atomic per block, 128 bits back)."""
    out = zeros(2, np.uint64)
    if d_neg.size and d_pos.size:
        K.auroc_counts[grid(d_neg.size)](d_pos, d_neg, out)
    low, high = (int(x) for x in out.copy_to_host())
    return (high << 64) + low


def f1_best(d_pos, d_neg):
    """``(tp, fp, key)`` at the largest F1 (ties to the lowest threshold), or ``(0, 0, None)``;
    ``key`` as a one-element host array of the key dtype.

    ``f1_block_best`` leaves one candidate ``(tp, fp, found, key)`` per block;
    ``f1_reduce_best`` reduces those on the device, a block of rows at a time, until one
    row is left: that row (four uint64) is all that crosses to the host. The comparator
    (``ranking._f1_wins``, the CPU's rule) has a unique winner, so the result is the CPU's
    whatever the launch shape.
    """
    n = d_pos.size + d_neg.size
    if not n:
        return 0, 0, None
    blocks, threads = grid(n)
    d_best = cuda.device_array((blocks, 4), np.uint64)
    K.f1_block_best[blocks, threads](d_pos, d_neg, d_best)
    while d_best.shape[0] > 1:
        blocks, threads = grid(d_best.shape[0])
        d_next = cuda.device_array((blocks, 4), np.uint64)
        K.f1_reduce_best[blocks, threads](d_best, np.int64(d_pos.size), d_next)
        d_best = d_next
    tp, fp, found, key = (int(v) for v in d_best.copy_to_host()[0])
    if not found:  # not reached: n > 0 elements always give a candidate
        return 0, 0, None
    return tp, fp, np.array([key], d_pos.dtype)


def groups(d_a, d_b):
    """The distinct keys of two sorted device arrays, decreasing, and how many of each
    array's keys equal each: ``(keys, count_a, count_b)`` as device arrays."""
    flags = cuda.device_array(d_a.size, np.int8)
    K.run_end_flags[grid(d_a.size)](d_a, d_b, False, flags)
    dist_a, _ = compact(d_a, flags)
    flags = cuda.device_array(d_b.size, np.int8)
    K.run_end_flags[grid(d_b.size)](d_b, d_a, True, flags)
    dist_b, _ = compact(d_b, flags)
    g = dist_a.size + dist_b.size
    keys = cuda.device_array(g, d_a.dtype)
    K.merge_descending[grid(g)](dist_a, dist_b, keys)
    ca = cuda.device_array(g, np.int64)
    cb = cuda.device_array(g, np.int64)
    K.count_equal[grid(g)](keys, d_a, d_b, ca, cb)
    return keys, ca, cb


def count_at_least(d_sorted, bounds):
    """``#(keys >= b)`` for each host key ``b`` in ``bounds``, as a host int64 array."""
    out = cuda.device_array(bounds.size, np.int64)
    K.count_at_least[grid(bounds.size)](d_sorted, cuda.to_device(bounds), out)
    return out.copy_to_host()


# ---------------------------------------------------------------------------
# binned mode, statistics, F1Score
# ---------------------------------------------------------------------------

SHARED_BYTES = 48 * 1024  # shared memory a block may use without an opt-in (every GPU since Fermi)


def binned_histogram(d_scores, d_target, has_ignore, ignore, thresholds, d_hist):
    """Add one batch to the device ``(2, T+1)`` histogram ``d_hist``: ``(n_nan, n_bad)``.

    Each block counts into a shared copy of the histogram (dynamic shared memory, int32)
    and adds it to ``d_hist`` once, when it fits in ``SHARED_BYTES``; a block takes enough
    elements (``items`` per thread) to have about one per bin. A larger histogram is
    counted with warp-aggregated global atomics, one element per thread.
    """
    from . import binned as KB

    n = d_scores.size
    bins = d_hist.size
    threads = K.THREADS
    use_shared = 4 * bins <= SHARED_BYTES
    items = max(1, -(-bins // threads)) if use_shared else 1
    blocks = max(1, -(-n // (threads * items)))
    counts = zeros(2, np.int64)
    KB.binned_histogram[blocks, threads, 0, 4 * bins if use_shared else 0](
        d_scores, d_target, has_ignore, ignore, cuda.to_device(thresholds), np.int64(items), use_shared, d_hist,
        counts)
    n_nan, n_bad = (int(c) for c in counts.copy_to_host())
    return n_nan, n_bad


def add_into(d_dst, d_src):
    from . import binned as KB

    KB.add_into[grid(d_dst.size)](d_dst.reshape(d_dst.size), d_src.reshape(d_src.size))


def min_max(d_values, d_labels=None, ignore=0):
    """``(min, max, n_nan)`` as ``kernels.cpu.stats.min_max_nan`` gives (float64; elements whose
    label equals ``ignore`` skipped when labels are given). Per-block results are reduced on
    the device: one row crosses to the host."""
    from . import stats as KS

    n = d_values.size
    blocks, threads = grid(n)
    out = cuda.device_array((blocks, 2), np.float64)
    nan = zeros(1, np.int64)
    has_labels = d_labels is not None
    KS.block_min_max[blocks, threads](d_values, d_labels if has_labels else d_values, has_labels,
                                      ignore if has_labels else d_values.dtype.type(0), out, nan)
    while out.shape[0] > 1:  # reduce the block results on the device until one row is left
        blocks, threads = grid(out.shape[0])
        parts, out = out, cuda.device_array((blocks, 2), np.float64)
        KS.reduce_min_max[blocks, threads](parts, out)
    lo, hi = out.copy_to_host()[0]
    return float(lo) + 0.0, float(hi) + 0.0, int(nan.copy_to_host()[0])


def confusion_counts(d_scores, d_target, has_ignore, ignore, cut, rows):
    """``(rows, 3)`` host TP, FP, FN of ``score >= cut`` and the number of bad labels."""
    from . import threshold as KT

    out = zeros((rows, 3), np.int64)
    bad = zeros(1, np.int64)
    n = d_scores.size
    KT.confusion_counts[grid(n)](d_scores, d_target, has_ignore, ignore, np.float64(cut), max(1, n // rows),
                                 out, bad)
    return out.copy_to_host(), int(bad.copy_to_host()[0])


def log_values(d_values):
    """``(device float64 logs, n_nan, n_nonpositive)``."""
    from . import stats as KS

    n = d_values.size
    out = cuda.device_array(n, np.float64)
    counts = zeros(2, np.int64)
    src = d_values.view(np.uint8) if d_values.dtype == np.bool_ else d_values
    KS.log_values[grid(n)](src, out, counts)
    n_nan, n_nonpos = (int(c) for c in counts.copy_to_host())
    return out, n_nan, n_nonpos


def column_mean_std(d_rows, n_rows, n_columns):
    """Column mean and std (ddof=1) of a row-major ``(n_rows, n_columns)`` float64 device
    matrix, each column sorted and then summed with compensated sums as
    ``cpu.stats.column_mean_std`` does, one block per column (a parallel sum in a fixed
    order: deterministic, within an ulp or so of the CPU's sequential sum)."""
    from . import stats as KS

    n = d_rows.size
    keys = cuda.device_array(n, np.uint64)
    K.encode_plain[grid(n)](d_rows.view(np.uint64), consts(np.uint64), keys)
    columns = cuda.device_array(n, np.uint64)
    KS.column_of[grid(n)](np.int64(n_columns), columns)
    keys, columns = radix_sort(keys, columns, payload_bits=0)  # by value
    columns, keys = radix_sort(columns, keys, payload_bits=0)  # then by column, stably
    bits = cuda.device_array(n, np.uint64)
    K.decode_bits[grid(n)](keys, consts(np.uint64), bits)
    mean = cuda.device_array(n_columns, np.float64)
    std = cuda.device_array(n_columns, np.float64)
    KS.column_mean_std[n_columns, K.THREADS](bits.view(np.float64), np.int64(n_rows), mean, std)
    return mean.copy_to_host(), std.copy_to_host()


# ---------------------------------------------------------------------------
# regions
# ---------------------------------------------------------------------------

BACKGROUND, REGION = 0, 1


def to_device(host_array):
    return cuda.to_device(host_array)


def encode_pixels(d_scores, d_payload):
    """``(keys, codes, n_nan)``: keys of every pixel, code 0 background / 1 region / 2 NaN."""
    from . import regions as KR

    kd = KEY_OF[d_scores.dtype]
    n = d_scores.size
    keys = cuda.device_array(n, kd)
    codes = cuda.device_array(n, np.int8)
    counts = zeros(1, np.int64)
    KR.encode_pixels[grid(n)](d_scores.view(kd), d_payload, consts(kd), keys, codes, counts)
    return keys, codes, int(counts.copy_to_host()[0])


def top_histogram(d_keys, d_codes, shift, size):
    """Host histogram of the keys' top bits (background pixels only when codes are given)."""
    from . import regions as KR

    hist = zeros(size, np.int64)
    use_codes = d_codes is not None
    KR.top_histogram[grid(d_keys.size)](d_keys, d_codes if use_codes else d_keys, use_codes, shift, hist)
    return hist.copy_to_host()


def select(d_keys, d_codes, code, cut, d_payload=None):
    """Keys (and payload, as uint64) with the given code (any, when codes are None) and
    ``key >= cut``: ``(keys, payload or None)``."""
    from . import regions as KR

    use_codes = d_codes is not None
    flags = cuda.device_array(d_keys.size, np.int8)
    KR.select_flags[grid(d_keys.size)](d_keys, d_codes if use_codes else d_keys, use_codes, np.int8(code),
                                       d_keys.dtype.type(cut), flags)
    return compact(d_keys, flags, d_payload, np.uint64)


def region_groups(d_rkeys, d_bg, collapse):
    """Host ``(n_region, dfp)`` per group, distinct keys decreasing (background-only runs
    collapsed into one group with ``collapse``)."""
    from . import regions as KR

    _, n_region, dfp = groups(d_rkeys, d_bg)
    if collapse and n_region.size:
        g = n_region.size
        flags = cuda.device_array(g, np.int8)
        KR.collapse_starts[grid(g)](n_region, flags)
        ranks, total = exclusive_scan(flags)
        out_r = zeros(total, np.int64)
        out_fp = zeros(total, np.int64)
        KR.segment_add[grid(g)](n_region, flags, ranks, out_r)
        KR.segment_add[grid(g)](dfp, flags, ranks, out_fp)
        n_region, dfp = out_r, out_fp
    return n_region.copy_to_host(), dfp.copy_to_host()


def region_overlaps(d_scores, d_ids, n_regions, threshold):
    """Host ``(above, n_nan)``: per region id (index 0 = background, unused), its pixels with
    ``score > threshold``."""
    from . import regions as KR

    above = zeros(n_regions + 1, np.int64)
    nan = zeros(1, np.int64)
    KR.region_overlaps[grid(d_scores.size)](d_scores, d_ids, np.float64(threshold), above, nan)
    return above.copy_to_host(), int(nan.copy_to_host()[0])


# ---------------------------------------------------------------------------
# numba warns about "under-utilization" for every grid below 128 blocks; here
# small grids are the normal case of small inputs, not a tuning problem.
# ---------------------------------------------------------------------------

def _quiet(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*under-utilization.*")
            return fn(*args, **kwargs)
    return wrapper


for _name in ("exclusive_scan", "compact", "radix_sort", "to_float", "encode_batch", "widen", "auroc_u2",
              "f1_best", "groups", "count_at_least", "binned_histogram", "add_into", "min_max",
              "confusion_counts", "log_values", "column_mean_std", "encode_pixels", "top_histogram", "select",
              "region_groups", "region_overlaps", "contiguous"):
    globals()[_name] = _quiet(globals()[_name])


# ---------------------------------------------------------------------------
# PIMO / AUPIMO (issue 13, section 1): what crosses the bus is one count per
# image (its defect pixels), the NaN and bad-label counts, the histogram of the
# normal keys' top bits and the few keys above the window's cut (both through
# the region helpers above), the window thresholds (uploaded), and two rows of
# integer counts per anomalous image.
# ---------------------------------------------------------------------------

def pimo_partition(d_scores, d_target, n_images, n_per, keep_other):
    """Keys of a batch of images split as ``cpu.pimo.partition_images`` does, image order kept:
    ``(normal, defect, other or None, positives (host int64 per image), n_nan, n_bad)``."""
    from . import pimo as KP

    kd = KEY_OF[d_scores.dtype]
    n = d_scores.size
    d_pos = zeros(n_images, np.int64)
    d_bad = zeros(1, np.int64)
    KP.image_positives[n_images, K.THREADS](d_target, np.int64(n_per), d_pos, d_bad)
    keys = cuda.device_array(n, kd)
    codes = cuda.device_array(n, np.int8)
    counts = zeros(1, np.int64)
    KP.encode_images[grid(n)](d_scores.view(kd), d_target, np.int64(n_per), d_pos, consts(kd), keys, codes,
                              counts)
    out = []
    for code in (KP.NORMAL, KP.DEFECT) + ((KP.OTHER,) if keep_other else ()):
        flags = cuda.device_array(n, np.int8)
        K.label_flags[grid(n)](codes, np.int8(code), flags)
        out.append(compact(keys, flags)[0])
    other = out[2] if keep_other else None
    return (out[0], out[1], other, d_pos.copy_to_host(), int(counts.copy_to_host()[0]),
            int(d_bad.copy_to_host()[0]))


def pimo_defect_bins(d_defect, offsets, window):
    """Host ``(at_le, at_lt)`` of ``cpu.pimo.defect_bins`` for the images whose defect keys are
    ``d_defect[offsets[0]:offsets[-1]]`` (``offsets`` a host int64 array, ``window`` host keys ascending)."""
    from . import pimo as KP

    rows = offsets.size - 1
    at_le = zeros((rows, window.size + 1), np.int64)
    at_lt = zeros((rows, window.size + 1), np.int64)
    lo, hi = int(offsets[0]), int(offsets[-1])
    if hi > lo:
        keys = d_defect[lo:hi]
        KP.defect_bins[grid(hi - lo)](keys, cuda.to_device(np.ascontiguousarray(offsets - lo)),
                                      cuda.to_device(window), at_le, at_lt)
    return at_le.copy_to_host(), at_lt.copy_to_host()


for _name in ("pimo_partition", "pimo_defect_bins"):
    globals()[_name] = _quiet(globals()[_name])
