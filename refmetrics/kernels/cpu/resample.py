"""Numba CPU kernels of the image-level bootstrap: a metric on many resamples of one sorted dataset.

A resample is a multiset of images: image ``i`` enters ``w[i]`` times. The
data is sorted once, each element tagged with its image (the low ``ib`` bits
of its payload; the region size above them for region pixels). One resample
is then a walk of the sorted data in which an element counts ``w[image]``
times: the groups (distinct scores, decreasing) are those of the repeated
data, a group whose elements all have weight 0 does not exist, and the
accumulators of the ordinary metrics (``ranking.acc_*``, ``regions.acc_aupro``)
consume them. So each replicate is the ordinary metric of the resampled data,
bit for bit, without forming or sorting it.

AUROC has a cheaper form: ``2U`` of a resample is ``w' M w`` for the matrix
``M[i, j]`` of image ``i``'s positives against image ``j``'s negatives
(:func:`pair_counts`), an exact integer.

Resamples are independent, so they run in parallel (``prange``); each one's
arithmetic is sequential, so the results do not depend on the thread count.
"""

import numpy as np
from numba import njit, prange

from ._sum import add_dd, div_dd, mul_dd, scale_dd, two_prod
from .ranking import acc_auroc, acc_average_precision, acc_f1_max, finish_average_precision
from .regions import finish_aupro

CHUNK = 4096  # groups per accumulator call; the AUPRO walk stops within a chunk of its limit


@njit(cache=True, nogil=True, inline="always")
def _weight(w, images, start, stop):
    """Total weight of the elements ``start <= t < stop`` (their images' multiplicities)."""
    a = 0
    for t in range(start, stop):
        a += w[images[t]]
    return a


@njit(cache=True, nogil=True)
def _ranking_one(pos_k, pos_p, neg_img, lo_of, hi_of, mask, w, n_pos, out_i, out_f, b):
    keys = np.empty(CHUNK, pos_k.dtype)
    dtp = np.empty(CHUNK, np.int64)
    dfp = np.empty(CHUNK, np.int64)
    auc = np.zeros(3, np.int64)
    ap_counts = np.zeros(2, np.int64)
    ap_sums = np.zeros(2, np.float64)
    f1 = np.zeros(5, np.int64)
    best = np.zeros(1, pos_k.dtype)
    i = neg_img.size  # negatives [0, i) are unread
    j = pos_k.size - 1
    g = 0
    while True:
        # the negatives above the next positive (all that are left after the last one): groups
        # of negatives only, taken as one. That changes no 2U, AP or F1-max value (a run of
        # negatives never holds a larger F1 than the group before it), only F1's threshold,
        # which a replicate does not report.
        stop = hi_of[j] if j >= 0 else 0
        c = _weight(w, neg_img, stop, i)
        i = stop
        a = 0
        if c:
            keys[g] = 0
            dtp[g] = 0
            dfp[g] = c
            g += 1
        if j >= 0:
            v = pos_k[j]
            while j >= 0 and pos_k[j] == v:
                a += w[pos_p[j] & mask]
                j -= 1
            c = _weight(w, neg_img, lo_of[j + 1], i)
            i = lo_of[j + 1]
            if a or c:
                keys[g] = v
                dtp[g] = a
                dfp[g] = c
                g += 1
        if g >= CHUNK - 1 or (j < 0 and i == 0):
            acc_auroc(dtp[:g], dfp[:g], auc)
            acc_average_precision(dtp[:g], dfp[:g], ap_counts, ap_sums)
            acc_f1_max(keys[:g], dtp[:g], dfp[:g], n_pos, f1, best)
            g = 0
        if j < 0 and i == 0:
            break
    out_i[b, 0] = auc[1]
    out_i[b, 1] = f1[2]
    out_i[b, 2] = f1[3]
    out_i[b, 3] = f1[4]
    out_i[b, 4] = auc[2]
    out_f[b] = finish_average_precision(ap_sums, np.float64(n_pos)) if n_pos else np.nan


@njit(cache=True, parallel=True)
def ranking_replicates(pos_k, pos_p, neg_img, lo_of, hi_of, mask, weights, n_pos, out_i, out_f):
    """Per resample ``b`` (a row of ``weights``): ``out_i[b] = [2U low, best tp, best fp, seen, 2U high]``
    (AUROC's ``2U = high * 2**63 + low``, as ``ranking.acc_auroc``'s state; F1-max's counts as
    ``ranking.acc_f1_max``) and ``out_f[b]`` = the
    average precision. Positives' keys ascending, image = ``payload & mask``; the negatives'
    images in key order; ``lo_of[j]``/``hi_of[j]``: the negatives below / at most positive
    ``j``'s key; ``n_pos[b]`` = the resample's positives."""
    for b in prange(weights.shape[0]):
        _ranking_one(pos_k, pos_p, neg_img, lo_of, hi_of, mask, weights[b], n_pos[b], out_i, out_f, b)


@njit(cache=True, nogil=True, inline="always")
def _aupro_step(a, dh, dl, fp, s_h, s_l, ah, al, lim_h, lim_l):
    """One group of ``regions.acc_aupro``, operation for operation: ``a`` background pixels and
    ``dh + dl`` = the group's sum of ``1/size``. Returns ``(fp, S_h, S_l, area_h, area_l, done)``.

    A group without background pixel (``a == 0``) only moves ``S``: the false positives stay below
    the limit (they were), and the trapezoid of width 0 adds ``scale_dd(0, h) = (0, 0)`` to the
    area, which ``add_dd`` returns unchanged; so those operations are skipped.
    """
    if a == 0:
        s_h, s_l = add_dd(s_h, s_l, dh, dl)
        return fp, s_h, s_l, ah, al, False
    nfp = fp + a
    n_h, n_l = add_dd(s_h, s_l, dh, dl)
    over_h, over_l = add_dd(np.float64(nfp), 0.0, -lim_h, -lim_l)
    if over_h > 0.0 or (over_h == 0.0 and over_l > 0.0):
        w_h, w_l = add_dd(lim_h, lim_l, -np.float64(fp), 0.0)
        f_h, f_l = div_dd(1.0, np.float64(a))
        f_h, f_l = mul_dd(w_h, w_l, f_h, f_l)
        d_h, d_l = mul_dd(dh, dl, f_h, f_l)
        e_h, e_l = add_dd(s_h, s_l, d_h, d_l)
        h_h, h_l = add_dd(s_h, s_l, e_h, e_l)
        t_h, t_l = mul_dd(w_h, w_l, h_h, h_l)
        ah, al = add_dd(ah, al, t_h, t_l)
        return fp, s_h, s_l, ah, al, True
    h_h, h_l = add_dd(s_h, s_l, n_h, n_l)
    t_h, t_l = scale_dd(np.float64(a), h_h, h_l)
    ah, al = add_dd(ah, al, t_h, t_l)
    return nfp, n_h, n_l, ah, al, False


@njit(cache=True, nogil=True)
def _aupro_one(bg_img, r_k, r_p, r_qh, r_ql, lo_of, hi_of, ib, w, n_bg, n_regions, limit, need):
    """One resample's AUPRO. The groups are those ``regions.next_region_groups`` forms with
    ``collapse`` on the resampled data, in its order, fed to ``acc_aupro``'s arithmetic
    (:func:`_aupro_step`); the walk stops at the group whose false positives reach
    ``need = floor(limit * n_bg) + 1``, where ``acc_aupro`` stops (a background-only group
    that crosses the limit adds ``(limit n_bg - fp) 2S`` whatever its size, so the last one
    is summed only that far). ``r_qh + r_ql`` = ``1/size`` of each region pixel."""
    mask = (np.uint64(1) << np.uint64(ib)) - np.uint64(1)
    lim_h, lim_l = two_prod(limit, np.float64(n_bg))
    fp = 0
    s_h = 0.0
    s_l = 0.0
    ah = 0.0
    al = 0.0
    finished = False
    have = False  # the last group is held back: background-only groups after it fold into it
    pa = 0
    psh = 0.0
    psl = 0.0
    done = 0  # false positives of the groups handed on
    i = bg_img.size  # background pixels [0, i) are unread
    j = r_k.size - 1
    while i > 0 or j >= 0:
        sh = 0.0
        sl = 0.0
        region = False
        if j < 0:
            # the background below the last region pixel: read up to the limit only
            base = done + (pa if have and psh == 0.0 else 0)
            a = 0
            while i > 0 and base + a < need:
                i -= 1
                a += w[bg_img[i]]
        elif hi_of[j] < i:
            # background pixels above the next region pixel: background-only groups, folded into one
            a = _weight(w, bg_img, hi_of[j], i)
            i = hi_of[j]
        else:
            v = r_k[j]
            a = _weight(w, bg_img, lo_of[j], i)
            i = lo_of[j]
            while j >= 0 and r_k[j] == v:
                c = w[np.uint64(r_p[j]) & mask]
                # the terms of regions.next_region_groups, in its order: one per repeated pixel
                for _ in range(c):
                    sh, sl = add_dd(sh, sl, r_qh[j], r_ql[j])
                region = region or c > 0
                j -= 1
        if a == 0 and not region:
            continue  # every pixel of the group has weight 0: the resample has no such score
        if not region and have and psh == 0.0:
            pa += a
        else:
            if have:
                done += pa
                fp, s_h, s_l, ah, al, finished = _aupro_step(pa, psh, psl, fp, s_h, s_l, ah, al, lim_h, lim_l)
                if finished:
                    break
            have = True
            pa = a
            psh = sh
            psl = sl
        if done + pa >= need:
            break
    if have and not finished:
        fp, s_h, s_l, ah, al, finished = _aupro_step(pa, psh, psl, fp, s_h, s_l, ah, al, lim_h, lim_l)
    sums = np.empty(4, np.float64)
    sums[0] = ah
    sums[1] = al
    sums[2] = s_h
    sums[3] = s_l
    return finish_aupro(sums, n_bg, n_regions, limit)


@njit(cache=True, parallel=True)
def aupro_replicates(bg_img, r_k, r_p, r_qh, r_ql, lo_of, hi_of, ib, weights, n_bg, n_regions, limit, need, out):
    """Per resample ``b``: the AUPRO up to ``limit`` (as ``regions.acc_aupro`` /
    ``finish_aupro`` on the collapsed groups of the resampled data). Background pixels'
    images in key order; region pixels ascending by (key, size) with payload
    ``size << ib | image`` and ``1/size`` as a double-double (``r_qh``, ``r_ql``: ``div_dd(1, size)``);
    ``lo_of``/``hi_of`` as in :func:`ranking_replicates`;
    ``need[b] = floor(limit * n_bg[b]) + 1``. Resamples without a region or background
    pixel: NaN."""
    for b in prange(weights.shape[0]):
        if n_bg[b] == 0 or n_regions[b] == 0:
            out[b] = np.nan
        else:
            out[b] = _aupro_one(bg_img, r_k, r_p, r_qh, r_ql, lo_of, hi_of, ib, weights[b], n_bg[b], n_regions[b],
                                limit, need[b])


@njit(cache=True, nogil=True)
def reciprocals(payload, ib, qh, ql):
    """``qh + ql = div_dd(1, size)`` of every region pixel (``size = payload >> ib``)."""
    for t in range(payload.size):
        qh[t], ql[t] = div_dd(1.0, np.float64(np.uint64(payload[t]) >> np.uint64(ib)))


@njit(cache=True, nogil=True)
def pair_counts(a_k, a_p, b_k, b_p, mask, out):
    """``out[i, j] += sum over the a-elements of image i of (2 #{b of image j below} + #{b of image j
    equal})``: ``2U`` of image i's a-elements against image j's b-elements. Keys ascending.

    O(len(a) * n_images): pass the smaller side as ``a`` (negated keys reverse "below").
    """
    n = out.shape[1]
    below2 = np.zeros(n, np.int64)
    eq = np.zeros(n, np.int64)
    touched = np.empty(n, np.int64)
    ia = 0
    jb = 0
    na = a_k.size
    nb = b_k.size
    while ia < na:
        v = a_k[ia]
        while jb < nb and b_k[jb] < v:
            below2[b_p[jb] & mask] += 2
            jb += 1
        nt = 0
        while jb < nb and b_k[jb] == v:
            j = b_p[jb] & mask
            if eq[j] == 0:
                touched[nt] = j
                nt += 1
            eq[j] += 1
            jb += 1
        while ia < na and a_k[ia] == v:
            row = out[a_p[ia] & mask]
            for j in range(n):
                row[j] += below2[j] + eq[j]
            ia += 1
        for t in range(nt):
            j = touched[t]
            below2[j] += 2 * eq[j]
            eq[j] = 0
