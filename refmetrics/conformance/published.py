"""Published AUPRO evaluation algorithms, rewritten from their descriptions (not copied).

- :func:`mvtec_ad_aupro`: the MVTec AD evaluation (Bergmann et al.): every
  distinct score is a threshold, background-pixel and region-pixel increments
  are summed in float64 in descending score order, ties are crossed together,
  and the trapezoid is integrated to the limit with linear interpolation there.
- :func:`mvtec3d_aupro`: the MVTec 3D-AD evaluation: ``num_thresholds`` (100)
  thresholds taken at evenly spaced positions of the sorted background scores,
  FPR from that position (``1 - (pos + 1) / #background``), each region's
  overlap the share of its pixels scoring strictly above the threshold; the
  curve starts at (1, 1) and is integrated like MVTec AD.
- :func:`aupro_200`: the routine many papers copied: 200 thresholds
  ``np.arange(min, max, (max - min) / 200)``, pixels positive when strictly
  above, regions from ``skimage.measure.label``; keeps the points with FPR below
  the limit, rescales their FPR to [0, 1] by min-max, and takes the trapezoid,
  with no interpolation at the limit.
"""

import numpy as np
from scipy import ndimage


def _regions(masks):
    structure = ndimage.generate_binary_structure(masks.ndim - 1, masks.ndim - 1)
    labels = np.zeros(masks.shape, np.int64)
    total = 0
    for b in range(masks.shape[0]):
        lab, n = ndimage.label(masks[b] > 0, structure=structure)
        labels[b] = np.where(lab > 0, lab + total, 0)
        total += n
    return labels, total


def trapezoid_to(x, y, x_max):
    """Trapezoid of y(x) (x increasing) from x[0] to x_max, interpolating at x_max."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    keep = x <= x_max
    area = np.sum((x[keep][1:] - x[keep][:-1]) * (y[keep][1:] + y[keep][:-1]) / 2)
    i = int(np.count_nonzero(keep))
    if 0 < i < x.size and x[i - 1] < x_max:
        y_lim = y[i - 1] + (y[i] - y[i - 1]) * (x_max - x[i - 1]) / (x[i] - x[i - 1])
        area += (x_max - x[i - 1]) * (y[i - 1] + y_lim) / 2
    return float(area)


def mvtec_ad_aupro(maps, masks, fpr_limit=0.3):
    labels, k = _regions(masks)
    if k == 0 or not (labels == 0).any():
        return float("nan")
    flat_labels = labels.reshape(-1)
    scores = maps.reshape(-1).astype(np.float64)
    sizes = np.bincount(flat_labels)
    n_bg = sizes[0]
    fp_change = np.where(flat_labels == 0, 1.0 / n_bg, 0.0)
    pro_change = np.where(flat_labels > 0, 1.0 / (k * sizes[flat_labels].astype(np.float64)), 0.0)
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    fpr = np.cumsum(fp_change[order])
    pro = np.cumsum(pro_change[order])
    last_of_tie = np.append(s[1:] != s[:-1], True)
    fpr = np.concatenate([[0.0], fpr[last_of_tie]])
    pro = np.concatenate([[0.0], pro[last_of_tie]])
    fpr = np.minimum(fpr, 1.0)
    return trapezoid_to(fpr, pro, fpr_limit) / fpr_limit


def mvtec3d_aupro(maps, masks, fpr_limit=0.3, num_thresholds=100):
    labels, k = _regions(masks)
    scores = maps.astype(np.float64)
    ok = np.sort(scores[labels == 0])
    if k == 0 or ok.size == 0:
        return float("nan")
    components = [np.sort(scores[labels == r]) for r in range(1, k + 1)]
    positions = np.linspace(0, ok.size - 1, num=num_thresholds, dtype=int)
    fprs, pros = [1.0], [1.0]
    for pos in positions:
        threshold = ok[pos]
        fprs.append(1.0 - (pos + 1) / ok.size)
        pros.append(sum((c.size - np.searchsorted(c, threshold, side="right")) / c.size for c in components) / k)
    return trapezoid_to(fprs[::-1], pros[::-1], fpr_limit) / fpr_limit


def aupro_200(maps, masks, fpr_limit=0.3, steps=200):
    from skimage import measure

    scores = maps.astype(np.float64)
    lo, hi = scores.min(), scores.max()
    if hi == lo:
        return float("nan")
    background = masks == 0
    if not background.any() or not masks.any():
        return float("nan")
    region_masks = []
    for b in range(masks.shape[0]):
        lab = measure.label(masks[b] > 0, connectivity=masks.ndim - 1)
        region_masks += [(b, lab == r) for r in range(1, lab.max() + 1)]
    fprs, pros = [], []
    for th in np.arange(lo, hi, (hi - lo) / steps):
        positive = scores > th
        pros.append(np.mean([positive[b][region].sum() / region.sum() for b, region in region_masks]))
        fprs.append(np.logical_and(background, positive).sum() / background.sum())
    fprs, pros = np.array(fprs), np.array(pros)
    keep = fprs < fpr_limit
    fprs, pros = fprs[keep], pros[keep]
    if fprs.size < 2 or fprs.max() == fprs.min():
        return float("nan")
    fprs = (fprs - fprs.min()) / (fprs.max() - fprs.min())
    order = np.argsort(fprs, kind="stable")
    return float((getattr(np, "trapezoid", None) or np.trapz)(pros[order], fprs[order]))
