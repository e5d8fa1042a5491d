"""Buckets of keys: exact metrics from key ranges processed one at a time.

A *bucket* is a contiguous range of key prefixes, the top :data:`PREFIX_BITS`
bits of the order-preserving keys (``kernels/cpu/keys.py``). Every pixel with a
given key falls in one bucket, so a bucket boundary is always a *group*
boundary: the groups of the whole data are the groups of the buckets, taken in
decreasing key order.

This module holds what every bucketed path (the Dask graph, a spilled state)
shares, and builds on the in-memory drivers' kernels and group walkers:

- :func:`prefix_histogram` and :func:`plan_buckets`: a :class:`BucketPlan`,
  which depends only on the histogram and the budget;
- per-bucket *parts* that need only the counts above the bucket (known from
  the histogram), so they run in parallel, and their exact combiners:
  :func:`auroc_part` / :func:`combine_auroc` (Python ints),
  :func:`f1_part` / :func:`combine_f1` (exact integer comparison, the
  kernel's tie rule), :func:`curve_part` (counts plus offsets);
- *carries* for the double-double sums, which are not associative: the state
  of the one-process walk, fed bucket by bucket in decreasing key order. The
  kernels then run the same operations on the same values as the in-memory
  walk, so the results are the same bits by construction: AP
  (:func:`ap_start`, :func:`ap_feed`, :func:`ap_finish`), the PR trapezoid
  (``pr_trapezoid_*``), AUPRO (``aupro_*``, with the collapse of
  background-only runs across bucket boundaries) and the PRO curve points
  (``pro_curve_*``).

Every ``*_feed`` and ``*_part`` takes the keys of one bucket sorted ascending
(:func:`sort_keys`, :func:`sort_pairs`); every ``*_feed`` returns a new state
and leaves the one it was given unchanged, so states can travel between
processes (they are small NumPy arrays and ints).
"""

from fractions import Fraction

import numpy as np
from numba import njit

from .functional import _ranked as R
from .functional import _regions as G
from .kernels.cpu import buckets as KB
from .kernels.cpu import keys as KEYS
from .kernels.cpu import ranking as K
from .kernels.cpu import regions as KG
from .kernels.cpu._int128 import count_dd
from .kernels.cpu._sum import add_dd, dd_over

#: bits of the key that choose its bucket (the prefix)
PREFIX_BITS = 16
#: number of distinct prefixes
N_PREFIXES = 1 << PREFIX_BITS
#: default bucket size, in keys (64 MiB of uint32 keys)
DEFAULT_BUDGET = 1 << 24


def prefix_shift(key_dtype):
    """How far a key of ``key_dtype`` (uint32 or uint64) is shifted right to leave its prefix."""
    return np.dtype(key_dtype).itemsize * 8 - PREFIX_BITS


def prefix_histogram(keys, hist=None):
    """Counts of ``keys`` per prefix: an int64 array of :data:`N_PREFIXES` (added to ``hist`` if given)."""
    if hist is None:
        hist = np.zeros(N_PREFIXES, np.int64)
    keys = np.ascontiguousarray(keys)
    if keys.size:
        KG.top_histogram(keys, keys.dtype.type(prefix_shift(keys.dtype)), hist)
    return hist


class BucketPlan:
    """Contiguous prefix ranges, ascending: bucket ``b`` holds the prefixes
    ``edges[b] <= prefix < edges[b + 1]``; ``sizes[b]`` keys fall in it.

    ``edges[0] == 0`` and ``edges[-1] == N_PREFIXES``: every key has a bucket.
    """

    __slots__ = ("edges", "sizes", "_table")

    def __init__(self, edges, sizes):
        self.edges = np.asarray(edges, np.int64)
        self.sizes = np.asarray(sizes, np.int64)
        self._table = None

    def __repr__(self):
        return f"BucketPlan({self.n_buckets} buckets, largest {int(self.sizes.max()):,} keys)"

    def __eq__(self, other):
        return isinstance(other, BucketPlan) and np.array_equal(self.edges, other.edges) \
            and np.array_equal(self.sizes, other.sizes)

    def __getstate__(self):
        return self.edges, self.sizes

    def __setstate__(self, state):
        self.edges, self.sizes = state
        self._table = None

    @property
    def n_buckets(self):
        return self.sizes.size

    def descending(self):
        """Bucket indices in decreasing key order (the order of every walk)."""
        return range(self.n_buckets - 1, -1, -1)

    def per_bucket(self, hist):
        """Counts of a prefix histogram per bucket (int64, ascending)."""
        return np.add.reduceat(np.asarray(hist, np.int64), self.edges[:-1])

    def above(self, hist):
        """Per bucket, the counts of ``hist`` in the buckets above it (higher keys), as Python ints."""
        per = self.per_bucket(hist)
        out = [0] * self.n_buckets
        acc = 0
        for b in self.descending():
            out[b] = acc
            acc += int(per[b])
        return out

    def bucket_of_prefix(self, prefix):
        """The bucket holding ``prefix``."""
        return int(np.searchsorted(self.edges, prefix, side="right")) - 1

    def split(self, keys, payload=None):
        """The keys of each bucket (ascending bucket order), in their input order within a bucket.

        With ``payload`` (one value per key), a list of ``(keys, payload)`` pairs. A counting scatter:
        the output (and payload) arrays and a prefix histogram are all it allocates, the keys' own size
        (plus the payload's) and 512 KiB.
        """
        keys = np.ascontiguousarray(keys)
        if self._table is None:  # the bucket of each prefix
            self._table = np.repeat(np.arange(self.n_buckets, dtype=np.uint16), np.diff(self.edges))
        ends = np.zeros(self.n_buckets + 1, np.int64)
        np.cumsum(self.per_bucket(prefix_histogram(keys)), out=ends[1:])
        shift = keys.dtype.type(prefix_shift(keys.dtype))
        out = np.empty_like(keys)
        if payload is None:
            KB.scatter_keys(keys, shift, self._table, ends[:-1].copy(), out)
            return [out[ends[b]:ends[b + 1]] for b in range(self.n_buckets)]
        payload = np.ascontiguousarray(payload)
        if payload.shape != keys.shape:
            raise ValueError(f"payload: expected one value per key ({keys.size}), received shape {payload.shape}")
        out_payload = np.empty_like(payload)
        _scatter_pairs(keys, payload, shift, self._table, ends[:-1].copy(), out, out_payload)
        return [(out[ends[b]:ends[b + 1]], out_payload[ends[b]:ends[b + 1]]) for b in range(self.n_buckets)]


@njit(cache=True, nogil=True)
def _scatter_pairs(keys, payload, shift, table, cursor, out, out_payload):
    """Each key and its payload value to position ``cursor[bucket]`` of ``out`` / ``out_payload``."""
    for i in range(keys.size):
        k = keys[i]
        b = table[np.intp(k >> shift)]
        out[cursor[b]] = k
        out_payload[cursor[b]] = payload[i]
        cursor[b] += 1


def plan_buckets(hist, budget=DEFAULT_BUDGET):
    """The buckets of a prefix histogram: contiguous prefix ranges, ascending, each
    holding at most ``budget`` keys, except a single prefix holding more, which is a
    bucket of its own. Greedy from the lowest prefix; empty prefixes join the bucket
    below them. Depends only on ``hist`` and ``budget``.
    """
    hist = np.asarray(hist, np.int64)
    if hist.shape != (N_PREFIXES,):
        raise ValueError(f"hist: expected a prefix histogram of shape ({N_PREFIXES},), received {hist.shape}")
    if isinstance(budget, (bool, np.bool_)) or not isinstance(budget, (int, np.integer)) or budget < 1:
        raise ValueError(f"budget: expected a positive int (keys per bucket), received {budget!r}")
    edges = [0]
    sizes = []
    acc = 0
    for p in np.flatnonzero(hist):
        c = int(hist[p])
        if acc and acc + c > budget:
            edges.append(int(p))
            sizes.append(acc)
            acc = 0
        acc += c
    edges.append(N_PREFIXES)
    sizes.append(acc)
    return BucketPlan(edges, sizes)


# ---------------------------------------------------------------------------
# sorting one bucket
# ---------------------------------------------------------------------------

def sort_keys(keys):
    """The keys of a bucket sorted ascending (a new array). Integer keys have one sorted
    order, whatever the sort: NumPy's (SIMD where the CPU has it) gives today's arrays."""
    return np.sort(np.asarray(keys))


def sort_pairs(keys, sizes):
    """Region pixels ``(keys, sizes)`` sorted by key, then size (new arrays; sizes as uint64)."""
    keys = np.asarray(keys)
    sizes = np.asarray(sizes).astype(np.uint64, copy=False)
    if keys.dtype == np.uint32 and (not sizes.size or int(sizes.max()) < 1 << 32):
        packed = np.sort((keys.astype(np.uint64) << np.uint64(32)) | sizes)
        return (packed >> np.uint64(32)).astype(np.uint32), packed & np.uint64(0xFFFFFFFF)
    order = np.lexsort((sizes, keys))
    return keys[order], sizes[order]


# ---------------------------------------------------------------------------
# parts: per bucket, with the counts above only; exact combiners
# ---------------------------------------------------------------------------

def auroc_part(pos, neg):
    """``(u2_b, P_b, N_b)``: twice the Mann-Whitney U of the bucket alone, and its counts."""
    return R.auroc_u2(R.exact_groups(pos, neg)), int(pos.size), int(neg.size)


def combine_auroc(parts_desc):
    """``(2U, P, N)`` as Python ints from the parts in decreasing key order.

    ``2U = sum_b (u2_b + 2 T_b N_b)`` with ``T_b`` the positives above bucket
    ``b``: exact at any size. AUROC is ``Fraction(2U, 2 P N)``.
    """
    u2 = p = n = 0
    for u2_b, p_b, n_b in parts_desc:
        u2 += int(u2_b) + 2 * p * int(n_b)
        p += int(p_b)
        n += int(n_b)
    return u2, p, n


def f1_part(pos, neg, tp_above, fp_above, n_pos):
    """The bucket's best ``(tp, fp, key)`` (key a one-element key array), counts starting
    at those above it; None when the bucket is empty."""
    state = np.array([tp_above, fp_above, 0, 0, 0], np.int64)
    best = np.zeros(1, pos.dtype)
    for keys, dtp, dfp in R.exact_groups(pos, neg):
        K.acc_f1_max(keys, dtp, dfp, n_pos, state, best)
    if not state[4]:
        return None
    return int(state[2]), int(state[3]), best


def _f1_at_least(a, b, n_pos):
    """Whether F1 at counts ``a = (tp, fp)`` is at least F1 at ``b``, exactly (Python ints)."""
    return a[0] * (b[0] + b[1] + n_pos) >= b[0] * (a[0] + a[1] + n_pos)


def combine_f1(parts_desc, n_pos):
    """The overall best ``(tp, fp, key)`` from the parts in decreasing key order: a later
    (lower-threshold) part replaces the best on an equal F1, the kernel's rule.
    ``(0, 0, None)`` when every part is None."""
    best = None
    for cand in parts_desc:
        if cand is not None and (best is None or _f1_at_least(cand, best, n_pos)):
            best = cand
    return (0, 0, None) if best is None else best


def curve_part(pos, neg, tp_above, fp_above):
    """The bucket's curve counts: ``(thresholds decreasing, cumulative tp, cumulative fp)``,
    cumulated from the counts above it. Concatenated in decreasing bucket order they
    are the whole curve's."""
    thr, tp, fp = R.exact_curve_counts(pos, neg)
    return thr, tp + tp_above, fp + fp_above


# ---------------------------------------------------------------------------
# carries: the double-double state of the one-process walk, bucket to bucket
# ---------------------------------------------------------------------------

def ap_start():
    """AP state before the highest bucket: ``(counts [tp, fp], sums [hi, lo])``."""
    return np.zeros(2, np.int64), np.zeros(2, np.float64)


def ap_feed(state, pos, neg):
    counts, sums = state[0].copy(), state[1].copy()
    for _keys, dtp, dfp in R.exact_groups(pos, neg):
        K.acc_average_precision(dtp, dfp, counts, sums)
    return counts, sums


def ap_finish(state, n_pos):
    return float(K.finish_average_precision(state[1], *count_dd(int(n_pos))))


def pr_trapezoid_start():
    """anomalib 1.x trapezoid state: ``(counts[4], sums[8])`` as :func:`_ranked.pr_trapezoid` starts."""
    sums = np.zeros(8, np.float64)
    sums[2] = 1.0
    return np.zeros(4, np.int64), sums


def pr_trapezoid_feed(state, pos, neg):
    counts, sums = state[0].copy(), state[1].copy()
    for _keys, dtp, dfp in R.exact_groups(pos, neg):
        K.acc_pr_trapezoid(dtp, dfp, counts, sums)
    return counts, sums


def pr_trapezoid_finish(state, n_pos):
    counts, sums = state[0].copy(), state[1].copy()
    return float(K.finish_pr_trapezoid(counts, sums, *count_dd(int(n_pos))))


def _region_groups(bg, rkeys, rsizes, collapse):
    """All groups of one bucket as three arrays (the walker reuses its buffers: copied)."""
    chunks = [tuple(np.array(a) for a in c) for c in G.exact_region_groups(bg, rkeys, rsizes, collapse)]
    if not chunks:
        return np.empty(0, np.int64), np.empty(0), np.empty(0)
    return tuple(np.concatenate([c[i] for c in chunks]) for i in range(3))


def aupro_start(s0=0.0):
    """AUPRO state before the highest bucket: ``(counts [fp, done], sums [area, S], pending_bg)``.

    ``s0``: ``S`` at the start of the curve (AU-sPRO starts at ``n_full``, its
    defects saturated by zero pixels).

    ``pending_bg``: the background pixels of a background-only group at the bottom
    of the buckets fed so far, not yet accumulated. The one-process walk collapses
    consecutive background-only groups into one (``collapse=True``), across bucket
    boundaries too; holding the last one back until the next group is known
    reproduces that.
    """
    return np.zeros(2, np.int64), np.array([0.0, 0.0, float(s0), 0.0]), 0


def aupro_done(state):
    """Whether the walk has passed the FPR limit (later buckets change nothing)."""
    return bool(state[0][1])


def aupro_feed(state, bg, rkeys, rsizes, n_bg, limit):
    """Feed one bucket: sorted background keys, region pixels sorted by (key, size)."""
    counts, sums, pending = state[0].copy(), state[1].copy(), int(state[2])
    if counts[1]:
        return counts, sums, 0
    dfp, dsh, dsl = _region_groups(bg, rkeys, rsizes, collapse=True)
    if not dfp.size:
        return counts, sums, pending
    if pending:
        if dsh[0] == 0.0:  # background-only: one group with the pending run
            dfp[0] += pending
        else:
            dfp = np.concatenate([[pending], dfp])
            dsh = np.concatenate([[0.0], dsh])
            dsl = np.concatenate([[0.0], dsl])
        pending = 0
    if dsh[-1] == 0.0:
        pending = int(dfp[-1])
        dfp, dsh, dsl = dfp[:-1], dsh[:-1], dsl[:-1]
    if dfp.size:
        KG.acc_aupro(dfp, dsh, dsl, n_bg, limit, counts, sums)
        if counts[1]:
            pending = 0
    return counts, sums, pending


def aupro_finish(state, n_bg, n_regions, limit):
    counts, sums, pending = state[0].copy(), state[1].copy(), int(state[2])
    if pending and not counts[1]:
        KG.acc_aupro(np.array([pending], np.int64), np.zeros(1), np.zeros(1), n_bg, limit, counts, sums)
    return float(KG.finish_aupro(sums, n_bg, n_regions, limit))


@njit(cache=True, nogil=True)
def _curve_points_from(dfp, dsh, dsl, n_bg, n_regions, fpr, pro, state_i, state_f):
    """``kernels.cpu.regions.curve_points`` continued from ``fp = state_i[0]`` and
    ``S = state_f`` (updated in place): the same operations on the same values."""
    fp = state_i[0]
    s_h = state_f[0]
    s_l = state_f[1]
    for g in range(dfp.size):
        fp += dfp[g]
        s_h, s_l = add_dd(s_h, s_l, dsh[g], dsl[g])
        fpr[g] = fp / n_bg if n_bg > 0 else np.nan
        pro[g] = dd_over(s_h, s_l, np.float64(n_regions)) if n_regions > 0 else np.nan
    state_i[0] = fp
    state_f[0] = s_h
    state_f[1] = s_l


def pro_curve_start():
    """PRO curve state before the highest bucket: ``(fp, S as [hi, lo])``."""
    return np.zeros(1, np.int64), np.zeros(2, np.float64)


def pro_curve_groups(bg, rkeys, rsizes):
    """The groups of one bucket for the PRO curve (not collapsed): ``(dfp, dS_h, dS_l)``.
    Parallel per bucket; :func:`pro_curve_feed` turns them into points in order."""
    return _region_groups(bg, rkeys, rsizes, collapse=False)


def pro_curve_feed(state, groups, n_bg, n_regions):
    """``(fpr, pro, new state)``: the points of one bucket's groups (from :func:`pro_curve_groups`)."""
    dfp, dsh, dsl = groups
    si, sf = state[0].copy(), state[1].copy()
    fpr = np.empty(dfp.size)
    pro = np.empty(dfp.size)
    _curve_points_from(dfp, dsh, dsl, n_bg, n_regions, fpr, pro, si, sf)
    return fpr, pro, (si, sf)


def threshold_of(key):
    """The score (float) of a key (a one-element key array)."""
    return float(KEYS.decode_keys(key)[0])


def aupro_first_bucket(plan, hist_bg, n_bg, fpr_limit, key_dtype):
    """The lowest bucket an AUPRO up to ``fpr_limit`` reads (the buckets below are never
    needed): the bucket of ``_regions.cut_for_limit`` of the background keys' prefix histogram."""
    cut = G.cut_for_limit(np.asarray(hist_bg, np.int64), n_bg, fpr_limit, np.dtype(key_dtype))
    return plan.bucket_of_prefix(int(cut) >> prefix_shift(key_dtype))


# ---------------------------------------------------------------------------
# sequential walks: every accumulator, one group walk per bucket (spilled states)
# ---------------------------------------------------------------------------

class RankingWalk:
    """AUROC, AP, the PR trapezoid and F1-max fed bucket by bucket in decreasing key
    order, one group walk per bucket; the F1 state is carried (no combine needed).

    ``n_pos`` (all buckets) is needed from the start, by F1.
    """

    def __init__(self, n_pos):
        self.n_pos = int(n_pos)
        self.u2 = self.tp = self.fp = 0
        self.ap = ap_start()
        self.trapezoid = pr_trapezoid_start()
        self.f1_state = np.zeros(5, np.int64)
        self.f1_key = None

    def feed(self, pos, neg):
        """One bucket: its positive and negative keys, each sorted ascending."""
        local = np.zeros(3, np.int64)  # acc_auroc's state: tp, 2U low, 2U high
        ap_c, ap_s = self.ap
        tr_c, tr_s = self.trapezoid
        if self.f1_key is None:
            self.f1_key = np.zeros(1, pos.dtype)
        for keys, dtp, dfp in R.exact_groups(pos, neg):
            K.acc_auroc(dtp, dfp, local)
            K.acc_average_precision(dtp, dfp, ap_c, ap_s)
            K.acc_pr_trapezoid(dtp, dfp, tr_c, tr_s)
            K.acc_f1_max(keys, dtp, dfp, self.n_pos, self.f1_state, self.f1_key)
        self.u2 += K.auroc_state_value(local) + 2 * self.tp * int(neg.size)
        self.tp += int(pos.size)
        self.fp += int(neg.size)

    def auroc(self):
        return float(Fraction(self.u2, 2 * self.tp * self.fp))

    def average_precision(self):
        return ap_finish(self.ap, self.n_pos)

    def aupr_trapezoid(self):
        return pr_trapezoid_finish(self.trapezoid, self.n_pos)

    def f1_best(self):
        """``(tp, fp, key)`` at the largest F1 (ties to the lowest threshold); key None if no group."""
        if not self.f1_state[4]:
            return 0, 0, None
        return int(self.f1_state[2]), int(self.f1_state[3]), self.f1_key
