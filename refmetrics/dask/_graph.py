"""The Dask graphs of :mod:`refmetrics.dask`: histograms, plan, shuffle by bucket, parts, carries.

Every graph has the same five steps (``refmetrics/_buckets.py`` holds the exact
pieces they run):

1. per chunk of the input: its keys (the in-memory path's own partition, so the
   same validation and the same keys) and their prefix histograms, 1 MiB per
   side, summed by a tree reduction;
2. on the client: the bucket plan (contiguous prefix ranges of at most
   ``bucket_size`` keys), the counts above every bucket;
3. the shuffle, a delayed all-to-all: every chunk recomputes its keys and
   splits them by bucket; every bucket concatenates its pieces from all chunks
   and sorts them. No task holds more than one chunk or one bucket;
4. per bucket, in parallel: the integer parts (AUROC, F1, curve counts) with the
   counts above known; the double-double sums (AP, trapezoid, AUPRO, PRO curve)
   as a chain of small tasks carrying the one-process walk's state from bucket
   to bucket in decreasing key order;
5. on the client: the combination, O(buckets) small values.

The task functions are module-level so that workers import them by name.
"""

import threading
from operator import getitem

import numpy as np

from .. import _buckets as B
from .. import _threads as T
from ..functional import _ranked as R
from ..functional import _regions as G


# ---------------------------------------------------------------------------
# task functions (run on the workers)
# ---------------------------------------------------------------------------

def add(a, b):
    """Sum of two histogram results (arrays, or tuples of arrays and ints)."""
    if isinstance(a, tuple):
        return tuple(x + y for x, y in zip(a, b))
    return a + b


def ranking_keys(p, t, ignore_index):
    """Positive and negative keys of one chunk (validated as the functional API does)."""
    part = R.partition(R.intake_pair(np.asarray(p), np.asarray(t), ignore_index, "cpu"))
    return np.array(part.pos), np.array(part.neg)


def ranking_hist(p, t, ignore_index):
    pos, neg = ranking_keys(p, t, ignore_index)
    return np.stack([B.prefix_histogram(pos), B.prefix_histogram(neg)])


def ranking_split(p, t, ignore_index, plan):
    """One chunk's keys split by bucket: ``[(pos_b, neg_b) for each bucket]``."""
    pos, neg = ranking_keys(p, t, ignore_index)
    sp, sn = plan.split(pos), plan.split(neg)
    return [(sp[b].copy(), sn[b].copy()) for b in range(plan.n_buckets)]


def ranking_bucket(*pieces):
    """One bucket: its pieces from every chunk, concatenated and sorted."""
    pos = np.concatenate([p[0] for p in pieces])
    neg = np.concatenate([p[1] for p in pieces])
    pos.sort()
    neg.sort()
    return pos, neg


def ranking_parts(sb, tp_above, fp_above, n_pos, want):
    out = {}
    if "auroc" in want:
        out["auroc"] = B.auroc_part(*sb)
    if "f1" in want:
        out["f1"] = B.f1_part(*sb, tp_above, fp_above, n_pos)
    if "curve" in want:
        out["curve"] = B.curve_part(*sb, tp_above, fp_above)
    return out


def ap_link(state, sb):
    return B.ap_feed(state, *sb)


def trapezoid_link(state, sb):
    return B.pr_trapezoid_feed(state, *sb)


def region_keys(m, t, spatial_dims, connectivity):
    """Background keys, region keys and their regions' sizes, and the number of regions of one
    chunk of whole images (labelled here, image by image)."""
    part = G.partition_regions(G.intake_regions(np.asarray(m), np.asarray(t), spatial_dims, "cpu"),
                               connectivity, 1.0)
    return np.array(part.bg), np.array(part.rkeys), np.array(part.rsizes), part.n_regions


def spro_keys(m, defects):
    """As :func:`region_keys` for AU-sPRO: per defect its ``S`` highest keys with ``S``; and
    the number of defects that saturate at zero pixels."""
    from ..functional import spro as S

    part, n_full = S.partition(S.intake(np.asarray(m), defects, "cpu"))
    return np.array(part.bg), np.array(part.rkeys), np.array(part.rsizes), part.n_regions, n_full


def spro_hist(m, defects):
    bg, rk, _, k, n_full = spro_keys(m, defects)
    return np.stack([B.prefix_histogram(bg), B.prefix_histogram(rk)]), k, n_full


def spro_split(m, defects, plan, lowest):
    bg, rk, rs, _, _ = spro_keys(m, defects)
    sb, sr = plan.split(bg), plan.split(rk, rs)
    # region sizes travel as uint32 (an image holds fewer than 2**32 pixels): 8 bytes per region pixel
    return [(sb[b].copy(), sr[b][0].copy(), sr[b][1].astype(np.uint32)) for b in range(lowest, plan.n_buckets)]


def region_hist(m, t, spatial_dims, connectivity):
    bg, rk, _, k = region_keys(m, t, spatial_dims, connectivity)
    return np.stack([B.prefix_histogram(bg), B.prefix_histogram(rk)]), k


def region_split(m, t, spatial_dims, connectivity, plan, lowest):
    """One chunk's pixels split by bucket, for the buckets from ``lowest`` up:
    ``[(bg_b, rkeys_b, rsizes_b) for b in lowest..]``."""
    bg, rk, rs, _ = region_keys(m, t, spatial_dims, connectivity)
    sb, sr = plan.split(bg), plan.split(rk, rs)
    # region sizes travel as uint32 (an image holds fewer than 2**32 pixels): 8 bytes per region pixel
    return [(sb[b].copy(), sr[b][0].copy(), sr[b][1].astype(np.uint32)) for b in range(lowest, plan.n_buckets)]


def region_bucket(*pieces):
    bg = np.concatenate([p[0] for p in pieces])
    bg.sort()
    rk, rs = B.sort_pairs(np.concatenate([p[1] for p in pieces]), np.concatenate([p[2] for p in pieces]))
    return bg, rk, rs


def aupro_link(state, sb, n_bg, limit):
    return B.aupro_feed(state, *sb, n_bg, limit)


def pro_groups(sb):
    return B.pro_curve_groups(*sb)


def pro_link(state, groups, n_bg, n_regions):
    return B.pro_curve_feed(state, groups, n_bg, n_regions)


def region_overlaps(m, t, threshold, spatial_dims, connectivity):
    """Per region of one chunk: pixels above ``threshold``, and size."""
    state = G.RegionOverlaps()
    state.add(G.intake_regions(np.asarray(m), np.asarray(t), spatial_dims, "cpu"), threshold, connectivity)
    cat = (lambda a: np.concatenate(a) if a else np.empty(0, np.int64))
    return cat(state.above), cat(state.sizes)


def region_counts(m, t, spatial_dims, connectivity, bounds, overlap):
    """What the threshold conventions of ``evaluate`` read from one chunk of whole images:
    ``(counts, ends, codes, n)``. ``counts``: ``(T, 2)`` int64, the background and defect keys ``>= bounds[j]``
    (``bounds``: sorted, distinct keys); ``ends``: the smallest and largest key, None without a pixel;
    with ``overlap``, ``codes`` (``i << 32 | region size``, distinct) and ``n`` their defect pixels, ``i``
    the number of bounds at or below the pixel's key, else None, None."""
    bg, rk, rs, _ = region_keys(m, t, spatial_dims, connectivity)
    counts = np.zeros((bounds.size, 2), np.int64)
    for side, keys in enumerate((bg, rk)):
        below = np.bincount(np.searchsorted(bounds, keys, side="right"), minlength=bounds.size + 1)
        counts[:, side] = np.cumsum(below[::-1])[::-1][1:]  # keys above >= j + 1 bounds: key >= bounds[j]
    ends = [(k.min(), k.max()) for k in (bg, rk) if k.size]
    ends = (min(e[0] for e in ends), max(e[1] for e in ends)) if ends else None
    codes = n = None
    if overlap:
        first = np.searchsorted(bounds, rk, side="right").astype(np.int64)
        codes, n = np.unique(first << 32 | rs.astype(np.int64), return_counts=True)
    return counts, ends, codes, n


def merge_counts(a, b):
    """Two :func:`region_counts` results as one (sums; the wider ends; the codes' counts merged)."""
    ends = [e for e in (a[1], b[1]) if e is not None]
    ends = (min(e[0] for e in ends), max(e[1] for e in ends)) if ends else None
    codes = n = None
    if a[2] is not None:
        codes, n = merge_codes(a[2:], b[2:])
    return a[0] + b[0], ends, codes, n


def merge_codes(a, b):
    """Two ``(codes, counts)`` of :func:`region_digits` as one (distinct codes, counts summed)."""
    codes, where = np.unique(np.concatenate([a[0], b[0]]), return_inverse=True)
    n = np.zeros(codes.size, np.int64)
    np.add.at(n, where, np.concatenate([a[1], b[1]]))
    return codes, n


def region_digits(m, t, spatial_dims, connectivity, side, prefixes, bits):
    """The next 16 bits of one chunk's background (``side`` 0) or defect (1) keys whose top ``bits`` bits
    are one of ``prefixes`` (sorted, distinct): ``(codes, n)`` with ``code = i << 16 | digit`` (``i`` the
    prefix's index), distinct, and their counts."""
    keys = region_keys(m, t, spatial_dims, connectivity)[side]
    width = 8 * keys.dtype.itemsize
    top = (keys >> keys.dtype.type(width - bits)).astype(np.uint64)
    at = np.minimum(np.searchsorted(prefixes, top), prefixes.size - 1)
    hit = prefixes[at] == top
    digit = (keys[hit] >> keys.dtype.type(width - bits - 16)).astype(np.int64) & 0xFFFF
    return np.unique(at[hit].astype(np.int64) << 16 | digit, return_counts=True)


def pimo_part(m, t):
    """One chunk of whole images as the functional API's AUPIMO part (validated the same way)."""
    from ..functional import pimo as P

    return P.intake_images(np.asarray(m), np.asarray(t), "cpu", keep_other=False)


def pimo_hist(m, t):
    """Histogram of the top ``TOP_BITS`` of the chunk's normal-image keys; normal and anomalous images."""
    from ..functional import pimo as P
    from ..kernels.cpu import regions as KR

    part = pimo_part(m, t)
    kd = part.key_dtype
    hist = np.zeros(1 << P.TOP_BITS, np.int64)
    if part.normal.size:
        KR.top_histogram(part.normal, kd.type(8 * kd.itemsize - P.TOP_BITS), hist)
    return hist, part.n_normal, int(part.n_defect.size)


def pimo_top(m, t, cut):
    """The chunk's normal-image keys at or above ``cut`` (about ``fpr_bounds[1]`` of them, plus one prefix)."""
    part = pimo_part(m, t)
    return part.normal[part.normal >= part.key_dtype.type(cut)]


def pimo_areas(m, t, window):
    """AUPIMO of the chunk's anomalous images (image order) and the chunk's anomalous flags."""
    from ..functional import pimo as P

    keys, fpr, lower, upper = window
    part = pimo_part(m, t)
    return P._areas([part], keys, fpr, lower, upper), part.anomalous


# ---------------------------------------------------------------------------
# graph builders (run on the client)
# ---------------------------------------------------------------------------

THREADS_KEY = "refmetrics.threads_per_task"
_task_lock = threading.Lock()
_task_active = 0
_task_saved = None


def threads_per_task():
    """The thread count refmetrics kernels use inside one Dask task: ``dask.config``'s
    ``refmetrics.threads_per_task``, 1 by default (read when a graph is built)."""
    import dask

    from .._threads import _check_threads

    return _check_threads(dask.config.get(THREADS_KEY, 1), THREADS_KEY)


class InThreads:
    """A task function run with the kernels set to ``n`` threads (named as ``fn``, so task keys keep
    its name). The setting is per process: while tasks overlap in one process, the first one's count
    holds until the last one ends, then the previous count is restored."""

    def __init__(self, fn, n):
        self.fn, self.n, self.__name__ = fn, n, fn.__name__

    def __reduce__(self):
        return InThreads, (self.fn, self.n)

    def __call__(self, *args):
        global _task_active, _task_saved
        with _task_lock:
            if _task_active == 0:
                _task_saved = T.get_num_threads()
                T.set_num_threads(self.n)
            _task_active += 1
        try:
            return self.fn(*args)
        finally:
            with _task_lock:
                _task_active -= 1
                if _task_active == 0:
                    T.set_num_threads(_task_saved)


def _delayed(fn):
    """``dask.delayed(fn)`` whose calls run with :func:`threads_per_task` threads (:class:`InThreads`)."""
    import dask

    if fn in (add, merge_counts, merge_codes, getitem):
        return dask.delayed(fn, pure=True)
    return dask.delayed(InThreads(fn, threads_per_task()), pure=True)


def tree_sum(items, fn=add):
    """Pairwise sum of delayed values (a tree: no task adds more than two); ``fn`` adds two."""
    while len(items) > 1:
        items = [_delayed(fn)(items[i], items[i + 1]) if i + 1 < len(items) else items[i]
                 for i in range(0, len(items), 2)]
    return items[0]


def compute(*args, scheduler=None):
    import dask

    return dask.compute(*args, scheduler=scheduler, optimize_graph=False)


def shuffle(chunks, split_fn, bucket_fn, n_out, split_args):
    """The delayed all-to-all: ``split_fn(*chunk, *split_args)`` returns ``n_out`` pieces
    per chunk; ``bucket_fn`` gets piece ``i`` of every chunk. Returns one delayed per
    output (ascending), annotated so that the highest buckets are sorted first."""
    import dask

    splits = [_delayed(split_fn)(*c, *split_args) for c in chunks]
    out = []
    for i in range(n_out):
        with dask.annotate(priority=i):
            out.append(_delayed(bucket_fn)(*[_delayed(getitem)(s, i) for s in splits]))
    return out


class RankingPlan:
    """Step 1 and 2 for ranking inputs: histograms, plan, counts above each bucket."""

    def __init__(self, chunks, ignore_index, bucket_size, scheduler):
        self.chunks, self.ignore_index, self.scheduler = chunks, ignore_index, scheduler
        if chunks:
            hist, = compute(tree_sum([_delayed(ranking_hist)(p, t, ignore_index) for p, t in chunks]),
                            scheduler=scheduler)
        else:
            hist = np.zeros((2, B.N_PREFIXES), np.int64)
        self.hist = hist
        self.plan = B.plan_buckets(hist[0] + hist[1], bucket_size)
        self.n_pos, self.n_neg = int(hist[0].sum()), int(hist[1].sum())
        self.tp_above, self.fp_above = self.plan.above(hist[0]), self.plan.above(hist[1])

    def run(self, want):
        """Steps 3 to 5 for the results in ``want`` (auroc, f1, curve, ap, trapezoid)."""
        plan = self.plan
        buckets = shuffle(self.chunks, ranking_split, ranking_bucket, plan.n_buckets,
                          (self.ignore_index, plan))
        desc = list(plan.descending())
        parts = [_delayed(ranking_parts)(buckets[b], self.tp_above[b], self.fp_above[b], self.n_pos, want)
                 for b in desc] if want & {"auroc", "f1", "curve"} else []
        chains = {}
        for name, link, start in (("ap", ap_link, B.ap_start), ("trapezoid", trapezoid_link,
                                                                    B.pr_trapezoid_start)):
            if name in want:
                state = start()
                for b in desc:
                    state = _delayed(link)(state, buckets[b])
                chains[name] = state
        parts, chains = compute(parts, chains, scheduler=self.scheduler)
        out = dict(chains)
        if "auroc" in want:
            out["auroc"] = B.combine_auroc([p["auroc"] for p in parts])
        if "f1" in want:
            out["f1"] = B.combine_f1([p["f1"] for p in parts], self.n_pos)
        if "curve" in want:
            curves = [p["curve"] for p in parts]
            out["curve"] = tuple(np.concatenate([c[i] for c in curves]) for i in range(3))
        return out


class RegionPlan:
    """Step 1 and 2 for maps and masks: histograms of background and region keys, regions, plan."""

    def __init__(self, chunks, spatial_dims, connectivity, bucket_size, scheduler):
        self.chunks, self.spatial_dims, self.connectivity = chunks, spatial_dims, connectivity
        self.scheduler = scheduler
        if chunks:
            (hist, k), = compute(tree_sum([_delayed(region_hist)(m, t, spatial_dims, connectivity)
                                           for m, t in chunks]), scheduler=scheduler)
        else:
            hist, k = np.zeros((2, B.N_PREFIXES), np.int64), 0
        self.hist, self.n_regions = hist, int(k)
        self.n_bg, self.n_region_pixels = int(hist[0].sum()), int(hist[1].sum())
        self.plan = B.plan_buckets(hist[0] + hist[1], bucket_size)

    def buckets(self, lowest):
        return shuffle(self.chunks, region_split, region_bucket, self.plan.n_buckets - lowest,
                       (self.spatial_dims, self.connectivity, self.plan, lowest))

    def aupro(self, limits, key_dtype, s0=0.0):
        """One area per limit; the buckets the largest limit reads are shuffled once."""
        lowest = B.aupro_first_bucket(self.plan, self.hist[0], self.n_bg, max(limits), key_dtype)
        buckets = self.buckets(lowest)
        states = []
        for limit in limits:
            state = B.aupro_start(s0)
            for b in reversed(range(len(buckets))):
                state = _delayed(aupro_link)(state, buckets[b], self.n_bg, limit)
            states.append(state)
        states, = compute(states, scheduler=self.scheduler)
        return [B.aupro_finish(st, self.n_bg, self.n_regions, limit) for st, limit in zip(states, limits)]

    def pro_curve(self):
        buckets = self.buckets(0)
        state = B.pro_curve_start()
        points = []
        for b in self.plan.descending():
            link = _delayed(pro_link)(state, _delayed(pro_groups)(buckets[b]), self.n_bg, self.n_regions)
            state = _delayed(getitem)(link, 2)
            points.append(link)
        points, = compute(points, scheduler=self.scheduler)
        fpr = np.concatenate([np.zeros(1)] + [p[0] for p in points])
        pro = np.concatenate([np.zeros(1)] + [p[1] for p in points])
        return fpr, pro


def region_groups_of(plan):
    """Every group of :meth:`RegionPlan.buckets` (not collapsed), distinct scores decreasing:
    ``(dfp, dS_h, dS_l)`` concatenated on the client (a figure's curve, one point per distinct score)."""
    buckets = plan.buckets(0)
    parts, = compute([_delayed(pro_groups)(buckets[b]) for b in plan.plan.descending()], scheduler=plan.scheduler)
    if not parts:
        return np.empty(0, np.int64), np.empty(0), np.empty(0)
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))


class SProPlan(RegionPlan):
    """:class:`RegionPlan` for AU-sPRO: chunks are ``(maps, defects of those images)``."""

    def __init__(self, chunks, bucket_size, scheduler):
        self.chunks, self.scheduler = chunks, scheduler
        (hist, k, n_full), = compute(tree_sum([_delayed(spro_hist)(m, d) for m, d in chunks]),
                                     scheduler=scheduler)
        self.hist, self.n_regions, self.n_full = hist, int(k), int(n_full)
        self.n_bg, self.n_region_pixels = int(hist[0].sum()), int(hist[1].sum())
        self.plan = B.plan_buckets(hist[0] + hist[1], bucket_size)

    def buckets(self, lowest):
        return shuffle(self.chunks, spro_split, region_bucket, self.plan.n_buckets - lowest, (self.plan, lowest))


class PimoPlan:
    """AUPIMO on chunks of whole images that all hold ``n_per`` pixels per image: one size group."""

    def __init__(self, chunks, n_per, scheduler):
        self.chunks, self.n_per, self.scheduler = chunks, n_per, scheduler
        (hist, n_normal, n_anomalous), = compute(tree_sum([_delayed(pimo_hist)(m, t) for m, t in chunks]),
                                                 scheduler=scheduler)
        self.hist, self.n_normal, self.n_anomalous = hist, int(n_normal), int(n_anomalous)

    def window(self, key_dtype, upper):
        """As ``functional.pimo._window`` with one size group: the cut from the summed histogram, the
        keys above it gathered (a few per chunk), sorted, walked on the client."""
        from ..functional import pimo as P
        from ..kernels.cpu import pimo as K

        kd = np.dtype(key_dtype)
        sizes = np.array([self.n_per], np.int64)
        from_top = np.cumsum(self.hist[::-1])[::-1][None, :]
        fpr_at = P._shared_fpr_array(from_top, sizes, self.n_normal)
        bucket = int(np.flatnonzero(fpr_at >= upper)[-1])
        cut = int(kd.type(bucket) << kd.type(8 * kd.itemsize - P.TOP_BITS))
        tops, = compute([_delayed(pimo_top)(m, t, cut) for m, t in self.chunks], scheduler=self.scheduler)
        keys = np.sort(np.concatenate(tops).astype(kd, copy=False))
        out_keys = np.empty(keys.size, kd)
        out_fpr = np.empty(keys.size, np.float64)
        w = K.shared_fpr_walk(keys, np.array([0, keys.size], np.int64), np.zeros(1, np.int64), sizes,
                              self.n_normal, upper, out_keys, out_fpr)
        self.n_gathered = int(keys.size)
        return out_keys[:w], out_fpr[:w]

    def areas(self, keys, fpr, lower, upper):
        """``(areas of the anomalous images, anomalous flag per image)``, in image order; the window
        is one value of the graph, sent once to each worker that needs it."""
        import dask

        window = dask.delayed((keys, fpr, lower, upper), traverse=False)
        parts, = compute([_delayed(pimo_areas)(m, t, window) for m, t in self.chunks], scheduler=self.scheduler)
        areas = np.concatenate([p[0] for p in parts]) if parts else np.empty(0)
        flags = np.concatenate([p[1] for p in parts]) if parts else np.empty(0, bool)
        return areas, flags
