"""Brute-force oracles in exact arithmetic: slow and obvious on purpose.

Nothing here shares code with refmetrics. Scores are compared as Python floats
(every float16/32/64 and every integer used in the tests converts exactly), so
counts are exact; rates and areas are :class:`fractions.Fraction`.
"""

import itertools
import math
from collections import deque
from fractions import Fraction


def _pairs(preds, target):
    scores = [float(s) for s in list(_flat(preds))]
    labels = [int(t) for t in list(_flat(target))]
    assert len(scores) == len(labels)
    return scores, labels


def _flat(x):
    try:
        import numpy as np

        return np.asarray(x).reshape(-1).tolist()
    except Exception:  # pragma: no cover
        return list(x)


def drop_ignored(preds, target, ignore_index):
    scores, labels = _pairs(preds, target)
    keep = [i for i, t in enumerate(labels) if ignore_index is None or t != ignore_index]
    return [scores[i] for i in keep], [labels[i] for i in keep]


def auroc(preds, target):
    """Mann-Whitney by enumerating every (positive, negative) pair."""
    scores, labels = _pairs(preds, target)
    pos = [s for s, t in zip(scores, labels) if t == 1]
    neg = [s for s, t in zip(scores, labels) if t == 0]
    if not pos or not neg:
        return None
    wins = Fraction(0)
    for p in pos:
        for n in neg:
            if p > n:
                wins += 1
            elif p == n:
                wins += Fraction(1, 2)
    return wins / (len(pos) * len(neg))


def auroc_midranks(preds, target):
    """Mann-Whitney from midranks, in integers (for inputs too big for every pair).

    Sorted, equal scores form a run at 1-based positions ``i..j`` whose midrank is
    ``(i + j) / 2``; ``U = R_pos - P (P + 1) / 2`` with ``R_pos`` the positives' rank sum.
    """
    scores, labels = _pairs(preds, target)
    order = sorted(range(len(scores)), key=scores.__getitem__)
    p = labels.count(1)
    n = labels.count(0)
    if not p or not n:
        return None
    twice_rank_sum = 0
    start = 0
    while start < len(order):
        stop = start
        while stop + 1 < len(order) and scores[order[stop + 1]] == scores[order[start]]:
            stop += 1
        positives = sum(1 for k in range(start, stop + 1) if labels[order[k]] == 1)
        twice_rank_sum += positives * ((start + 1) + (stop + 1))
        start = stop + 1
    return (Fraction(twice_rank_sum, 2) - Fraction(p * (p + 1), 2)) / (p * n)


def counts_at(scores, labels, t):
    """TP, FP at threshold t (score >= t)."""
    tp = sum(1 for s, y in zip(scores, labels) if s >= t and y == 1)
    fp = sum(1 for s, y in zip(scores, labels) if s >= t and y == 0)
    return tp, fp


def thresholds(scores):
    """Distinct scores, decreasing."""
    return sorted(set(scores), reverse=True)


def roc_curve(preds, target):
    """Lists of Fractions (None for an undefined rate) and float thresholds."""
    scores, labels = _pairs(preds, target)
    p = labels.count(1)
    n = labels.count(0)
    fpr, tpr, thr = [Fraction(0)], [Fraction(0)], [math.inf]
    for t in thresholds(scores):
        tp, fp = counts_at(scores, labels, t)
        tpr.append(Fraction(tp, p) if p else None)
        fpr.append(Fraction(fp, n) if n else None)
        thr.append(t)
    if not p:
        tpr[0] = None
    if not n:
        fpr[0] = None
    return fpr, tpr, thr


def pr_curve(preds, target):
    """Thresholds increasing, then the end point (precision 1, recall 0)."""
    scores, labels = _pairs(preds, target)
    p = labels.count(1)
    prec, rec, thr = [], [], []
    for t in sorted(set(scores)):
        tp, fp = counts_at(scores, labels, t)
        prec.append(Fraction(tp, tp + fp))
        rec.append(Fraction(tp, p) if p else None)
        thr.append(t)
    return prec + [Fraction(1)], rec + [Fraction(0)], thr


def average_precision(preds, target):
    """sum_k (R_k - R_{k-1}) P_k over thresholds decreasing, R_0 = 0; undefined without a positive."""
    scores, labels = _pairs(preds, target)
    p = labels.count(1)
    if not p:
        return None
    total = Fraction(0)
    prev_r = Fraction(0)
    for t in thresholds(scores):
        tp, fp = counts_at(scores, labels, t)
        r = Fraction(tp, p)
        total += (r - prev_r) * Fraction(tp, tp + fp)
        prev_r = r
    return total


def aupr_trapezoid(preds, target):
    """anomalib 1.x: the PR curve points in their order, stably sorted by recall, trapezoid."""
    scores, labels = _pairs(preds, target)
    if not labels.count(1):
        return None
    prec, rec, _ = pr_curve(scores, labels)
    points = sorted(zip(rec, prec), key=lambda rp: rp[0])  # sorted() is stable
    return trapezoid(points)


def trapezoid(points):
    area = Fraction(0)
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        area += (x1 - x0) * (y0 + y1) / 2
    return area


def f1_adaptive(preds, target):
    """(threshold, F1): the largest exact F1 over PR thresholds, ties to the lowest threshold.

    Without a positive F1 is undefined (None) and the threshold is the highest
    score; without a negative, the lowest score.
    """
    scores, labels = _pairs(preds, target)
    return _f1_over(scores, labels, sorted(set(scores)), max(scores), min(scores))


def _f1_over(scores, labels, candidates, if_no_positive, if_no_negative):
    p = labels.count(1)
    n = labels.count(0)
    if not p:
        return if_no_positive, None
    best = None
    for t in candidates:  # increasing: strict '>' keeps the lowest among ties
        tp, fp = counts_at(scores, labels, t)
        f1 = Fraction(2 * tp, 2 * tp + fp + (p - tp))  # p > 0: the denominator is positive
        if best is None or f1 > best[1]:
            best = (t, f1)
    if not n:
        return if_no_negative, best[1]
    return best


def binned_f1_adaptive(preds, target, thr):
    """F1AdaptiveThreshold in binned mode: the candidates are the given thresholds (score >= t);
    without a positive the highest one (F1 undefined), without a negative the lowest one."""
    scores, labels = _pairs(preds, target)
    candidates = sorted(float(t) for t in thr)
    return _f1_over(scores, labels, candidates, candidates[-1], candidates[0])


def binned_roc_auc(preds, target, thr):
    """Trapezoid under (0,0) then the points at thresholds (decreasing), score >= t."""
    scores, labels = _pairs(preds, target)
    p = labels.count(1)
    n = labels.count(0)
    if not p or not n:
        return None
    pts = [(Fraction(0), Fraction(0))]
    for t in sorted(thr, reverse=True):
        tp, fp = counts_at(scores, labels, t)
        pts.append((Fraction(fp, n), Fraction(tp, p)))
    return trapezoid(pts)


def binned_pr(preds, target, thr):
    """Binned PR curve: thresholds increasing, precision 1 where nothing is predicted."""
    scores, labels = _pairs(preds, target)
    p = labels.count(1)
    prec, rec = [], []
    for t in sorted(thr):
        tp, fp = counts_at(scores, labels, t)
        prec.append(Fraction(tp, tp + fp) if tp + fp else Fraction(1))
        rec.append(Fraction(tp, p) if p else None)
    return prec + [Fraction(1)], rec + [Fraction(0)], sorted(thr)


def binned_average_precision(preds, target, thr):
    scores, labels = _pairs(preds, target)
    if not labels.count(1):
        return None
    prec, rec, _ = binned_pr(scores, labels, thr)
    # curve order: thresholds increasing (recall decreasing), end point last
    return sum((rec[k] - rec[k + 1]) * prec[k] for k in range(len(rec) - 1))


def binned_aupr_trapezoid(preds, target, thr):
    scores, labels = _pairs(preds, target)
    if not labels.count(1):
        return None
    prec, rec, _ = binned_pr(scores, labels, thr)
    return trapezoid(sorted(zip(rec, prec), key=lambda rp: rp[0]))


def sigmoid_gt(x, threshold):
    """float64 sigmoid then '>' (what torchmetrics does), evaluated plainly (exp overflows to inf past ~709.8)."""
    try:
        s = 1.0 / (1.0 + math.exp(-x))
    except OverflowError:
        s = 0.0
    return s > threshold


def f1_score(preds, target, threshold=0.5, ignore_index=None, use_sigmoid=None):
    """Global F1 of one batch, torchmetrics' sigmoid rule (ignored elements dropped first).

    ``use_sigmoid``: whether the batch's rule applies the sigmoid (default: decided from these scores; a
    sample of a larger batch gets its batch's decision)."""
    scores, labels = drop_ignored(preds, target, ignore_index)
    if use_sigmoid is None:
        use_sigmoid = any(s < 0 or s > 1 for s in scores)
    tp = fp = fn = 0
    for s, y in zip(scores, labels):
        positive = sigmoid_gt(s, threshold) if use_sigmoid else s > threshold
        tp += positive and y == 1
        fp += positive and y == 0
        fn += (not positive) and y == 1
    return Fraction(2 * tp, 2 * tp + fp + fn) if tp + fp + fn else Fraction(0)


def mean_std(values):
    """Exact mean, and the ddof=1 std as the float sqrt of the exact variance."""
    xs = [Fraction(v) for v in values]
    mean = sum(xs) / len(xs)
    if len(xs) < 2:
        return mean, None
    var = sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)
    return mean, math.sqrt(var)


# ---------------------------------------------------------------------------
# regions (an own flood fill over the mask: neither scikit-image nor scipy)
# ---------------------------------------------------------------------------

def neighbour_offsets(ndim, connectivity=None):
    """scikit-image's neighbourhood: offsets in {-1, 0, 1}^ndim, not all zero, with at most
    ``connectivity`` nonzero components (None: ``ndim``, full)."""
    k = ndim if connectivity is None else connectivity
    return [o for o in itertools.product((-1, 0, 1), repeat=ndim) if 0 < sum(map(abs, o)) <= k]


def flood_fill(mask, connectivity=None):
    """Region ids of one n-D mask (nested lists or an array): a list in raster order, 0 for
    background, regions numbered 1.. in the raster order of their first pixel; and their number.

    A breadth-first search from each unvisited foreground pixel over
    :func:`neighbour_offsets`, with bounds checks along every axis.
    """
    import numpy as np

    m = np.asarray(mask) > 0
    shape = m.shape
    values = m.reshape(-1).tolist()
    offsets = neighbour_offsets(len(shape), connectivity)

    def index(coord):
        i = 0
        for c, size in zip(coord, shape):
            i = i * size + c
        return i

    labels = [0] * len(values)
    count = 0
    for start in itertools.product(*(range(size) for size in shape)):
        if not values[index(start)] or labels[index(start)]:
            continue
        count += 1
        labels[index(start)] = count
        queue = deque([start])
        while queue:
            here = queue.popleft()
            for off in offsets:
                there = tuple(c + o for c, o in zip(here, off))
                if all(0 <= c < size for c, size in zip(there, shape)):
                    j = index(there)
                    if values[j] and not labels[j]:
                        labels[j] = count
                        queue.append(there)
    return labels, count


def regions_of(masks, connectivity=None, spatial_dims=2):
    """List over samples of (flat index lists per region, background indices), by :func:`flood_fill`."""
    import numpy as np

    m = np.asarray(masks)
    if m.ndim == spatial_dims:
        m = m[None]
    elif m.ndim == spatial_dims + 2:
        m = m[:, 0]
    out = []
    for b in range(m.shape[0]):
        labels, n = flood_fill(m[b], connectivity)
        base = b * len(labels)
        regions = [[] for _ in range(n)]
        bg = []
        for i, k in enumerate(labels):
            (regions[k - 1] if k else bg).append(base + i)
        out.append((regions, bg))
    return out


def pro_points(preds, masks, connectivity=None, spatial_dims=2, thresholds_desc=None):
    """PRO curve points [(fpr, pro)] as Fractions, starting at (0, 0)."""
    scores = [float(s) for s in _flat(preds)]
    regions, bg = [], []
    for r, b in regions_of(masks, connectivity, spatial_dims):
        regions += r
        bg += b
    if thresholds_desc is None:
        thresholds_desc = sorted(set(scores), reverse=True)
    points = [(Fraction(0), Fraction(0))]
    for t in thresholds_desc:
        fp = sum(1 for i in bg if scores[i] >= t)
        pro = sum(Fraction(sum(1 for i in r if scores[i] >= t), len(r)) for r in regions)
        points.append((Fraction(fp, len(bg)) if bg else None, pro / len(regions) if regions else None))
    return points


def area_to_limit(points, limit):
    """Trapezoid from x=0 to ``limit`` (exact), interpolating at the limit, divided by the limit."""
    limit = Fraction(limit)
    area = Fraction(0)
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x1 <= limit:
            area += (x1 - x0) * (y0 + y1) / 2
            continue
        if x0 < limit:
            y = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
            area += (limit - x0) * (y0 + y)
            area -= (limit - x0) * (y0 + y) / 2
        break
    return area / limit


def aupro(preds, masks, fpr_limit=0.3, connectivity=None, spatial_dims=2, num_thresholds=None):
    scores = [float(s) for s in _flat(preds)]
    thr = None
    if num_thresholds is not None:
        import numpy as np

        thr = np.linspace(min(scores), max(scores), num_thresholds)[::-1].tolist()
    points = pro_points(preds, masks, connectivity, spatial_dims, thr)
    if any(x is None or y is None for x, y in points[1:]):
        return None
    return area_to_limit(points, fpr_limit)


def pro_score(preds, masks, threshold=0.5, connectivity=None, spatial_dims=2):
    scores = [float(s) for s in _flat(preds)]
    regions = []
    for r, _ in regions_of(masks, connectivity, spatial_dims):
        regions += r
    if not regions:
        return None
    return sum(Fraction(sum(1 for i in r if scores[i] > threshold), len(r)) for r in regions) / len(regions)


# ---------------------------------------------------------------------------
# thin oracles named by the registry (refmetrics/registry.py)
# ---------------------------------------------------------------------------

def f1_max(preds, target):
    """The largest exact F1 over every threshold (None without a positive)."""
    return f1_adaptive(preds, target)[1]


def min_max(preds):
    """The smallest and largest score, as floats."""
    scores = [float(s) for s in _flat(preds)]
    return min(scores), max(scores)

# PIMO / AUPIMO (issue 13, section 1)
# ---------------------------------------------------------------------------

def _images(maps, masks):
    """``[(scores, labels), ...]`` per image: ``maps``/``masks`` as arrays ``(B, ...)`` or as lists of
    per-image arrays (images of different sizes)."""
    out = []
    for m, g in zip(maps, masks):
        scores, labels = _pairs(m, g)
        out.append((scores, labels))
    return out


def pimo_curve(maps, masks):
    """``(thresholds desc, shfpr, tprs, classes)`` by counting at every distinct score.

    ``shfpr[k]`` is the Fraction mean over normal images of ``FP_i / N_i`` (None without a normal
    image); ``tprs[i][k]`` the Fraction ``TP_i / P_i`` (None for normal images); classes 1 = anomalous.
    """
    images = _images(maps, masks)
    classes = [1 if any(t == 1 for t in lab) else 0 for _, lab in images]
    thr = sorted({s for sc, _ in images for s in sc}, reverse=True)
    normal = [sc for (sc, _), c in zip(images, classes) if c == 0]
    shfpr, tprs = [], [[] if c else None for c in classes]
    for t in thr:
        shfpr.append(sum(Fraction(sum(1 for s in sc if s >= t), len(sc)) for sc in normal) / len(normal)
                     if normal else None)
        for i, ((sc, lab), c) in enumerate(zip(images, classes)):
            if c:
                pos = [s for s, y in zip(sc, lab) if y == 1]
                tprs[i].append(Fraction(sum(1 for s in pos if s >= t), len(pos)))
    return thr, shfpr, tprs, classes


def _ln(fraction):
    # ln of a positive Fraction as ln(numerator) - ln(denominator) (math.log is exact-input for big ints)
    return math.log(fraction.numerator) - math.log(fraction.denominator)


def aupimo(maps, masks, fpr_bounds=(1e-5, 1e-4)):
    """``(mean, per_image)`` by the definition; ``(None, [None...])`` when undefined.

    The curve's points (one per distinct score, decreasing) joined by straight lines in
    ``(ln shFPR, TPR_i)``; for each pair of consecutive points the part inside ``[ln L, ln U]``
    is a trapezoid, its ends interpolated linearly; the sum is divided by ``ln U - ln L``.
    """
    lower, upper = fpr_bounds
    thr, shfpr, tprs, classes = pimo_curve(maps, masks)
    undefined = (None, [None] * len(classes))
    if not any(classes) or all(classes):
        return undefined
    smallest = min(x for x in shfpr if x > 0)
    if Fraction(lower) < smallest:
        return undefined
    lo, hi = math.log(lower), math.log(upper)
    per_image = []
    for tpr in tprs:
        if tpr is None:
            per_image.append(None)
            continue
        area = 0.0
        for j in range(len(thr) - 1):
            xa, xb = shfpr[j], shfpr[j + 1]
            if xa == 0 or xa == xb:
                continue  # left of ln(smallest) <= ln L, or vertical
            la, lb = _ln(xa), _ln(xb)
            a, b = max(la, lo), min(lb, hi)
            if a >= b:
                continue
            ya, yb = float(tpr[j]), float(tpr[j + 1])

            def at(u):
                return ya + (yb - ya) * (u - la) / (lb - la)

            area += (b - a) * (at(a) + at(b)) / 2
        per_image.append(min(1.0, max(0.0, area / (hi - lo))))
    values = [v for v in per_image if v is not None]
    return sum(values) / len(values), per_image


def aupimo_mean(maps, masks):
    """The registry's oracle of ``aupimo``: the mean alone (None when undefined), default bounds."""
    return aupimo(maps, masks)[0]


# sPRO / AU-sPRO (MVTec LOCO AD)
# ---------------------------------------------------------------------------

def spro_points(preds, defects, thresholds=None):
    """sPRO curve points [(fpr, spro)] as Fractions: one per threshold ``t`` among the
    distinct scores (decreasing) and one below them all, a pixel positive when
    ``score > t``; consecutive equal points are kept once (the curve does not move).
    ``None`` coordinates where undefined (no defect / no defect-free pixel). With
    ``thresholds``: one point per given threshold, in that order."""
    import math

    images = [[float(s) for s in _flat(p)] for p in preds]
    bg = []
    found = []  # per defect: (scores of its pixels, S)
    for scores, items in zip(images, defects):
        inside = [False] * len(scores)
        for mask, thr, relative in items:
            m = [bool(v) for v in _flat(mask)]
            pixels = [scores[i] for i in range(len(m)) if m[i]]
            area = len(pixels)
            s = math.floor(float(thr) * area) if relative else min(int(thr), area)
            found.append((pixels, s))
            for i in range(len(m)):
                inside[i] = inside[i] or m[i]
        bg += [scores[i] for i in range(len(scores)) if not inside[i]]
    every = sorted({s for scores in images for s in scores}, reverse=True)
    points = []
    for t in (every + [None] if thresholds is None else thresholds):
        def positive(v):
            return True if t is None else v > t
        fpr = Fraction(sum(1 for v in bg if positive(v)), len(bg)) if bg else None
        if found:
            total = Fraction(0)
            for pixels, s in found:
                tp = sum(1 for v in pixels if positive(v))
                total += 1 if s == 0 else min(Fraction(tp, s), Fraction(1))
            spro = total / len(found)
        else:
            spro = None
        if thresholds is not None or not points or points[-1] != (fpr, spro):
            points.append((fpr, spro))
    return points


def au_spro(preds, defects, fpr_limit=0.05):
    points = spro_points(preds, defects)
    if any(x is None or y is None for x, y in points):
        return None
    return area_to_limit(points, fpr_limit)


# issue 13, sections 3-5: PBn/PGn, segmentation scores at a threshold, image scores from maps
# ---------------------------------------------------------------------------

def np_quantile(values, q):
    """``np.quantile(float64 values, q)`` (NumPy's own, the definition's reference) where it is defined;
    with an infinite neighbour, the limit of the interpolation (the definition's rule), found here by
    NumPy on the values with the infinities replaced by huge finite stand-ins and mapped back."""
    import numpy as np

    xs = sorted(float(v) for v in values)
    n = len(xs)
    v = (n - 1) * q
    lo = n - 1 if v >= n - 1 else math.floor(v)
    hi = lo if v >= n - 1 else lo + 1
    a, b = xs[lo], xs[hi]
    if math.isfinite(a) and math.isfinite(b):
        return float(np.quantile(np.array(xs, np.float64), q))
    g = v - lo if v < n - 1 else 0.0
    if a == b or g == 0.0:
        return a
    if a == -math.inf and b == math.inf:
        return math.nan
    return a if a == -math.inf else b


def pbn(preds, target, fpr=0.05):
    """Fraction of positives strictly above the ``1 - fpr`` quantile of the negatives; None if undefined."""
    scores, labels = _pairs(preds, target)
    pos = [s for s, t in zip(scores, labels) if t == 1]
    neg = [s for s, t in zip(scores, labels) if t == 0]
    if not pos or not neg:
        return None
    thr = np_quantile(neg, 1.0 - fpr)
    if math.isnan(thr):
        return None
    return Fraction(sum(1 for s in pos if s > thr), len(pos))


def pgn(preds, target, fnr=0.05):
    """Fraction of negatives strictly below the ``fnr`` quantile of the positives; None if undefined."""
    scores, labels = _pairs(preds, target)
    pos = [s for s, t in zip(scores, labels) if t == 1]
    neg = [s for s, t in zip(scores, labels) if t == 0]
    if not pos or not neg:
        return None
    thr = np_quantile(pos, fnr)
    if math.isnan(thr):
        return None
    return Fraction(sum(1 for s in neg if s < thr), len(neg))


def segmentation_counts(preds, target, threshold, strict=True):
    """``(tp, fp, fn, tn)`` of ``score > threshold`` (``>=`` when not strict)."""
    scores, labels = _pairs(preds, target)
    tp = fp = fn = tn = 0
    for s, y in zip(scores, labels):
        positive = s > threshold if strict else s >= threshold
        tp += positive and y == 1
        fp += positive and y == 0
        fn += (not positive) and y == 1
        tn += (not positive) and y == 0
    return tp, fp, fn, tn


def segmentation_rates(tp, fp, fn, tn):
    """precision, recall, F1, IoU as Fractions, 0 where the denominator is 0."""
    def ratio(a, b):
        return Fraction(a, b) if b else Fraction(0)

    return {"precision": ratio(tp, tp + fp), "recall": ratio(tp, tp + fn), "f1": ratio(2 * tp, 2 * tp + fp + fn),
            "iou": ratio(tp, tp + fp + fn)}


def mean_var_population(values):
    """Exact mean and population variance (ddof 0) as Fractions."""
    xs = [Fraction(float(v)) for v in values]
    mean = sum(xs, Fraction(0)) / len(xs)
    return mean, sum(((x - mean) ** 2 for x in xs), Fraction(0)) / len(xs)


def sqrt_fraction(value, digits=60):
    """``sqrt(value)`` as a Fraction accurate to ``digits`` significant digits (decimal arithmetic)."""
    import decimal

    with decimal.localcontext() as ctx:
        ctx.prec = digits
        root = (decimal.Decimal(value.numerator) / decimal.Decimal(value.denominator)).sqrt()
    return Fraction(root)


def image_max(image):
    return max(float(v) for v in _flat(image))


def image_top_k_mean(image, count):
    """Exact mean of the ``count`` largest values (finite values)."""
    xs = sorted((float(v) for v in _flat(image)), reverse=True)[:count]
    return sum((Fraction(x) for x in xs), Fraction(0)) / count


def image_pooled_max(image, kernel):
    """Largest exact mean over every ``kernel x kernel`` window of a 2-D list/array (finite values)."""
    rows = [[float(v) for v in row] for row in image]
    h, w = len(rows), len(rows[0])
    best = None
    for y in range(h - kernel + 1):
        for x in range(w - kernel + 1):
            total = sum((Fraction(rows[y + i][x + j]) for i in range(kernel) for j in range(kernel)), Fraction(0))
            mean = total / (kernel * kernel)
            best = mean if best is None or mean > best else best
    return best


ADER_THRESHOLDS = (0.2, 0.30000000000000004, 0.4000000000000001, 0.5000000000000001, 0.6000000000000001,
                   0.7000000000000002, 0.8000000000000003)  # ADer's np.arange(0.2, 0.8 + 1e-3, 0.1), written out


def ader_segmentation(preds, target, thresholds=ADER_THRESHOLDS):
    """ADer's mF1 / mAcc / mIoU with exact rates: pixels positive when ``(x - min) / (max - min) > t``
    evaluated in float64 (Python floats), rates as Fractions (0 for a zero denominator), means as Fractions."""
    scores, labels = _pairs(preds, target)
    lo, hi = min(scores), max(scores)
    f1 = acc = iou = Fraction(0)
    for t in thresholds:
        norm = [(s - lo) / (hi - lo) for s in scores]
        tp, fp, fn, tn = segmentation_counts(norm, labels, t)
        r = segmentation_rates(tp, fp, fn, tn)
        f1 += r["f1"]
        acc += r["recall"]
        iou += r["iou"]
    n = len(thresholds)
    return {"mF1": f1 / n, "mAcc": acc / n, "mIoU": iou / n}


def segmentation_scores(preds, target, threshold, strict=True):
    """The global result of ``segmentation_scores``: counts (ints) and rates (Fractions)."""
    tp, fp, fn, tn = segmentation_counts(preds, target, threshold, strict)
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn, **segmentation_rates(tp, fp, fn, tn)}


def validation_threshold(maps, n_std=3.0):
    """``mean + n_std * std`` (ddof 0) of every value, exactly (std to 60 digits); None without a value."""
    values = [float(v) for v in _flat(maps)]
    if not values:
        return None
    mean, var = mean_var_population(values)
    return mean + Fraction(n_std) * sqrt_fraction(var)


def image_scores(maps, reduce="max", k=0.01, kernel=16):
    """One exact score per image of ``(B, H, W)`` maps (finite values), as Fractions."""
    out = []
    for image in maps:
        rows = [list(row) for row in image]
        n = len(rows) * len(rows[0])
        if reduce == "max":
            out.append(Fraction(image_max(rows)))
        elif reduce == "top_k_mean":
            out.append(image_top_k_mean(rows, max(1, math.floor(k * n))))
        else:
            out.append(image_pooled_max(rows, kernel))
    return out


# --- issue 15: DeLong's variance and covariance, from every (positive, negative) pair ---

def delong_components(preds, target):
    """DeLong's structural components as Fractions, in element order, by enumerating every pair:
    ``V10`` for each positive (the fraction of negatives it outranks) and ``V01`` for each negative
    (the fraction of positives that outrank it), a tie counting one half."""
    scores, labels = _pairs(preds, target)
    pos = [s for s, t in zip(scores, labels) if t == 1]
    neg = [s for s, t in zip(scores, labels) if t == 0]

    def psi(x, y):  # a positive x against a negative y
        return Fraction(1) if x > y else Fraction(1, 2) if x == y else Fraction(0)

    v10 = [sum((psi(x, y) for y in neg), Fraction(0)) / len(neg) for x in pos] if neg else []
    v01 = [sum((psi(x, y) for x in pos), Fraction(0)) / len(pos) for y in neg] if pos else []
    return v10, v01


def _sample_covariance(xs, ys):
    """Sample covariance (ddof 1) of two equally long lists of Fractions."""
    m = len(xs)
    mean_x, mean_y = sum(xs, Fraction(0)) / m, sum(ys, Fraction(0)) / m
    return sum(((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)), Fraction(0)) / (m - 1)


def delong_covariance(preds_a, preds_b, target):
    """DeLong's covariance of two AUROCs on the same elements, ``C10 / P + C01 / N`` (sample
    covariances of the components, ddof 1), a Fraction; None with fewer than 2 positives or 2 negatives."""
    a10, a01 = delong_components(preds_a, target)
    b10, b01 = delong_components(preds_b, target)
    if len(a10) < 2 or len(a01) < 2:
        return None
    return _sample_covariance(a10, b10) / len(a10) + _sample_covariance(a01, b01) / len(a01)


def delong_variance(preds, target):
    """DeLong's variance of the AUROC, ``S10 / P + S01 / N`` (ddof 1), a Fraction; None with fewer than
    2 positives or 2 negatives."""
    return delong_covariance(preds, preds, target)


def resample_counts(labels, n_resamples, seed, stream=None):
    """The bootstrap's resamples by their definition (docs/definitions.md, "Bootstrap"), a plain loop:
    ``W[b, i]`` = how often image ``i`` is drawn in resample ``b``; the normal images' draws for every
    resample, then the anomalous images'; a named group's generator is seeded with ``[seed, crc32(name)]``."""
    import zlib

    import numpy as np

    labels = np.asarray(labels).astype(bool)
    normal, anomalous = np.flatnonzero(~labels), np.flatnonzero(labels)
    rng = np.random.default_rng(seed if stream is None else [seed, zlib.crc32(stream.encode("utf-8"))])
    counts = np.zeros((n_resamples, labels.size), np.int64)
    for stratum in (normal, anomalous):
        if stratum.size:
            draws = rng.integers(0, stratum.size, size=(n_resamples, stratum.size))
            for b in range(n_resamples):
                for j in draws[b]:
                    counts[b, stratum[j]] += 1
    return counts
