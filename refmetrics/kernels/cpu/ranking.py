"""Numba CPU kernels for the exact ranking metrics.

The exact curves are built in three steps, each a kernel here:

1. ``partition``: one pass over the input that maps every score to an
   *order-preserving unsigned key* (float32 -> uint32, float64 -> uint64: the
   usual sign-flip trick, with -0.0 folded onto +0.0 so that equal scores get
   equal keys), writes the keys of positives to the front and of negatives to
   the back of one buffer, drops ``ignore_index`` elements, counts NaNs and
   invalid labels (the caller raises; kernels never do) and fills the digit
   histograms of the radix sort.
2. ``radix_sort``: an LSD radix sort of the keys, 11 bits per pass, passes in
   which every key has the same digit skipped. Counting sorts are exact and
   deterministic, and the key order equals the score order.
3. ``next_groups``: a merge walk from the top of both sorted arrays that emits,
   chunk by chunk, one *group* per distinct score (its key, the number of
   positives ``dtp`` and negatives ``dfp`` with that score) in decreasing score
   order. Equal scores are crossed together: this is the tie collapse of every
   curve. The ``acc_*`` kernels consume these chunks and keep their running
   state in small arrays, so the whole curve is never materialised.

Kernels take typed contiguous arrays, never validate and never raise.
"""

import numpy as np
from numba import njit

from ._int128 import EXACT_FLOAT, add_u128, cmp_u128, count_dd, join63, mul_u64, split63
from ._sum import add_dd, dd_over, dd_over_dd, div_dd, div_dd_dd, mul_dd, scale_dd
from .keys import is_nan_bits, score_key

RADIX_BITS = 11
RADIX_SIZE = 1 << RADIX_BITS
RADIX_MASK = RADIX_SIZE - 1
_M32 = np.uint64(0xFFFFFFFF)


def digit_shifts(dtype):
    """Shift of every 11-bit digit of a key of ``dtype``, then the digit mask.

    Typed as the key itself: numba turns ``uint64 op int64`` into float64.
    """
    width = np.dtype(dtype).itemsize * 8
    npass = (width + RADIX_BITS - 1) // RADIX_BITS
    return np.array([RADIX_BITS * p for p in range(npass)] + [RADIX_MASK], dtype=dtype)


@njit(cache=True, nogil=True)
def partition(bits, target, has_ignore, ignore, out, hist, shifts, consts):
    """Order-preserving keys of the scores, split by label, in one pass.

    ``bits`` are the float32/float64 scores viewed as uint32/uint64 and
    ``consts = key_constants(...)``; :func:`score_key` makes unsigned key
    order the score order. Positives fill ``out[:lo]``, negatives
    ``out[hi:]``; ``hist[side, pass, digit]`` counts radix digits (side 0 =
    positives). NaN scores and labels outside {0, 1} are skipped and counted.
    Returns ``(lo, hi, n_nan, n_bad_label)``.
    """
    sign, magnitude, inf, ones = consts[0], consts[1], consts[2], consts[3]
    mask = shifts[-1]
    npass = shifts.size - 1
    lo = 0
    hi = out.size
    nan = 0
    bad = 0
    for i in range(bits.size):
        t = target[i]
        if has_ignore and t == ignore:
            continue
        b = bits[i]
        if is_nan_bits(b, magnitude, inf):
            nan += 1
            continue
        k = score_key(b, sign, ones)
        if t == 1:
            out[lo] = k
            lo += 1
            side = 0
        elif t == 0:
            hi -= 1
            out[hi] = k
            side = 1
        else:
            bad += 1
            continue
        for p in range(npass):
            hist[side, p, np.intp((k >> shifts[p]) & mask)] += 1
    return lo, hi, nan, bad


@njit(cache=True, nogil=True)
def digit_histogram(keys, hist, shifts):
    """Add the radix digits of ``keys`` to ``hist[pass, digit]``."""
    for i in range(keys.size):
        k = keys[i]
        for p in range(shifts.size - 1):
            hist[p, np.intp((k >> shifts[p]) & shifts[-1])] += 1


@njit(cache=True, nogil=True)
def radix_sort(keys, tmp, hist, shifts):
    """Sort ``keys`` ascending using ``tmp`` (same size) as scratch.

    ``hist[pass, digit]`` holds the digit counts of ``keys``. Returns 0 when the
    sorted keys ended in ``keys`` and 1 when they ended in ``tmp``.
    """
    n = keys.size
    src = keys
    dst = tmp
    where = 0
    offs = np.empty(RADIX_SIZE, np.int64)
    for p in range(shifts.size - 1):
        h = hist[p]
        trivial = False
        for d in range(RADIX_SIZE):
            if h[d] != 0:
                trivial = h[d] == n
                break
        if trivial or n < 2:
            continue
        s = 0
        for d in range(RADIX_SIZE):
            offs[d] = s
            s += h[d]
        shift = shifts[p]
        mask = shifts[-1]
        for i in range(n):
            k = src[i]
            d = np.intp((k >> shift) & mask)
            dst[offs[d]] = k
            offs[d] += 1
        src, dst = dst, src
        where = 1 - where
    return where


@njit(cache=True, nogil=True)
def count_groups(pos, neg):
    """Number of distinct keys in the union of two sorted key arrays."""
    i = pos.size - 1
    j = neg.size - 1
    g = 0
    while i >= 0 or j >= 0:
        if i >= 0 and (j < 0 or pos[i] >= neg[j]):
            v = pos[i]
        else:
            v = neg[j]
        while i >= 0 and pos[i] == v:
            i -= 1
        while j >= 0 and neg[j] == v:
            j -= 1
        g += 1
    return g


@njit(cache=True, nogil=True)
def next_groups(pos, neg, cursor, keys, dtp, dfp):
    """Emit the next groups (distinct keys, decreasing) of two sorted arrays.

    ``cursor = [i, j]`` are the indices of the next unread positive / negative
    from the top (start at ``[len(pos)-1, len(neg)-1]``) and are advanced in place.
    Writes at most ``len(keys)`` groups and returns how many were written.
    """
    i = cursor[0]
    j = cursor[1]
    g = 0
    cap = keys.size
    while g < cap and (i >= 0 or j >= 0):
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
        keys[g] = v
        dtp[g] = a
        dfp[g] = b
        g += 1
    cursor[0] = i
    cursor[1] = j
    return g


# ---------------------------------------------------------------------------
# Accumulators. Each consumes a chunk of groups in decreasing-threshold order
# and carries its running state in a small array between chunks.
# ---------------------------------------------------------------------------


_SMALL_COUNT = 1 << 30  # acc_auroc's int64 sum is exact for counts below this and 2U below _SMALL_U2
_SMALL_U2 = 1 << 62


@njit(cache=True, nogil=True)
def acc_auroc(dtp, dfp, state):
    """Twice the Mann-Whitney U statistic, exactly, in integers.

    ``state = [tp_above, u2_low, u2_high]`` (int64), ``2U = u2_high * 2**63 + u2_low``
    with ``0 <= u2_low < 2**63`` (:func:`auroc_state_value`): each negative scores 1 per
    positive above it and 1/2 per positive tied with it, so a group adds
    ``dfp * (2 tp_above + dtp)``.

    The chunk is summed in int64 first (today's loop, one pass). That sum is exact when the
    chunk ends with fewer than ``2**30`` positives above and has fewer than ``2**30``
    negatives, and ``2U`` started below ``2**62`` (then every term is below ``2**61.6`` and
    the total below ``2**63``), the common case. Otherwise the chunk is summed again from
    the same state in 128 bits (``_int128``), exact to ``2**63`` elements.
    """
    tp = state[0]
    u2 = state[1]
    fp = 0
    for g in range(dtp.size):
        u2 += dfp[g] * (2 * tp + dtp[g])
        tp += dtp[g]
        fp += dfp[g]
    if tp < _SMALL_COUNT and fp < _SMALL_COUNT and state[1] < _SMALL_U2:
        state[0] = tp
        state[1] = u2
        return
    tp = state[0]
    hi, lo = join63(state[2], state[1])
    for g in range(dtp.size):
        # 2 tp + dtp < 2**64 for tp + dtp < 2**63
        ph, pl = mul_u64(dfp[g], np.uint64(tp) + np.uint64(tp) + np.uint64(dtp[g]))
        hi, lo = add_u128(hi, lo, ph, pl)
        tp += dtp[g]
    state[0] = tp
    state[2], state[1] = split63(hi, lo)


def auroc_state_value(state):
    """``2U`` of an :func:`acc_auroc` state as a Python int."""
    return (int(state[2]) << 63) + int(state[1])


@njit(cache=True, nogil=True)
def acc_average_precision(dtp, dfp, counts, sums):
    """``sum_k dtp_k * TP_k / (TP_k + FP_k)`` as a double-double (divide by P for AP).

    ``counts = [tp, fp]`` (int64), ``sums = [hi, lo]``. Groups with ``dtp = 0``
    add nothing: the recall does not move. Counts from ``2**53`` on enter as exact
    double-doubles (``_int128.count_dd``); below, the arithmetic is unchanged.
    """
    tp = counts[0]
    fp = counts[1]
    sh = sums[0]
    sl = sums[1]
    for g in range(dtp.size):
        tp += dtp[g]
        fp += dfp[g]
        if dtp[g] != 0:
            if tp + fp < EXACT_FLOAT:
                qh, ql = div_dd(np.float64(tp), np.float64(tp + fp))
                th, tl = scale_dd(np.float64(dtp[g]), qh, ql)
            else:
                nh, nl = count_dd(tp)
                dh, dl = count_dd(tp + fp)
                qh, ql = div_dd_dd(nh, nl, dh, dl)
                kh, kl = count_dd(dtp[g])
                th, tl = mul_dd(kh, kl, qh, ql)
            sh, sl = add_dd(sh, sl, th, tl)
    counts[0] = tp
    counts[1] = fp
    sums[0] = sh
    sums[1] = sl


@njit(cache=True, nogil=True)
def finish_average_precision(sums, n_pos, n_pos_lo=0.0):
    """AP = the double-double sum over ``P``, rounded once. ``P = n_pos + n_pos_lo``
    (``_int128.count_dd`` of a count past ``2**53``; the low part is 0 below)."""
    if n_pos_lo == 0.0:
        return dd_over(sums[0], sums[1], n_pos)
    return dd_over_dd(sums[0], sums[1], n_pos, n_pos_lo)


@njit(cache=True, nogil=True)
def _precision_dd(tp, fp):
    if tp + fp == 0:
        return 1.0, 0.0
    if tp + fp < EXACT_FLOAT:
        return div_dd(np.float64(tp), np.float64(tp + fp))
    nh, nl = count_dd(tp)
    dh, dl = count_dd(tp + fp)
    return div_dd_dd(nh, nl, dh, dl)


@njit(cache=True, nogil=True)
def acc_pr_trapezoid(dtp, dfp, counts, sums):
    """Twice ``P`` times the trapezoid under the PR curve, anomalib 1.x order.

    anomalib 1.x integrates the precision_recall_curve points (thresholds
    increasing, then the end point (recall 0, precision 1)) after a *stable*
    sort by recall. Consecutive thresholds with the same TP form a run of equal
    recall whose inner segments have zero width; the segment from run ``j`` to
    run ``j+1`` joins the point of run ``j`` that comes last in that order (its
    highest threshold, or the end point for recall 0) to the point of run ``j+1``
    that comes first (its lowest threshold). Walking thresholds downwards, a
    run's first point is its highest threshold and its last point its lowest.

    ``counts = [tp, fp, tp_of_previous_run, started]``; ``sums`` holds
    double-doubles ``[area, p_hi(previous run), p_hi(current), p_lo(current)]``
    flattened to 8 floats. Finish with :func:`finish_pr_trapezoid`.
    """
    tp = counts[0]
    fp = counts[1]
    prev_tp = counts[2]
    for g in range(dtp.size):
        new_run = dtp[g] != 0
        tp += dtp[g]
        fp += dfp[g]
        ph, pl = _precision_dd(tp, fp)
        if new_run:
            if counts[3] == 1:
                _close_run(tp - dtp[g] - prev_tp, sums)
                prev_tp = tp - dtp[g]
                sums[2] = sums[4]
                sums[3] = sums[5]
            counts[3] = 1
            sums[4] = ph
            sums[5] = pl
        sums[6] = ph
        sums[7] = pl
    counts[0] = tp
    counts[1] = fp
    counts[2] = prev_tp


@njit(cache=True, nogil=True)
def _close_run(width, sums):
    # area += width * (p_hi(previous) + p_lo(current))
    hh, hl = add_dd(sums[2], sums[3], sums[6], sums[7])
    if width < EXACT_FLOAT:
        th, tl = scale_dd(np.float64(width), hh, hl)
    else:
        wh, wl = count_dd(width)
        th, tl = mul_dd(wh, wl, hh, hl)
    sums[0], sums[1] = add_dd(sums[0], sums[1], th, tl)


@njit(cache=True, nogil=True)
def finish_pr_trapezoid(counts, sums, n_pos, n_pos_lo=0.0):
    """Close the last run; returns the area ``sum / (2 P)`` rounded once
    (``P = n_pos + n_pos_lo`` as in :func:`finish_average_precision`)."""
    if counts[3] == 1:
        _close_run(counts[0] - counts[2], sums)
    if n_pos_lo == 0.0:
        return dd_over(sums[0], sums[1], 2.0 * n_pos)
    return dd_over_dd(sums[0], sums[1], 2.0 * n_pos, 2.0 * n_pos_lo)


@njit(cache=True, nogil=True, inline="always")
def f1_order(tp, fp, btp, bfp, n_pos):
    """Exact order of two F1 values ``F1 = 2 tp / (tp + fp + P)``: 1 if ``(tp, fp)`` is
    larger than ``(btp, bfp)``, 0 if equal, -1 if smaller. The one F1 comparison of the
    library: the CUDA kernels compile their twin from this function's Python source.

    Compares ``tp / (tp + fp + P)`` with ``btp / (btp + bfp + P)`` by cross products, exact
    to ``2**63`` elements: in uint64 while every factor is below ``2**32``, else as 128-bit
    products (``_int128.mul_u64``). The sums ``tp + fp + P`` are formed in uint64 (below
    ``2**64``).
    """
    a = np.uint64(tp)
    b = np.uint64(btp)
    da = np.uint64(btp) + np.uint64(bfp) + np.uint64(n_pos)
    db = np.uint64(tp) + np.uint64(fp) + np.uint64(n_pos)
    if (da | db) <= _M32:  # tp, btp <= P <= da, db: every factor below 2**32
        lhs = a * da
        rhs = b * db
        if lhs > rhs:
            return 1
        if lhs == rhs:
            return 0
        return -1
    lh, ll = mul_u64(a, da)
    rh, rl = mul_u64(b, db)
    return cmp_u128(lh, ll, rh, rl)


@njit(cache=True, nogil=True)
def acc_f1_max(keys, dtp, dfp, n_pos, state, best_key):
    """Largest ``F1 = 2TP / (2TP + FP + FN)`` over thresholds, ties to the lowest.

    ``state = [tp, fp, best_tp, best_fp, seen]`` (int64); the key of the best
    threshold goes to ``best_key[0]``.
    """
    tp = state[0]
    fp = state[1]
    for g in range(dtp.size):
        tp += dtp[g]
        fp += dfp[g]
        # thresholds come in decreasing order: an equal F1 later is at a lower threshold
        if state[4] == 0 or f1_order(tp, fp, state[2], state[3], n_pos) >= 0:
            state[2] = tp
            state[3] = fp
            best_key[0] = keys[g]
            state[4] = 1
    state[0] = tp
    state[1] = fp
