"""Drivers of the region metrics: masks -> regions -> sorted keys -> PRO groups.

Samples are labelled one at a time (scikit-image), so no label image of the
whole batch is ever held. The states keep, per pixel, only what the metric
needs: background pixels as keys; region pixels as (key, region size) for the
PRO curve, or per region (pixels above the threshold, size) for PRO.
"""

from fractions import Fraction

import numpy as np

from .. import _arrays as A
from .. import _labels as L
from .. import _validation as V
from ..kernels.cpu import keys as KEYS
from ..kernels.cpu import ranking as KR
from ..kernels.cpu import regions as K
from . import _engine as E
from . import _ranked as R

CHUNK = 1 << 16
TOP_BITS = 16  # resolution of the cut that drops pixels the AUPRO never reads
_SIZE_SHIFTS = KR.digit_shifts(np.uint64)


class RegionBatch:
    """One validated batch: per-sample scores and boolean masks.

    On the CUDA backend ``scores`` is a flat device array (``device`` true) and
    the masks are on the host, where the regions are labelled.
    """

    __slots__ = ("scores", "masks", "spatial", "n_pos", "defective", "device")

    def __init__(self, scores, masks, spatial, n_pos, device=False):
        self.scores, self.masks, self.spatial, self.n_pos = scores, masks, spatial, n_pos
        self.defective = masks.any(axis=1)
        self.device = device

    def samples(self, connectivity):
        """Yield ``(scores, region ids, n_regions, sizes)`` per sample (ids from 1, sizes by id).

        Defect-free samples are not labelled: their region ids are None. On the
        device the scores of a sample are not yielded (None).
        """
        for b in range(self.masks.shape[0]):
            scores = None if self.device else self.scores[b]
            if not self.defective[b]:
                yield scores, None, 0, None
                continue
            regions, n = L.label_sample(self.masks[b].reshape(self.spatial), connectivity)
            regions = regions.reshape(-1)
            sizes = np.bincount(regions, minlength=n + 1).astype(np.int64)
            yield scores, regions, n, sizes

    def pixel_payload(self, connectivity, ids):
        """One uint32 per pixel for the device: the region's size (``ids`` false) or its id,
        numbered from 1 across the batch (``ids`` true); 0 for background. Returns
        ``(payload, n_regions, sizes of regions 1..n, largest size)``."""
        m = self.masks.shape[1]
        payload = np.zeros(self.masks.size, np.uint32)
        all_sizes = []
        total = 0
        for b, (_, regions, n, sizes) in enumerate(self.samples(connectivity)):
            if regions is None:
                continue
            table = sizes.copy()
            if ids:
                table[1:] = np.arange(total + 1, total + n + 1)
            table[0] = 0
            payload[b * m:(b + 1) * m] = table[regions]
            all_sizes.append(sizes[1:])
            total += n
        sizes = np.concatenate(all_sizes) if all_sizes else np.empty(0, np.int64)
        return payload, total, sizes, int(sizes.max()) if sizes.size else 0


def intake_regions(preds, target, spatial_dims, backend):
    """Validate maps and masks into a :class:`RegionBatch` (scores on the backend that runs)."""
    where = A.resolve_backend(backend, preds, target)
    p = A.array_on(where, preds, "preds")
    t = A.to_host(target, "target")  # on the CUDA backend masks cross to the host: regions are labelled there
    V.check_pair(p, t)
    n_samples, spatial = L.sample_layout(t.shape, spatial_dims)
    if where == "cuda":
        scores = A.device_scores(p, "preds")
    else:
        scores = A.exact_scores(p, "preds").reshape(n_samples, -1)
    labels = A.labels(t)
    if t.dtype == np.bool_:
        masks = labels.view(np.bool_)
        n_pos = int(np.count_nonzero(masks))
    else:
        masks = np.empty(labels.size, np.bool_)
        n_pos, n_bad = K.binary_mask(labels, False, labels.dtype.type(0), masks)
        V.raise_bad_labels("target", labels, False, None, None, n_bad)
    return RegionBatch(scores, masks.reshape(n_samples, -1), spatial, n_pos, device=where == "cuda")


# ---------------------------------------------------------------------------
# PRO curve state
# ---------------------------------------------------------------------------

class _Part:
    """Sorted or unsorted keys of some samples; ``dropped`` background pixels
    below a cut (see :func:`partition_regions`) are counted but not kept."""

    __slots__ = ("bg", "rkeys", "rsizes", "n_regions", "dropped", "sorted", "shared")

    def __init__(self, bg, rkeys, rsizes, n_regions, dropped=0, is_sorted=False):
        self.bg, self.rkeys, self.rsizes = bg, rkeys, rsizes
        self.n_regions, self.dropped, self.sorted = n_regions, dropped, is_sorted
        self.shared = False  # also held by another state (merged): never sorted in place

    def widened(self):
        return _Part(KEYS.widen_keys(self.bg), KEYS.widen_keys(self.rkeys), self.rsizes, self.n_regions, self.dropped)


def cut_for_limit(hist, n_bg, fpr_limit, key_dtype):
    """The highest key cut keeping the ``floor(fpr_limit * n_bg) + 1`` highest
    background pixels, from a histogram of the keys' top ``TOP_BITS`` bits; 0
    (keep all) when they are all needed.

    The AUPRO stops at the group where the false positives first exceed
    ``fpr_limit * n_bg``; that group and every group above it lie at or above
    the cut, so the area is exactly that of the full data.
    """
    need = int(Fraction(fpr_limit) * n_bg) + 1
    if need >= n_bg:
        return key_dtype.type(0)
    from_top = np.cumsum(hist[::-1])
    bucket = (1 << TOP_BITS) - 1 - int(np.searchsorted(from_top, need))
    return key_dtype.type(bucket) << key_dtype.type(8 * key_dtype.itemsize - TOP_BITS)


class _DevicePart:
    """Keys of some samples on the device (see :class:`_Part`); ``max_size`` bounds the
    region sizes (how many payload bits the sort by (key, size) reads)."""

    __slots__ = ("bg", "rkeys", "rsizes", "n_regions", "dropped", "max_size", "sorted", "shared")

    def __init__(self, bg, rkeys, rsizes, n_regions, max_size, dropped=0, is_sorted=False):
        self.bg, self.rkeys, self.rsizes = bg, rkeys, rsizes
        self.n_regions, self.max_size, self.dropped, self.sorted = n_regions, max_size, dropped, is_sorted
        self.shared = False  # the device sort always works on a copy (driver.concatenate)

    def widened(self):
        from ..kernels.cuda import _driver as D

        return _DevicePart(D.widen(self.bg), D.widen(self.rkeys), self.rsizes, self.n_regions, self.max_size,
                           self.dropped)


def _to_device(part):
    if isinstance(part, _DevicePart):
        return part
    from numba import cuda

    max_size = int(part.rsizes.max()) if part.rsizes.size else 0
    return _DevicePart(cuda.to_device(part.bg), cuda.to_device(part.rkeys), cuda.to_device(part.rsizes),
                       part.n_regions, max_size, part.dropped)


def _device_top_cut(bg, fpr_limit, codes=None):
    """:func:`cut_for_limit` from a device histogram of the background keys' top bits."""
    from ..kernels.cuda import _driver as D

    kd = bg.dtype
    hist = D.top_histogram(bg, codes, kd.type(8 * kd.itemsize - TOP_BITS), 1 << TOP_BITS)
    return cut_for_limit(hist, int(hist.sum()), fpr_limit, kd), hist


def partition_regions_device(batch, connectivity, fpr_limit):
    """:func:`partition_regions` on the device: the host sends one uint32 per pixel
    (its region's size, 0 for background); keys, the cut and the compaction run there."""
    from ..kernels.cuda import _driver as D

    payload, n_regions, _, max_size = batch.pixel_payload(connectivity, ids=False)
    d_payload = D.to_device(payload)
    keys, codes, n_nan = D.encode_pixels(batch.scores, d_payload)
    V.raise_if_nan("preds", n_nan)
    kd = keys.dtype
    cut = kd.type(0)
    if fpr_limit < 1.0:
        cut, _ = _device_top_cut(keys, fpr_limit, codes)
    bg, _ = D.select(keys, codes, D.BACKGROUND, cut)
    rkeys, rsizes = D.select(keys, codes, D.REGION, cut, d_payload)
    n_bg_all = batch.scores.size - batch.n_pos
    return _DevicePart(bg, rkeys, rsizes, n_regions, max_size, dropped=n_bg_all - bg.size)


def partition_regions(batch, connectivity, fpr_limit=1.0):
    """One batch's keys: background apart, region pixels with their region's size.

    With ``fpr_limit < 1`` (the functional AUPRO, which reads the data once),
    a first pass histograms the background keys and only the pixels at or above
    :func:`cut_for_limit` are kept: less to write and to sort.
    """
    if batch.device:
        return partition_regions_device(batch, connectivity, fpr_limit)
    kd = KEYS.KEY_OF[batch.scores.dtype]
    consts = KEYS.CONSTS[kd]
    n_bg_all = batch.scores.size - batch.n_pos
    cut = kd.type(0)
    n_keep = n_bg_all
    if fpr_limit < 1.0:
        hist = np.zeros(1 << TOP_BITS, np.int64)
        K.background_top_histogram(batch.scores.reshape(-1).view(kd), batch.masks.reshape(-1), consts,
                                   kd.type(8 * kd.itemsize - TOP_BITS), hist)
        cut = cut_for_limit(hist, int(hist.sum()), fpr_limit, kd)
        n_keep = int(hist[int(cut >> kd.type(8 * kd.itemsize - TOP_BITS)):].sum())
    bg = np.empty(n_keep, kd)
    rkeys = np.empty(batch.n_pos, kd)
    rsizes = np.empty(batch.n_pos, np.uint64)
    n_bg = n_reg = n_regions = n_nan = 0
    for scores, regions, n_r, sizes in batch.samples(connectivity):
        if regions is None:
            n_bg, nan = K.partition_background(scores.view(kd), consts, cut, bg, n_bg)
        else:
            n_bg, n_reg, nan = K.partition_regions(scores.view(kd), regions, sizes, consts, cut, bg, n_bg,
                                                   rkeys, rsizes, n_reg)
        n_nan += nan
        n_regions += n_r
    V.raise_if_nan("preds", n_nan)
    return _Part(bg[:n_bg], rkeys[:n_reg], rsizes[:n_reg], n_regions, dropped=n_bg_all - n_bg)


class RegionScores(R.PartsState):
    """Exact PRO-curve state: a multiset of background keys and (key, size) region pixels.

    Parts live on the host or the device; with any part on the device the
    state sorts and counts there (:meth:`device_sorted`, :meth:`device_sorted_top`).
    """

    @property
    def on_device(self):
        return any(isinstance(p, _DevicePart) for p in self.parts)

    def _device_parts(self):
        parts = [_to_device(p) for p in self.parts]
        if len({p.bg.dtype for p in parts}) > 1:
            parts = [p if p.bg.dtype == np.uint64 else p.widened() for p in parts]
        return parts

    def device_sorted_top(self, fpr_limit):
        """As :meth:`sorted_top`, on the device."""
        from ..kernels.cuda import _driver as D

        if len(self.parts) == 1 and self.parts[0].sorted or any(p.dropped for p in self.parts):
            return self.device_sorted()
        parts = self._device_parts()
        kd = parts[0].bg.dtype
        bg = D.concatenate([p.bg for p in parts], kd)
        cut, _ = _device_top_cut(bg, fpr_limit)
        if not cut:
            return self.device_sorted()
        rkeys = D.concatenate([p.rkeys for p in parts], kd)
        rsizes = D.concatenate([p.rsizes for p in parts], np.uint64)
        top = RegionScores()
        top.add(_DevicePart(D.select(bg, None, 0, cut)[0], *D.select(rkeys, None, 0, cut, rsizes), 0,
                            max(p.max_size for p in parts)))
        return top.device_sorted()

    def device_sorted(self):
        """``(bg, rkeys, rsizes)`` sorted ascending on the device (region pixels by key, then size)."""
        from ..kernels.cuda import _driver as D

        if len(self.parts) == 1 and self.parts[0].sorted and isinstance(self.parts[0], _DevicePart):
            p = self.parts[0]
            return p.bg, p.rkeys, p.rsizes
        parts = self._device_parts()
        kd = parts[0].bg.dtype
        max_size = max(p.max_size for p in parts)
        bg, _ = D.radix_sort(D.concatenate([p.bg for p in parts], kd))
        rkeys, rsizes = D.radix_sort(D.concatenate([p.rkeys for p in parts], kd),
                                     D.concatenate([p.rsizes for p in parts], np.uint64),
                                     payload_bits=max(1, max_size.bit_length()))
        self.parts = [_DevicePart(bg, rkeys, rsizes, sum(p.n_regions for p in parts), max_size,
                                  sum(p.dropped for p in parts), is_sorted=True)]
        return bg, rkeys, rsizes

    @property
    def n_bg(self):
        return sum(p.bg.size + p.dropped for p in self.parts)

    @property
    def n_region_pixels(self):
        return sum(p.rkeys.size for p in self.parts)

    @property
    def n_regions(self):
        return sum(p.n_regions for p in self.parts)

    def _merged(self):
        parts = self.parts
        if len({p.bg.dtype for p in parts}) > 1:
            parts = [p if p.bg.dtype == np.uint64 else p.widened() for p in parts]
        return parts

    def sorted_top(self, fpr_limit):
        """Sorted ``(bg, rkeys, rsizes)`` restricted to what the AUPRO up to ``fpr_limit`` reads.

        The area stops at the group where the false positives first exceed
        ``fpr_limit * n_bg``: only the ``floor(fpr_limit * n_bg) + 1`` highest
        background pixels and the pixels scoring at least as high matter. A
        histogram of the keys' top 16 bits finds a cut at or below that score;
        everything below the cut is dropped before sorting. The groups up to the
        crossing, and so the result, are exactly those of the full data.
        """
        if not self.parts or (len(self.parts) == 1 and self.parts[0].sorted):
            return self.sorted()
        parts = self._merged()
        if any(p.dropped for p in parts):
            return self.sorted()  # already cut when partitioned
        kd = parts[0].bg.dtype
        n_bg = sum(p.bg.size for p in parts)
        hist = np.zeros(1 << TOP_BITS, np.int64)
        for p in parts:
            K.top_histogram(p.bg, kd.type(8 * kd.itemsize - TOP_BITS), hist)

        shift = kd.type(8 * kd.itemsize - TOP_BITS)
        cut = cut_for_limit(hist, n_bg, fpr_limit, kd)
        if not cut:
            return self.sorted()
        bg = np.empty(int(hist[int(cut >> shift):].sum()), kd)
        n_rk = sum(p.rkeys.size for p in parts)
        rkeys = np.empty(n_rk, kd)
        rsizes = np.empty(n_rk, np.uint64)
        nb = nr = 0
        for p in parts:
            nb += K.keep_keys_at_least(p.bg, cut, bg[nb:])
            nr += K.keep_at_least(p.rkeys, p.rsizes, cut, rkeys[nr:], rsizes[nr:])
        top = RegionScores()
        top.add(_Part(bg, rkeys[:nr], rsizes[:nr], 0))
        return top.sorted()

    def sorted(self):
        """``(bg, rkeys, rsizes)`` sorted ascending (region pixels by key, then size)."""
        if len(self.parts) == 1 and self.parts[0].sorted:
            p = self.parts[0]
            return p.bg, p.rkeys, p.rsizes
        if not self.parts:
            e = np.empty(0, np.uint32)
            return e, e, np.empty(0, np.uint64)
        parts = self._merged()
        if len(parts) == 1:
            bg, rkeys, rsizes = parts[0].bg, parts[0].rkeys, parts[0].rsizes
            if parts[0].shared:
                bg, rkeys, rsizes = bg.copy(), rkeys.copy(), rsizes.copy()
        else:
            bg = np.concatenate([p.bg for p in parts])
            rkeys = np.concatenate([p.rkeys for p in parts])
            rsizes = np.concatenate([p.rsizes for p in parts])
        if bg.size >= E.SMALL:
            bg = E.sort_keys(bg)  # key ranges, in threads
        else:
            tmp = np.empty(bg.size, bg.dtype)
            bg = R._sort(bg, tmp, R._histogram(bg))
            del tmp
        if not E.sort_pairs_in_place(rkeys, rsizes):  # (key << 32 | size) as one uint64 sort, or:
            tk = np.empty_like(rkeys)
            tp = np.empty_like(rsizes)
            if K.radix_sort_pairs(rkeys, rsizes, tk, tp, R._SHIFTS[rkeys.dtype], _SIZE_SHIFTS):
                rkeys, rsizes = tk, tp
        self.parts = [_Part(bg, rkeys, rsizes, sum(p.n_regions for p in parts), sum(p.dropped for p in parts),
                            is_sorted=True)]
        return bg, rkeys, rsizes


def exact_region_groups(bg, rkeys, rsizes, collapse=False):
    """Yield ``(dfp, dS_h, dS_l)`` chunks, distinct scores in decreasing order
    (with ``collapse``, runs of background-only scores as one group)."""
    size = max(1, min(CHUNK, bg.size + rkeys.size))
    dfp = np.empty(size, np.int64)
    dsh = np.empty(size, np.float64)
    dsl = np.empty(size, np.float64)
    cursor = np.array([bg.size - 1, rkeys.size - 1], np.int64)
    while True:
        g = K.next_region_groups(bg, rkeys, rsizes, cursor, collapse, dfp, dsh, dsl)
        if g == 0:
            return
        yield dfp[:g], dsh[:g], dsl[:g]


def collapse_groups(dfp, dsh, dsl):
    """Groups from :func:`exact_region_groups` without ``collapse`` (whole arrays) as that walk gives them
    with it: each run of groups without region pixels as one, its background pixels summed into the run's
    first group (the walk's rule: a group without region pixels joins the previous one when that one has
    none either)."""
    held = dsh != 0.0
    starts = np.ones(dfp.size, bool)
    starts[1:] = held[1:] | held[:-1]
    first = np.flatnonzero(starts)
    return np.add.reduceat(dfp, first) if dfp.size else dfp, dsh[first], dsl[first]


def group_chunks(dfp, dsh, dsl):
    """Whole group arrays in the chunks :func:`exact_region_groups` yields (:data:`CHUNK` groups each):
    a running sum over the chunks gives the walk's bits."""
    for a in range(0, dfp.size, CHUNK):
        yield dfp[a:a + CHUNK], dsh[a:a + CHUNK], dsl[a:a + CHUNK]


def device_region_groups(bg, rkeys, rsizes, collapse=False):
    """As :func:`exact_region_groups`, one chunk, for sorted device arrays: the groups
    and their integer counts are formed on the device; the counts and the sorted
    region sizes cross to the host, where the sums of ``1/size`` are taken in the
    CPU's order (so the result is bit-identical)."""
    from ..kernels.cuda import _driver as D

    n_region, dfp = D.region_groups(rkeys, bg, collapse)
    dsh = np.empty(dfp.size)
    dsl = np.empty(dfp.size)
    K.region_run_sums(n_region, rsizes.copy_to_host(), dsh, dsl)
    return [(dfp, dsh, dsl)]


def _thresholds_between(lo, hi, num_thresholds):
    """``num_thresholds`` thresholds evenly spaced from ``lo`` to ``hi``, decreasing."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"num_thresholds: thresholds evenly spaced from the smallest to the largest score "
                         f"need finite scores, received scores from {lo} to {hi}")
    if np.isfinite(hi - lo):
        thresholds = np.linspace(lo, hi, num_thresholds)
    else:  # the span overflows float64: interpolate without forming it
        a = np.arange(num_thresholds) / (num_thresholds - 1)
        thresholds = lo * (1 - a) + hi * a
    return thresholds[::-1].copy()


def device_sampled_region_groups(bg, rkeys, rsizes, num_thresholds):
    """As :func:`sampled_region_groups` for sorted device arrays."""
    from ..kernels.cuda import _driver as D

    ends = [(KEYS.decode_keys(np.array([D.scalar(a, 0), D.scalar(a, -1)], a.dtype))) for a in (bg, rkeys) if a.size]
    lo = min(e[0] for e in ends) if ends else np.inf
    hi = max(e[1] for e in ends) if ends else -np.inf
    bounds = KEYS.threshold_keys(_thresholds_between(lo, hi, num_thresholds), bg.dtype)
    at_least_bg = D.count_at_least(bg, bounds)
    at_least_r = D.count_at_least(rkeys, bounds)
    dfp = np.diff(at_least_bg, prepend=0)
    n_region = np.diff(at_least_r, prepend=0)
    dsh = np.empty(num_thresholds)
    dsl = np.empty(num_thresholds)
    K.region_run_sums(n_region, rsizes.copy_to_host(), dsh, dsl)
    return [(dfp, dsh, dsl)]


def sampled_region_groups(bg, rkeys, rsizes, num_thresholds):
    """One chunk: groups at ``num_thresholds`` thresholds evenly spaced from the
    smallest to the largest score (anomalib 1.x's binned AUPRO), decreasing."""
    lo = min(_decode_end(bg, 0), _decode_end(rkeys, 0))
    hi = max(_decode_end(bg, -1), _decode_end(rkeys, -1))
    thresholds = _thresholds_between(lo, hi, num_thresholds)
    bounds = KEYS.threshold_keys(thresholds, bg.dtype)
    dfp = np.empty(num_thresholds, np.int64)
    dsh = np.empty(num_thresholds, np.float64)
    dsl = np.empty(num_thresholds, np.float64)
    K.sampled_region_groups(bg, rkeys, rsizes, bounds, dfp, dsh, dsl)
    return [(dfp, dsh, dsl)]


def _decode_end(keys, index):
    if keys.size == 0:
        return np.inf if index == 0 else -np.inf
    return float(KEYS.decode_keys(keys[index:index + 1] if index >= 0 else keys[index:])[0])



def aupro_from_groups(groups, n_bg, n_regions, fpr_limit):
    counts = np.zeros(2, np.int64)
    sums = np.zeros(4, np.float64)
    for dfp, dsh, dsl in groups:
        K.acc_aupro(dfp, dsh, dsl, n_bg, fpr_limit, counts, sums)
        if counts[1]:
            break
    return float(K.finish_aupro(sums, n_bg, n_regions, fpr_limit))


def curve_from_groups(groups, n_bg, n_regions):
    # the group walk reuses its buffers from one chunk to the next: copy each chunk before the next
    chunks = [tuple(np.array(a) for a in chunk) for chunk in groups]
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
        """Add a batch; a batch that fails validation leaves the state unchanged.

        On the device the host sends one uint32 region id per pixel and receives
        the overlap count of each region.
        """
        if batch.device:
            from ..kernels.cuda import _driver as D

            ids, n_regions, sizes, _ = batch.pixel_payload(connectivity, ids=True)
            above, n_nan = D.region_overlaps(batch.scores, D.to_device(ids), n_regions, threshold)
            V.raise_if_nan("preds", n_nan)
            if n_regions:
                self.above.append(above[1:])
                self.sizes.append(sizes)
            return
        n_nan = 0
        above_all, sizes_all = [], []
        for scores, regions, n, sizes in batch.samples(connectivity):
            if regions is None:
                n_nan += int(np.isnan(scores).sum())
                continue
            above = np.zeros(n + 1, np.int64)
            n_nan += K.region_overlaps(scores, regions, threshold, above)
            above_all.append(above[1:])
            sizes_all.append(sizes[1:])
        V.raise_if_nan("preds", n_nan)
        self.above += above_all
        self.sizes += sizes_all

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
