"""Numba CPU kernels for PIMO / AUPIMO (Bertoldo et al., BMVC 2024).

AUPIMO reads three things from the data, all integer counts:

1. ``image_positives`` / ``partition_images``: per image, its number of defect
   pixels (an image with none is *normal*), then one pass that turns every score
   into its order-preserving key (``ranking.score_key``) and writes the keys of
   the normal images' pixels to one buffer and the keys of the anomalous
   images' defect pixels, image after image, to another. The normal pixels of
   anomalous images take part in neither the shared FPR nor any TPR; they are
   kept (in a third buffer) only for the full curve, whose thresholds are every
   distinct score.
2. ``shared_fpr_walk``: from the top of the normal pixels' sorted keys (only
   those above a cut that the caller chose from a histogram of the keys' top
   bits), one point per distinct normal score, decreasing, with its shared FPR,
   until the shared FPR reaches the upper integration bound. Only this window
   of the curve reaches the area.
3. ``defect_bins``: for each anomalous image, how many of its defect pixels
   fall at each position of the window's thresholds (binary searches; no sort
   of the defect pixels), from which ``TP_i(>= s)`` and ``TP_i(> s)`` at every
   window threshold ``s`` follow by suffix sums.

``aupimo_areas`` turns those counts into the areas in float64 on the host; the
CUDA backend produces the same integers on the device and calls the same
function, so both backends agree bit for bit.

Kernels take typed contiguous arrays, never validate and never raise.
"""

import math

import numpy as np
from numba import njit

from ._int128 import EXACT_FLOAT, count_dd
from ._sum import dd_over_dd
from .keys import is_nan_bits, score_key


@njit(cache=True, nogil=True)
def image_positives(target, n_per, counts):
    """``counts[b]`` = defect pixels (label 1) of image ``b`` (``n_per`` pixels each);
    returns how many labels are outside {0, 1} (the caller raises)."""
    bad = 0
    for b in range(counts.size):
        base = b * n_per
        pos = 0
        for j in range(n_per):
            t = target[base + j]
            if t == 1:
                pos += 1
            elif t != 0:
                bad += 1
        counts[b] = pos
    return bad


@njit(cache=True, nogil=True)
def partition_images(bits, target, n_per, positives, consts, keep_other, normal, defect, other):
    """Keys of one batch of images, split three ways in one pass (image order kept).

    ``bits``: the float32/float64 scores viewed as uint32/uint64, image after
    image (``n_per`` each); ``positives`` from :func:`image_positives`. Pixels of
    normal images (no defect pixel) go to ``normal``, the defect pixels of
    anomalous images to ``defect`` (image after image, so each image's keys are
    one slice), their other pixels to ``other`` when ``keep_other``. NaN
    scores are skipped and counted. Returns ``(n_normal, n_defect, n_other, n_nan)``.
    """
    sign, magnitude, inf, ones = consts[0], consts[1], consts[2], consts[3]
    nn = 0
    nd = 0
    no = 0
    nan = 0
    for b in range(positives.size):
        base = b * n_per
        anomalous = positives[b] > 0
        for j in range(n_per):
            x = bits[base + j]
            if is_nan_bits(x, magnitude, inf):
                nan += 1
                continue
            k = score_key(x, sign, ones)
            if not anomalous:
                normal[nn] = k
                nn += 1
            elif target[base + j] == 1:
                defect[nd] = k
                nd += 1
            elif keep_other:
                other[no] = k
                no += 1
    return nn, nd, no, nan


@njit(cache=True, nogil=True)
def shared_fpr(fp, inv_order, sizes, n_normal):
    """``shFPR = (sum over size groups, ascending size, of FP_g / N_g) / n_normal``.

    ``fp[g]`` counts the normal pixels at or above the threshold in the images of
    ``sizes[g]`` pixels; ``inv_order`` lists the groups by ascending size. Each
    quotient is one correctly rounded float64 division and the sum runs in a
    fixed order, so the value depends on the counts alone, never on how the data
    was split into batches. A count from ``2**53`` on enters as an exact
    double-double (``_int128.count_dd``), so the quotient stays correctly rounded.
    """
    s = 0.0
    for r in range(inv_order.size):
        g = inv_order[r]
        if fp[g] < EXACT_FLOAT:
            s += np.float64(fp[g]) / np.float64(sizes[g])
        else:
            f_h, f_l = count_dd(fp[g])
            s += dd_over_dd(f_h, f_l, np.float64(sizes[g]), 0.0)
    return s / np.float64(n_normal)


@njit(cache=True, nogil=True)
def shared_fpr_walk(keys, starts, order, sizes, n_normal, upper, out_keys, out_fpr):
    """One point per distinct normal score, from the top, until the shared FPR reaches ``upper``.

    ``keys[starts[g]:starts[g+1]]`` are the candidate keys of size group ``g``
    sorted ascending (every normal key of the group above a common cut); the
    walk merges the groups from their top, crossing equal keys together, and
    writes each distinct key and the shared FPR at ``score >= key``. It stops
    after the first point whose shared FPR is ``>= upper`` (the caller's cut
    guarantees one). Returns the number of points written.
    """
    if keys.size == 0:
        return 0
    n_groups = sizes.size
    cur = np.empty(n_groups, np.int64)
    fp = np.zeros(n_groups, np.int64)
    for g in range(n_groups):
        cur[g] = starts[g + 1] - 1
    w = 0
    while w < out_keys.size:
        found = False
        v = keys[0]
        for g in range(n_groups):
            if cur[g] >= starts[g] and (not found or keys[cur[g]] > v):
                v = keys[cur[g]]
                found = True
        if not found:
            break
        for g in range(n_groups):
            while cur[g] >= starts[g] and keys[cur[g]] == v:
                fp[g] += 1
                cur[g] -= 1
        x = shared_fpr(fp, order, sizes, n_normal)
        out_keys[w] = v
        out_fpr[w] = x
        w += 1
        if x >= upper:
            break
    return w


@njit(cache=True, nogil=True)
def _count_le(sorted_asc, v):
    # number of elements <= v (searchsorted side="right")
    lo = 0
    hi = sorted_asc.size
    while lo < hi:
        mid = (lo + hi) >> 1
        if sorted_asc[mid] <= v:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, nogil=True)
def _count_lt(sorted_asc, v):
    # number of elements < v (searchsorted side="left")
    lo = 0
    hi = sorted_asc.size
    while lo < hi:
        mid = (lo + hi) >> 1
        if sorted_asc[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, nogil=True)
def defect_bins(defect, offsets, window, row0, at_le, at_lt):
    """Where each defect pixel falls among the window thresholds (``window`` ascending).

    Image ``a`` owns ``defect[offsets[a]:offsets[a+1]]``; its counts go to row
    ``row0 + a``. ``at_le[r, j]`` counts the pixels with ``j`` thresholds ``<=``
    their key and ``at_lt[r, j]`` those with ``j`` thresholds ``<`` it: a pixel
    is at or above ``window[k]`` iff its ``j`` in ``at_le`` exceeds ``k``, and
    strictly above iff its ``j`` in ``at_lt`` does.
    """
    for a in range(offsets.size - 1):
        r = row0 + a
        for i in range(offsets[a], offsets[a + 1]):
            k = defect[i]
            at_le[r, _count_le(window, k)] += 1
            at_lt[r, _count_lt(window, k)] += 1


@njit(cache=True, nogil=True)
def aupimo_areas(fpr, at_le, at_lt, n_defect, lower, upper, out):
    """AUPIMO of every anomalous image from the window's counts (float64 on the host).

    ``fpr[k]`` is the shared FPR at the ``k``-th window threshold ``s_k``
    (decreasing thresholds, so ``fpr`` increases) and ``at_le``/``at_lt`` come
    from :func:`defect_bins` with the window ascending, i.e. column ``j``
    refers to ``s_{W-1-j}``. Between two consecutive normal scores
    ``s_{k-1} > s_k`` the curve runs from ``(ln fpr[k-1], TP(> s_k)/P)`` to
    ``(ln fpr[k], TP(>= s_k)/P)``; moves in TPR at a constant shared FPR are
    vertical and add nothing. Each such segment is clipped to
    ``[ln lower, ln upper]``, its TPR interpolated linearly in ``ln shFPR`` at
    a bound, and the trapezoids are summed in order and divided by
    ``ln upper - ln lower``. The first point's shared FPR must be ``<= lower``
    (the caller checks it): the segment from shared FPR 0 then lies outside.
    """
    n_win = fpr.size
    lo = math.log(lower)
    hi = math.log(upper)
    width = hi - lo
    lnx = np.empty(n_win, np.float64)
    for k in range(n_win):
        lnx[k] = math.log(fpr[k]) if fpr[k] > 0.0 else -np.inf
    for r in range(out.size):
        p = np.float64(n_defect[r])
        # suffix sums: TP(>= s_k) = pixels whose at_le column exceeds W-1-k
        ge = 0
        gt = 0
        tot_le = np.empty(n_win, np.int64)
        tot_lt = np.empty(n_win, np.int64)
        for j in range(n_win, 0, -1):
            ge += at_le[r, j]
            gt += at_lt[r, j]
            tot_le[n_win - j] = ge  # column j > W-1-k  <=>  k >= W-j
            tot_lt[n_win - j] = gt
        area = 0.0
        for k in range(1, n_win):
            a = lnx[k - 1]
            b = lnx[k]
            if b <= lo or a >= hi or b <= a:
                continue
            ya = np.float64(tot_lt[k]) / p
            yb = np.float64(tot_le[k]) / p
            slope = (yb - ya) / (b - a)
            if a < lo:
                ya = ya + slope * (lo - a)
                a = lo
            if b > hi:
                yb = yb - slope * (b - hi)
                b = hi
            area += (b - a) * (ya + yb) * 0.5
        v = area / width
        out[r] = min(max(v, 0.0), 1.0)
