"""numba-cuda kernels for the exact ranking metrics (the twins of ``kernels/cpu/ranking.py``).

The device path builds the same order-preserving keys as the CPU path, sorts
them with an LSD radix sort (8-bit digits; per-tile digit histograms, a device
exclusive scan, a stable per-tile scatter that ranks keys per warp with
``match_any_sync``; before the first pass one kernel finds the bits in which the
keys differ, and those two words are all a sort copies to the host: a pass
copies and uploads nothing), and reduces the sorted keys to
integer counts: twice Mann-Whitney's U by binary searches, the F1-maximising
threshold by exact integer comparisons, and the *groups* (distinct keys,
decreasing, with the positives and negatives at each) that the CPU's
accumulators turn into curves and areas. Every result derived from these
integers is therefore bit-identical to the CPU's.

Kernels never validate and never raise: they count NaNs and bad labels for the
driver to report. They compile lazily (no eager signatures; ``cache=True`` keeps
the compiled code on disk for the next process), and the launchers
read ``THREADS`` (threads per block) and ``ITEMS`` (keys per thread in a radix
tile) from this module at call time, so tests under ``NUMBA_ENABLE_CUDASIM=1``
patch them small and run the multi-block, multi-tile, multi-pass paths.
"""

import numpy as np
from numba import cuda

from ..cpu import _int128 as C128
from ..cpu import ranking as C
from . import keys as KEYS
from ._jit import device, kernel
from .image_scores import twin

_U64_MAX = np.uint64(0xFFFFFFFFFFFFFFFF)
RADIX_BITS = 8
RADIX_SIZE = 1 << RADIX_BITS
THREADS = 256  # threads per block (at most 1024: the shared scan buffers)
ITEMS = 16  # keys per thread in a radix tile: a tile is THREADS * ITEMS keys

# label codes written by encode_keys
POSITIVE, NEGATIVE, NAN, BAD, IGNORED = 1, 0, 2, 3, 4


# the key map and the NaN test, compiled from the CPU kernels' own Python source (one definition)
_key, _is_nan, _key_bits = KEYS.score_key, KEYS.is_nan, KEYS.key_bits


@kernel
def encode_keys(bits, target, has_ignore, ignore, consts, keys, labels, counts):
    """Keys of float bits and label codes.

    ``labels[i]`` = 1 (positive), 0 (negative), 2 (NaN score), 3 (label not in
    {0, 1}) or 4 (ignored: ``target == ignore``, dropped before anything else);
    ``counts = [n_nan, n_bad]`` (integer atomics, order-free; only invalid data
    touches them, so valid data never contends on them). ``consts`` as
    ``cpu.keys.key_constants``.
    """
    i = cuda.grid(1)
    if i >= bits.size:
        return
    t = target[i]
    if has_ignore and t == ignore:
        labels[i] = IGNORED
        return
    b = bits[i]
    if _is_nan(b, consts[1], consts[2]):
        labels[i] = NAN
        keys[i] = consts[3]
        cuda.atomic.add(counts, 0, 1)
        return
    keys[i] = _key(b, consts[0], consts[3])
    if t == 1:
        labels[i] = POSITIVE
    elif t == 0:
        labels[i] = NEGATIVE
    else:
        labels[i] = BAD
        cuda.atomic.add(counts, 1, 1)


@kernel
def encode_plain(bits, consts, keys):
    """Keys of float bits known to hold no NaN (re-keying after a widening)."""
    i = cuda.grid(1)
    if i < bits.size:
        keys[i] = _key(bits[i], consts[0], consts[3])


@kernel
def decode_bits(keys, consts, bits):
    """Float bits of keys (the inverse of the key map)."""
    i = cuda.grid(1)
    if i < keys.size:
        bits[i] = _key_bits(keys[i], consts[0], consts[3])


@kernel
def cast(src, dst, lo, hi, counts):
    """``dst[i] = src[i]`` converted to ``dst``'s float type; ``counts[0]`` counts the
    values outside ``[lo, hi]`` (int64 scores must stay within 2**53 to be exact;
    the bounds are typed like ``src`` so the comparison is exact)."""
    i = cuda.grid(1)
    if i < src.size:
        v = src[i]
        if v > hi or v < lo:
            cuda.atomic.add(counts, 0, 1)
        dst[i] = v


@kernel
def gather1(src, out):
    """``out`` (flat, C order) = ``src``, a strided 1-D device array."""
    i = cuda.grid(1)
    if i < out.size:
        out[i] = src[i]


@kernel
def gather2(src, out):
    """As :func:`gather1` for 2-D."""
    i = cuda.grid(1)
    if i < out.size:
        n1 = src.shape[1]
        out[i] = src[i // n1, i % n1]


@kernel
def gather3(src, out):
    """As :func:`gather1` for 3-D."""
    i = cuda.grid(1)
    if i < out.size:
        n1, n2 = src.shape[1], src.shape[2]
        out[i] = src[i // (n1 * n2), (i // n2) % n1, i % n2]


@kernel
def gather4(src, out):
    """As :func:`gather1` for 4-D."""
    i = cuda.grid(1)
    if i < out.size:
        n1, n2, n3 = src.shape[1], src.shape[2], src.shape[3]
        out[i] = src[i // (n1 * n2 * n3), (i // (n2 * n3)) % n1, (i // n3) % n2, i % n3]


@kernel
def exclusive_block_scan(values, out, block_sums):
    """Exclusive scan of ``values`` within each block (Hillis-Steele in shared memory);
    ``block_sums[b]`` gets the block's total. Needs ``blockDim.x <= 1024``."""
    buf = cuda.shared.array(1024, np.int64)
    t = cuda.threadIdx.x
    i = cuda.grid(1)
    v = np.int64(0)
    if i < values.size:
        v = np.int64(values[i])
    buf[t] = v
    cuda.syncthreads()
    step = 1
    while step < cuda.blockDim.x:
        add = buf[t - step] if t >= step else np.int64(0)
        cuda.syncthreads()
        buf[t] += add
        cuda.syncthreads()
        step *= 2
    if i < values.size:
        out[i] = buf[t] - v
    if t == cuda.blockDim.x - 1:
        block_sums[cuda.blockIdx.x] = buf[t]


@kernel
def add_block_offsets(out, offsets):
    """``out[i] += offsets[block of i]``: completes a two-level scan."""
    i = cuda.grid(1)
    if i < out.size:
        out[i] += offsets[cuda.blockIdx.x]


@kernel
def label_flags(labels, value, flags):
    """``flags[i] = labels[i] == value``."""
    i = cuda.grid(1)
    if i < labels.size:
        flags[i] = 1 if labels[i] == value else 0


@kernel
def compact(src_k, src_p, has_payload, flags, ranks, dst_k, dst_p):
    """Stream compaction: ``dst[ranks[i]] = src[i]`` where ``flags[i]`` (order kept)."""
    i = cuda.grid(1)
    if i < src_k.size and flags[i]:
        dst_k[ranks[i]] = src_k[i]
        if has_payload:
            dst_p[ranks[i]] = src_p[i]


# ---------------------------------------------------------------------------
# LSD radix sort: per-tile histograms, a device scan, a stable scatter
# ---------------------------------------------------------------------------
#
# Both tile kernels read a tile of ``blockDim.x * items`` keys in ``items``
# rounds of ``blockDim.x`` consecutive keys, and rank keys per warp:
# ``cuda.match_any_sync`` gives each thread the lanes of its warp that hold the
# same digit (its *peers*), ``popc`` of the peers below it is its rank among
# them, and the lowest peer speaks for the group. Every thread of the block
# calls it in every round (a thread past the end with the digit RADIX_SIZE,
# which no key has), as the simulator's ``match_any_sync`` needs; the lane
# mask names the lanes that exist, so a partial last warp (``blockDim.x`` not
# a multiple of 32: 16 in the tests) works.

WARP = 32
SORT_WARPS = 8  # per-warp digit tables hold 8 warps: the sort needs blockDim.x <= SORT_WARPS * WARP = 256
STAMP = 64  # tile_scatter's table entries are round stamp + count (a warp counts at most 32 keys)


@device
def _digit(src_k, src_p, i, by_payload, kshift, kmask, pshift, pmask):
    if by_payload:
        return np.int32((src_p[i] >> pshift) & pmask)
    return np.int32((src_k[i] >> kshift) & kmask)


@device
def _warp_lanes(t, nt):
    """``(lanes, below)`` for thread ``t`` of a 1-D block of ``nt``: the mask of the lanes that
    exist in its warp (the last warp is partial when ``nt`` is not a multiple of 32; the
    ``mask`` of ``cuda.match_any_sync``) and the mask of the lanes below it.

    Warp aggregation, as the kernels use it (here and in the other kernel files): every
    thread of the block (out-of-range ones with a sentinel value) calls
    ``peers = cuda.match_any_sync(lanes, address)``, and only the lowest lane of each group
    adds, once, ``cuda.popc(peers)`` (or the group's sum): one atomic per (warp, distinct
    address) instead of one per element. The call sits in block-uniform control flow (the
    simulator's ``match_any_sync`` synchronises the whole block).

    This helper is pure arithmetic on purpose: under the simulator a device function that
    names ``cuda`` and is called from a kernel of another file races with the other threads
    on that file's ``cuda`` global (the simulator swaps it per call)."""
    lane = t % WARP
    width = min(WARP, nt - (t - lane))
    lanes = np.uint32(np.uint32(0xFFFFFFFF) >> np.uint32(WARP - width))
    below = np.uint32((np.uint32(1) << np.uint32(lane)) - np.uint32(1))
    return lanes, below


@kernel
def tile_histogram(src_k, src_p, by_payload, kshift, kmask, pshift, pmask, items, hist):
    """``hist[digit * tiles + tile]`` = the keys of the tile with that digit (a tile is
    ``blockDim.x * items`` keys). Counted per warp: the lowest lane of each group of
    equal digits adds the group's size, one shared atomic per distinct digit per warp
    (float keys share their high digits: per-key atomics would all hit one address)."""
    local = cuda.shared.array(RADIX_SIZE, np.int32)
    t = cuda.threadIdx.x
    nt = cuda.blockDim.x
    tile = cuda.blockIdx.x
    tiles = cuda.gridDim.x
    lanes, below = _warp_lanes(t, nt)
    for d in range(t, RADIX_SIZE, nt):
        local[d] = 0
    cuda.syncthreads()
    base = tile * nt * items
    for r in range(items):
        i = base + r * nt + t
        d = np.int32(RADIX_SIZE)  # past the end: a digit no key has, so that every thread calls match_any_sync
        if i < src_k.size:
            d = _digit(src_k, src_p, i, by_payload, kshift, kmask, pshift, pmask)
        peers = cuda.match_any_sync(lanes, d)
        if d < RADIX_SIZE and (peers & below) == 0:
            cuda.atomic.add(local, d, np.int32(cuda.popc(peers)))
    cuda.syncthreads()
    for d in range(t, RADIX_SIZE, nt):
        hist[d * tiles + tile] = local[d]


@kernel
def tile_scatter(src_k, src_p, dst_k, dst_p, has_payload, by_payload, kshift, kmask, pshift, pmask, items,
                 offsets):
    """Stable scatter of one radix pass (``blockDim.x <= SORT_WARPS * WARP``).

    ``running[d]`` starts at the tile's offset of digit ``d`` (the scanned histogram).
    In each round a key goes to ``running[d]`` + the keys of digit ``d`` in the earlier
    warps of the block + its rank among its warp's peers, so equal digits keep their
    input order. The lowest peer writes its warp's count of the digit into a shared
    table ``counts[warp, d]``, and after the round adds it to ``running[d]``.

    Table entries are ``stamp + count`` with ``stamp = (round + 1) * STAMP``; an entry
    counts only in the round that wrote it, so no entry needs resetting and each round
    needs two barriers: writes before the first, reads between them, the ``running``
    updates after the second (the next round's writes come after its own
    ``match_any_sync``, past that barrier).
    """
    running = cuda.shared.array(RADIX_SIZE, np.int64)
    counts = cuda.shared.array((SORT_WARPS, RADIX_SIZE), np.int32)
    t = cuda.threadIdx.x
    nt = cuda.blockDim.x
    tile = cuda.blockIdx.x
    tiles = cuda.gridDim.x
    n = src_k.size
    warp = t // WARP
    lanes, below = _warp_lanes(t, nt)
    for d in range(t, RADIX_SIZE, nt):
        running[d] = offsets[d * tiles + tile]
    for e in range(t, (nt + WARP - 1) // WARP * RADIX_SIZE, nt):  # the rows of the warps that exist
        counts[e // RADIX_SIZE, e % RADIX_SIZE] = 0  # stamp 0: no round reads it
    cuda.syncthreads()
    base = tile * nt * items
    for r in range(items):
        stamp = np.int32((r + 1) * STAMP)
        i = base + r * nt + t
        d = np.int32(RADIX_SIZE)  # past the end: a digit no key has, so that every thread calls match_any_sync
        if i < n:
            d = _digit(src_k, src_p, i, by_payload, kshift, kmask, pshift, pmask)
        peers = cuda.match_any_sync(lanes, d)
        lead = i < n and (peers & below) == 0
        size = np.int32(cuda.popc(peers))
        if lead:
            counts[warp, d] = stamp + size
        cuda.syncthreads()
        if i < n:
            dst = running[d] + np.int64(cuda.popc(peers & below))
            for w in range(warp):
                c = counts[w, d]
                if c > stamp:
                    dst += c - stamp
            dst_k[dst] = src_k[i]
            if has_payload:
                dst_p[dst] = src_p[i]
        cuda.syncthreads()
        if lead:
            cuda.atomic.add(running, d, np.int64(size))


@kernel
def fill_zero(out):
    """``out[:] = 0`` (device arrays are not zeroed; this spares a host upload)."""
    i = cuda.grid(1)
    if i < out.size:
        out[i] = 0


@kernel
def digit_differences(src_k, src_p, use_payload, out):
    """``out[0] |=`` the OR over all keys of ``key ^ src_k[0]``; ``out[1]`` the same for the
    payload when ``use_payload``. A bit of it is clear where every element has the first
    one's bit, so a radix pass over bits ``[s, s + RADIX_BITS)`` would leave every key in
    place (one digit holds all of them) exactly when those bits are clear: the sort
    reads these two words once instead of a histogram per pass. Grid-stride; one shared
    atomic per thread and one global atomic per block and word; ``out`` zeroed before."""
    block = cuda.shared.array(2, np.uint64)
    t = cuda.threadIdx.x
    if t < 2:
        block[t] = 0
    cuda.syncthreads()
    k0 = src_k[0]
    p0 = src_p[0]
    dk = np.uint64(0)
    dp = np.uint64(0)
    for i in range(cuda.grid(1), src_k.size, cuda.gridsize(1)):
        dk |= np.uint64(src_k[i] ^ k0)
        if use_payload:
            dp |= np.uint64(src_p[i] ^ p0)
    if dk:
        cuda.atomic.or_(block, 0, dk)
    if dp:
        cuda.atomic.or_(block, 1, dp)
    cuda.syncthreads()
    if t < 2 and block[t]:
        cuda.atomic.or_(out, t, block[t])


@kernel
def warp_peers(values, out):
    """``out[r, t]`` = ``cuda.match_any_sync`` of ``values[r, t]`` over the lanes that exist in
    thread ``t``'s warp (one block, ``values.shape[1]`` threads): the peers the sort's kernels
    rank by, as a kernel of its own so that a test checks the intrinsic (the simulator's or
    the GPU's) and the lane masks against NumPy, and the compile check compiles them."""
    t = cuda.threadIdx.x
    lanes, _ = _warp_lanes(t, cuda.blockDim.x)
    for r in range(values.shape[0]):
        out[r, t] = cuda.match_any_sync(lanes, values[r, t])


# ---------------------------------------------------------------------------
# searches in sorted keys
# ---------------------------------------------------------------------------

@device
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


@device
def _first_gt(arr, k):
    lo = 0
    hi = arr.size
    while lo < hi:
        mid = (lo + hi) // 2
        if arr[mid] <= k:
            lo = mid + 1
        else:
            hi = mid
    return lo


@kernel
def auroc_counts(pos, neg, out):
    """Twice Mann-Whitney's U: each negative ``k`` contributes ``2 #(pos > k) + #(pos == k)``,
    both found by binary search in the sorted positives.

    Every negative adds to the same ``out[0]``: per-element atomics there would serialise.
    The block sums its contributions in shared memory (int64: exact, so the tree's order
    does not matter; a block's total is below ``2 * 1024 * P``) and thread 0 adds the block's
    total with one atomic. ``out`` (uint64) holds ``2U`` as 128 bits, ``out[1] * 2**64 + out[0]``:
    an addition that wraps ``out[0]`` (the old value plus the total is below the old value)
    adds its carry to ``out[1]``, with a second atomic that only such a block issues, so ``2U``
    is exact past ``2**64`` (about 6e9 elements).
    """
    buf = cuda.shared.array(1024, np.int64)
    t = cuda.threadIdx.x
    i = cuda.grid(1)
    v = np.int64(0)
    if i < neg.size:
        k = neg[i]
        first_ge = _first_ge(pos, k)
        first_gt = _first_gt(pos, k)
        v = np.int64(2 * (pos.size - first_gt) + (first_gt - first_ge))
    buf[t] = v
    cuda.syncthreads()
    step = 1
    while step < cuda.blockDim.x:
        if t % (2 * step) == 0 and t + step < cuda.blockDim.x:
            buf[t] += buf[t + step]
        cuda.syncthreads()
        step *= 2
    if t == 0 and buf[0] != 0:
        total = np.uint64(buf[0])
        old = cuda.atomic.add(out, 0, total)
        if np.uint64(old) > _U64_MAX - total:  # old + total wrapped past 2**64
            cuda.atomic.add(out, 1, np.uint64(1))


@kernel
def count_at_least(keys, bounds, out):
    """``out[g] = #(keys >= bounds[g])`` in sorted ``keys``."""
    g = cuda.grid(1)
    if g < bounds.size:
        out[g] = keys.size - _first_ge(keys, bounds[g])


# ---------------------------------------------------------------------------
# groups: the distinct keys of two sorted arrays, decreasing, with counts
# ---------------------------------------------------------------------------

@kernel
def run_end_flags(keys, other, use_other, flags):
    """``flags[i] = 1`` at the last key of each run of equal keys, unless ``use_other``
    and the key also occurs in the sorted ``other`` (so that it is counted once)."""
    i = cuda.grid(1)
    if i >= keys.size:
        return
    k = keys[i]
    last = i == keys.size - 1 or keys[i + 1] != k
    if last and use_other:
        j = _first_ge(other, k)
        if j < other.size and other[j] == k:
            last = False
    flags[i] = 1 if last else 0


@kernel
def merge_descending(a, b, out):
    """Merge two sorted arrays of distinct, disjoint keys into ``out``, decreasing."""
    i = cuda.grid(1)
    total = a.size + b.size
    if i >= total:
        return
    if i < a.size:
        k = a[i]
        rank = i + _first_ge(b, k)
    else:
        k = b[i - a.size]
        rank = (i - a.size) + _first_ge(a, k)
    out[total - 1 - rank] = k


@kernel
def count_equal(group_keys, a, b, ca, cb):
    """``ca[g]``, ``cb[g]`` = the keys of sorted ``a``, ``b`` equal to ``group_keys[g]``."""
    g = cuda.grid(1)
    if g < group_keys.size:
        k = group_keys[g]
        ca[g] = _first_gt(a, k) - _first_ge(a, k)
        cb[g] = _first_gt(b, k) - _first_ge(b, k)


# the exact F1 order, compiled from the CPU kernel's Python source with its 128-bit helpers' twins
_f1_order = twin(C.f1_order, mul_u64=device(C128.mul_u64.py_func), cmp_u128=device(C128.cmp_u128.py_func))


@device
def _f1_wins(tp, fp, k, btp, bfp, bk, n_pos):
    """Whether (tp, fp) at key k beats (btp, bfp) at key bk: larger exact F1 (``cpu.ranking.f1_order``),
    ties to the lower key (threshold), as ``cpu.ranking.acc_f1_max``."""
    order = _f1_order(tp, fp, btp, bfp, n_pos)
    return order > 0 or (order == 0 and k < bk)


@kernel
def f1_block_best(pos, neg, best):
    """Per block, the element whose score gives the largest F1 (``TP = #pos >= k``,
    ``FP = #neg >= k``), by :func:`_f1_block_reduce`: ``best[b] = (tp, fp, found, key)``
    (uint64; ``found`` is 0 for a block past the end). :func:`f1_reduce_best` then
    reduces the block results on the device."""
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
    _f1_block_reduce(tp_buf, fp_buf, ok_buf, key_buf, np.int64(pos.size))
    if t == 0:
        _f1_store(best, tp_buf, fp_buf, ok_buf, key_buf)


# ---------------------------------------------------------------------------
# the F1 reduction of block results
# ---------------------------------------------------------------------------

@device
def _f1_block_reduce(tp_buf, fp_buf, ok_buf, key_buf, n_pos):
    """Reduce the block's candidates ``(tp, fp, key)`` (where ``ok_buf`` is 1) into index 0
    of the shared buffers, in a fixed tree order, with :func:`_f1_wins`. Called by every
    thread of the block after the buffers are written (it synchronises). The winner is
    unique (ties go to the lower key, and equal keys have equal counts), so neither the
    tree's order nor how the candidates are split into blocks can change it."""
    t = cuda.threadIdx.x
    step = 1
    while step < cuda.blockDim.x:
        if t % (2 * step) == 0 and t + step < cuda.blockDim.x:
            o = t + step
            if ok_buf[o] == 1 and (ok_buf[t] == 0 or _f1_wins(tp_buf[o], fp_buf[o], key_buf[o], tp_buf[t],
                                                              fp_buf[t], key_buf[t], n_pos)):
                tp_buf[t] = tp_buf[o]
                fp_buf[t] = fp_buf[o]
                key_buf[t] = key_buf[o]
                ok_buf[t] = 1
        cuda.syncthreads()
        step *= 2


@device
def _f1_store(best, tp_buf, fp_buf, ok_buf, key_buf):
    """``best[block] = (tp, fp, found, key)`` from index 0 of the reduced buffers."""
    b = cuda.blockIdx.x
    best[b, 0] = np.uint64(tp_buf[0])
    best[b, 1] = np.uint64(fp_buf[0])
    best[b, 2] = np.uint64(ok_buf[0])
    best[b, 3] = key_buf[0]


@kernel
def f1_reduce_best(parts, n_pos, best):
    """One level of the device reduction of :func:`f1_block_best`'s results: block ``b``
    reduces rows ``[b*blockDim, (b+1)*blockDim)`` of ``parts`` (``(tp, fp, found, key)``,
    uint64) into ``best[b]``, with the same comparator. The driver repeats it until one row
    is left, so one row, not one per block, crosses to the host."""
    tp_buf = cuda.shared.array(1024, np.int64)
    fp_buf = cuda.shared.array(1024, np.int64)
    ok_buf = cuda.shared.array(1024, np.int64)
    key_buf = cuda.shared.array(1024, np.uint64)
    t = cuda.threadIdx.x
    i = cuda.grid(1)
    ok_buf[t] = 0
    tp_buf[t] = 0
    fp_buf[t] = 0
    key_buf[t] = 0
    if i < parts.shape[0] and parts[i, 2] != 0:
        # counts as int64: uint64 op int64 would be float64 in _f1_wins
        tp_buf[t] = np.int64(parts[i, 0])
        fp_buf[t] = np.int64(parts[i, 1])
        key_buf[t] = parts[i, 3]
        ok_buf[t] = 1
    cuda.syncthreads()
    _f1_block_reduce(tp_buf, fp_buf, ok_buf, key_buf, n_pos)
    if t == 0:
        _f1_store(best, tp_buf, fp_buf, ok_buf, key_buf)
