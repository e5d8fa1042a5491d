"""Drivers of the ranking metrics: from validated arrays to sorted keys to groups.

Two kinds of state feed the same accumulators:

- :class:`ExactScores` keeps every score as an order-preserving integer key,
  positives and negatives apart, and sorts them when a result is asked for
  (in key ranges, in threads: ``_engine.py``; small inputs by one radix sort). The state is a multiset, so any batch split, batch order or merge
  of states gives the same sorted arrays and therefore bit-identical results.
- :class:`BinnedScores` keeps, for given thresholds, the integer count of
  positives and negatives per threshold bin (torchmetrics' binned mode).

Both hand the accumulators a stream of *groups* in decreasing threshold order:
``(key, dtp, dfp)`` = a threshold, and the positives and negatives that become
predicted-positive there (``score >= threshold``).
"""

import numpy as np

from .. import _arrays as A
from .. import _validation as V
from ..kernels.cpu import binned as KB
from ..kernels.cpu import keys as KEYS
from ..kernels.cpu import ranking as K
from ..kernels.cpu._int128 import count_dd
from . import _engine as E

CHUNK = 1 << 16  # groups per accumulator call: small buffers, negligible call overhead

_SHIFTS = {k: K.digit_shifts(k) for k in KEYS.FLOAT_OF}


class Batch:
    """One validated batch: flat exact scores, flat labels, the ignore value.

    ``device`` says whether ``scores`` and ``labels`` are numba device arrays.
    """

    __slots__ = ("scores", "labels", "has_ignore", "ignore", "ignore_index", "device")

    def __init__(self, scores, labels, has_ignore, ignore, ignore_index, device=False):
        self.scores, self.labels = scores, labels
        self.has_ignore, self.ignore, self.ignore_index = has_ignore, ignore, ignore_index
        self.device = device

    def check(self, n_nan, n_bad):
        """Raise for the NaNs and bad labels a kernel counted."""
        V.raise_if_nan("preds", n_nan)
        if n_bad:
            labels = self.labels.copy_to_host() if self.device else self.labels  # the message lists a few
            V.raise_bad_labels("target", labels, self.has_ignore, self.ignore, self.ignore_index, n_bad)


def intake_pair(preds, target, ignore_index, backend):
    """Validate a (preds, target) pair into a :class:`Batch` on the backend that will run."""
    where = A.resolve_backend(backend, preds, target)
    V.check_ignore_index(ignore_index)
    p = A.array_on(where, preds, "preds")
    t = A.array_on(where, target, "target")
    V.check_pair(p, t)
    if where == "cuda":
        labels = A.device_labels(t)
        has_ignore, ignore = A.ignore_value(labels, ignore_index)
        return Batch(A.device_scores(p, "preds"), labels, has_ignore, ignore, ignore_index, device=True)
    labels = A.labels(t)
    has_ignore, ignore = A.ignore_value(labels, ignore_index)
    return Batch(A.exact_scores(p, "preds"), labels, has_ignore, ignore, ignore_index)


# ---------------------------------------------------------------------------
# sorting keys (the key map itself: kernels/cpu/keys.py)
# ---------------------------------------------------------------------------

def _histogram(keys):
    shifts = _SHIFTS[keys.dtype]
    hist = np.zeros((shifts.size - 1, K.RADIX_SIZE), np.int64)
    K.digit_histogram(keys, hist, shifts)
    return hist


def _sort(keys, tmp, hist):
    """Radix-sort ``keys``; returns the sorted view (in ``keys`` or in ``tmp``)."""
    if K.radix_sort(keys, tmp, hist, _SHIFTS[keys.dtype]):
        return tmp
    return keys


def _sort_pair(pos, neg, hist):
    """Sort positives and negatives, sharing one scratch buffer."""
    tmp = np.empty(max(pos.size, neg.size), pos.dtype)
    spos = _sort(pos, tmp[:pos.size], hist[0])
    if spos is not pos and neg.size:
        pos[...] = spos  # the scratch buffer is needed again for the negatives
        spos = pos
    return spos, _sort(neg, tmp[:neg.size], hist[1])


class _Part:
    """One batch of keys: positives, negatives, and either their digit histograms (``hist``)
    or their key-range plan (``ranges = (pst, nst)``, see ``_engine.py``)."""

    __slots__ = ("pos", "neg", "hist", "sorted", "shared", "ranges", "walked")

    def __init__(self, pos, neg, hist, is_sorted=False, ranges=None):
        self.pos, self.neg, self.hist, self.sorted = pos, neg, hist, is_sorted
        self.ranges = ranges
        self.walked = None  # a sorted part's (u2, ap, f1) from _engine.walk_all, once computed
        self.shared = False  # also held by another state (merged): never sorted in place

    def widened(self):
        pos, neg = KEYS.widen_keys(self.pos), KEYS.widen_keys(self.neg)
        return _Part(pos, neg, np.stack([_histogram(pos), _histogram(neg)]))


class _DevicePart:
    """One batch of keys on the device: positives and negatives (numba device arrays)."""

    __slots__ = ("pos", "neg", "sorted", "shared")

    def __init__(self, pos, neg, is_sorted=False):
        self.pos, self.neg, self.sorted = pos, neg, is_sorted
        self.shared = False  # the device sort always works on a copy (driver.concatenate)

    def widened(self):
        from ..kernels.cuda import _driver as D

        return _DevicePart(D.widen(self.pos), D.widen(self.neg))


def _to_device(part):
    """A host part as a device part (a state that mixes host and device data computes on the device)."""
    if isinstance(part, _DevicePart):
        return part
    from numba import cuda

    return _DevicePart(cuda.to_device(part.pos), cuda.to_device(part.neg))


def partition(batch):
    """Keys of one validated batch, split by label (one pass; raises on NaN/bad labels)."""
    if batch.device:
        from ..kernels.cuda import _driver as D

        pos, neg, n_nan, n_bad = D.encode_batch(batch.scores, batch.labels, batch.has_ignore, batch.ignore)
        batch.check(n_nan, n_bad)
        return _DevicePart(pos, neg)
    kd = KEYS.KEY_OF[batch.scores.dtype]
    if batch.scores.size >= E.SMALL:
        pos, neg, pst, nst = E.partition_scores(batch.scores.view(kd), batch.labels, batch.has_ignore,
                                                batch.ignore, batch.check)
        return _Part(pos, neg, None, ranges=(pst, nst))
    shifts = _SHIFTS[kd]
    out = np.empty(batch.scores.size, kd)
    hist = np.zeros((2, shifts.size - 1, K.RADIX_SIZE), np.int64)
    lo, hi, n_nan, n_bad = K.partition(batch.scores.view(kd), batch.labels, batch.has_ignore, batch.ignore,
                                       out, hist, shifts, KEYS.CONSTS[kd])
    batch.check(n_nan, n_bad)
    return _Part(out[:lo], out[hi:], hist)


class PartsState:
    """A state made of the parts its batches produced; merging concatenates the lists.

    The parts form a multiset: their order never reaches a result (``sorted()``
    orders the data itself).
    """

    def __init__(self):
        self.parts = []

    def add(self, part):
        self.parts.append(part)

    def merge(self, other):
        """Add the other state's parts. Both states now hold them: they are marked shared,
        so that neither sorts their arrays in place."""
        for part in other.parts:
            part.shared = True
        self.parts.extend(other.parts)


class ExactScores(PartsState):
    """Exact state: the multiset of (score, label) pairs, as keys.

    Parts live on the host or on the device; as soon as one is on the device,
    the state computes there (:meth:`device_sorted`).

    ``walk_once`` (False): a host state asked for AUROC, AP and F1-max together
    (:class:`refmetrics.PixelState`) sets it, and the first of the three computes
    all of them in one walk of the sorted keys (``_engine.walk_all``), kept for
    the others (a few numbers).
    """

    walk_once = False

    @property
    def on_device(self):
        return any(isinstance(p, _DevicePart) for p in self.parts)

    def device_sorted(self):
        """``(pos, neg)`` sorted ascending on the device, as one part that replaces the others."""
        from ..kernels.cuda import _driver as D

        if len(self.parts) == 1 and self.parts[0].sorted and isinstance(self.parts[0], _DevicePart):
            return self.parts[0].pos, self.parts[0].neg
        parts = [_to_device(p) for p in self.parts]
        if len({p.pos.dtype for p in parts}) > 1:
            parts = [p if p.pos.dtype == np.uint64 else p.widened() for p in parts]
        kd = parts[0].pos.dtype
        pos, _ = D.radix_sort(D.concatenate([p.pos for p in parts], kd))
        neg, _ = D.radix_sort(D.concatenate([p.neg for p in parts], kd))
        self.parts = [_DevicePart(pos, neg, is_sorted=True)]
        return pos, neg

    def extreme_threshold(self, positive, highest):
        """The lowest or highest score of the positives or negatives (float; there must be one)."""
        if self.on_device:
            from ..kernels.cuda import _driver as D

            pos, neg = self.device_sorted()
            keys = pos if positive else neg
            return self.threshold_of(np.array([D.scalar(keys, -1 if highest else 0)], keys.dtype))
        pos, neg = self.sorted()
        keys = pos if positive else neg
        return self.threshold_of(keys[-1:] if highest else keys[:1])

    @staticmethod
    def threshold_of(key):
        """The score (float) of a group's key (a one-element array)."""
        return float(KEYS.decode_keys(key)[0])

    @property
    def n_pos(self):
        return sum(p.pos.size for p in self.parts)

    @property
    def n_neg(self):
        return sum(p.neg.size for p in self.parts)

    def sorted(self):
        """``(pos, neg)`` sorted ascending, as one part that replaces the others."""
        if len(self.parts) == 1 and self.parts[0].sorted:
            return self.parts[0].pos, self.parts[0].neg
        if not self.parts:
            empty = np.empty(0, np.uint32)
            return empty, empty
        parts = self.parts
        if len({p.pos.dtype for p in parts}) > 1:
            parts = [p if p.pos.dtype == np.uint64 else p.widened() for p in parts]
        if len(parts) == 1 and parts[0].ranges is not None:  # one planned batch: sort its ranges in place
            pos, neg = parts[0].pos, parts[0].neg
            if parts[0].shared:
                pos, neg = pos.copy(), neg.copy()
            ranges = parts[0].ranges
            E.sort_planned(pos, neg, *ranges)
        elif sum(p.pos.size + p.neg.size for p in parts) >= E.SMALL:  # plan the keys afresh
            pos, neg, *ranges = E.partition_keys([p.pos for p in parts], [p.neg for p in parts])
            E.sort_planned(pos, neg, *ranges)
        else:
            ranges = None
            if len(parts) == 1:
                pos, neg, hist = parts[0].pos, parts[0].neg, parts[0].hist
                if parts[0].shared:
                    pos, neg = pos.copy(), neg.copy()
            else:
                pos = np.concatenate([p.pos for p in parts])
                neg = np.concatenate([p.neg for p in parts])
                hist = None if any(p.hist is None for p in parts) else sum(p.hist for p in parts)
            if hist is None:
                hist = np.stack([_histogram(pos), _histogram(neg)])
            pos, neg = _sort_pair(pos, neg, hist)
        self.parts = [_Part(pos, neg, None, is_sorted=True, ranges=None if ranges is None else tuple(ranges))]
        return pos, neg

    def sorted_ranges(self):
        """``(pos, neg, pst, nst)``: the sorted keys and key ranges over them (``_engine.py``)."""
        pos, neg = self.sorted()
        part = self.parts[0]
        if part.ranges is None:
            part.ranges = E.sample_ranges(pos, neg)
        return (pos, neg) + tuple(part.ranges)


# ---------------------------------------------------------------------------
# group streams
# ---------------------------------------------------------------------------

def exact_groups(pos, neg):
    """Yield ``(keys, dtp, dfp)`` chunks of ``CHUNK`` groups, distinct scores in decreasing order."""
    total = pos.size + neg.size
    size = max(1, min(CHUNK, total))
    keys = np.empty(size, pos.dtype)
    dtp = np.empty(size, np.int64)
    dfp = np.empty(size, np.int64)
    cursor = np.array([pos.size - 1, neg.size - 1], np.int64)
    while True:
        g = K.next_groups(pos, neg, cursor, keys, dtp, dfp)
        if g == 0:
            return
        yield keys[:g], dtp[:g], dfp[:g]


DEVICE_CHUNK = 1 << 20  # groups per device-to-host copy


def device_groups(pos, neg, with_keys=False):
    """Yield ``(keys or None, dtp, dfp)`` host chunks of the groups formed on the device.

    Only the integer counts cross to the host (and the keys, for curves, whose
    thresholds are part of the result).
    """
    from ..kernels.cuda import _driver as D

    keys, dtp, dfp = D.groups(pos, neg)
    for start in range(0, keys.size, DEVICE_CHUNK):
        stop = min(keys.size, start + DEVICE_CHUNK)
        yield (keys[start:stop].copy_to_host() if with_keys else None, dtp[start:stop].copy_to_host(),
               dfp[start:stop].copy_to_host())


def device_curve_counts(pos, neg):
    """As :func:`exact_curve_counts`, the groups formed on the device."""
    chunks = list(device_groups(pos, neg, with_keys=True))
    if not chunks:
        return np.empty(0), np.empty(0, np.int64), np.empty(0, np.int64)
    keys = np.concatenate([c[0] for c in chunks])
    return (KEYS.decode_keys(keys), np.cumsum(np.concatenate([c[1] for c in chunks])),
            np.cumsum(np.concatenate([c[2] for c in chunks])))


def exact_curve_counts(pos, neg):
    """All groups at once: ``(thresholds desc float64, cumulative tp, cumulative fp)``."""
    g = K.count_groups(pos, neg)
    keys = np.empty(g, pos.dtype)
    dtp = np.empty(g, np.int64)
    dfp = np.empty(g, np.int64)
    cursor = np.array([pos.size - 1, neg.size - 1], np.int64)
    K.next_groups(pos, neg, cursor, keys, dtp, dfp)
    return KEYS.decode_keys(keys), np.cumsum(dtp), np.cumsum(dfp)


class BinnedScores:
    """Binned state: counts of positives/negatives per threshold bin.

    Batches on the device are counted there (integer atomics) into a device
    histogram; host and device counts add up when the histogram is read.
    """

    def __init__(self, thresholds):
        self.thresholds = thresholds
        self._host = np.zeros((2, thresholds.size + 1), np.int64)
        self._device = None

    def add(self, batch):
        if batch.device:
            from ..kernels.cuda import _driver as D

            d_hist = D.zeros(self._host.shape, np.int64)
            n_nan, n_bad = D.binned_histogram(batch.scores, batch.labels, batch.has_ignore, batch.ignore,
                                              self.thresholds, d_hist)
            batch.check(n_nan, n_bad)  # before the state changes
            self._add_device(d_hist)
            return
        hist = np.zeros_like(self._host)
        n_nan, n_bad = KB.binned_histogram(batch.scores, batch.labels, batch.has_ignore, batch.ignore,
                                           self.thresholds, hist)
        batch.check(n_nan, n_bad)
        self._host += hist

    def _add_device(self, d_hist):
        if self._device is None:
            self._device = d_hist
        else:
            from ..kernels.cuda import _driver as D

            D.add_into(self._device, d_hist)

    @property
    def on_device(self):
        return self._device is not None

    @property
    def hist(self):
        """Host and device counts together (a ``(2, T+1)`` copy of ``8 (T+1)`` bytes per side)."""
        return self._host if self._device is None else self._host + self._device.copy_to_host()

    @property
    def n_below(self):
        """Elements below the lowest threshold: never predicted positive."""
        return int(self.hist[:, 0].sum())

    def merge(self, other):
        self._host += other._host
        if other._device is not None:
            from numba import cuda

            d_copy = cuda.device_array_like(other._device)
            d_copy.copy_to_device(other._device)
            self._add_device(d_copy)

    @property
    def n_pos(self):
        return int(self.hist[0].sum())

    @property
    def n_neg(self):
        return int(self.hist[1].sum())

    def groups(self):
        """One chunk: threshold indices descending, and the counts entering there."""
        t = self.thresholds.size
        hist = self.hist
        keys = np.arange(t - 1, -1, -1, dtype=np.int64)
        return [(keys, np.ascontiguousarray(hist[0, t:0:-1]), np.ascontiguousarray(hist[1, t:0:-1]))]

    def curve_counts(self):
        (keys, dtp, dfp), = self.groups()
        return self.thresholds[::-1].copy(), np.cumsum(dtp), np.cumsum(dfp)

    def threshold_of(self, key):
        """The threshold (float) of a group's key (a one-element array of a threshold index)."""
        return float(self.thresholds[int(key[0])])

    def extreme_threshold(self, positive, highest):
        """The binned stand-in for the highest or lowest score (F1AdaptiveThreshold's
        fall-backs): the scores are not kept, so the highest or lowest given threshold,
        as anomalib 2.x's binned mode returns."""
        return float(self.thresholds[-1 if highest else 0])


# ---------------------------------------------------------------------------
# accumulators over a group stream
# ---------------------------------------------------------------------------

def auroc_u2(groups):
    """``2U`` (twice Mann-Whitney's U) as a Python int."""
    state = np.zeros(3, np.int64)
    for _keys, dtp, dfp in groups:
        K.acc_auroc(dtp, dfp, state)
    return K.auroc_state_value(state)


def average_precision(groups, n_pos):
    """``sum_k dtp_k * precision_k / P``, rounded once from a double-double sum."""
    counts = np.zeros(2, np.int64)
    sums = np.zeros(2, np.float64)
    for _keys, dtp, dfp in groups:
        K.acc_average_precision(dtp, dfp, counts, sums)
    return float(K.finish_average_precision(sums, *count_dd(int(n_pos))))


def pr_trapezoid(groups, n_pos):
    """anomalib 1.x's trapezoid area under the PR curve."""
    counts = np.zeros(4, np.int64)
    sums = np.zeros(8, np.float64)
    sums[2] = 1.0  # the end point (recall 0, precision 1) closes the recall-0 run
    for _keys, dtp, dfp in groups:
        K.acc_pr_trapezoid(dtp, dfp, counts, sums)
    return float(K.finish_pr_trapezoid(counts, sums, *count_dd(int(n_pos))))


def f1_best(groups, n_pos):
    """``(tp, fp, key)`` at the largest F1, ties to the lowest threshold; key None if no group."""
    state = np.zeros(5, np.int64)
    best = None
    for keys, dtp, dfp in groups:
        if best is None:
            best = np.zeros(1, keys.dtype)
        K.acc_f1_max(keys, dtp, dfp, n_pos, state, best)
    if best is None or not state[4]:
        return 0, 0, None
    return int(state[2]), int(state[3]), best


# ---------------------------------------------------------------------------
# per-range parts of a host ExactScores (_engine.py), in threads
# ---------------------------------------------------------------------------

def _walked(state):
    """``(u2, ap, f1)`` of a ``walk_once`` state's sorted keys, from one walk (kept on the sorted part)."""
    ranged = state.sorted_ranges()
    part = state.parts[0]
    if part.walked is None:
        part.walked = E.walk_all(*ranged)
    return part.walked


def exact_average_precision(state):
    """As :func:`average_precision` for a host :class:`ExactScores`: the same accumulator over the
    groups that hold positives only (formed per range in threads), so the same sum, bit for bit."""
    if state.walk_once:
        return _walked(state)[1]
    pos, neg, pst, nst = state.sorted_ranges()
    return average_precision(E.positive_groups(pos, neg, pst, nst), pos.size)


def exact_auroc_u2(state):
    """``2U`` of a host :class:`ExactScores` (a Python int), from per-range parts in threads."""
    if state.walk_once and _walked(state)[0] is not None:
        return _walked(state)[0]
    pos, neg, pst, nst = state.sorted_ranges()
    u2 = E.auroc_u2(pos, neg, pst, nst)
    return auroc_u2(exact_groups(pos, neg)) if u2 is None else u2


def exact_f1_best(state):
    """As :func:`f1_best` for a host :class:`ExactScores`, from per-range bests in threads."""
    if state.walk_once and state.n_pos:
        tp, fp, key = _walked(state)[2]
        return tp, fp, None if key is None else key.copy()
    return E.f1_best(*state.sorted_ranges())
