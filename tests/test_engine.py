"""The key-range engine (issue 16, section 1): threads and sorts change nothing, bit for bit.

The reference ("today") is the single-threaded whole-array path of ``_ranked.py``
(partition, one LSD radix sort per side, one sequential group walk), which every
input below ``_engine.SMALL`` elements still takes: setting ``SMALL`` above the
input size selects it. The engine is forced with ``SMALL = 0`` and, for many
ranges, a tiny range target. Oracles: ``tests/naive.py`` (exact Fractions) and
NumPy's sort of the keys.
"""

import math
import os
import warnings
from fractions import Fraction

import numpy as np
import pytest

import refmetrics as rm
from refmetrics import _threads as TH
from refmetrics import functional as F
from refmetrics.functional import _engine as E
from refmetrics.functional import _ranked as R
from refmetrics.kernels.cpu import buckets as KB
from refmetrics.kernels.cpu import keys as KEYS

from . import naive
from .checks import close

CONFIGS = [(t, s) for t in (1, 2, 3) for s in ("radix", "numpy")]
RANGES = [None, 5]  # the default target, and tiny ranges (many of them)


@pytest.fixture(autouse=True)
def _restore():
    threads, sort, small, slice_ = TH.get_num_threads(), TH.get_sort(), E.SMALL, E.MIN_SLICE
    yield
    rm.set_num_threads(threads)
    rm.set_sort(sort)
    E.SMALL, E.MIN_SLICE = small, slice_


def _configure(monkeypatch, threads, sort, target):
    rm.set_num_threads(threads)
    rm.set_sort(sort)
    E.SMALL = 0
    E.MIN_SLICE = 8  # several input slices even for small inputs
    if target is not None:
        monkeypatch.setattr(E, "RANGE_TARGET", target)


def _today(fn):
    """``fn()`` on the single-threaded whole-array path (today's code)."""
    small, threads = E.SMALL, TH.get_num_threads()
    u2, f1, ap = R.exact_auroc_u2, R.exact_f1_best, R.exact_average_precision
    E.SMALL = 1 << 62
    rm.set_num_threads(1)
    # AUROC and F1-max from one sequential walk over all groups, as before the per-range parts
    R.exact_auroc_u2 = lambda state: R.auroc_u2(R.exact_groups(*state.sorted()))
    R.exact_f1_best = lambda state: R.f1_best(R.exact_groups(*state.sorted()), state.n_pos)
    R.exact_average_precision = lambda state: R.average_precision(R.exact_groups(*state.sorted()), state.n_pos)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn()
    finally:
        E.SMALL = small
        R.exact_auroc_u2, R.exact_f1_best, R.exact_average_precision = u2, f1, ap
        rm.set_num_threads(threads)


def _metrics(preds, target, ignore_index=None):
    kw = {"ignore_index": ignore_index}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = {
            "auroc": F.auroc(preds, target, **kw),
            "ap": F.average_precision(preds, target, **kw),
            "aupr": F.aupr(preds, target, curve="trapezoid", **kw),
            "f1_max": F.f1_max(preds, target, **kw),
            "f1_adaptive": F.f1_adaptive_threshold(preds, target, **kw),
        }
        out["roc"] = F.roc_curve(preds, target, **kw)
    return out


def _same(a, b):
    """Bit-identical results: floats (nan equals nan), tuples and arrays of them."""
    if isinstance(a, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)
    a, b = float(a), float(b)
    return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))


def _hard_scores(n, dtype, rng):
    """Ties, +0.0/-0.0 (half the scores exact zeros), +-inf, a heavy quantized part."""
    s = (rng.integers(-300, 300, n) / 64.0).astype(dtype)  # quantized: many ties
    zeros = rng.random(n) < 0.5
    s[zeros] = np.where(rng.random(int(zeros.sum())) < 0.5, dtype(0.0), dtype(-0.0))
    s[rng.random(n) < 0.001] = np.inf
    s[rng.random(n) < 0.001] = -np.inf
    tail = rng.random(n) < 0.2
    s[tail] = rng.standard_normal(int(tail.sum())).astype(dtype)  # distinct values too
    return s


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_branchless_key_is_the_key(dtype):
    kd = KEYS.KEY_OF[np.dtype(dtype)]
    rng = np.random.default_rng(1)
    bits = rng.integers(0, np.iinfo(kd).max, 20000, dtype=kd, endpoint=True)
    c = KEYS.CONSTS[kd]
    bits[:6] = np.array([0, c[0], c[2], c[2] | c[0], 1, c[0] | kd.type(1)], kd)  # +-0, +-inf, +-denormal
    values = bits.view(dtype)
    ok = ~np.isnan(values)
    labels = np.ones(int(ok.sum()), np.uint8)
    pos, _, pst, _ = E.partition_scores(bits[ok], labels, False, np.uint8(0), lambda a, b: None)
    E.sort_planned(pos, np.empty(0, kd), pst, np.zeros_like(pst))
    assert np.array_equal(pos, np.sort(KEYS.keys_of(values[ok])))


@pytest.mark.parametrize("threads,sort", CONFIGS)
@pytest.mark.parametrize("target_size", RANGES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_metrics_are_bit_identical_to_today_and_sorted_arrays_equal(monkeypatch, threads, sort, target_size,
                                                                     dtype):
    rng = np.random.default_rng(16)
    n = 300_000 if target_size is None else 3_000
    preds = _hard_scores(n, dtype, rng)
    target = (rng.random(n) < 0.3).astype(np.uint8)
    target[rng.random(n) < 0.05] = 255
    expected = _today(lambda: _metrics(preds, target, ignore_index=255))
    _configure(monkeypatch, threads, sort, target_size)
    got = _metrics(preds, target, ignore_index=255)
    for name in expected:
        assert _same(got[name], expected[name]), (name, got[name], expected[name])
    # the sorted arrays themselves
    state = F.ranking.ranking_state(preds, target, None, 255, "cpu")
    assert state.parts[0].ranges is not None  # the engine ran
    pos, neg = state.sorted()
    keep = target != 255
    keys = KEYS.keys_of(preds[keep])
    assert np.array_equal(pos, np.sort(keys[target[keep] == 1]))
    assert np.array_equal(neg, np.sort(keys[target[keep] == 0]))


@pytest.mark.parametrize("threads,sort", CONFIGS)
def test_many_tiny_ranges_against_the_oracles(monkeypatch, threads, sort):
    rng = np.random.default_rng(7)
    preds = _hard_scores(400, np.float32, rng)
    target = (rng.random(400) < 0.4).astype(np.uint8)
    _configure(monkeypatch, threads, sort, 3)
    assert float(naive.auroc(preds, target)) == F.auroc(preds, target)
    assert float(naive.f1_max(preds, target)) == F.f1_max(preds, target)
    assert close(F.average_precision(preds, target), naive.average_precision(preds, target))
    pst, _ = R.partition(R.intake_pair(preds, target, None, "cpu")).ranges
    assert pst.size > 20  # many ranges


@pytest.mark.parametrize("threads,sort", CONFIGS)
def test_one_class_and_empty_sides(monkeypatch, threads, sort):
    rng = np.random.default_rng(3)
    preds = _hard_scores(5_000, np.float32, rng)
    cases = [np.zeros(5_000, np.uint8), np.ones(5_000, np.uint8), np.full(5_000, 255, np.uint8)]
    expected = [_today(lambda t=t: _metrics(preds, t, ignore_index=255)) for t in cases]
    _configure(monkeypatch, threads, sort, 50)
    for t, exp in zip(cases, expected):
        got = _metrics(preds, t, ignore_index=255)
        for name in exp:
            assert _same(got[name], exp[name]), (name, got[name], exp[name])


@pytest.mark.parametrize("threads,sort", CONFIGS)
def test_batches_and_merged_states_replan_the_keys(monkeypatch, threads, sort):
    rng = np.random.default_rng(5)
    preds = _hard_scores(20_000, np.float32, rng)
    target = (rng.random(20_000) < 0.3).astype(np.uint8)
    wide = preds.astype(np.float64) / 3  # a float64 batch: every key is widened
    expected = _today(lambda: (F.auroc(np.concatenate([preds, wide]), np.concatenate([target, target])),
                               F.f1_max(np.concatenate([preds, wide]), np.concatenate([target, target]))))
    _configure(monkeypatch, threads, sort, 100)
    a, f = rm.AUROC(), rm.F1Max()
    for m in (a, f):
        m.update(preds[:7_000], target[:7_000])
        other = type(m)()
        other.update(preds[7_000:], target[7_000:])
        other.update(wide, target)
        m.merge(other)
    assert (float(a.compute()), float(f.compute())) == expected


@pytest.mark.parametrize("threads,sort", CONFIGS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pixel_state_metrics_are_bit_identical(monkeypatch, threads, sort, dtype):
    rng = np.random.default_rng(11)
    maps = (rng.integers(0, 40, (12, 48, 40)) / 39.0).astype(dtype)
    maps[::3] = rng.standard_normal((4, 48, 40)).astype(dtype)
    maps[1, :5] = -0.0
    masks = np.zeros(maps.shape, np.uint8)
    masks[1, 10:20, 5:15] = 1
    masks[4, 30:, 30:] = 1
    masks[7, 2:4, 2:30] = 1
    masks[7, 40:45, 1:3] = 1

    def run():
        state = rm.PixelState(maps.size, dtype)
        for m, g in zip(maps, masks):
            state.add(m, g)
        state.finish()
        return (state.auroc(), state.average_precision(), state.f1_max(), state.aupro(0.3), state.aupro(0.05),
                state.sorted_keys()[0].copy(), state.sorted_keys()[1].copy(),
                F.aupro(maps, masks, fpr_limit=0.3))

    expected = _today(run)
    _configure(monkeypatch, threads, sort, 200)
    got = run()
    for name, g, e in zip(("auroc", "ap", "f1", "aupro", "aupro05", "bg", "defect", "F.aupro"), got, expected):
        assert _same(g, e), name


@pytest.mark.parametrize("sort", ["radix", "numpy"])
def test_pixel_state_against_the_oracle_with_many_ranges(monkeypatch, sort):
    rng = np.random.default_rng(12)
    maps = (rng.integers(0, 12, (4, 9, 8)) / 11.0).astype(np.float32)
    masks = np.zeros(maps.shape, np.uint8)
    masks[1, 2:5, 2:6] = 1
    masks[3, 6:, :3] = 1
    masks[3, 0, 7] = 1
    _configure(monkeypatch, 3, sort, 4)
    state = rm.PixelState(maps.size)
    for m, g in zip(maps, masks):
        state.add(m, g)
    state.finish()
    assert float(naive.auroc(maps, masks)) == state.auroc()
    assert float(naive.f1_max(maps, masks)) == state.f1_max()
    assert close(state.aupro(0.3), naive.aupro(maps, masks, fpr_limit=0.3))


def test_the_plan_does_not_depend_on_the_threads(monkeypatch):
    rng = np.random.default_rng(2)
    bits = rng.standard_normal(100_000).astype(np.float32).view(np.uint32)
    labels = (rng.random(100_000) < 0.5).astype(np.uint8)
    plans = []
    for t in (1, 2, 3):
        _configure(monkeypatch, t, "radix", 1000)
        _, _, pst, nst = E.partition_scores(bits, labels, False, np.uint8(0), lambda a, b: None)
        plans.append((pst, nst))
    assert all(np.array_equal(p[0], plans[0][0]) and np.array_equal(p[1], plans[0][1]) for p in plans)


def test_nan_and_bad_labels_raise_before_anything_is_written(monkeypatch):
    _configure(monkeypatch, 2, "radix", None)
    preds = np.linspace(0, 1, 1000, dtype=np.float32)
    target = np.zeros(1000, np.uint8)
    target[::2] = 1
    bad = preds.copy()
    bad[7] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        F.auroc(bad, target)
    labels = target.copy()
    labels[3] = 2
    with pytest.raises(ValueError, match="target"):
        F.auroc(preds, labels)


def test_per_range_parts_equal_the_walk():
    rng = np.random.default_rng(9)
    pos = np.sort(rng.integers(0, 50, 3000).astype(np.uint32))
    neg = np.sort(rng.integers(0, 60, 5000).astype(np.uint32))
    for target in (1, 7, 100, 10_000):
        pst, nst = E.sample_ranges(pos, neg, target)
        assert E.auroc_u2(pos, neg, pst, nst) == R.auroc_u2(R.exact_groups(pos, neg))
        tp, fp, key = E.f1_best(pos, neg, pst, nst)
        etp, efp, ekey = R.f1_best(R.exact_groups(pos, neg), pos.size)
        assert (tp, fp, int(key[0])) == (etp, efp, int(ekey[0]))
        expected = R.average_precision(R.exact_groups(pos, neg), pos.size)
        for block in (1, 3, None):
            chunks = list(E.positive_groups(pos, neg, pst, nst, block))
            dtp = np.concatenate([c[1] for c in chunks])
            dfp = np.concatenate([c[2] for c in chunks])
            assert dtp.sum() == pos.size and dfp.sum() <= neg.size and np.all(dtp > 0)
            assert R.average_precision(chunks, pos.size) == expected


def _walk_cases(rng):
    yield np.sort(rng.integers(0, 50, 3000).astype(np.uint32)), np.sort(rng.integers(0, 60, 5000).astype(np.uint32))
    yield np.arange(100, 200, dtype=np.uint32), np.arange(0, 300, 3, dtype=np.uint32)  # negatives above all
    yield np.arange(0, 50, dtype=np.uint32), np.arange(60, 90, dtype=np.uint32)  # every positive below
    yield np.arange(60, 90, dtype=np.uint32), np.arange(0, 50, dtype=np.uint32)  # every positive above
    yield np.full(7, 5, np.uint32), np.full(9, 5, np.uint32)  # one tied group
    yield np.sort(rng.integers(0, 1000, 500).astype(np.uint64)), np.empty(0, np.uint64)  # no negative


def test_one_walk_equals_the_separate_walks():
    """``walk_all`` (what a PixelState computes AUROC, AP and F1-max from) against the sequential
    walk over every group (today's accumulators), for every range size and block size."""
    rng = np.random.default_rng(19)
    for pos, neg in _walk_cases(rng):
        u2 = R.auroc_u2(R.exact_groups(pos, neg))
        ap = R.average_precision(R.exact_groups(pos, neg), pos.size)
        etp, efp, ekey = R.f1_best(R.exact_groups(pos, neg), pos.size)
        for target in (1, 7, 100, 10_000):
            pst, nst = E.sample_ranges(pos, neg, target)
            for threads in (1, 2, 3):
                rm.set_num_threads(threads)
                for block in (1, 3, None):
                    got_u2, got_ap, (tp, fp, key) = E.walk_all(pos, neg, pst, nst, block)
                    assert got_u2 == u2 if neg.size else got_u2 == 0
                    assert _same(got_ap, ap)
                    assert (tp, fp, int(key[0])) == (etp, efp, int(ekey[0]))
    empty, neg = np.empty(0, np.uint32), np.arange(5, dtype=np.uint32)
    u2, ap, f1 = E.walk_all(empty, neg, *E.sample_ranges(empty, neg))
    assert u2 == 0 and math.isnan(ap) and f1 == (0, 0, None)


def test_pixel_state_walks_its_keys_once(monkeypatch):
    """A finished PixelState's AUROC, AP and F1-max come from one walk, whatever the order asked."""
    rng = np.random.default_rng(23)
    maps = rng.standard_normal((6, 30, 20)).astype(np.float32)
    maps[:, :4] = 0.25  # ties across images
    masks = np.zeros(maps.shape, np.uint8)
    masks[2, 5:15, 3:9] = 1
    masks[5, 20:, 10:] = 1
    expected = (F.auroc(maps, masks), F.average_precision(maps, masks), F.f1_max(maps, masks))
    _configure(monkeypatch, 2, "radix", 50)
    calls = []
    walk = E.walk_all
    monkeypatch.setattr(E, "walk_all", lambda *a, **k: calls.append(1) or walk(*a, **k))
    for order in ((0, 1, 2), (2, 1, 0), (1, 0, 2)):
        state = rm.PixelState(maps.size)
        for m, g in zip(maps, masks):
            state.add(m, g)
        state.finish()
        fns = (state.auroc, state.average_precision, state.f1_max)
        got = {i: fns[i]() for i in order}
        assert tuple(got[i] for i in range(3)) == expected
    assert len(calls) == 3


def test_the_range_sort_sorts():
    rng = np.random.default_rng(4)
    from refmetrics.kernels.cpu import ranking as KR

    for kd in (np.uint32, np.uint64):
        shifts = KR.digit_shifts(kd)
        for n in (0, 1, 63, 64, 5000):
            a = rng.integers(0, np.iinfo(kd).max, n, dtype=kd, endpoint=True)
            a[: n // 2] = a[0] if n else 0  # a heavy key
            expected = np.sort(a)
            KB.sort_range(a, np.empty(n, kd), np.empty((shifts.size - 1, KR.RADIX_SIZE), np.int64), shifts)
            assert np.array_equal(a, expected)


def test_threads_settings():
    rm.set_num_threads(3)
    assert rm.get_num_threads() == 3
    with rm.threads(1) as n:
        assert n == 1 and rm.get_num_threads() == 1
    assert rm.get_num_threads() == 3
    assert TH.run(lambda x: x * x, range(5)) == [0, 1, 4, 9, 16]
    rm.set_sort("numpy")
    assert rm.get_sort() == "numpy" and TH.use_numpy_sort()
    rm.set_sort("radix")
    assert not TH.use_numpy_sort()
    rm.set_sort("auto")
    assert TH.use_numpy_sort() == TH.numpy_has_avx512_sort()


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True, None])
def test_bad_thread_counts_are_refused(bad):
    with pytest.raises(ValueError, match=r"^n: expected a positive integer number of threads, received"):
        rm.set_num_threads(bad)
    with pytest.raises(ValueError, match=r"^n: expected a positive integer"):
        with rm.threads(bad):
            pass


@pytest.mark.parametrize("bad", ["fast", "", None, 1, "RADIX"])
def test_bad_sorts_are_refused(bad):
    with pytest.raises(ValueError, match=r"^name: expected one of 'auto', 'radix', 'numpy', received"):
        rm.set_sort(bad)


def test_the_environment_sets_the_defaults(monkeypatch):
    monkeypatch.setattr(TH, "_num_threads", None)
    monkeypatch.setattr(TH, "_sort", None)
    monkeypatch.setenv("REFMETRICS_NUM_THREADS", "3")
    monkeypatch.setenv("REFMETRICS_SORT", "numpy")
    assert (rm.get_num_threads(), rm.get_sort()) == (3, "numpy")
    monkeypatch.setattr(TH, "_num_threads", None)
    monkeypatch.setattr(TH, "_sort", None)
    monkeypatch.setenv("REFMETRICS_NUM_THREADS", "many")
    monkeypatch.setenv("REFMETRICS_SORT", "quick")
    with pytest.raises(ValueError, match="REFMETRICS_NUM_THREADS: expected a positive integer, received 'many'"):
        rm.get_num_threads()
    with pytest.raises(ValueError, match="REFMETRICS_SORT: expected one of .* received 'quick'"):
        rm.get_sort()
    monkeypatch.delenv("REFMETRICS_NUM_THREADS")
    monkeypatch.setattr(TH, "_num_threads", None)
    assert rm.get_num_threads() == len(os.sched_getaffinity(0))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_gets_a_pool_of_its_own(monkeypatch):
    _configure(monkeypatch, 2, "radix", 100)
    rng = np.random.default_rng(8)
    preds = rng.standard_normal(5_000).astype(np.float32)
    target = (rng.random(5_000) < 0.3).astype(np.uint8)
    expected = F.auroc(preds, target)  # the parent's pool exists now
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            os.write(w, repr(F.auroc(preds, target)).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as fh:
        got = fh.read()
    os.waitpid(pid, 0)
    assert float(got) == expected


def test_u2_fraction_is_the_auroc():
    # the per-range sum is exact: compare with the pair count on a small case with many ranges
    pos = np.array([1, 2, 2, 5, 9], np.uint32)
    neg = np.array([0, 2, 2, 3, 9, 9], np.uint32)
    pst, nst = E.sample_ranges(pos, neg, 1)
    u2 = E.auroc_u2(pos, neg, pst, nst)
    pairs = sum(2 * (p > q) + (p == q) for p in pos.tolist() for q in neg.tolist())
    assert u2 == pairs and Fraction(u2, 2 * 30) == Fraction(pairs, 60)


@pytest.mark.parametrize("threads", [1, 2, 3, 4])
def test_pixel_state_background_sort_is_in_place(monkeypatch, threads):
    # PixelState.finish sorts the background keys where they are: evaluate's peak memory is its key buffer
    import tracemalloc

    rng = np.random.default_rng(21)
    keys = KEYS.keys_of(np.round(rng.standard_normal(400_000) * 64).astype(np.float32))  # ties
    expected = np.sort(keys)
    _configure(monkeypatch, threads, "radix", None)
    tracemalloc.start()
    E.sort_keys_in_place(keys)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert np.array_equal(keys, expected)
    assert peak < keys.nbytes // 10, peak


def test_a_pool_taken_before_the_count_changes_still_runs(monkeypatch):
    # one thread changes the count while another maps on the pool it took: both finish
    rm.set_num_threads(2)
    old = TH.pool()
    rm.set_num_threads(3)
    assert TH.pool() is not old
    assert list(old.map(lambda x: x * x, range(5))) == [0, 1, 4, 9, 16]
