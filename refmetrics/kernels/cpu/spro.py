"""Numba CPU kernels for the saturated per-region overlap (sPRO) of MVTec LOCO AD.

The sPRO curve is built as the PRO curve (``regions.py``): scores become
order-preserving keys, pixels that lie in no defect are the background, and a
walk from the top emits one group per distinct key.

What differs is the weight of a defect pixel. A defect ``d`` saturates at
``S_d`` pixels: ``sPRO_d(t) = min(TP_d(t), S_d) / S_d``. Ranked by decreasing
score within its defect, a pixel raises ``sPRO_d`` by ``1/S_d`` while its rank
is at most ``S_d`` and by nothing after. Pixels of equal score are crossed
together, so which of the tied pixels at the saturation boundary get the
``1/S_d`` does not matter: the multiset of weighted keys, the ``S_d`` largest
keys of the defect each carrying ``S_d``, is unique. Only those are kept; a
pixel in two defects is kept once per defect. The curve and the area are then
those of ``regions.next_region_groups`` / ``regions.acc_aupro`` on
(background keys, weighted keys with their ``S_d``), started at the defects
that saturate at zero pixels.

Kernels take typed contiguous arrays, never validate and never raise.
"""

import numpy as np
from numba import njit

from ._int128 import EXACT_FLOAT, count_dd
from ._sum import add_dd, dd_over, dd_over_dd
from .keys import is_nan_bits, score_key


@njit(cache=True, nogil=True)
def background_keys(bits, in_defect, consts, bg, n_bg):
    """Keys of one image's pixels that lie in no defect (``in_defect`` false) to
    ``bg[n_bg:]``; NaN scores anywhere in the image are counted, not kept.

    Returns ``(n_bg, n_nan)`` after this image.
    """
    sign, magnitude, inf, ones = consts[0], consts[1], consts[2], consts[3]
    nan = 0
    for i in range(bits.size):
        b = bits[i]
        if is_nan_bits(b, magnitude, inf):
            nan += 1
            continue
        if not in_defect[i]:
            bg[n_bg] = score_key(b, sign, ones)
            n_bg += 1
    return n_bg, nan


@njit(cache=True, nogil=True)
def defect_keys(bits, mask, consts, out):
    """Keys of the pixels of one defect (``mask`` true) to ``out``; returns how many.

    The image was checked for NaN by :func:`background_keys` first.
    """
    sign, ones = consts[0], consts[3]
    n = 0
    for i in range(bits.size):
        if mask[i]:
            out[n] = score_key(bits[i], sign, ones)
            n += 1
    return n


@njit(cache=True, nogil=True)
def curve_points(dfp, dsh, dsl, n_bg, n_defects, n_full, fpr, spro):
    """Cumulative points of the sPRO curve: ``fpr[g+1]``, ``spro[g+1]``; index 0 is the
    start (nothing positive): FPR 0 and ``n_full / n_defects`` (the defects that
    saturate at zero pixels count 1 from the start).

    ``dsh + dsl`` of a group is the double-double sum of ``1/S`` over its
    weighted keys (as ``regions.next_region_groups`` forms it).

    Counts from ``2**53`` on enter as exact double-doubles (``_int128.count_dd``); below,
    the arithmetic is unchanged.
    """
    fp = 0
    s_h, s_l = count_dd(n_full)
    k_h, k_l = count_dd(n_defects)
    b_h, b_l = count_dd(n_bg)
    fpr[0] = 0.0 if n_bg > 0 else np.nan
    spro[0] = _over(s_h, s_l, k_h, k_l) if n_defects > 0 else np.nan
    for g in range(dfp.size):
        fp += dfp[g]
        s_h, s_l = add_dd(s_h, s_l, dsh[g], dsl[g])
        if n_bg >= EXACT_FLOAT:
            f_h, f_l = count_dd(fp)
            fpr[g + 1] = dd_over_dd(f_h, f_l, b_h, b_l)
        else:
            fpr[g + 1] = fp / n_bg if n_bg > 0 else np.nan
        spro[g + 1] = _over(s_h, s_l, k_h, k_l) if n_defects > 0 else np.nan


@njit(cache=True, nogil=True, inline="always")
def _over(s_h, s_l, k_h, k_l):
    """``dd_over`` by a count: as before below ``2**53`` (``k_l`` is 0), a double-double divisor above."""
    if k_l == 0.0:
        return dd_over(s_h, s_l, k_h)
    return dd_over_dd(s_h, s_l, k_h, k_l)
