"""Numba CPU kernels of the key-range sort: count, plan, scatter, sort each range in cache.

Exact metrics order scores through order-preserving keys (``keys.py``). Here
the keys are sorted in *key ranges*, so that two or more threads share the
work and every range is sorted inside the CPU's cache:

1. **Count** (one read-only pass per input slice): NaN scores and labels
   outside {0, 1} are counted (the caller raises before anything is written),
   and ``hist[side, key >> (W - 16)]`` counts the keys of each side (0 =
   positives, 1 = negatives) by their top 16 bits. The key is computed without
   a branch on the score's sign: that sign is a coin flip for centred scores,
   and the branch would mispredict half the time.
2. **Plan** (:func:`plan_ranges`): adjacent 16-bit prefixes are merged into
   ranges of about ``target`` keys (positives and negatives together). The
   plan depends on the *total* histogram only, never on the number of threads
   or slices. Positives and negatives share the range boundaries.
3. **Scatter** (a second pass per slice): each key goes to its side's range,
   through the slice's own write cursors.
4. **Sort** each range (:func:`sort_range`, an LSD radix sort of 11-bit digits
   in cache, trivial passes skipped; or ``np.sort``). The sorted keys of a
   multiset are unique, so the arrays are the same whatever the thread count
   and the sort.

Per-range metric parts (:func:`range_u2`, :func:`range_f1`) walk one sorted
range from its top. Kernels take typed contiguous arrays, never validate and
never raise; they release the GIL, and the driver (``functional/_engine.py``)
runs them in the pool of ``refmetrics._threads``.

Numba widens uint32 arithmetic to 64 bits: every key is masked back to its
width (``& ones``) before it is stored or shifted.
"""

import numpy as np
from numba import njit, types
from numba.extending import overload

from .keys import is_nan_bits
from .ranking import RADIX_SIZE, acc_f1_max, next_groups

PREFIX_BITS = 16
N_PREFIX = 1 << PREFIX_BITS
SMALL_RANGE = 64  # below this, insertion sort


def branchless_key(b, sign, ones, top):
    """:func:`keys.score_key` without a branch on the sign (same key; -0.0 folded onto +0.0).

    ``top`` is the key width minus one, typed as the key. Numba only (an overload per key
    width: 32-bit keys cast every intermediate back to uint32, which also runs faster than
    masking 64-bit intermediates).
    """
    raise NotImplementedError("branchless_key is compiled inside Numba kernels only")


@overload(branchless_key, inline="always")
def _branchless_key(b, sign, ones, top):
    if isinstance(b, types.Integer) and b.bitwidth == 32:
        def key32(b, sign, ones, top):
            b = b if b != np.uint32(0x80000000) else np.uint32(0)
            m = np.uint32((np.uint32(0) - np.uint32(b >> np.uint32(31))) | np.uint32(0x80000000))
            return np.uint32(b ^ m)
        return key32

    def key64(b, sign, ones, top):
        zero = sign ^ sign
        b = zero if b == sign else b
        m = (zero - (b >> top)) | sign  # all ones if the sign bit is set, else the sign bit
        return (b ^ m) & ones
    return key64


@njit(cache=True, nogil=True)
def count_scores(bits, target, has_ignore, ignore, consts, top, shift, hist):
    """Count pass over one slice: ``hist[side, key >> shift] +=``; returns ``(n_nan, n_bad_label)``.

    As ``ranking.partition``: ``ignore_index`` elements are dropped first, NaN
    scores and labels outside {0, 1} are counted and skipped.
    """
    sign, magnitude, inf, ones = consts[0], consts[1], consts[2], consts[3]
    nan = 0
    bad = 0
    h0 = hist[0]
    h1 = hist[1]
    for i in range(bits.size):
        t = target[i]
        if has_ignore and t == ignore:
            continue
        b = bits[i]
        if is_nan_bits(b, magnitude, inf):
            nan += 1
            continue
        k = branchless_key(b, sign, ones, top)
        if t == 1:
            h0[np.intp(k >> shift)] += 1
        elif t == 0:
            h1[np.intp(k >> shift)] += 1
        else:
            bad += 1
    return nan, bad


@njit(cache=True, nogil=True)
def scatter_scores(bits, target, has_ignore, ignore, consts, top, shift, rid, cursor, out):
    """Scatter pass over one slice: each key to ``out[cursor[side, range]]``, cursors advanced in place.

    ``rid[prefix]`` is the range of every 16-bit prefix (:func:`plan_ranges`).
    NaN scores and bad labels were counted by :func:`count_scores` (none here).
    """
    sign, magnitude, inf, ones = consts[0], consts[1], consts[2], consts[3]
    for i in range(bits.size):
        t = target[i]
        if has_ignore and t == ignore:
            continue
        b = bits[i]
        if is_nan_bits(b, magnitude, inf):
            continue
        k = branchless_key(b, sign, ones, top)
        side = np.intp(1) - np.intp(t)  # labels are 0 or 1 here: the count pass checked them
        r = np.intp(rid[np.intp(k >> shift)])
        out[cursor[side, r]] = k
        cursor[side, r] += 1


@njit(cache=True, nogil=True)
def count_keys(keys, shift, hist):
    """``hist[key >> shift] +=`` for keys already computed."""
    for i in range(keys.size):
        hist[np.intp(keys[i] >> shift)] += 1


@njit(cache=True, nogil=True)
def scatter_keys(keys, shift, rid, cursor, out):
    """Each key to ``out[cursor[range]]`` (cursors advanced in place)."""
    for i in range(keys.size):
        k = keys[i]
        r = rid[np.intp(k >> shift)]
        out[cursor[r]] = k
        cursor[r] += 1


@njit(cache=True, nogil=True)
def plan_ranges(total, target, rid):
    """Merge adjacent prefixes into ranges of at most ``target`` keys (a prefix holding more is a
    range of its own): ``rid[prefix] = range``; returns the number of ranges."""
    r = 0
    acc = 0
    for p in range(total.size):
        c = total[p]
        if acc > 0 and acc + c > target:
            r += 1
            acc = 0
        rid[p] = r
        acc += c
    return r + 1


@njit(cache=True, nogil=True)
def range_counts(hist, rid, n_ranges, out):
    """``out[t, side, range] = sum of hist[t, side, prefix]`` over the range's prefixes."""
    for t in range(hist.shape[0]):
        for s in range(2):
            for r in range(n_ranges):
                out[t, s, r] = 0
            for p in range(hist.shape[2]):
                out[t, s, rid[p]] += hist[t, s, p]


@njit(cache=True, nogil=True)
def insertion_sort(a):
    for i in range(1, a.size):
        v = a[i]
        j = i - 1
        while j >= 0 and a[j] > v:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = v


@njit(cache=True, nogil=True)
def _digit_histograms(a, hist, shifts, npass):
    """``hist[p, digit p of key] +=`` for every key of ``a``, for 3 (32-bit keys) or 6 (64-bit) passes,
    unrolled (a loop over the passes inside the key loop costs about 2x)."""
    mask = shifts[-1]
    h0, h1, h2 = hist[0], hist[1], hist[2]
    s0, s1, s2 = shifts[0], shifts[1], shifts[2]
    if npass == 3:
        for i in range(a.size):
            k = a[i]
            h0[np.intp((k >> s0) & mask)] += 1
            h1[np.intp((k >> s1) & mask)] += 1
            h2[np.intp((k >> s2) & mask)] += 1
        return
    h3, h4, h5 = hist[3], hist[4], hist[5]
    s3, s4, s5 = shifts[3], shifts[4], shifts[5]
    for i in range(a.size):
        k = a[i]
        h0[np.intp((k >> s0) & mask)] += 1
        h1[np.intp((k >> s1) & mask)] += 1
        h2[np.intp((k >> s2) & mask)] += 1
        h3[np.intp((k >> s3) & mask)] += 1
        h4[np.intp((k >> s4) & mask)] += 1
        h5[np.intp((k >> s5) & mask)] += 1


@njit(cache=True, nogil=True)
def sort_range(a, tmp, hist, shifts):
    """Sort ``a`` ascending in place: LSD radix sort of 11-bit digits with one histogram
    read for all passes, passes where every key has the same digit skipped (the top
    digits are constant inside a key range). ``tmp`` (at least ``a.size``) and ``hist``
    (``(passes, RADIX_SIZE)`` int64) are scratch; ``shifts`` as ``ranking.digit_shifts``
    (3 or 6 passes)."""
    n = a.size
    if n < SMALL_RANGE:
        insertion_sort(a)
        return
    npass = shifts.size - 1
    mask = shifts[-1]
    hist[:npass] = 0
    _digit_histograms(a, hist, shifts, npass)
    src = a
    dst = tmp[:n]
    flip = False
    for p in range(npass):
        h = hist[p]
        trivial = False
        for d in range(RADIX_SIZE):
            if h[d] != 0:
                trivial = h[d] == n
                break
        if trivial:
            continue
        s = 0
        for d in range(RADIX_SIZE):
            c = h[d]
            h[d] = s
            s += c
        sh = shifts[p]
        for i in range(n):
            k = src[i]
            d = np.intp((k >> sh) & mask)
            dst[h[d]] = k
            h[d] += 1
        src, dst = dst, src
        flip = not flip
    if flip:
        a[:] = src


@njit(cache=True, nogil=True)
def sort_ranges(keys, starts, first, step, tmp, hist, shifts):
    """Sort the ranges ``first, first + step, ...`` of ``keys`` (range ``r`` is
    ``keys[starts[r]:starts[r + 1]]``) in place."""
    for r in range(first, starts.size - 1, step):
        sort_range(keys[starts[r]:starts[r + 1]], tmp, hist, shifts)


@njit(cache=True, nogil=True, inline="always")
def next_group(pos, neg, i, j):
    """The next group from the top of sorted ``pos``/``neg`` read down from indices ``i``/``j``
    (one of them >= 0): ``(key, positives, negatives, i, j)`` with the indices moved past it."""
    if i >= 0 and (j < 0 or pos[i] >= neg[j]):
        v = pos[i]
    else:
        v = neg[j]
    a = 0
    while i >= 0 and pos[i] == v:
        a += 1
        i -= 1
    b = 0
    while j >= 0 and neg[j] == v:
        b += 1
        j -= 1
    return v, a, b, i, j


@njit(cache=True, nogil=True)
def range_u2(pos, neg):
    """``2U`` of one range alone (positives above it not counted): sum over the
    negatives of 2 per positive above and 1 per tied positive, from the top."""
    i = pos.size - 1
    j = neg.size - 1
    tp = 0
    u2 = 0
    while i >= 0 or j >= 0:
        _v, a, b, i, j = next_group(pos, neg, i, j)
        u2 += b * (2 * tp + a)
        tp += a
    return u2


@njit(cache=True, nogil=True)
def ranges_u2(pos, neg, pst, nst, first, step, out):
    """``out[r] =`` :func:`range_u2` of the ranges ``first, first + step, ...``."""
    for r in range(first, pst.size - 1, step):
        out[r] = range_u2(pos[pst[r]:pst[r + 1]], neg[nst[r]:nst[r + 1]])


@njit(cache=True, nogil=True)
def ranges_f1(pos, neg, pst, nst, tp_above, fp_above, n_pos, first, step, keys, dtp, dfp, state, best_key):
    """Per range ``r`` (``first, first + step, ...``): the best F1 group of the range as the
    sequential walk sees it (``ranking.acc_f1_max``, counts above the range from
    ``tp_above``/``fp_above``): ``state[r] = [tp, fp, best_tp, best_fp, seen]``,
    ``best_key[r]`` its key. ``keys``/``dtp``/``dfp`` are scratch group buffers."""
    cursor = np.empty(2, np.int64)
    for r in range(first, pst.size - 1, step):
        p = pos[pst[r]:pst[r + 1]]
        q = neg[nst[r]:nst[r + 1]]
        st = state[r]
        st[0] = tp_above[r]
        st[1] = fp_above[r]
        st[4] = 0
        cursor[0] = p.size - 1
        cursor[1] = q.size - 1
        bk = best_key[r:r + 1]
        while True:
            g = next_groups(p, q, cursor, keys, dtp, dfp)
            if g == 0:
                break
            acc_f1_max(keys[:g], dtp[:g], dfp[:g], n_pos, st, bk)


@njit(cache=True, nogil=True)
def ranges_positive_groups(pos, neg, pst, nst, first, step, rdtp, rdfp, n_records, tail):
    """Per range ``r`` (``first, first + step, ...``), from its top: one record per group holding
    positives, ``rdtp[pst[r] + i]`` its positives and ``rdfp[pst[r] + i]`` the negatives since the
    previous such group of the range (its own included); ``n_records[r]`` records, and ``tail[r]``
    the negatives below the range's last record. Fed in order to ``ranking.acc_average_precision``,
    the records give the same running counts at every group that adds a term, so the same sum."""
    for r in range(first, pst.size - 1, step):
        p = pos[pst[r]:pst[r + 1]]
        q = neg[nst[r]:nst[r + 1]]
        w = pst[r]
        i = p.size - 1
        j = q.size - 1
        count = 0
        pending = 0
        while i >= 0 or j >= 0:
            v, a, b, i, j = next_group(p, q, i, j)
            pending += b
            if a:
                rdtp[w + count] = a
                rdfp[w + count] = pending
                count += 1
                pending = 0
        n_records[r] = count
        tail[r] = pending


@njit(cache=True, nogil=True)
def ranges_walk(pos, neg, pst, nst, first, step, u2r, rkeys, rdtp, rdfp, n_records, tail):
    """One walk per range ``r`` (``first, first + step, ...``) for AUROC, AP and F1 together:
    ``u2r[r] =`` :func:`range_u2`, and the positive-group records of
    :func:`ranges_positive_groups` with their keys (``rkeys[pst[r] + i]``). F1-max is read
    from the same records: with a positive at all, a group without positives lowers F1 (or
    leaves it 0 above the first positive), so the largest F1 is at a record."""
    for r in range(first, pst.size - 1, step):
        p = pos[pst[r]:pst[r + 1]]
        q = neg[nst[r]:nst[r + 1]]
        w = pst[r]
        i = p.size - 1
        j = q.size - 1
        count = 0
        pending = 0
        tp = 0
        u2 = 0
        while i >= 0 or j >= 0:
            v, a, b, i, j = next_group(p, q, i, j)
            u2 += b * (2 * tp + a)
            tp += a
            pending += b
            if a:
                rkeys[w + count] = v
                rdtp[w + count] = a
                rdfp[w + count] = pending
                count += 1
                pending = 0
        u2r[r] = u2
        n_records[r] = count
        tail[r] = pending
