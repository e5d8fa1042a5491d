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
- :func:`mvtec_loco_au_spro`: the MVTec LOCO AD evaluation of AU-sPRO: 50
  initial thresholds at evenly spaced positions of up to 10M sampled scores
  (seeded here), refined until adjacent (sPRO, FPR) points are within 0.01,
  every evaluated threshold a curve point, the trapezoid to the limit with
  interpolation there.
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


# ---------------------------------------------------------------------------
# MVTec LOCO AD: AU-sPRO with sampled, refined thresholds
# ---------------------------------------------------------------------------

LOCO_MAX_SCORES = 10_000_000  # scores sampled for the initial thresholds
LOCO_INITIAL = 50  # initial thresholds (the two ends included)
LOCO_EPSILON = 1e-6  # added to the largest and taken from the smallest score for the two end thresholds
LOCO_MAX_DISTANCE = 0.01  # refinement stops when adjacent (sPRO, FPR) points are this close (Euclidean)
LOCO_MIN_QUERIES, LOCO_MAX_QUERIES, LOCO_MAX_STEPS = 20, 100, 10


def loco_points(maps, defects, thresholds):
    """``(spro, fpr)`` at each threshold (``score > t``), as the official script forms them: integer
    true-positive counts per defect, ``min(tp / S, 1)`` per defect in float64, their mean with
    ``np.mean`` over the defects, and ``FP / (FP + TN)`` over the pixels of no defect."""
    t = np.asarray(thresholds, np.float64)
    per_defect = []
    fp = np.zeros(t.size, np.int64)
    n_free = 0
    for b, items in enumerate(defects):
        scores = maps[b].reshape(-1)
        union = np.zeros(scores.size, bool)
        for mask, thr, relative in items:
            m = np.asarray(mask).reshape(-1) > 0
            union |= m
            area = int(m.sum())
            s = int(thr * area) if relative else min(thr, area)
            inside = np.sort(scores[m].astype(np.float64))
            tp = inside.size - np.searchsorted(inside, t, side="right")
            with np.errstate(divide="ignore", invalid="ignore"):
                per_defect.append(np.minimum(tp / s, 1.0))
        free = np.sort(scores[~union].astype(np.float64))
        fp += free.size - np.searchsorted(free, t, side="right")
        n_free += free.size
    spro = np.mean(per_defect, axis=0) if per_defect else None
    fpr = fp / n_free if n_free else None
    return spro, fpr


def _loco_initial_thresholds(maps, seed):
    """50 thresholds, decreasing: the largest score + epsilon, 48 scores at evenly spaced positions of
    the sorted sampled scores, the smallest score - epsilon. At most 10M scores are sampled, the same
    number from each image, without replacement (seeded here; the original draws from NumPy's global
    generator). The arithmetic with epsilon is in the maps' dtype, as the original's."""
    rng = np.random.default_rng(seed)
    n_images = maps.shape[0]
    per_image = maps[0].size
    if n_images * per_image > LOCO_MAX_SCORES:
        per_image = int(np.floor(LOCO_MAX_SCORES / n_images))
    sampled = [m.reshape(-1) if per_image == m.size else rng.choice(m.reshape(-1), size=per_image, replace=False)
               for m in maps]
    sampled = np.sort(np.concatenate(sampled))
    positions = np.linspace(0, sampled.size - 1, num=LOCO_INITIAL, endpoint=True, dtype=int)[1:-1]
    inner = sampled[positions].tolist()[::-1]
    return [maps.max() + LOCO_EPSILON] + inner + [maps.min() - LOCO_EPSILON]


def _loco_refine(queries, values, evaluate, steps):
    """The official binary refinement: split the intervals whose adjacent (sPRO, FPR) points are more
    than 0.01 apart (the 100 farthest), spreading up to 20 new thresholds by distance; repeat at most
    10 times. ``queries`` decreasing. Thresholds equal to one already queried are dropped: the original
    asserts distinct thresholds and stops with an AssertionError where scores tie (binary or quantised
    maps give equal initial thresholds)."""
    while steps > 0:
        candidates = []
        for i in range(len(queries) - 1):
            distance = float(np.linalg.norm(values[i] - values[i + 1]))
            if distance > LOCO_MAX_DISTANCE:
                candidates.append((distance, queries[i], queries[i + 1]))
        if not candidates:
            break
        candidates = sorted(candidates, key=lambda c: c[0], reverse=True)[:LOCO_MAX_QUERIES]
        remaining = max(LOCO_MIN_QUERIES - len(candidates), 0)
        total = sum(c[0] for c in candidates)
        new = []
        for distance, left, right in candidates:
            extra = int(np.round(distance / total * remaining))
            new.extend(np.linspace(left, right, num=2 + 1 + extra)[1:-1].tolist())
            remaining -= extra
            total -= distance
        seen = set(queries)
        new = [q for q in dict.fromkeys(new) if q not in seen]
        if not new:
            break
        new_values = evaluate(new)
        merged = sorted(zip(queries + new, list(values) + list(new_values)), key=lambda qv: qv[0], reverse=True)
        queries = [q for q, _ in merged]
        values = [v for _, v in merged]
        steps -= 1
    return queries, values


def loco_area(fpr, spro, limit):
    """The official area: trapezoid of the points (FPR increasing) up to ``limit``, the segment that
    crosses it cut with a linearly interpolated value, divided by ``limit``; it requires the curve to
    run from FPR 0 to 1."""
    from bisect import bisect

    x, y = np.asarray(fpr, np.float64), np.asarray(spro, np.float64)
    finite = np.isfinite(x) & np.isfinite(y)
    x, y = x[finite], y[finite]
    if not (x[0] == 0 and x[-1] == 1):
        raise AssertionError("the sampled curve does not run from FPR 0 to 1")
    correction = 0.0
    if limit not in x:
        i = bisect(x, limit)
        y_at = y[i - 1] + (y[i] - y[i - 1]) * (limit - x[i - 1]) / (x[i] - x[i - 1])
        correction = 0.5 * (y_at + y[i - 1]) * (limit - x[i - 1])
    keep = x <= limit
    x, y = x[keep], y[keep]
    return float((np.sum(0.5 * (y[1:] + y[:-1]) * (x[1:] - x[:-1])) + correction) / limit)


def mvtec_loco_curve(maps, defects, seed=20261125, points=None):
    """The curve the official MVTec LOCO AD evaluation integrates: ``(thresholds, spro, fpr)``, the
    thresholds decreasing (FPR increasing), or None when there is no defect or no defect-free pixel.

    Thresholds as :func:`mvtec_loco_au_spro` selects them (from every image given: the official tool
    selects them once per object, then evaluates each subset's images at them, see
    :func:`loco_points`). ``points`` as in :func:`mvtec_loco_au_spro`.
    """
    maps = np.asarray(maps)
    points = points or (lambda t: loco_points(maps, defects, t))

    def evaluate(thresholds):
        spro, fpr = points(thresholds)
        return [np.array([s, f]) for s, f in zip(spro, fpr)]

    spro, fpr = points([0.0])
    if spro is None or fpr is None:
        return None
    initial = list(dict.fromkeys(_loco_initial_thresholds(maps, seed)))
    queries, values = _loco_refine(initial, evaluate(initial), evaluate, LOCO_MAX_STEPS)
    return queries, [v[0] for v in values], [v[1] for v in values]


def mvtec_loco_au_spro(maps, defects, fpr_limit=0.05, seed=20261125, points=None):
    """AU-sPRO as the official MVTec LOCO AD evaluation computes it (Bergmann et al., IJCV 2022).

    ``maps`` ``(B, H, W)``; ``defects[b]`` a list of ``(mask, saturation_threshold,
    relative_saturation)``. Thresholds: 50 initial ones (:func:`_loco_initial_thresholds`), refined
    until adjacent curve points are within 0.01 (:func:`_loco_refine`); every threshold evaluated
    becomes a curve point (:func:`mvtec_loco_curve`); the area as :func:`loco_area`.
    ``points(thresholds) -> (spro, fpr)`` replaces the per-threshold evaluation (default
    :func:`loco_points`, the original's). NaN when there is no defect or no defect-free pixel (the
    original fails with a TypeError or a ZeroDivisionError).
    """
    curve = mvtec_loco_curve(maps, defects, seed, points)
    if curve is None:
        return float("nan")
    _, spro, fpr = curve
    return loco_area(fpr, spro, fpr_limit)  # thresholds decreasing: FPR increasing


# =====================================================================================================
# Issue 13, section 6: more published evaluation routines, rewritten from their published code (read,
# not copied). Each has an adapter (adapters.py) and a cause that reproduces its value (causes.py).
#
# - aupro_100: ADer's ``Evaluator.cal_pro_score`` with ``max_step_aupro=100``: :func:`aupro_200`'s
#   routine (it cites cflow-ad) with 100 thresholds.
# - cflow_aupro: cflow-ad's own routine (``train.py``), which differs: 1000 thresholds from the top,
#   FPR <= limit kept, overlaps counted on filled regions.
# - visa_pixel_auroc: the VisA benchmark's official pixel AUROC (amazon-science/spot-diff,
#   ``utils/metrics.py``, ``compute_localization_metrics``): 200 thresholds, then rounded to 4 decimals.
# - anomalib_legacy_aupro: anomalib <= 2.2's ``AUPRO`` (``metrics/aupro.py`` up to v2.0.0 and the 2.1/2.2
#   releases): per-region ROC curves resampled by index, averaged, and the area divided by the averaged
#   curve's last FPR instead of the limit.
# =====================================================================================================

def aupro_100(maps, masks, fpr_limit=0.3):
    """ADer's AUPRO (``cal_pro_score``, ``max_step_aupro=100``): :func:`aupro_200` with 100 thresholds."""
    return aupro_200(maps, masks, fpr_limit=fpr_limit, steps=100)


def visa_thresholds(maps, masks, num=200):
    """The VisA evaluation's thresholds, decreasing: ``num // 2`` percentiles (100 down to 0, linear
    interpolation) of the defect-pixel scores, ``num // 2`` evenly spaced from their largest to their
    smallest, and the smallest and largest score moved out by 1e-8 (in the maps' own dtype, as NumPy
    computes ``array.min() - 1e-8``: for float32 maps of magnitude above ~0.1 the shift rounds away).
    Raises ValueError with no defect pixel or no normal pixel (the official code does too)."""
    scores = np.asarray(maps)
    defect = np.asarray(masks) == 1
    if not defect.any() or defect.all():
        raise ValueError("VisA's pixel AUROC needs at least one normal and one anomalous pixel")
    kind = scores.dtype.type if scores.dtype.kind == "f" else np.float64
    th_min = kind(scores.min()) - kind(1e-8)
    th_max = kind(scores.max()) + kind(1e-8)
    positives = scores[defect]
    by_percentile = np.percentile(positives, np.linspace(100, 0, num=num // 2))
    evenly = np.linspace(positives.max(), positives.min(), num=num // 2)
    thresholds = np.concatenate([by_percentile, evenly, [th_min, th_max]])
    return np.sort(thresholds)[::-1]


def visa_pixel_auroc(maps, masks, num=200):
    """The VisA official pixel AUROC: at each of :func:`visa_thresholds` a pixel is positive when its score
    is strictly above it; the trapezoid of (FPR, TPR) in threshold order, rounded to 4 decimals."""
    thresholds = visa_thresholds(maps, masks, num)
    scores = np.asarray(maps).reshape(-1)
    defect = np.asarray(masks).reshape(-1) == 1
    pos, neg = np.sort(scores[defect]), np.sort(scores[~defect])
    tpr = (pos.size - np.searchsorted(pos, thresholds, side="right")) / pos.size
    fpr = (neg.size - np.searchsorted(neg, thresholds, side="right")) / neg.size
    area = float(np.sum((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2))
    return round(area, 4)


def exact_roc(scores, positive):
    """The exact ROC (torchmetrics' binary_roc without thresholds): a (0, 0) start, then one point per
    distinct score, decreasing, ties crossed together; float64."""
    order = np.argsort(-scores, kind="stable")
    s, p = scores[order], positive[order]
    last_of_tie = np.append(s[1:] != s[:-1], True)
    tp = np.cumsum(p)[last_of_tie]
    fp = np.cumsum(~p)[last_of_tie]
    return np.concatenate([[0.0], fp / max(fp[-1], 1)]), np.concatenate([[0.0], tp / max(tp[-1], 1)])


def _legacy_interp1d(old_x, old_y, new_x):
    """anomalib's ``interp1d``: piecewise linear, extrapolating the end segments, slopes regularised by
    float32's eps (its tensors are float32)."""
    eps = float(np.finfo(np.float32).eps)
    slope = (old_y[1:] - old_y[:-1]) / (eps + (old_x[1:] - old_x[:-1]))
    idx = np.clip(np.searchsorted(old_x, new_x, side="left") - 1, 0, old_x.size - 2)
    return old_y[idx] + slope[idx] * (new_x - old_x[idx])


def legacy_resampled_aupro(global_fpr, region_curves, fpr_limit=0.3):
    """anomalib <= 2.2's aggregation, given the global FPR curve and each region's (fpr, tpr) curve
    against the background alone (exact, (0, 0) start, increasing).

    The output has as many points as the global curve has at FPR <= limit. Each region's points up to the
    limit (with the next one, when none falls on it, the last point then placed by linear interpolation at
    the limit) are spread evenly over that *index* range and resampled there; FPR and TPR are averaged over
    regions point by point; the area (trapezoid, sorted by FPR) is divided by the last averaged FPR
    (``aupro / fpr[-1]``), not by the limit.
    """
    output_size = int(np.count_nonzero(global_fpr <= fpr_limit))
    new_idx = np.arange(output_size, dtype=np.float64)
    tpr_sum = np.zeros(output_size)
    fpr_sum = np.zeros(output_size)
    for fpr, tpr in region_curves:
        new_idx[-1] = output_size - 1
        below = fpr[fpr <= fpr_limit]
        limit = fpr[fpr > fpr_limit].min() if below.max() == 0 else fpr_limit
        idx = np.nonzero(fpr <= limit)[0]
        interp = False
        if not abs(fpr[idx].max() - fpr_limit) <= 1e-8 + 1e-5 * fpr_limit:  # torch.allclose's tolerances
            nxt = int(np.searchsorted(fpr, fpr_limit, side="left"))
            idx = np.append(idx, nxt)
            weight = 1 - (fpr[nxt] - fpr_limit) / (fpr[nxt] - fpr[nxt - 1])
            interp = True
        f, t = fpr[idx], tpr[idx]
        position = idx.astype(np.float64)
        position = position / position.max() * new_idx.max()
        if interp:
            new_idx[-1] = position[-2] + (position[-1] - position[-2]) * weight
        tpr_sum += _legacy_interp1d(position, t, new_idx)
        fpr_sum += _legacy_interp1d(position, f, new_idx)
    fpr = fpr_sum / len(region_curves)
    tpr = tpr_sum / len(region_curves)
    order = np.argsort(fpr, kind="stable")
    area = float(np.sum((fpr[order][1:] - fpr[order][:-1]) * (tpr[order][1:] + tpr[order][:-1]) / 2))
    return area / fpr[-1]


def anomalib_legacy_aupro(maps, masks, fpr_limit=0.3):
    """anomalib <= 2.2's ``AUPRO`` (exact thresholds; 8-connected regions per image), in float64 and
    without torchmetrics' sigmoid of scores outside [0, 1] (see :func:`legacy_resampled_aupro`)."""
    labels, k = _regions(masks)
    flat = labels.reshape(-1)
    background = flat == 0
    if k == 0 or not background.any():
        return float("nan")
    scores = maps.reshape(-1).astype(np.float64)
    global_fpr = exact_roc(scores, ~background)[0]
    curves = []
    for r in range(1, k + 1):
        keep = background | (flat == r)
        curves.append(exact_roc(scores[keep], flat[keep] == r))
    return legacy_resampled_aupro(global_fpr, curves, fpr_limit)


def cflow_aupro(maps, masks, fpr_limit=0.3, max_step=1000):
    """cflow-ad's AUPRO (gudovskiy/cflow-ad, ``train.py``; ADer's ``cal_pro_score`` cites it): thresholds
    ``max - k * (max - min) / max_step`` for ``k = 0 .. max_step - 1`` (from the largest score down; the
    smallest is never reached), a pixel positive when strictly above; each region's overlap is the number
    of positive pixels in its *filled* image (scikit-image ``filled_image``: holes included) over its
    area, averaged over regions; the points with FPR <= limit (inclusive, unlike :func:`aupro_200`) have
    their FPR rescaled to [0, 1] by min-max, and the trapezoid is taken, with no interpolation at the
    limit. NaN where fewer than two distinct FPR values remain (0/0 in the rescale)."""
    from skimage import measure

    scores = maps.astype(np.float64)
    lo, hi = scores.min(), scores.max()
    background = masks == 0
    if hi == lo or not background.any() or not masks.any():
        return float("nan")
    thresholds = hi - np.arange(max_step) * ((hi - lo) / max_step)
    overlaps = []
    for b in range(masks.shape[0]):
        for region in measure.regionprops(measure.label(masks[b] > 0, connectivity=masks.ndim - 1)):
            top, left, bottom, right = region.bbox
            inside = np.sort(scores[b, top:bottom, left:right][region.image_filled])
            overlaps.append((inside.size - np.searchsorted(inside, thresholds, side="right")) / region.area)
    pros = np.mean(overlaps, axis=0)
    ok = np.sort(scores[background])
    fprs = (ok.size - np.searchsorted(ok, thresholds, side="right")) / ok.size
    keep = fprs <= fpr_limit
    fprs, pros = fprs[keep], pros[keep]
    if fprs.size < 2 or fprs.max() == fprs.min():
        return float("nan")
    fprs = (fprs - fprs.min()) / (fprs.max() - fprs.min())
    return float(np.sum((fprs[1:] - fprs[:-1]) * (pros[1:] + pros[:-1]) / 2))
