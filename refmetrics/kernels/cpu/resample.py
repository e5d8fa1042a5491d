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

from ._sum import add_dd, div_dd
from .ranking import acc_auroc, acc_average_precision, acc_f1_max, finish_average_precision
from .regions import acc_aupro, finish_aupro

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
    auc = np.zeros(2, np.int64)
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
    out_f[b] = finish_average_precision(ap_sums, np.float64(n_pos)) if n_pos else np.nan


@njit(cache=True, parallel=True)
def ranking_replicates(pos_k, pos_p, neg_img, lo_of, hi_of, mask, weights, n_pos, out_i, out_f):
    """Per resample ``b`` (a row of ``weights``): ``out_i[b] = [2U, best tp, best fp, seen]``
    (AUROC's ``2U``, F1-max's counts as ``ranking.acc_f1_max``) and ``out_f[b]`` = the
    average precision. Positives' keys ascending, image = ``payload & mask``; the negatives'
    images in key order; ``lo_of[j]``/``hi_of[j]``: the negatives below / at most positive
    ``j``'s key; ``n_pos[b]`` = the resample's positives."""
    for b in prange(weights.shape[0]):
        _ranking_one(pos_k, pos_p, neg_img, lo_of, hi_of, mask, weights[b], n_pos[b], out_i, out_f, b)


@njit(cache=True, nogil=True)
def _emit(dfp, dsh, dsl, g, a, sh, sl, n_bg, limit, counts, sums):
    """Append one group to the buffer; feed the accumulator when it is full. Returns the new fill."""
    dfp[g] = a
    dsh[g] = sh
    dsl[g] = sl
    g += 1
    if g == CHUNK:
        acc_aupro(dfp, dsh, dsl, n_bg, limit, counts, sums)
        g = 0
    return g


@njit(cache=True, nogil=True)
def _aupro_one(bg_img, r_k, r_p, lo_of, hi_of, ib, w, n_bg, n_regions, limit, need):
    """One resample's AUPRO. The groups are those ``regions.next_region_groups`` forms with
    ``collapse`` on the resampled data; the walk stops at the group whose false positives
    reach ``need = floor(limit * n_bg) + 1``, where ``acc_aupro`` stops (a background-only
    group that crosses the limit adds ``(limit n_bg - fp) 2S`` whatever its size)."""
    mask = (np.uint64(1) << np.uint64(ib)) - np.uint64(1)
    dfp = np.empty(CHUNK, np.int64)
    dsh = np.empty(CHUNK, np.float64)
    dsl = np.empty(CHUNK, np.float64)
    counts = np.zeros(2, np.int64)
    sums = np.zeros(4, np.float64)
    g = 0
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
                if c:
                    # the terms of regions.next_region_groups, in its order: one per repeated pixel
                    qh, ql = div_dd(1.0, np.float64(np.uint64(r_p[j]) >> np.uint64(ib)))
                    for _ in range(c):
                        sh, sl = add_dd(sh, sl, qh, ql)
                    region = True
                j -= 1
        if a == 0 and not region:
            continue  # every pixel of the group has weight 0: the resample has no such score
        if not region and have and psh == 0.0:
            pa += a
        else:
            if have:
                done += pa
                g = _emit(dfp, dsh, dsl, g, pa, psh, psl, n_bg, limit, counts, sums)
            have = True
            pa = a
            psh = sh
            psl = sl
        if done + pa >= need:
            break
    if have:
        g = _emit(dfp, dsh, dsl, g, pa, psh, psl, n_bg, limit, counts, sums)
    if g:
        acc_aupro(dfp[:g], dsh[:g], dsl[:g], n_bg, limit, counts, sums)
    return finish_aupro(sums, n_bg, n_regions, limit)


@njit(cache=True, parallel=True)
def aupro_replicates(bg_img, r_k, r_p, lo_of, hi_of, ib, weights, n_bg, n_regions, limit, need, out):
    """Per resample ``b``: the AUPRO up to ``limit`` (as ``regions.acc_aupro`` /
    ``finish_aupro`` on the collapsed groups of the resampled data). Background pixels'
    images in key order; region pixels ascending by (key, size) with payload
    ``size << ib | image``; ``lo_of``/``hi_of`` as in :func:`ranking_replicates`;
    ``need[b] = floor(limit * n_bg[b]) + 1``. Resamples without a region or background
    pixel: NaN."""
    for b in prange(weights.shape[0]):
        if n_bg[b] == 0 or n_regions[b] == 0:
            out[b] = np.nan
        else:
            out[b] = _aupro_one(bg_img, r_k, r_p, lo_of, hi_of, ib, weights[b], n_bg[b], n_regions[b], limit,
                                need[b])


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
