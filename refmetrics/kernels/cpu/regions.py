"""Numba CPU kernels for the region metrics (PRO curve, AUPRO, PRO).

The PRO curve is built like the ranking curves (see ``ranking.py``): scores
become order-preserving keys, background pixels and region pixels are sorted
apart, and a walk from the top emits one group per distinct score. A region
pixel carries the size ``|R_k|`` of its region: crossing it adds ``1/|R_k|``
to ``K * PRO``. Region pixels are sorted by (key, size), so that within a group
the terms are always added in the same order, whatever the order in which the
images (and so the region ids) arrived: results are bit-identical across batch
splits, batch orders and merges. Sums are double-doubles (``_sum.py``).

Kernels take typed contiguous arrays, never validate and never raise.
"""

import numpy as np
from numba import njit

from ._int128 import EXACT_FLOAT, count_dd
from ._sum import add_dd, dd_over, dd_over_dd, div_dd, div_dd_dd, mul_dd, scale_dd, two_prod, two_sum
from .keys import is_nan_bits, score_key
from .ranking import RADIX_SIZE


@njit(cache=True, nogil=True)
def binary_mask(labels, has_ignore, ignore, out):
    """``out = labels == 1`` for {0, 1} labels; returns ``(n_ones, n_bad)``.

    With ``has_ignore``, labels equal to ``ignore`` are dropped first (``out``
    false, neither counted), whatever their value, 0 and 1 included.
    """
    ones = 0
    bad = 0
    for i in range(labels.size):
        t = labels[i]
        if has_ignore and t == ignore:
            out[i] = False
        elif t == 1:
            out[i] = True
            ones += 1
        elif t == 0:
            out[i] = False
        else:
            out[i] = False
            bad += 1
    return ones, bad


@njit(cache=True, nogil=True)
def partition_regions(bits, regions, sizes, consts, cut, bg, n_bg, rkeys, rsizes, n_reg):
    """Keys of one sample's pixels: background to ``bg[n_bg:]``, region pixels
    (key and region size) to ``rkeys[n_reg:]`` / ``rsizes[n_reg:]``.

    ``regions`` holds the sample's region ids (0 = background, ids 1..),
    ``sizes[id]`` their pixel counts. ``consts`` as ``keys.key_constants``.
    Pixels whose key is below ``cut`` are counted out (0 keeps all). Returns
    ``(n_bg, n_reg, n_nan)`` after this sample.
    """
    sign, magnitude, inf, ones = consts[0], consts[1], consts[2], consts[3]
    nan = 0
    for i in range(bits.size):
        b = bits[i]
        if is_nan_bits(b, magnitude, inf):
            nan += 1
            continue
        k = score_key(b, sign, ones)
        if k < cut:
            continue
        r = regions[i]
        if r == 0:
            bg[n_bg] = k
            n_bg += 1
        else:
            rkeys[n_reg] = k
            rsizes[n_reg] = sizes[r]
            n_reg += 1
    return n_bg, n_reg, nan


@njit(cache=True, nogil=True)
def background_top_histogram(bits, masks, consts, shift, hist):
    """``hist[d] +=`` the background pixels (``masks`` false) whose key's top bits are ``d``.

    NaN scores are skipped (the partition counts and reports them).
    """
    sign, magnitude, inf, ones = consts[0], consts[1], consts[2], consts[3]
    for i in range(bits.size):
        if masks[i]:
            continue
        b = bits[i]
        if is_nan_bits(b, magnitude, inf):
            continue
        k = score_key(b, sign, ones)
        hist[np.intp(k >> shift)] += 1


@njit(cache=True, nogil=True)
def top_histogram(keys, shift, hist):
    """``hist[d] +=`` the keys whose top bits (``key >> shift``) equal ``d``."""
    for i in range(keys.size):
        hist[np.intp(keys[i] >> shift)] += 1


@njit(cache=True, nogil=True)
def keep_at_least(keys, payload, cut, out_k, out_p):
    """Copy the ``(key, payload)`` pairs with ``key >= cut`` (order kept); returns how many."""
    n = 0
    for i in range(keys.size):
        if keys[i] >= cut:
            out_k[n] = keys[i]
            out_p[n] = payload[i]
            n += 1
    return n


@njit(cache=True, nogil=True)
def keep_keys_at_least(keys, cut, out):
    """Copy the keys ``>= cut`` (order kept); returns how many."""
    n = 0
    for i in range(keys.size):
        if keys[i] >= cut:
            out[n] = keys[i]
            n += 1
    return n


@njit(cache=True, nogil=True)
def partition_background(bits, consts, cut, bg, n_bg):
    """Keys (``>= cut``) of a defect-free sample to ``bg[n_bg:]``; returns ``(n_bg, n_nan)``."""
    sign, magnitude, inf, ones = consts[0], consts[1], consts[2], consts[3]
    nan = 0
    for i in range(bits.size):
        b = bits[i]
        if is_nan_bits(b, magnitude, inf):
            nan += 1
            continue
        k = score_key(b, sign, ones)
        if k >= cut:
            bg[n_bg] = k
            n_bg += 1
    return n_bg, nan


@njit(cache=True, nogil=True)
def _scatter_pass(src_k, src_p, dst_k, dst_p, by_payload, shift, mask, counts):
    n = src_k.size
    for d in range(RADIX_SIZE):
        counts[d] = 0
    for i in range(n):
        v = src_p[i] if by_payload else src_k[i]
        counts[np.intp((v >> shift) & mask)] += 1
    first = -1
    for d in range(RADIX_SIZE):
        if counts[d] != 0:
            first = d
            break
    if first >= 0 and counts[first] == n:
        return False  # every element has this digit: nothing to do
    s = 0
    for d in range(RADIX_SIZE):
        c = counts[d]
        counts[d] = s
        s += c
    for i in range(n):
        v = src_p[i] if by_payload else src_k[i]
        d = np.intp((v >> shift) & mask)
        dst_k[counts[d]] = src_k[i]
        dst_p[counts[d]] = src_p[i]
        counts[d] += 1
    return True


@njit(cache=True, nogil=True)
def radix_sort_pairs(keys, payload, tmp_k, tmp_p, key_shifts, payload_shifts):
    """Sort ``(keys, payload)`` pairs ascending by key, then payload (LSD).

    The shifts arrays are as ``ranking.digit_shifts`` for each dtype. Returns 0
    when the result is in ``keys``/``payload``, 1 when in the tmp arrays.
    """
    counts = np.empty(RADIX_SIZE, np.int64)
    where = 0
    src_k, src_p, dst_k, dst_p = keys, payload, tmp_k, tmp_p
    for p in range(payload_shifts.size - 1):
        if _scatter_pass(src_k, src_p, dst_k, dst_p, True, payload_shifts[p], payload_shifts[-1], counts):
            src_k, src_p, dst_k, dst_p = dst_k, dst_p, src_k, src_p
            where = 1 - where
    for p in range(key_shifts.size - 1):
        if _scatter_pass(src_k, src_p, dst_k, dst_p, False, key_shifts[p], key_shifts[-1], counts):
            src_k, src_p, dst_k, dst_p = dst_k, dst_p, src_k, src_p
            where = 1 - where
    return where


@njit(cache=True, nogil=True)
def next_region_groups(bg, rkeys, rsizes, cursor, collapse, dfp, dsh, dsl):
    """Next groups (distinct keys, decreasing) of the sorted background keys and
    the region pixels sorted by (key, size).

    Per group: ``dfp`` background pixels, ``dsh + dsl`` = the double-double sum
    of ``1/size`` over its region pixels. ``cursor = [i, j]`` as in
    ``ranking.next_groups``. With ``collapse``, consecutive groups without
    region pixels are emitted as one (the PRO is flat there, so the area is the
    same; the points of the curve are not), also across calls. Returns the number
    of groups written.
    """
    i = cursor[0]
    j = cursor[1]
    g = 0
    cap = dfp.size
    while i >= 0 or j >= 0:
        if g == cap:
            # A full buffer ends here unless the next group is background-only and
            # folds into the last one: the groups never depend on the buffer size.
            if not (collapse and dsh[g - 1] == 0.0 and i >= 0 and (j < 0 or bg[i] > rkeys[j])):
                break
        if i >= 0 and (j < 0 or bg[i] >= rkeys[j]):
            v = bg[i]
        else:
            v = rkeys[j]
        a = 0
        while i >= 0 and bg[i] == v:
            a += 1
            i -= 1
        sh = 0.0
        sl = 0.0
        while j >= 0 and rkeys[j] == v:
            qh, ql = div_dd(1.0, np.float64(rsizes[j]))
            sh, sl = add_dd(sh, sl, qh, ql)
            j -= 1
        if collapse and sh == 0.0 and g > 0 and dsh[g - 1] == 0.0:
            dfp[g - 1] += a
            continue
        dfp[g] = a
        dsh[g] = sh
        dsl[g] = sl
        g += 1
    cursor[0] = i
    cursor[1] = j
    return g


@njit(cache=True, nogil=True)
def region_run_sums(n_region, rsizes, dsh, dsl):
    """Per group (keys decreasing), ``dsh + dsl`` = the double-double sum of ``1/size``
    over its ``n_region[g]`` region pixels, taken from the top of ``rsizes`` (sorted
    by key, then size) downwards: the terms and the order of :func:`next_region_groups`.
    The CUDA backend counts the groups on the device and sums here.
    """
    j = rsizes.size - 1
    for g in range(n_region.size):
        sh = 0.0
        sl = 0.0
        for _ in range(n_region[g]):
            qh, ql = div_dd(1.0, np.float64(rsizes[j]))
            sh, sl = add_dd(sh, sl, qh, ql)
            j -= 1
        dsh[g] = sh
        dsl[g] = sl


@njit(cache=True, nogil=True)
def sampled_region_groups(bg, rkeys, rsizes, bounds, dfp, dsh, dsl):
    """Groups between sampled thresholds: ``bounds`` are threshold keys,
    decreasing; group ``g`` holds the pixels with ``bounds[g] <= key`` and (for
    ``g > 0``) ``key < bounds[g-1]``. Pixels below the last bound are left out.
    """
    i = bg.size - 1
    j = rkeys.size - 1
    for g in range(bounds.size):
        t = bounds[g]
        a = 0
        while i >= 0 and bg[i] >= t:
            a += 1
            i -= 1
        sh = 0.0
        sl = 0.0
        while j >= 0 and rkeys[j] >= t:
            qh, ql = div_dd(1.0, np.float64(rsizes[j]))
            sh, sl = add_dd(sh, sl, qh, ql)
            j -= 1
        dfp[g] = a
        dsh[g] = sh
        dsl[g] = sl


@njit(cache=True, nogil=True)
def acc_aupro(dfp, dsh, dsl, n_bg, limit, counts, sums):
    """Trapezoid under the PRO curve from fpr 0 to ``limit`` (times ``2 K``).

    Points start at (0, 0); each group moves fpr by ``dfp / n_bg`` and ``K *
    PRO`` by ``dsh + dsl``. The segment that crosses ``limit`` is cut there, its
    PRO linearly interpolated. ``counts = [fp, done]``; ``sums = [area_h,
    area_l, S_h, S_l]`` (``S`` = ``K * PRO`` so far). Divide by ``2 K limit``.

    Background counts from ``2**53`` on (``n_bg >= 2**53``) take :func:`_acc_aupro_wide`,
    the same operations on exact double-double counts; below, nothing changes.
    """
    if n_bg >= EXACT_FLOAT:
        _acc_aupro_wide(dfp, dsh, dsl, n_bg, limit, counts, sums)
        return
    fp = counts[0]
    if counts[1]:
        return
    ah = sums[0]
    al = sums[1]
    s_h = sums[2]
    s_l = sums[3]
    # limit * n_bg exactly, as a double-double
    lim_h, lim_l = two_prod(limit, np.float64(n_bg))
    for g in range(dfp.size):
        nfp = fp + dfp[g]
        n_h, n_l = add_dd(s_h, s_l, dsh[g], dsl[g])
        # does the segment end beyond the limit?  nfp > limit * n_bg
        over_h, over_l = add_dd(np.float64(nfp), 0.0, -lim_h, -lim_l)
        if over_h > 0.0 or (over_h == 0.0 and over_l > 0.0):
            # width to the limit, in background pixels: limit * n_bg - fp
            w_h, w_l = add_dd(lim_h, lim_l, -np.float64(fp), 0.0)
            # S at the limit: S + dS * w / dfp
            f_h, f_l = div_dd(1.0, np.float64(dfp[g]))
            f_h, f_l = mul_dd(w_h, w_l, f_h, f_l)
            d_h, d_l = mul_dd(dsh[g], dsl[g], f_h, f_l)
            e_h, e_l = add_dd(s_h, s_l, d_h, d_l)
            h_h, h_l = add_dd(s_h, s_l, e_h, e_l)
            t_h, t_l = mul_dd(w_h, w_l, h_h, h_l)
            ah, al = add_dd(ah, al, t_h, t_l)
            counts[1] = 1
            break
        h_h, h_l = add_dd(s_h, s_l, n_h, n_l)
        t_h, t_l = scale_dd(np.float64(dfp[g]), h_h, h_l)
        ah, al = add_dd(ah, al, t_h, t_l)
        fp = nfp
        s_h = n_h
        s_l = n_l
    counts[0] = fp
    sums[0] = ah
    sums[1] = al
    sums[2] = s_h
    sums[3] = s_l


@njit(cache=True, nogil=True)
def _acc_aupro_wide(dfp, dsh, dsl, n_bg, limit, counts, sums):
    """:func:`acc_aupro` for ``n_bg >= 2**53``: every count enters as an exact double-double
    (``_int128.count_dd``). ``limit * n_bg`` is then a double-double (about 106 bits, not
    exact), so the crossing test can only err for a group ending within ``~2**-43`` pixel of
    ``limit * n_bg``, where both choices give the same area to far below one ulp."""
    fp = counts[0]
    if counts[1]:
        return
    ah = sums[0]
    al = sums[1]
    s_h = sums[2]
    s_l = sums[3]
    nb_h, nb_l = count_dd(n_bg)
    p_h, p_l = two_prod(limit, nb_h)
    q_h, q_l = two_prod(limit, nb_l)
    lim_h, lim_l = add_dd(p_h, p_l, q_h, q_l)
    for g in range(dfp.size):
        nfp = fp + dfp[g]
        n_h, n_l = add_dd(s_h, s_l, dsh[g], dsl[g])
        c_h, c_l = count_dd(nfp)
        over_h, over_l = add_dd(c_h, c_l, -lim_h, -lim_l)
        if over_h > 0.0 or (over_h == 0.0 and over_l > 0.0):
            c_h, c_l = count_dd(fp)
            w_h, w_l = add_dd(lim_h, lim_l, -c_h, -c_l)
            c_h, c_l = count_dd(dfp[g])
            f_h, f_l = div_dd_dd(1.0, 0.0, c_h, c_l)
            f_h, f_l = mul_dd(w_h, w_l, f_h, f_l)
            d_h, d_l = mul_dd(dsh[g], dsl[g], f_h, f_l)
            e_h, e_l = add_dd(s_h, s_l, d_h, d_l)
            h_h, h_l = add_dd(s_h, s_l, e_h, e_l)
            t_h, t_l = mul_dd(w_h, w_l, h_h, h_l)
            ah, al = add_dd(ah, al, t_h, t_l)
            counts[1] = 1
            break
        h_h, h_l = add_dd(s_h, s_l, n_h, n_l)
        c_h, c_l = count_dd(dfp[g])
        t_h, t_l = mul_dd(c_h, c_l, h_h, h_l)
        ah, al = add_dd(ah, al, t_h, t_l)
        fp = nfp
        s_h = n_h
        s_l = n_l
    counts[0] = fp
    sums[0] = ah
    sums[1] = al
    sums[2] = s_h
    sums[3] = s_l


@njit(cache=True, nogil=True)
def aupro_divisor(n_bg, n_regions):
    """``2 K n_bg`` as a double-double ``(h, l)``: exact while ``2K`` and ``n_bg`` are below
    ``2**53`` (a Dekker product of two exact floats), else within about ``2**-104`` relative.
    ``l`` is 0 exactly when ``h = float64(2 K) * float64(n_bg)`` is the exact product."""
    if n_regions < EXACT_FLOAT // 2 and n_bg < EXACT_FLOAT:
        return two_prod(2.0 * n_regions, np.float64(n_bg))
    k_h, k_l = count_dd(n_regions)
    b_h, b_l = count_dd(n_bg)
    return mul_dd(2.0 * k_h, 2.0 * k_l, b_h, b_l)


@njit(cache=True, nogil=True)
def finish_aupro(sums, n_bg, n_regions, limit):
    """The area divided by ``limit``: ``area / (2 K n_bg limit)``, rounded once.

    The divisor ``2 K n_bg`` is a double-double (:func:`aupro_divisor`). When it is one
    float (the product exact in float64: below ``2**53``, the usual case) the arithmetic is
    that of every earlier version; past that, the low part enters the division too, where
    ``2.0 * K * float64(n_bg)`` used to round.
    """
    k_h, k_l = aupro_divisor(n_bg, n_regions)
    d_h, d_l = two_prod(k_h, limit)
    if k_l == 0.0:
        q = dd_over(sums[0], sums[1], d_h)
        # correct for the low part of the divisor (first order)
        return q - q * (d_l / d_h)
    e_h, e_l = two_prod(k_l, limit)
    d_l, e = two_sum(d_l, e_h)
    d_h, d_l = two_sum(d_h, d_l + (e + e_l))
    return dd_over_dd(sums[0], sums[1], d_h, d_l)


@njit(cache=True, nogil=True)
def curve_points(dfp, dsh, dsl, n_bg, n_regions, fpr, pro):
    """Cumulative points of the PRO curve: ``fpr[g+1]``, ``pro[g+1]`` (index 0 = (0, 0))."""
    fp = 0
    s_h = 0.0
    s_l = 0.0
    fpr[0] = 0.0
    pro[0] = 0.0
    for g in range(dfp.size):
        fp += dfp[g]
        s_h, s_l = add_dd(s_h, s_l, dsh[g], dsl[g])
        if n_bg >= EXACT_FLOAT:  # fp / n_bg from exact double-double counts
            f_h, f_l = count_dd(fp)
            b_h, b_l = count_dd(n_bg)
            fpr[g + 1] = dd_over_dd(f_h, f_l, b_h, b_l)
        else:
            fpr[g + 1] = fp / n_bg if n_bg > 0 else np.nan
        if n_regions >= EXACT_FLOAT:
            k_h, k_l = count_dd(n_regions)
            pro[g + 1] = dd_over_dd(s_h, s_l, k_h, k_l)
        else:
            pro[g + 1] = dd_over(s_h, s_l, np.float64(n_regions)) if n_regions > 0 else np.nan


@njit(cache=True, nogil=True)
def region_overlaps(scores, regions, threshold, above):
    """``above[id] +=`` the pixels of region ``id`` with ``score > threshold``."""
    nan = 0
    for i in range(scores.size):
        v = np.float64(scores[i])
        if v != v:
            nan += 1
            continue
        r = regions[i]
        if r != 0 and v > threshold:
            above[r] += 1
    return nan


@njit(cache=True, nogil=True)
def mean_ratio(counts, sizes):
    """``mean_k counts[k] / sizes[k]`` over pairs already in a canonical order, rounded once."""
    sh = 0.0
    sl = 0.0
    for k in range(counts.size):
        qh, ql = div_dd(np.float64(counts[k]), np.float64(sizes[k]))
        sh, sl = add_dd(sh, sl, qh, ql)
    if counts.size >= EXACT_FLOAT:
        k_h, k_l = count_dd(counts.size)
        return dd_over_dd(sh, sl, k_h, k_l)
    return dd_over(sh, sl, np.float64(counts.size))
