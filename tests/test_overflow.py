"""Counts and products exact to 2**63 elements: no 3e9-element refusal, no int64/uint64 wrap.

The accumulators consume *group streams* (``(keys, dtp, dfp)`` in decreasing threshold order),
so huge counts need no huge arrays: groups of 3e9 to 4e18 elements each. Every result is checked
against exact Python integers and Fractions (``tests/naive.py`` for the curve areas), and the
two wraps that motivated the old limit (``acc_auroc``'s int64 ``2U``, ``f1_order``'s uint64 cross
products) are regression cases.
"""

import random
from fractions import Fraction

import numpy as np
import pytest

from refmetrics.functional import _ranked as R
from refmetrics.kernels.cpu import _int128 as I
from refmetrics.kernels.cpu import _sum as S
from refmetrics.kernels.cpu import ranking as K
from refmetrics.kernels.cpu import regions as KR

from . import naive

U64 = (1 << 64) - 1


def _u(x):
    return np.uint64(x)


# ---------------------------------------------------------------------------
# the 128-bit and double-double helpers
# ---------------------------------------------------------------------------

def test_int128_helpers_against_python_ints():
    r = random.Random(16)
    edges = [0, 1, 2, (1 << 32) - 1, 1 << 32, (1 << 63) - 1, 1 << 63, U64]
    pairs = [(a, b) for a in edges for b in edges]
    pairs += [(r.getrandbits(r.randint(1, 64)), r.getrandbits(r.randint(1, 64))) for _ in range(3000)]
    for a, b in pairs:
        hi, lo = I.mul_u64(_u(a), _u(b))
        assert (int(hi) << 64) + int(lo) == a * b, (a, b)
    for _ in range(3000):
        x, y = r.getrandbits(r.randint(1, 128)), r.getrandbits(r.randint(1, 128))
        xh, xl, yh, yl = _u(x >> 64), _u(x & U64), _u(y >> 64), _u(y & U64)
        hi, lo = I.add_u128(xh, xl, yh, yl)
        assert (int(hi) << 64) + int(lo) == (x + y) % (1 << 128)
        assert I.cmp_u128(xh, xl, yh, yl) == (x > y) - (x < y)
        assert I.cmp_u128(xh, xl, xh, xl) == 0
        z = x >> 3  # below 2**125: the AUROC state's range
        high, low = I.split63(_u(z >> 64), _u(z & U64))
        assert int(high) * 2 ** 63 + int(low) == z and 0 <= int(low) < 2 ** 63
        hi, lo = I.join63(high, low)
        assert (int(hi) << 64) + int(lo) == z


@pytest.mark.parametrize("x", [0, 1, 2 ** 53 - 1, 2 ** 53, 2 ** 53 + 1, 3 * 2 ** 60 + 12345, 2 ** 63 - 513,
                               2 ** 63 - 512, 2 ** 63 - 1] + [random.Random(k).getrandbits(63) for k in range(20)])
def test_count_dd_is_exact(x):
    hi, lo = I.count_dd(np.int64(x))
    assert Fraction(hi) + Fraction(lo) == x
    assert hi == float(x)  # the high part is the usual conversion
    assert lo == 0.0 or x >= 2 ** 53


def test_dd_division_helpers():
    r = random.Random(5)
    for _ in range(500):
        a, b = r.getrandbits(62) + 1, r.getrandbits(62) + 1
        ah, al = I.count_dd(np.int64(a))
        bh, bl = I.count_dd(np.int64(b))
        qh, ql = S.div_dd_dd(ah, al, bh, bl)
        assert abs(Fraction(qh) + Fraction(ql) - Fraction(a, b)) <= Fraction(a, b) / 2 ** 100
        assert S.dd_over_dd(ah, al, bh, bl) == float(Fraction(a, b))


# ---------------------------------------------------------------------------
# group streams with huge counts
# ---------------------------------------------------------------------------

def _stream(seed, n_groups=40, low=3 * 10 ** 9, high=4 * 10 ** 18, total=2 ** 62):
    """``(dtp, dfp)`` lists: groups of 0 or ``low..high`` positives and negatives, summing below ``total``."""
    r = random.Random(seed)
    dtp, dfp = [], []
    budget = total
    for _ in range(n_groups):
        a = r.choice([0, r.randint(1, 9), r.randint(low, high)])
        b = r.choice([0, r.randint(1, 9), r.randint(low, high)])
        if a == b == 0:
            a = 1
        if a + b > budget:
            break
        budget -= a + b
        dtp.append(a)
        dfp.append(b)
    return dtp, dfp


def _chunks(dtp, dfp, size, key_dtype=np.uint64):
    """The stream as ``(keys, dtp, dfp)`` chunks of ``size`` groups (keys decreasing)."""
    n = len(dtp)
    keys = np.arange(n, 0, -1, dtype=key_dtype)
    for s in range(0, n, size):
        yield (keys[s:s + size], np.array(dtp[s:s + size], np.int64), np.array(dfp[s:s + size], np.int64))


def _exact_u2(dtp, dfp):
    u2 = tp = 0
    for a, b in zip(dtp, dfp):
        u2 += b * (2 * tp + a)
        tp += a
    return u2


def test_auroc_regression_int64_wrap():
    """check_overflow.py: 3.5e9 positives above 3.5e9 negatives gave 6053255926290448384."""
    state = np.zeros(3, np.int64)
    K.acc_auroc(np.array([3_500_000_000, 0], np.int64), np.array([0, 3_500_000_000], np.int64), state)
    assert K.auroc_state_value(state) == 24_500_000_000_000_000_000
    assert R.auroc_u2(_chunks([3_500_000_000, 0], [0, 3_500_000_000], 1)) == 24_500_000_000_000_000_000


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("size", [1, 5, 64])
def test_auroc_huge_streams_exact(seed, size):
    dtp, dfp = _stream(seed)
    u2 = R.auroc_u2(_chunks(dtp, dfp, size))
    assert u2 == _exact_u2(dtp, dfp)
    p, n = sum(dtp), sum(dfp)
    if p and n:
        assert float(Fraction(u2, 2 * p * n)) == float(Fraction(_exact_u2(dtp, dfp), 2 * p * n))


def test_auroc_small_then_huge_crosses_from_the_int64_path():
    """A stream that starts in the int64 path (small counts) and continues in 128 bits, chunk by chunk."""
    dtp = [1, 0, 2, 3, 0] + [5 * 10 ** 9, 0, 7, 10 ** 18, 0]
    dfp = [0, 4, 1, 0, 2] + [0, 6 * 10 ** 9, 3, 0, 2 * 10 ** 18]
    state = np.zeros(3, np.int64)
    for _keys, a, b in _chunks(dtp, dfp, 5):
        K.acc_auroc(a, b, state)
        if a[0] == 1:  # the small chunk: int64 path, high word untouched
            assert state[2] == 0 and state[1] == _exact_u2(dtp[:5], dfp[:5])
    assert K.auroc_state_value(state) == _exact_u2(dtp, dfp)


@pytest.mark.parametrize("start_u2", [0, 2 ** 62 - 1, 2 ** 62, 2 ** 63 - 1])
@pytest.mark.parametrize("edge", [2 ** 30 - 1, 2 ** 30, 2 ** 31])
def test_auroc_int64_path_edges(start_u2, edge):
    """The chunk's int64 sum is kept only below its proven bound; at and past it the 128-bit sum
    runs from the same state. Both give the exact 2U."""
    dtp = [edge // 2, 1, edge - edge // 2 - 1]
    dfp = [edge - 3, 1, 2]
    state = np.array([0, start_u2, 5], np.int64)
    K.acc_auroc(np.array(dtp, np.int64), np.array(dfp, np.int64), state)
    assert K.auroc_state_value(state) == 5 * 2 ** 63 + start_u2 + _exact_u2(dtp, dfp)
    assert 0 <= state[1] < 2 ** 63 and state[0] == sum(dtp)


def _f1_exact(tp, fp, btp, bfp, p):
    a, b = Fraction(tp, tp + fp + p), Fraction(btp, btp + bfp + p)
    return (a > b) - (a < b)


def test_f1_order_regression_uint64_wrap():
    """check_overflow.py: at n ~ 8.3e9 the uint64 cross products wrapped and the order came out 1."""
    assert K.f1_order(1843333982, 2037136789, 2844002102, 2863201219, 3136876171) == -1
    assert _f1_exact(1843333982, 2037136789, 2844002102, 2863201219, 3136876171) == -1


def test_f1_order_against_fractions():
    r = random.Random(3)
    for bits in (20, 32, 33, 40, 61):
        for _ in range(2000):
            p = r.getrandbits(bits) + 1
            tp, btp = r.randint(0, p), r.randint(0, p)
            fp, bfp = r.getrandbits(bits), r.getrandbits(bits)
            assert K.f1_order(tp, fp, btp, bfp, p) == _f1_exact(tp, fp, btp, bfp, p)
    # equal F1 at huge counts: (tp, fp) scaled by the same factor
    for k in (1, 3, 10 ** 9, 2 ** 30):
        assert K.f1_order(3 * k, 2 * k, 6 * k, 9 * k, 5 * k) == 0  # 3/10 = 6/20
    # the largest counts: P + n < 2**63
    big = 2 ** 61
    assert K.f1_order(big, big, big - 1, big, big) == 1
    assert K.f1_order(big - 1, big, big, big, big) == -1


def _f1_best_exact(dtp, dfp):
    p = sum(dtp)
    best = None
    tp = fp = 0
    for g, (a, b) in enumerate(zip(dtp, dfp)):
        tp += a
        fp += b
        f1 = Fraction(2 * tp, tp + fp + p)
        if best is None or f1 >= best[0]:  # thresholds decreasing: ties to the lowest
            best = (f1, tp, fp, len(dtp) - g)
    return best[1:]


@pytest.mark.parametrize("seed", range(12))
def test_f1_best_huge_streams(seed):
    dtp, dfp = _stream(seed)
    tp, fp, key = R.f1_best(_chunks(dtp, dfp, 7), sum(dtp))
    assert (tp, fp, int(key[0])) == _f1_best_exact(dtp, dfp)


def test_f1_best_ties_at_huge_counts():
    """Equal F1 values at 1e9-scale counts: the lowest threshold wins, as below 3e9."""
    k = 10 ** 9
    # P = 4k: F1 = 4k / 6k after the first group, 8k / 12k after the second: a tie
    tp, fp, key = R.f1_best(_chunks([2 * k, 2 * k], [0, 4 * k], 1), 4 * k)
    assert (tp, fp, int(key[0])) == (4 * k, 4 * k, 1) == _f1_best_exact([2 * k, 2 * k], [0, 4 * k])
    # one more negative in the second group breaks the tie the other way
    tp, fp, key = R.f1_best(_chunks([2 * k, 2 * k], [0, 4 * k + 1], 1), 4 * k)
    assert (tp, fp, int(key[0])) == (2 * k, 0, 2)


def _ap_exact(dtp, dfp):
    p = sum(dtp)
    tp = fp = 0
    total = Fraction(0)
    for a, b in zip(dtp, dfp):
        tp += a
        fp += b
        if a:
            total += a * Fraction(tp, tp + fp)
    return total / p


@pytest.mark.parametrize("seed", range(12))
def test_average_precision_huge_streams_correctly_rounded(seed):
    dtp, dfp = _stream(seed)
    if not sum(dtp):
        pytest.skip("no positive")
    assert R.average_precision(_chunks(dtp, dfp, 4), sum(dtp)) == float(_ap_exact(dtp, dfp))


def test_average_precision_scaled_counts_keep_the_value():
    """Multiplying every count by c changes no precision or recall: AP is the same number."""
    dtp, dfp = [3, 0, 1, 4, 0, 2], [1, 2, 0, 5, 3, 1]
    small = R.average_precision(_chunks(dtp, dfp, 3), sum(dtp))
    assert small == float(_ap_exact(dtp, dfp))
    for c in (10 ** 9, 3 * 10 ** 15, 2 ** 55 + 1, 10 ** 17):
        big_tp, big_fp = [c * a for a in dtp], [c * b for b in dfp]
        assert R.average_precision(_chunks(big_tp, big_fp, 3), sum(big_tp)) == small


def _pr_trapezoid_exact(dtp, dfp):
    """anomalib 1.x's area from the group counts: naive.pr_curve's points (thresholds increasing,
    then (recall 0, precision 1)), stably sorted by recall, trapezoid."""
    p = sum(dtp)
    tp = fp = 0
    points = []
    for a, b in zip(dtp, dfp):
        tp += a
        fp += b
        points.append((Fraction(tp, p), Fraction(tp, tp + fp)))
    points = points[::-1] + [(Fraction(0), Fraction(1))]
    return naive.trapezoid(sorted(points, key=lambda rp: rp[0]))


@pytest.mark.parametrize("seed", range(8))
def test_pr_trapezoid_huge_streams(seed):
    dtp, dfp = _stream(seed, high=10 ** 17)
    if not sum(dtp):
        pytest.skip("no positive")
    assert R.pr_trapezoid(_chunks(dtp, dfp, 3), sum(dtp)) == float(_pr_trapezoid_exact(dtp, dfp))


# ---------------------------------------------------------------------------
# AUPRO: counts past 2**53 and the divisor 2 K n_bg
# ---------------------------------------------------------------------------

def _old_finish_aupro(sums, n_bg, n_regions, limit):
    """finish_aupro before issue 16: ``2.0 * K * float64(n_bg)`` rounded once past 2**53."""
    d_h, d_l = S.two_prod(2.0 * n_regions * np.float64(n_bg), limit)
    q = S.dd_over(sums[0], sums[1], d_h)
    return q - q * (d_l / d_h)


def test_finish_aupro_divisor_exact():
    """K = 1e4..1e6 regions, n_bg = 1e10..1e13: 2 K n_bg passes 2**53. Where ``2.0 * K * n_bg``
    rounds, the double-double divisor gives the correctly rounded quotient (the old one missed it
    in about 28% of these cases); where it is exact, the old operations run unchanged (within
    one ulp: their first-order divisor correction is not always correctly rounded)."""
    r = random.Random(7)
    rounded = old_wrong = 0
    for _ in range(1000):
        k = r.randint(10 ** 4, 10 ** 6)
        n_bg = r.randint(10 ** 10, 10 ** 13)
        limit = r.choice([0.3, 0.05, 1.0, 0.01, r.random()])
        area = Fraction(r.getrandbits(53), 1 << 20) * k * n_bg
        ah = float(area)
        al = float(area - Fraction(ah))
        sums = np.array([ah, al, 0.0, 0.0])
        exact = float((Fraction(ah) + Fraction(al)) / (2 * k * n_bg * Fraction(limit)))
        got = KR.finish_aupro(sums, n_bg, k, limit)
        old = _old_finish_aupro(sums, n_bg, k, limit)
        k_h, k_l = KR.aupro_divisor(n_bg, k)
        assert Fraction(k_h) + Fraction(k_l) == 2 * k * n_bg
        if 2.0 * k * float(n_bg) == 2 * k * n_bg:
            assert k_l == 0.0 and got == old and abs(got - exact) <= np.spacing(exact)
        else:
            rounded += 1
            assert got == exact, (k, n_bg, limit)
            old_wrong += old != exact
    assert rounded > 900 and old_wrong > 100  # a real regression case


def test_finish_aupro_unchanged_where_the_divisor_was_exact():
    """2 K n_bg below 2**53 (or exact in float64 above): the same operations as before, bit for bit."""
    r = random.Random(8)
    for _ in range(300):
        k = r.randint(1, 10 ** 4)
        n_bg = r.choice([r.randint(1, 10 ** 8), 2 ** r.randint(40, 60)])
        limit = r.choice([0.3, 0.05, 1.0, r.random()])
        sums = np.array([r.random() * k * n_bg, r.random() * 1e-20, 0.0, 0.0])
        assert KR.finish_aupro(sums, n_bg, k, limit) == _old_finish_aupro(sums, n_bg, k, limit)


def _aupro_exact(dfp, ds, n_bg, k, limit):
    points = [(Fraction(0), Fraction(0))]
    fp = s = 0
    for a, d in zip(dfp, ds):
        fp += a
        s += d
        points.append((Fraction(fp, n_bg), Fraction(s, k)))
    return naive.area_to_limit(points, limit)


def _aupro_kernel(dfp, ds, n_bg, k, limit, size):
    counts = np.zeros(2, np.int64)
    sums = np.zeros(4)
    for s in range(0, len(dfp), size):
        d = np.array(ds[s:s + size], np.float64)
        KR.acc_aupro(np.array(dfp[s:s + size], np.int64), d, np.zeros_like(d), n_bg, limit, counts, sums)
    return KR.finish_aupro(sums, n_bg, k, limit)


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("huge", [False, True])
def test_aupro_counts_past_2_53(seed, huge):
    """Groups of background pixels with whole-region PRO steps (``1/size`` sums that are integers:
    exact floats), ``n_bg`` past 2**53 (``huge``) or K n_bg past it; against the exact trapezoid,
    to within one ulp: ``finish_aupro``'s final division (unchanged where its divisor is exact) is
    not always correctly rounded."""
    r = random.Random(seed)
    k = r.randint(10, 10 ** 5)
    scale = 10 ** 17 if huge else 10 ** 9
    dfp = [r.choice([0, r.randint(1, 5) * scale + r.randint(0, 10 ** 6)]) for _ in range(30)]
    ds = [r.randint(0, k // 10) for _ in dfp]
    dfp[-1] += r.randint(scale, 2 * scale)
    n_bg = sum(dfp)
    assert (n_bg >= 2 ** 53) == huge
    ds[-1] = k - sum(ds[:-1]) if sum(ds[:-1]) < k else 0
    for limit in (0.3, 0.05, 1.0):
        got = _aupro_kernel(dfp, ds, n_bg, k, limit, 7)
        exact = float(_aupro_exact(dfp, ds, n_bg, k, limit))
        assert abs(got - exact) <= np.spacing(exact), limit


def test_aupro_scaled_counts_keep_the_value():
    """Scaling every background count (and n_bg) by c leaves the curve, so the AUPRO, unchanged."""
    dfp, ds = [3, 0, 5, 2, 7, 1, 4], [1.0, 2.0, 0.0, 1.0, 3.0, 0.0, 1.0]
    base = _aupro_kernel(dfp, ds, sum(dfp), 8, 0.3, 3)
    for c in (10 ** 9, 2 ** 53 // 22 + 1, 10 ** 16, 3 * 10 ** 17):
        assert _aupro_kernel([c * a for a in dfp], ds, c * sum(dfp), 8, 0.3, 3) == base


def test_curve_points_past_2_53():
    dfp = np.array([2 ** 60, 3 * 2 ** 58 + 1, 12345], np.int64)
    n_bg = int(dfp.sum())
    dsh = np.array([1.0, 2.0, 0.0])
    fpr, pro = np.empty(4), np.empty(4)
    KR.curve_points(dfp, dsh, np.zeros(3), n_bg, 3, fpr, pro)
    fp = np.cumsum([int(x) for x in dfp])
    assert fpr.tolist() == [0.0] + [float(Fraction(int(f), n_bg)) for f in fp]
    assert pro.tolist() == [0.0, float(Fraction(1, 3)), 1.0, 1.0]


# ---------------------------------------------------------------------------
# rates of counts (curves, segmentation) and DeLong's sums
# ---------------------------------------------------------------------------

def test_count_ratios():
    r = random.Random(9)
    small = np.array([r.getrandbits(52) for _ in range(500)], np.int64)
    den = np.array([r.getrandbits(52) + 1 for _ in range(500)], np.int64)
    assert np.array_equal(I.count_ratios(small, den), small / den)  # NumPy's division, bit for bit
    assert np.array_equal(I.count_ratios(small, 12345), small / 12345)
    big = np.array([r.getrandbits(r.randint(54, 63)) for _ in range(500)] + [0, 7], np.int64)
    bden = np.array([r.getrandbits(r.randint(54, 63)) + 1 for _ in range(500)] + [0, 0], np.int64)
    got = I.count_ratios(big, bden)
    assert [float(Fraction(int(a), int(b))) for a, b in zip(big[:-2], bden[:-2])] == got[:-2].tolist()
    assert np.isnan(got[-2]) and got[-1] == np.inf  # as NumPy's 0 / 0 and 7 / 0
    n = 2 ** 62 + 1
    assert I.count_ratios(np.array([n - 1, n], np.int64), n).tolist() == [float(Fraction(n - 1, n)), 1.0]


def test_segmentation_rates_past_2_53():
    from refmetrics.functional.segmentation import rates

    counts = np.array([[2 ** 60 + 1, 3 * 2 ** 57 + 5, 2 ** 58 + 3, 0], [3, 1, 0, 0], [0, 0, 0, 0]], np.int64)
    got = rates(counts)
    for row, (tp, fp, fn, _) in enumerate(counts.tolist()):
        expected = {"precision": (tp, tp + fp), "recall": (tp, tp + fn), "f1": (2 * tp, 2 * tp + fp + fn),
                    "iou": (tp, tp + fp + fn)}
        for name, (num, den) in expected.items():
            assert got[name][row] == (float(Fraction(num, den)) if den else 0.0), (row, name)


@pytest.mark.parametrize("high", [2 ** 20, 2 ** 34, 2 ** 40, 2 ** 62])
def test_delong_sums_past_2_34(high):
    """DeLong's per-element counts are below 2**34 only up to 8.6e9 elements on the other side."""
    from refmetrics.functional import delong

    x = np.random.default_rng(high % 97).integers(0, high, 3000, dtype=np.int64)
    values = [int(v) for v in x]
    assert delong._sums(x) == (sum(values), sum(v * v for v in values))


def test_spro_curve_points_past_2_53():
    from refmetrics.kernels.cpu import spro as KS

    dfp = np.array([2 ** 60, 3 * 2 ** 58 + 1, 12345], np.int64)
    n_bg = int(dfp.sum())
    k = 2 ** 54 + 1  # defects: a count past 2**53 too
    dsh = np.array([2.0 ** 53, 2.0 ** 52, 0.0])
    fpr, spro = np.empty(4), np.empty(4)
    KS.curve_points(dfp, dsh, np.zeros(3), n_bg, k, 7, fpr, spro)
    fp = np.cumsum([int(x) for x in dfp])
    assert fpr.tolist() == [0.0] + [float(Fraction(int(f), n_bg)) for f in fp]
    assert spro.tolist() == [float(Fraction(7, k)), float(Fraction(7 + 2 ** 53, k)),
                             float(Fraction(7 + 2 ** 53 + 2 ** 52, k)), float(Fraction(7 + 2 ** 53 + 2 ** 52, k))]


def test_pimo_shared_fpr_past_2_53():
    """Each size group's FP / N is one correctly rounded quotient, also for counts past 2**53."""
    from refmetrics.functional.pimo import _shared_fpr_array
    from refmetrics.kernels.cpu import pimo as KP

    sizes = np.array([3, 7, 4096], np.int64)
    fp = np.array([2 ** 55 + 1, 5, 3 * 2 ** 60 + 7], np.int64)
    order = np.arange(3, dtype=np.int64)
    expected = 0.0
    for f, n in zip(fp.tolist(), sizes.tolist()):
        expected += float(Fraction(f, n))
    expected /= 11.0
    assert KP.shared_fpr(fp, order, sizes, 11) == expected
    assert _shared_fpr_array(fp.reshape(3, 1), sizes, 11).tolist() == [expected]
    small = np.array([5, 0, 123], np.int64)  # below 2**53: the float64 division, as before
    assert KP.shared_fpr(small, order, sizes, 11) == (5 / 3 + 0 / 7 + 123 / 4096) / 11
