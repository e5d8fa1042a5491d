"""Bucketed metrics (refmetrics._buckets) against today's in-memory functional results, with ``==``.

Keys are split into buckets by a plan made from their prefix histogram, each bucket
sorted on its own, and the metrics formed from per-bucket parts (AUROC, F1, curves)
or carries fed in decreasing key order (AP, the PR trapezoid, AUPRO, the PRO curve).
The oracle is refmetrics.functional on the whole data in one process.
"""

import warnings

import numpy as np
import pytest

from refmetrics import _buckets as B
from refmetrics import functional as F
from refmetrics.functional import _ranked as R
from refmetrics.functional import _regions as G

BUDGETS = [1, 3, 50, 1_000, 40_000, 10**12]


def ranking_data(n, seed, ties=0, dtype=np.float32, heavy=0.02, infs=False):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(np.uint8)
    s = rng.normal(size=n) + y * 0.8
    if ties:
        s = np.round(s * ties) / ties
    s = s.astype(dtype)
    s[rng.random(n) < heavy] = 0.0  # one heavy key (one prefix over any small budget)
    s[rng.random(n) < 0.002] = -0.0  # folded onto +0.0
    if infs:
        s[rng.random(n) < 0.003] = np.inf
        s[rng.random(n) < 0.003] = -np.inf
    return s, y


def check_plan(plan, hist, budget):
    assert plan.edges[0] == 0 and plan.edges[-1] == B.N_PREFIXES
    assert np.all(np.diff(plan.edges) > 0)
    assert np.array_equal(plan.sizes, plan.per_bucket(hist))
    assert plan.sizes.sum() == hist.sum()
    for b in range(plan.n_buckets):
        if plan.sizes[b] > budget:  # only a single heavy prefix may exceed the budget
            assert np.count_nonzero(hist[plan.edges[b]:plan.edges[b + 1]]) == 1
    assert plan == B.plan_buckets(hist.copy(), budget)  # depends only on the histogram


def bucketed_ranking(s, y, budget):
    part = R.partition(R.intake_pair(s, y, None, "cpu"))
    pos, neg = part.pos.copy(), part.neg.copy()
    h_pos, h_neg = B.prefix_histogram(pos), B.prefix_histogram(neg)
    hist = h_pos + h_neg
    plan = B.plan_buckets(hist, budget)
    check_plan(plan, hist, budget)
    sp, sn = plan.split(pos), plan.split(neg)
    buckets = {b: (B.sort_keys(sp[b]), B.sort_keys(sn[b])) for b in plan.descending()}
    assert all(sp[b].size + sn[b].size == plan.sizes[b] for b in range(plan.n_buckets))
    tp_above, fp_above = plan.above(h_pos), plan.above(h_neg)
    n_pos = pos.size
    u2, p, n = B.combine_auroc([B.auroc_part(*buckets[b]) for b in plan.descending()])
    f1 = B.combine_f1([B.f1_part(*buckets[b], tp_above[b], fp_above[b], n_pos) for b in plan.descending()], n_pos)
    ap, trap = B.ap_start(), B.pr_trapezoid_start()
    walk = B.RankingWalk(n_pos)
    curves = []
    for b in plan.descending():
        ap = B.ap_feed(ap, *buckets[b])
        trap = B.pr_trapezoid_feed(trap, *buckets[b])
        walk.feed(*buckets[b])
        curves.append(B.curve_part(*buckets[b], tp_above[b], fp_above[b]))
    curve = tuple(np.concatenate([c[i] for c in curves]) for i in range(3))
    whole = R.exact_curve_counts(np.sort(pos), np.sort(neg))
    for a, b in zip(curve, whole):
        assert np.array_equal(a, b)
    assert walk.f1_best()[:2] == f1[:2] and walk.u2 == u2
    return {"auroc": float(B.Fraction(u2, 2 * p * n)), "ap": B.ap_finish(ap, n_pos),
            "trapezoid": B.pr_trapezoid_finish(trap, n_pos),
            "f1": (B.threshold_of(f1[2]), float(B.Fraction(2 * f1[0], f1[0] + f1[1] + n_pos))),
            "walk": (walk.auroc(), walk.average_precision(), walk.aupr_trapezoid()),
            "n_buckets": plan.n_buckets}


def reference_ranking(s, y):
    return {"auroc": F.auroc(s, y), "ap": F.average_precision(s, y), "trapezoid": F.aupr(s, y, curve="trapezoid"),
            "f1": F.f1_adaptive_threshold(s, y)}


@pytest.mark.parametrize("budget", BUDGETS)
@pytest.mark.parametrize("n, seed, ties, dtype, infs", [
    (20_000, 1, 64, np.float32, False),  # heavy ties
    (30_000, 2, 0, np.float32, True),  # no ties, +-inf
    (25_000, 3, 4096, np.float64, True),  # float64 keys
    (15_000, 4, 2, np.float32, False),  # a handful of distinct scores
])
def test_ranking_buckets_equal_functional(n, seed, ties, dtype, infs, budget):
    s, y = ranking_data(n, seed, ties, dtype, infs=infs)
    got, ref = bucketed_ranking(s, y, budget), reference_ranking(s, y)
    assert got["auroc"] == ref["auroc"]
    assert got["ap"] == ref["ap"]
    assert got["trapezoid"] == ref["trapezoid"]
    assert got["f1"] == ref["f1"]
    assert got["walk"] == (ref["auroc"], ref["ap"], ref["trapezoid"])
    if budget == 1:  # every non-empty prefix its own bucket
        part = R.partition(R.intake_pair(s, y, None, "cpu"))
        hist = B.prefix_histogram(part.pos) + B.prefix_histogram(part.neg)
        assert got["n_buckets"] == np.count_nonzero(hist)


def test_single_key_bucket_and_tiny_inputs():
    # all scores equal: one prefix holds every key, far above the budget
    s = np.zeros(5_000, np.float32)
    y = (np.arange(5_000) % 3 == 0).astype(np.uint8)
    got, ref = bucketed_ranking(s, y, 10), reference_ranking(s, y)
    assert got["n_buckets"] == 1
    assert (got["auroc"], got["ap"], got["trapezoid"], got["f1"]) == (ref["auroc"], ref["ap"], ref["trapezoid"],
                                                                       ref["f1"])
    assert got["auroc"] == 0.5
    s, y = np.float32([0.3, 0.1]), np.uint8([1, 0])
    assert bucketed_ranking(s, y, 1)["auroc"] == 1.0


def test_plan_rejects_bad_arguments():
    with pytest.raises(ValueError, match="budget: expected a positive int"):
        B.plan_buckets(np.zeros(B.N_PREFIXES, np.int64), 0)
    with pytest.raises(ValueError, match=r"hist: expected a prefix histogram of shape \(65536,\)"):
        B.plan_buckets(np.zeros(10, np.int64), 5)
    empty = B.plan_buckets(np.zeros(B.N_PREFIXES, np.int64), 5)
    assert empty.n_buckets == 1 and empty.sizes.tolist() == [0]


def test_split_and_plan_are_exact():
    rng = np.random.default_rng(9)
    keys = rng.integers(0, 2**32, 10_000, dtype=np.uint64).astype(np.uint32)
    hist = B.prefix_histogram(keys)
    assert np.array_equal(hist, np.bincount(keys >> 16, minlength=B.N_PREFIXES))
    plan = B.plan_buckets(hist, 700)
    pieces = plan.split(keys)
    assert max(p.size for p in pieces) <= 700
    for b, p in enumerate(pieces):  # contiguous, ascending, disjoint ranges
        assert np.all((p >> 16 >= plan.edges[b]) & (p >> 16 < plan.edges[b + 1]))
    assert np.array_equal(np.sort(np.concatenate(pieces)), np.sort(keys))
    ids = np.searchsorted(plan.edges, keys >> 16, side="right") - 1  # the oracle: each key's bucket
    sizes = rng.integers(1, 1000, keys.size).astype(np.uint32)  # a payload travels with its key, in input order
    for b, (k, v) in enumerate(plan.split(keys, sizes)):
        assert np.array_equal(k, keys[ids == b]) and np.array_equal(v, sizes[ids == b])
    with pytest.raises(ValueError, match=r"payload: expected one value per key \(10000\), received shape \(3,\)"):
        plan.split(keys, sizes[:3])
    import tracemalloc  # a counting scatter: the output and the histogram, no sort order or bucket ids

    many = rng.integers(0, 2**32, 2_000_000, dtype=np.uint64).astype(np.uint32)
    payload = many.copy()
    plan = B.plan_buckets(B.prefix_histogram(many), 1 << 18)
    plan.split(many[:10], payload[:10])
    tracemalloc.start()
    plan.split(many, payload)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < many.nbytes + payload.nbytes + (1 << 20), peak  # an argsort alone would take 16 MB
    k, v = B.sort_pairs(np.uint32([5, 3, 5, 3]), np.uint64([2, 9, 1, 4]))
    assert k.tolist() == [3, 3, 5, 5] and v.tolist() == [4, 9, 1, 2]
    k, v = B.sort_pairs(np.uint64([5, 3, 5, 3]), np.uint64([2, 9, 1, 4]))
    assert k.tolist() == [3, 3, 5, 5] and v.tolist() == [4, 9, 1, 2]


# ---------------------------------------------------------------------------
# regions: AUPRO at several limits, the PRO curve
# ---------------------------------------------------------------------------

def region_data(n_img, side, seed, grid=512, dtype=np.float32):
    rng = np.random.default_rng(seed)
    maps = np.round(rng.random((n_img, side, side)) * grid) / grid
    masks = np.zeros((n_img, side, side), np.uint8)
    for i in range(n_img):
        if i % 3 == 0:
            continue  # defect-free images
        for _ in range(rng.integers(1, 4)):
            r, c = rng.integers(0, side - 8, 2)
            h, w = rng.integers(2, 8, 2)
            masks[i, r:r + h, c:c + w] = 1
            maps[i, r:r + h, c:c + w] += rng.uniform(0, 0.5)
    maps = maps.astype(dtype)
    maps[0, 0, :3] = -0.0
    return maps, masks


def bucketed_regions(maps, masks, budget, limits):
    part = G.partition_regions(G.intake_regions(maps, masks, 2, "cpu"), 2, 1.0)
    bg, rkeys, rsizes = part.bg.copy(), part.rkeys.copy(), part.rsizes.copy()
    h_bg = B.prefix_histogram(bg)
    hist = h_bg + B.prefix_histogram(rkeys)
    plan = B.plan_buckets(hist, budget)
    check_plan(plan, hist, budget)
    sb, sr = plan.split(bg), plan.split(rkeys, rsizes)
    buckets = {b: (B.sort_keys(sb[b]),) + B.sort_pairs(*sr[b]) for b in plan.descending()}
    n_bg, k = bg.size, part.n_regions
    out = {}
    for limit in limits:
        first = B.aupro_first_bucket(plan, h_bg, n_bg, limit, bg.dtype)
        results = []
        for lowest in (0, first):  # every bucket, and only those the area reads
            state = B.aupro_start()
            for b in plan.descending():
                if b < lowest:
                    break
                state = B.aupro_feed(state, *buckets[b], n_bg, limit)
            results.append(B.aupro_finish(state, n_bg, k, limit))
        assert results[0] == results[1]
        out[limit] = results[0]
    state = B.pro_curve_start()
    fprs, pros = [np.zeros(1)], [np.zeros(1)]
    for b in plan.descending():
        fpr, pro, state = B.pro_curve_feed(state, B.pro_curve_groups(*buckets[b]), n_bg, k)
        fprs.append(fpr)
        pros.append(pro)
    out["curve"] = np.concatenate(fprs), np.concatenate(pros)
    out["n_buckets"] = plan.n_buckets
    return out


LIMITS = (0.05, 0.3, 1.0)


@pytest.mark.parametrize("budget", [1, 40, 2_000, 10**12])
@pytest.mark.parametrize("n_img, side, seed, grid, dtype", [
    (30, 48, 5, 512, np.float32),
    (24, 40, 6, 16, np.float32),  # heavy ties: few distinct scores
    (20, 40, 7, 2**20, np.float64),
])
def test_region_buckets_equal_functional(n_img, side, seed, grid, dtype, budget):
    maps, masks = region_data(n_img, side, seed, grid, dtype)
    got = bucketed_regions(maps, masks, budget, LIMITS)
    for limit in LIMITS:
        assert got[limit] == F.aupro(maps, masks, fpr_limit=limit), limit
    fpr, pro = F.pro_curve(maps, masks)
    assert np.array_equal(got["curve"][0], fpr) and np.array_equal(got["curve"][1], pro)


def test_region_collapse_across_bucket_boundaries():
    # background-only runs spanning many buckets (one pixel per bucket), a region at the very bottom
    side = 32
    maps = np.linspace(1, 2, side * side).reshape(1, side, side).astype(np.float32)
    masks = np.zeros((1, side, side), np.uint8)
    masks[0, 0, :2] = 1  # the lowest scores are the region's
    maps = np.concatenate([maps, maps[::-1] * 0 + 1.5])  # a defect-free image, one tied score
    masks = np.concatenate([masks, np.zeros_like(masks)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = bucketed_regions(maps, masks, 1, LIMITS)
    for limit in LIMITS:
        assert got[limit] == F.aupro(maps, masks, fpr_limit=limit)
    assert got["n_buckets"] > 1
