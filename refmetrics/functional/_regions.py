"""Drivers of the region metrics: masks -> regions -> sorted keys -> PRO groups.

Samples are labelled one at a time (scikit-image), so no label image of the
whole batch is ever held. The states keep, per pixel, only what the metric
needs: background pixels as keys; region pixels as (key, region size) for the
PRO curve, or per region (pixels above the threshold, size) for PRO.
"""

import numpy as np

from .. import _arrays as A
from .. import _labels as L
from .. import _validation as V
from ..kernels.cpu import ranking as KR
from ..kernels.cpu import regions as K
from . import _ranked as R

CHUNK = 1 << 16
_SIZE_SHIFTS = KR.digit_shifts(np.uint64)


class RegionBatch:
    """One validated batch: per-sample scores and boolean masks."""

    __slots__ = ("scores", "masks", "spatial", "n_pos")

    def __init__(self, scores, masks, spatial, n_pos):
        self.scores, self.masks, self.spatial, self.n_pos = scores, masks, spatial, n_pos

    def samples(self, connectivity):
        """Yield ``(scores, region ids, n_regions, sizes)`` per sample (ids from 1, sizes by id)."""
        for b in range(self.masks.shape[0]):
            regions, n = L.label_sample(self.masks[b].reshape(self.spatial), connectivity)
            regions = regions.reshape(-1)
            sizes = np.bincount(regions, minlength=n + 1).astype(np.int64)
            yield self.scores[b], regions, n, sizes


def intake_regions(preds, target, spatial_dims, backend):
    """Validate maps and masks into a :class:`RegionBatch`."""
    A.resolve_backend(backend, preds, target)
    p = A.host_array(preds, "preds")
    t = A.host_array(target, "target")
    V.check_pair(p, t)
    V.check_size_limit(p.size)
    n_samples, spatial = L.sample_layout(t.shape, spatial_dims)
    scores = A.exact_scores(p, "preds").reshape(n_samples, -1)
    labels = A.labels(t)
    masks = np.empty(labels.size, np.bool_)
    n_pos, n_bad = K.binary_mask(labels, False, labels.dtype.type(0), masks)
    V.raise_bad_labels("target", labels, False, None, None, n_bad)
    return RegionBatch(scores, masks.reshape(n_samples, -1), spatial, n_pos)


# ---------------------------------------------------------------------------
# PRO curve state
# ---------------------------------------------------------------------------

class _Part:
    __slots__ = ("bg", "rkeys", "rsizes", "n_regions", "sorted")

    def __init__(self, bg, rkeys, rsizes, n_regions, is_sorted=False):
        self.bg, self.rkeys, self.rsizes = bg, rkeys, rsizes
        self.n_regions, self.sorted = n_regions, is_sorted

    def widened(self):
        return _Part(R.widen_keys(self.bg), R.widen_keys(self.rkeys), self.rsizes, self.n_regions)


def partition_regions(batch, connectivity):
    """One batch's keys: background apart, region pixels with their region's size."""
    kd = R._KEY_OF[batch.scores.dtype]
    consts = R._CONSTS[kd]
    n = batch.scores.size
    bg = np.empty(n - batch.n_pos, kd)
    rkeys = np.empty(batch.n_pos, kd)
    rsizes = np.empty(batch.n_pos, np.uint64)
    n_bg = n_reg = n_regions = n_nan = 0
    for scores, regions, n_r, sizes in batch.samples(connectivity):
        n_bg, n_reg, nan = K.partition_regions(scores.view(kd), regions, sizes, consts, bg, n_bg,
                                               rkeys, rsizes, n_reg)
        n_nan += nan
        n_regions += n_r
    V.raise_if_nan("preds", n_nan)
    return _Part(bg, rkeys, rsizes, n_regions)


class RegionScores:
    """Exact PRO-curve state: a multiset of background keys and (key, size) region pixels."""

    def __init__(self):
        self.parts = []

    def add(self, part):
        self.parts.append(part)

    def merge(self, other):
        self.parts.extend(other.parts)

    @property
    def n_bg(self):
        return sum(p.bg.size for p in self.parts)

    @property
    def n_region_pixels(self):
        return sum(p.rkeys.size for p in self.parts)

    @property
    def n_regions(self):
        return sum(p.n_regions for p in self.parts)

    def sorted(self):
        """``(bg, rkeys, rsizes)`` sorted ascending (region pixels by key, then size)."""
        if len(self.parts) == 1 and self.parts[0].sorted:
            p = self.parts[0]
            return p.bg, p.rkeys, p.rsizes
        parts = self.parts
        if not parts:
            e = np.empty(0, np.uint32)
            return e, e, np.empty(0, np.uint64)
        if len({p.bg.dtype for p in parts}) > 1:
            parts = [p if p.bg.dtype == np.uint64 else p.widened() for p in parts]
        if len(parts) == 1:
            bg, rkeys, rsizes = parts[0].bg, parts[0].rkeys, parts[0].rsizes
        else:
            bg = np.concatenate([p.bg for p in parts])
            rkeys = np.concatenate([p.rkeys for p in parts])
            rsizes = np.concatenate([p.rsizes for p in parts])
        tmp = np.empty(bg.size, bg.dtype)
        bg = R._sort(bg, tmp, R._histogram(bg))
        del tmp
        tk = np.empty_like(rkeys)
        tp = np.empty_like(rsizes)
        if K.radix_sort_pairs(rkeys, rsizes, tk, tp, R._SHIFTS[rkeys.dtype], _SIZE_SHIFTS):
            rkeys, rsizes = tk, tp
        self.parts = [_Part(bg, rkeys, rsizes, sum(p.n_regions for p in parts), is_sorted=True)]
        return bg, rkeys, rsizes


def exact_region_groups(bg, rkeys, rsizes):
    """Yield ``(dfp, dS_h, dS_l)`` chunks, distinct scores in decreasing order."""
    size = max(1, min(CHUNK, bg.size + rkeys.size))
    dfp = np.empty(size, np.int64)
    dsh = np.empty(size, np.float64)
    dsl = np.empty(size, np.float64)
    cursor = np.array([bg.size - 1, rkeys.size - 1], np.int64)
    while True:
        g = K.next_region_groups(bg, rkeys, rsizes, cursor, dfp, dsh, dsl)
        if g == 0:
            return
        yield dfp[:g], dsh[:g], dsl[:g]


def sampled_region_groups(bg, rkeys, rsizes, num_thresholds):
    """One chunk: groups at ``num_thresholds`` thresholds evenly spaced from the
    smallest to the largest score (anomalib 1.x's binned AUPRO), decreasing."""
    lo = min(_decode_end(bg, 0), _decode_end(rkeys, 0))
    hi = max(_decode_end(bg, -1), _decode_end(rkeys, -1))
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"num_thresholds: thresholds evenly spaced from the smallest to the largest score "
                         f"need finite scores, received scores from {lo} to {hi}")
    thresholds = np.linspace(lo, hi, num_thresholds)[::-1].copy()
    bounds = threshold_keys(thresholds, bg.dtype)
    dfp = np.empty(num_thresholds, np.int64)
    dsh = np.empty(num_thresholds, np.float64)
    dsl = np.empty(num_thresholds, np.float64)
    K.sampled_region_groups(bg, rkeys, rsizes, bounds, dfp, dsh, dsl)
    return [(dfp, dsh, dsl)]


def _decode_end(keys, index):
    if keys.size == 0:
        return np.inf if index == 0 else -np.inf
    return float(R.decode_keys(keys[index:index + 1] if index >= 0 else keys[index:])[0])


def threshold_keys(thresholds, key_dtype):
    """Keys ``k`` such that ``score >= t`` iff ``key(score) >= k``, for float64 thresholds ``t``.

    For float32 scores ``t`` is rounded up to the next float32 when inexact.
    """
    ft = R._FLOAT_OF[np.dtype(key_dtype)]
    t = thresholds.astype(ft)
    if ft == np.float32:
        low = t.astype(np.float64) < thresholds
        t[low] = np.nextafter(t[low], np.float32(np.inf))
    t = t + ft.type(0.0)  # -0.0 -> +0.0
    bits = t.view(key_dtype)
    top = np.dtype(key_dtype).type(1 << (8 * np.dtype(key_dtype).itemsize - 1))
    return np.where(bits & top, ~bits, bits | top).astype(key_dtype)


def aupro_from_groups(groups, n_bg, n_regions, fpr_limit):
    counts = np.zeros(2, np.int64)
    sums = np.zeros(4, np.float64)
    for dfp, dsh, dsl in groups:
        K.acc_aupro(dfp, dsh, dsl, n_bg, fpr_limit, counts, sums)
        if counts[1]:
            break
    return float(K.finish_aupro(sums, n_bg, n_regions, fpr_limit))


def curve_from_groups(groups, n_bg, n_regions):
    chunks = list(groups)
    dfp = np.concatenate([c[0] for c in chunks]) if chunks else np.empty(0, np.int64)
    dsh = np.concatenate([c[1] for c in chunks]) if chunks else np.empty(0)
    dsl = np.concatenate([c[2] for c in chunks]) if chunks else np.empty(0)
    fpr = np.empty(dfp.size + 1)
    pro = np.empty(dfp.size + 1)
    K.curve_points(dfp, dsh, dsl, n_bg, n_regions, fpr, pro)
    return fpr, pro


# ---------------------------------------------------------------------------
# PRO at a threshold
# ---------------------------------------------------------------------------

class RegionOverlaps:
    """PRO state: per region, its pixels above the threshold and its size."""

    def __init__(self):
        self.above = []
        self.sizes = []

    def add(self, batch, threshold, connectivity):
        n_nan = 0
        for scores, regions, n, sizes in batch.samples(connectivity):
            above = np.zeros(n + 1, np.int64)
            n_nan += K.region_overlaps(scores, regions, threshold, above)
            self.above.append(above[1:])
            self.sizes.append(sizes[1:])
        V.raise_if_nan("preds", n_nan)

    def merge(self, other):
        self.above = self.above + other.above
        self.sizes = self.sizes + other.sizes

    @property
    def n_regions(self):
        return sum(a.size for a in self.above)

    def pro(self):
        above = np.concatenate(self.above) if self.above else np.empty(0, np.int64)
        sizes = np.concatenate(self.sizes) if self.sizes else np.empty(0, np.int64)
        order = np.lexsort((above, sizes))  # canonical order: by size, then overlap
        return float(K.mean_ratio(np.ascontiguousarray(above[order]), np.ascontiguousarray(sizes[order])))
