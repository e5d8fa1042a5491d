"""The key-range sort on the CPU: from scores (or keys) to sorted keys, in threads.

See ``kernels/cpu/buckets.py`` for the pipeline (count, plan, scatter, sort
each range) and ``refmetrics/_threads.py`` for the thread count and the sort
choice. A *planned* pair of key arrays is ``(pos, neg, pst, nst)``: the keys of
range ``r`` are ``pos[pst[r]:pst[r + 1]]`` and ``neg[nst[r]:nst[r + 1]]``, the
ranges cover increasing, disjoint key intervals shared by both sides. The plan
depends on the data alone (never on the thread count), and the sorted arrays
are the same whatever the thread count and the sort: results are
bit-identical.

Inputs below :data:`SMALL` elements take the single-threaded path of
``_ranked.py`` (a whole-array radix sort): the histograms here cost about a
millisecond.
"""

import numpy as np

from .. import _threads as TH
from ..kernels.cpu import buckets as KB
from ..kernels.cpu import keys as KEYS
from ..kernels.cpu import ranking as KR
from ..kernels.cpu._int128 import count_dd

#: keys per range, positives and negatives together (4 B keys: 512 KiB, which fits in L2)
RANGE_TARGET = 1 << 17
#: fewer elements than this: the single-threaded whole-array path (tests lower it to 0)
SMALL = 1 << 16
#: an input slice per thread holds at least this many elements
MIN_SLICE = 1 << 15

_SHIFTS = {k: KR.digit_shifts(k) for k in KEYS.FLOAT_OF}


def _prefix_shift(kd):
    return kd.type(8 * kd.itemsize - KB.PREFIX_BITS)


def _top(kd):
    return kd.type(8 * kd.itemsize - 1)


def _slices(n, t):
    """``t`` contiguous slices covering ``range(n)`` (fewer when ``n`` is small)."""
    t = max(1, min(t, n // MIN_SLICE))
    per = -(-n // t) if n else 0
    return [slice(min(n, i * per), min(n, (i + 1) * per)) for i in range(t)]


def _plan(hist, target):
    """``(rid, counts[t, side, range])`` from the prefix histograms ``hist[t, side, prefix]``."""
    total = hist.sum(axis=(0, 1))
    rid = np.empty(KB.N_PREFIX, np.int32)
    nr = KB.plan_ranges(total, np.int64(target), rid)
    counts = np.empty((hist.shape[0], 2, nr), np.int64)
    KB.range_counts(hist, rid, nr, counts)
    return rid, counts


def _cursors(counts):
    """Write cursors ``[t, side, range]`` into one buffer (positives, then negatives), and the
    range starts ``pst``/``nst`` inside each side; returns ``(cursors, pst, nst, n_pos, n_neg)``."""
    tot = counts.sum(axis=0)
    starts = []
    cursors = np.empty_like(counts)
    base = 0
    for s in range(2):
        st = np.zeros(tot.shape[1] + 1, np.int64)
        np.cumsum(tot[s], out=st[1:])
        cursors[:, s, :] = base + st[:-1][None, :] + np.cumsum(counts[:, s, :], axis=0) - counts[:, s, :]
        starts.append(st)
        base += int(st[-1])
    return cursors, starts[0], starts[1], int(starts[0][-1]), int(starts[1][-1])


def partition_scores(bits, labels, has_ignore, ignore, check, target=None):
    """Keys of one validated batch, split by label and scattered into key ranges.

    ``bits`` are the float32/float64 scores viewed as uint32/uint64. ``check(n_nan, n_bad)``
    raises before anything is written. Returns the planned, unsorted ``(pos, neg, pst, nst)``.
    """
    kd = bits.dtype
    consts, top, shift = KEYS.CONSTS[kd], _top(kd), _prefix_shift(kd)
    sl = _slices(bits.size, TH.get_num_threads())
    hist = np.zeros((len(sl), 2, KB.N_PREFIX), np.int64)

    def count(t):
        return KB.count_scores(bits[sl[t]], labels[sl[t]], has_ignore, ignore, consts, top, shift, hist[t])

    found = TH.run(count, range(len(sl)))
    check(sum(int(f[0]) for f in found), sum(int(f[1]) for f in found))
    rid, counts = _plan(hist, RANGE_TARGET if target is None else target)
    cursors, pst, nst, n_pos, n_neg = _cursors(counts)
    out = np.empty(n_pos + n_neg, kd)

    def scatter(t):
        KB.scatter_scores(bits[sl[t]], labels[sl[t]], has_ignore, ignore, consts, top, shift, rid, cursors[t], out)

    TH.run(scatter, range(len(sl)))
    return out[:n_pos], out[n_pos:], pst, nst


def _chunks(arrays, t):
    """Deal the arrays, cut into about ``t`` equal pieces in all, to ``t`` tasks: ``[[(i, piece), ...], ...]``."""
    n = sum(a.size for a in arrays)
    tasks = _slices(n, t)
    per = tasks[0].stop - tasks[0].start if n else 1
    out = [[] for _ in tasks]
    pos = 0
    for i, a in enumerate(arrays):
        a0 = 0
        while a0 < a.size:
            task = min(len(tasks) - 1, pos // per)
            take = min(a.size - a0, (task + 1) * per - pos) if task < len(tasks) - 1 else a.size - a0
            out[task].append((i, a[a0:a0 + take]))
            a0 += take
            pos += take
    return out


def partition_keys(pos_parts, neg_parts, target=None):
    """Keys already computed (lists of arrays per side, one key dtype) scattered into key ranges:
    the planned, unsorted ``(pos, neg, pst, nst)`` in a new buffer."""
    arrays = list(pos_parts) + list(neg_parts)
    n_pos_parts = len(pos_parts)
    kd = arrays[0].dtype
    shift = _prefix_shift(kd)
    tasks = _chunks(arrays, TH.get_num_threads())
    hist = np.zeros((len(tasks), 2, KB.N_PREFIX), np.int64)

    def count(t):
        for i, piece in tasks[t]:
            KB.count_keys(piece, shift, hist[t, 0 if i < n_pos_parts else 1])

    TH.run(count, range(len(tasks)))
    rid, counts = _plan(hist, RANGE_TARGET if target is None else target)
    cursors, pst, nst, n_pos, n_neg = _cursors(counts)
    out = np.empty(n_pos + n_neg, kd)

    def scatter(t):
        for i, piece in tasks[t]:
            KB.scatter_keys(piece, shift, rid, cursors[t, 0 if i < n_pos_parts else 1], out)

    TH.run(scatter, range(len(tasks)))
    return out[:n_pos], out[n_pos:], pst, nst


def sort_planned(pos, neg, pst, nst):
    """Sort every range of both sides in place (threads take ranges round-robin)."""
    t = max(1, min(TH.get_num_threads(), pst.size - 1))
    if TH.use_numpy_sort():
        def work(first):
            for keys, st in ((pos, pst), (neg, nst)):
                for r in range(first, st.size - 1, t):
                    if st[r + 1] - st[r] > 1:
                        keys[st[r]:st[r + 1]].sort()
    else:
        shifts = _SHIFTS[pos.dtype]
        largest = int(max(np.diff(pst).max(initial=0), np.diff(nst).max(initial=0)))

        def work(first):
            tmp = np.empty(largest, pos.dtype)
            hist = np.empty((shifts.size - 1, KR.RADIX_SIZE), np.int64)
            KB.sort_ranges(pos, pst, first, t, tmp, hist, shifts)
            KB.sort_ranges(neg, nst, first, t, tmp, hist, shifts)

    TH.run(work, range(t))
    return pos, neg


def sort_keys(keys, target=None):
    """One side's keys sorted (a new array; ``keys`` is left as is)."""
    empty = np.empty(0, keys.dtype)
    pos, _, pst, _ = partition_keys([keys], [empty], target)
    sort_planned(pos, empty, pst, np.zeros_like(pst))
    return pos


def sample_ranges(pos, neg, target=None):
    """Range starts ``(pst, nst)`` for sorted arrays that have no plan: boundaries at every
    ``target``-th key of each side (any increasing boundaries give the same results)."""
    target = RANGE_TARGET if target is None else target
    bounds = np.unique(np.concatenate([pos[target::target], neg[target::target]]))
    pst = np.concatenate([[0], np.searchsorted(pos, bounds, side="left"), [pos.size]]).astype(np.int64)
    nst = np.concatenate([[0], np.searchsorted(neg, bounds, side="left"), [neg.size]]).astype(np.int64)
    return pst, nst


# ---------------------------------------------------------------------------
# per-range metric parts
# ---------------------------------------------------------------------------

_INT64_SAFE = 1 << 31  # a range with fewer keys than this has a local 2U below 2**63


def auroc_u2(pos, neg, pst, nst):
    """``2U`` (a Python int) from per-range local parts, or None when a range is too large for
    int64 local sums (the caller then walks sequentially)."""
    if not pos.size or not neg.size:
        return 0
    sizes = np.diff(pst) + np.diff(nst)
    if sizes.max(initial=0) >= _INT64_SAFE:
        return None
    nr = pst.size - 1
    u2r = np.zeros(nr, np.int64)
    t = max(1, min(TH.get_num_threads(), nr))
    TH.run(lambda first: KB.ranges_u2(pos, neg, pst, nst, first, t, u2r), range(t))
    n_pos = pos.size
    total = 0
    for r in range(nr):
        # the range's negatives also score 2 per positive above the range
        total += int(u2r[r]) + 2 * (n_pos - int(pst[r + 1])) * int(nst[r + 1] - nst[r])
    return total


def f1_best(pos, neg, pst, nst, chunk=1 << 16):
    """``(tp, fp, key)`` at the largest F1 (ties to the lowest threshold) from per-range bests,
    combined from the top range down with exact integer comparisons; key None without a group."""
    n_pos, n_neg = pos.size, neg.size
    nr = pst.size - 1
    if nr < 1 or not (n_pos or n_neg):
        return 0, 0, None
    tp_above = (n_pos - pst[1:]).astype(np.int64)
    fp_above = (n_neg - nst[1:]).astype(np.int64)
    state = np.zeros((nr, 5), np.int64)
    best_key = np.zeros(nr, pos.dtype)
    t = max(1, min(TH.get_num_threads(), nr))

    def work(first):
        keys = np.empty(chunk, pos.dtype)
        dtp = np.empty(chunk, np.int64)
        dfp = np.empty(chunk, np.int64)
        KB.ranges_f1(pos, neg, pst, nst, tp_above, fp_above, n_pos, first, t, keys, dtp, dfp, state, best_key)

    TH.run(work, range(t))
    best = None
    for r in range(nr - 1, -1, -1):  # decreasing thresholds: an equal F1 later is at a lower threshold
        if not state[r, 4]:
            continue
        tp, fp = int(state[r, 2]), int(state[r, 3])
        if best is None or tp * (best[0] + best[1] + n_pos) >= best[0] * (tp + fp + n_pos):
            best = (tp, fp, best_key[r:r + 1].copy())
    if best is None:
        return 0, 0, None
    return best


def sort_keys_in_place(keys):
    """Sort ``keys`` in place, with no second buffer: NumPy's in-place partition at the
    ``i / T`` quantiles, then each of the ``T`` slices sorted in place by ``np.sort`` in the
    pool (it releases the GIL). The sorted array is unique, so any ``T`` gives the same
    array. (The key-range sort would need a copy of the keys: ``PixelState.finish`` keeps
    ``refmetrics evaluate``'s peak memory at the key buffer.)"""
    t = TH.get_num_threads()
    if keys.size < SMALL or t == 1:
        keys.sort()
        return keys
    kth = [keys.size * i // t for i in range(1, t)]
    keys.partition(kth)
    bounds = [0] + kth + [keys.size]
    TH.run(lambda ab: keys[ab[0]:ab[1]].sort(), list(zip(bounds[:-1], bounds[1:])))
    return keys


def sort_pairs_in_place(keys, payload):
    """Sort ``(keys, payload)`` pairs in place by key, then payload, as one uint64 sort of
    ``key << 32 | payload``; returns False (nothing done) unless the keys are uint32, the
    payloads below 2**32 and there are at least :data:`SMALL` pairs."""
    if keys.dtype != np.uint32 or keys.size < SMALL or (payload.size and int(payload.max()) >> 32):
        return False
    packed = keys.astype(np.uint64)
    packed <<= np.uint64(32)
    packed |= payload.astype(np.uint64, copy=False)
    packed = sort_keys(packed)
    np.right_shift(packed, np.uint64(32), out=keys, casting="unsafe")
    packed &= np.uint64(0xFFFFFFFF)
    payload[...] = packed
    return True


def positive_groups(pos, neg, pst, nst, block=None):
    """Yield ``(None, dtp, dfp)`` chunks of the groups that hold positives, in decreasing score
    order, each ``dfp`` counting the negatives since the previous such group: formed per range in
    threads, a block of ranges at a time (memory: the block's positives, 16 bytes each). The
    average-precision accumulator reads the same running counts from them as from every group."""
    nr = pst.size - 1
    t = max(1, min(TH.get_num_threads(), nr))
    block = 16 * t if block is None else block
    carry = 0
    for hi in range(nr, 0, -block):  # blocks of ranges, the top block first
        lo = max(0, hi - block)
        bst = pst[lo:hi + 1]
        rdtp = np.empty(int(bst[-1] - bst[0]), np.int64)
        rdfp = np.empty_like(rdtp)
        n_records = np.zeros(hi - lo, np.int64)
        tail = np.zeros(hi - lo, np.int64)
        sub = (bst - bst[0], nst[lo:hi + 1])
        p = pos[int(bst[0]):int(bst[-1])]
        tt = max(1, min(t, hi - lo))
        TH.run(lambda first: KB.ranges_positive_groups(p, neg, sub[0], sub[1], first, tt, rdtp, rdfp, n_records,
                                                        tail), range(tt))
        dtp, dfp = [], []
        for r in range(hi - lo - 1, -1, -1):  # the top range first
            c = int(n_records[r])
            if c:
                a = int(sub[0][r])
                rdfp[a] += carry  # negatives of the ranges above since their last positive group
                dtp.append(rdtp[a:a + c])
                dfp.append(rdfp[a:a + c])
                carry = int(tail[r])
            else:
                carry += int(tail[r])
        if dtp:
            yield None, np.concatenate(dtp), np.concatenate(dfp)


def walk_all(pos, neg, pst, nst, block=None):
    """AUROC, average precision and F1-max of sorted planned keys from **one** walk per range
    (``kernels.cpu.buckets.ranges_walk``, in threads), for a state that is asked for all three
    (:class:`refmetrics.PixelState`): ``(u2, ap, (tp, fp, key))``.

    ``u2`` is :func:`auroc_u2`'s Python int (None when a range is too large for int64 local
    sums); ``ap`` is the average precision (NaN without a positive), from the same accumulator
    over the same positive-group records as :func:`positive_groups`; ``(tp, fp, key)`` is
    :func:`f1_best`'s triple (``key`` None without a positive), from ``acc_f1_max`` run over
    those records: every group without positives lowers F1 (or leaves it 0 above the first
    positive), so the largest F1, ties to the lowest threshold, is at a record. All three are
    bit-identical to the separate walks. Memory: a block of ranges' positives, 24 bytes each.
    """
    n_pos, n_neg = pos.size, neg.size
    nr = pst.size - 1
    ap_counts = np.zeros(2, np.int64)
    ap_sums = np.zeros(2, np.float64)
    f1_state = np.zeros(5, np.int64)
    f1_key = np.zeros(1, pos.dtype)
    sizes = np.diff(pst) + np.diff(nst)
    u2 = 0 if sizes.max(initial=0) < _INT64_SAFE else None
    t = max(1, min(TH.get_num_threads(), nr))
    block = 16 * t if block is None else block
    carry = 0
    for hi in range(nr, 0, -block):  # blocks of ranges, the top block first
        lo = max(0, hi - block)
        bst = pst[lo:hi + 1]
        n_block = int(bst[-1] - bst[0])
        rkeys = np.empty(n_block, pos.dtype)
        rdtp = np.empty(n_block, np.int64)
        rdfp = np.empty_like(rdtp)
        u2r = np.zeros(hi - lo, np.int64)
        n_records = np.zeros(hi - lo, np.int64)
        tail = np.zeros(hi - lo, np.int64)
        sub = (bst - bst[0], nst[lo:hi + 1])
        p = pos[int(bst[0]):int(bst[-1])]
        tt = max(1, min(t, hi - lo))
        TH.run(lambda first: KB.ranges_walk(p, neg, sub[0], sub[1], first, tt, u2r, rkeys, rdtp, rdfp, n_records,
                                            tail), range(tt))
        keys, dtp, dfp = [], [], []
        for r in range(hi - lo - 1, -1, -1):  # the top range first
            if u2 is not None and n_neg:
                # the range's negatives also score 2 per positive above the range
                u2 += int(u2r[r]) + 2 * (n_pos - int(pst[lo + r + 1])) * int(nst[lo + r + 1] - nst[lo + r])
            c = int(n_records[r])
            if c:
                a = int(sub[0][r])
                rdfp[a] += carry  # negatives of the ranges above since their last positive group
                keys.append(rkeys[a:a + c])
                dtp.append(rdtp[a:a + c])
                dfp.append(rdfp[a:a + c])
                carry = int(tail[r])
            else:
                carry += int(tail[r])
        if dtp:
            keys, dtp, dfp = np.concatenate(keys), np.concatenate(dtp), np.concatenate(dfp)
            KR.acc_average_precision(dtp, dfp, ap_counts, ap_sums)
            KR.acc_f1_max(keys, dtp, dfp, n_pos, f1_state, f1_key)
    ap = float(KR.finish_average_precision(ap_sums, *count_dd(int(n_pos)))) if n_pos else float("nan")
    f1 = (int(f1_state[2]), int(f1_state[3]), f1_key) if f1_state[4] else (0, 0, None)
    return u2, ap, f1
