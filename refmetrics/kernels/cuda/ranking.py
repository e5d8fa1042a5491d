"""numba-cuda kernels for the exact ranking metrics (the twins of ``kernels/cpu/ranking.py``).

Work in progress (issue 5): the device path builds the same order-preserving
keys as the CPU path, sorts them with an LSD radix sort (per-tile digit
histograms, an exclusive scan, a stable per-tile scatter), and reduces the
AUROC to integer counts with binary searches, so the result is bit-identical
to the CPU's. Kernels are compiled lazily (no eager signatures) and take a
patchable ``THREADS`` so that tests under ``NUMBA_ENABLE_CUDASIM=1`` run
multi-block, multi-pass paths on small inputs.

Nothing here is wired into the public functions yet.
"""

import numpy as np
from numba import cuda

from ._sum import add_dd, div_dd

RADIX_BITS = 11
RADIX_SIZE = 1 << RADIX_BITS
THREADS = 128  # threads per block, and elements per radix tile; tests patch it small


@cuda.jit
def encode_keys(bits, target, consts, keys, labels, counts):
    """Keys of float bits (as ``kernels.cpu.ranking.score_key``) and label flags.

    ``labels[i]`` = 1 (positive), 0 (negative), 2 (NaN score: excluded) or 3
    (label not in {0, 1}); ``counts = [n_pos, n_neg, n_nan, n_bad]`` (atomics:
    integer, so order-free).
    """
    i = cuda.grid(1)
    if i >= bits.size:
        return
    sign = consts[0]
    magnitude = consts[1]
    inf = consts[2]
    ones = consts[3]
    b = bits[i]
    if (b & magnitude) > inf:
        labels[i] = 2
        keys[i] = ones
        cuda.atomic.add(counts, 2, 1)
        return
    if b == sign:
        b = sign ^ sign
    if b & sign:
        keys[i] = b ^ ones
    else:
        keys[i] = b | sign
    t = target[i]
    if t == 1:
        labels[i] = 1
        cuda.atomic.add(counts, 0, 1)
    elif t == 0:
        labels[i] = 0
        cuda.atomic.add(counts, 1, 1)
    else:
        labels[i] = 3
        cuda.atomic.add(counts, 3, 1)


@cuda.jit
def split_by_label(keys, labels, pos_rank, neg_rank, pos, neg):
    """Scatter keys to the positive / negative arrays at their exclusive-scan ranks."""
    i = cuda.grid(1)
    if i >= keys.size:
        return
    if labels[i] == 1:
        pos[pos_rank[i]] = keys[i]
    elif labels[i] == 0:
        neg[neg_rank[i]] = keys[i]


@cuda.jit
def tile_histogram(keys, shift, mask, hist):
    """``hist[digit, tile]`` = the keys of each tile (``cuda.blockDim.x`` keys) with that digit."""
    local = cuda.shared.array(RADIX_SIZE, np.int32)
    t = cuda.threadIdx.x
    tile = cuda.blockIdx.x
    for d in range(t, RADIX_SIZE, cuda.blockDim.x):
        local[d] = 0
    cuda.syncthreads()
    i = tile * cuda.blockDim.x + t
    if i < keys.size:
        cuda.atomic.add(local, (keys[i] >> shift) & mask, 1)
    cuda.syncthreads()
    for d in range(t, RADIX_SIZE, cuda.blockDim.x):
        hist[d, tile] = local[d]


@cuda.jit
def tile_scatter(src, dst, shift, mask, offsets):
    """Stable scatter of one radix pass: a key goes to ``offsets[digit, tile]`` plus the
    number of keys before it in its tile with the same digit (counted, so the order is kept)."""
    t = cuda.threadIdx.x
    tile = cuda.blockIdx.x
    start = tile * cuda.blockDim.x
    i = start + t
    if i >= src.size:
        return
    k = src[i]
    d = (k >> shift) & mask
    rank = 0
    for j in range(start, i):
        if (src[j] >> shift) & mask == d:
            rank += 1
    dst[offsets[d, tile] + rank] = k


@cuda.jit
def auroc_counts(pos, neg, out):
    """Twice Mann-Whitney's U: each negative ``k`` adds ``2 #(pos > k) + #(pos == k)``,
    both found by binary search in the sorted positives; summed with integer atomics."""
    i = cuda.grid(1)
    if i >= neg.size:
        return
    k = neg[i]
    lo = 0
    hi = pos.size
    while lo < hi:  # first positive >= k
        mid = (lo + hi) // 2
        if pos[mid] < k:
            lo = mid + 1
        else:
            hi = mid
    first_ge = lo
    hi = pos.size
    while lo < hi:  # first positive > k
        mid = (lo + hi) // 2
        if pos[mid] <= k:
            lo = mid + 1
        else:
            hi = mid
    first_gt = lo
    cuda.atomic.add(out, 0, 2 * (pos.size - first_gt) + (first_gt - first_ge))


@cuda.jit
def flag_scan(labels, value, out, block_sums):
    """Exclusive scan of ``labels == value`` within each block (Hillis-Steele in shared
    memory); ``block_sums[b]`` gets the block's total. Needs ``blockDim.x <= 1024``."""
    buf = cuda.shared.array(1024, np.int64)
    t = cuda.threadIdx.x
    i = cuda.grid(1)
    flag = 1 if i < labels.size and labels[i] == value else 0
    buf[t] = flag
    cuda.syncthreads()
    step = 1
    while step < cuda.blockDim.x:
        add = buf[t - step] if t >= step else 0
        cuda.syncthreads()
        buf[t] += add
        cuda.syncthreads()
        step *= 2
    if i < labels.size:
        out[i] = buf[t] - flag
    if t == cuda.blockDim.x - 1:
        block_sums[cuda.blockIdx.x] = buf[t]


@cuda.jit
def add_block_offsets(out, offsets):
    """``out[i] += offsets[block of i]``: completes a two-level scan."""
    i = cuda.grid(1)
    if i < out.size:
        out[i] += offsets[cuda.blockIdx.x]


@cuda.jit(device=True)
def _first_ge(arr, k):
    lo = 0
    hi = arr.size
    while lo < hi:
        mid = (lo + hi) // 2
        if arr[mid] < k:
            lo = mid + 1
        else:
            hi = mid
    return lo


@cuda.jit
def ap_block_sums(pos, neg, sums):
    """Average precision, per positive: at its score ``k``, ``TP/(TP+FP)`` with ``TP = #pos >= k``
    and ``FP = #neg >= k`` (binary searches); AP is the mean over the positives. Each block
    adds its terms as double-doubles in a fixed tree order into ``sums[block] = (hi, lo)``, so the
    result does not depend on scheduling."""
    hi_buf = cuda.shared.array(1024, np.float64)
    lo_buf = cuda.shared.array(1024, np.float64)
    t = cuda.threadIdx.x
    i = cuda.grid(1)
    qh = 0.0
    ql = 0.0
    if i < pos.size:
        k = pos[i]
        tp = pos.size - _first_ge(pos, k)
        fp = neg.size - _first_ge(neg, k)
        qh, ql = div_dd(np.float64(tp), np.float64(tp + fp))
    hi_buf[t] = qh
    lo_buf[t] = ql
    cuda.syncthreads()
    step = 1
    while step < cuda.blockDim.x:
        if t % (2 * step) == 0 and t + step < cuda.blockDim.x:
            h, l = add_dd(hi_buf[t], lo_buf[t], hi_buf[t + step], lo_buf[t + step])
            hi_buf[t] = h
            lo_buf[t] = l
        cuda.syncthreads()
        step *= 2
    if t == 0:
        sums[cuda.blockIdx.x, 0] = hi_buf[0]
        sums[cuda.blockIdx.x, 1] = lo_buf[0]


@cuda.jit(device=True)
def _f1_wins(tp, fp, k, btp, bfp, bk, n_pos):
    """Whether (tp, fp) at key k beats (btp, bfp) at key bk: larger exact F1 = 2tp/(tp+fp+P),
    ties to the lower key (threshold), as ``cpu.ranking.acc_f1_max``."""
    lhs = np.uint64(tp) * np.uint64(btp + bfp + n_pos)
    rhs = np.uint64(btp) * np.uint64(tp + fp + n_pos)
    return lhs > rhs or (lhs == rhs and k < bk)


@cuda.jit
def f1_block_best(pos, neg, best_counts, best_keys):
    """Per block, the element whose score gives the largest F1 (``TP = #pos >= k``,
    ``FP = #neg >= k``), reduced in a fixed tree order: ``best_counts[b] = (tp, fp, found)``."""
    tp_buf = cuda.shared.array(1024, np.int64)
    fp_buf = cuda.shared.array(1024, np.int64)
    ok_buf = cuda.shared.array(1024, np.int64)
    key_buf = cuda.shared.array(1024, np.uint64)
    t = cuda.threadIdx.x
    i = cuda.grid(1)
    n = pos.size + neg.size
    ok_buf[t] = 0
    tp_buf[t] = 0
    fp_buf[t] = 0
    key_buf[t] = 0
    if i < n:
        k = pos[i] if i < pos.size else neg[i - pos.size]
        tp_buf[t] = pos.size - _first_ge(pos, k)
        fp_buf[t] = neg.size - _first_ge(neg, k)
        key_buf[t] = np.uint64(k)
        ok_buf[t] = 1
    cuda.syncthreads()
    step = 1
    while step < cuda.blockDim.x:
        if t % (2 * step) == 0 and t + step < cuda.blockDim.x:
            o = t + step
            if ok_buf[o] == 1 and (ok_buf[t] == 0 or _f1_wins(tp_buf[o], fp_buf[o], key_buf[o], tp_buf[t],
                                                              fp_buf[t], key_buf[t], pos.size)):
                tp_buf[t] = tp_buf[o]
                fp_buf[t] = fp_buf[o]
                key_buf[t] = key_buf[o]
                ok_buf[t] = 1
        cuda.syncthreads()
        step *= 2
    if t == 0:
        best_counts[cuda.blockIdx.x, 0] = tp_buf[0]
        best_counts[cuda.blockIdx.x, 1] = fp_buf[0]
        best_counts[cuda.blockIdx.x, 2] = ok_buf[0]
        best_keys[cuda.blockIdx.x] = key_buf[0]
