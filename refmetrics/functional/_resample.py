"""The image-level bootstrap's engine: stratified resamples and exact replicates of a metric.

A *resample* is a multiset of the test images, given as their multiplicities
``W[b, i]`` (:func:`resample_counts`). The metric's value on resample ``b`` is,
by definition, the ordinary metric of the images repeated by their
multiplicities, in image order (``np.repeat(preds, W[b], axis=0)``). The
resamplers compute exactly that float without forming the repeated data:
the images' pooled data is sorted once, each element tagged with its image,
and every resample is a weighted walk of it (see
:mod:`refmetrics.kernels.cpu.resample`).
"""

import zlib
from fractions import Fraction

import numpy as np

from .. import _arrays as A
from .. import _validation as V
from ..kernels.cpu import keys as KEYS
from ..kernels.cpu import ranking as KR
from ..kernels.cpu import regions as KG
from ..kernels.cpu import resample as K

RANKING = ("auroc", "average_precision", "f1_max")
PAIR_MATRIX_MAX_IMAGES = 4096  # AUROC by the image-pair matrix up to this many images (8 n^2 bytes)
PAIR_MATRIX_MAX_ELEMENTS = 1 << 31  # ... and resamples below this many elements (``w' M w`` < 2**61 in int64)
# A resample's walk forms its counts as float64 (AP, AUPRO): exact below 2**53 elements.
MAX_RESAMPLE_ELEMENTS = (1 << 53) - 1


def check_resamples(n_resamples):
    return V.check_count("n_resamples", n_resamples, minimum=1)


def check_seed(seed):
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: expected an integer >= 0, received {seed!r}")
    return int(seed)


def check_level(level):
    return V.check_level(level)


def generator(seed, stream=None):
    """``numpy.random.default_rng(seed)``, or with ``stream`` (a name: a category, a defect type)
    ``default_rng([seed, zlib.crc32(stream.encode("utf-8"))])``: one independent sequence per named group,
    the same whichever other groups a run holds."""
    seed = check_seed(seed)
    if stream is None:
        return np.random.default_rng(seed)
    return np.random.default_rng([seed, zlib.crc32(str(stream).encode("utf-8"))])


def resample_counts(anomalous, n_resamples, seed, stream=None):
    """Multiplicities ``W`` (int64, ``(n_resamples, n_images)``) of stratified resamples.

    The normal images and the anomalous images (each in image order) are drawn
    apart, with replacement, as many as there are:
    ``rng = numpy.random.default_rng(seed)``, then
    ``rng.integers(0, n_normal, (B, n_normal))`` for every resample's normal
    draws, then ``rng.integers(0, n_anomalous, (B, n_anomalous))``.
    ``W[b, i]`` counts image ``i`` in resample ``b``. ``refmetrics evaluate --ci`` and ``compare`` name the
    group (``stream``): each category, each defect type, draws its own resamples (:func:`generator`).

    >>> resample_counts([0, 0, 1], 2, seed=0).tolist()
    [[0, 2, 1], [1, 1, 1]]
    """
    labels = np.asarray(anomalous).reshape(-1)
    if labels.dtype != np.bool_ and not np.isin(labels, (0, 1)).all():
        raise ValueError("anomalous: expected one 0/1 or bool label per image, received values "
                         f"{np.unique(labels)[:5].tolist()}")
    labels = labels.astype(bool)
    b = check_resamples(n_resamples)
    rng = generator(seed, stream)
    n = labels.size
    counts = np.zeros(b * n, np.int64)
    rows = np.arange(b, dtype=np.int64)[:, None] * n
    for stratum in (np.flatnonzero(~labels), np.flatnonzero(labels)):
        if stratum.size:
            draws = rng.integers(0, stratum.size, size=(b, stratum.size))
            counts += np.bincount((rows + stratum[draws]).reshape(-1), minlength=b * n)
    return counts.reshape(b, n)


def check_weights(weights, n_images, sizes=None):
    """``W`` as contiguous int64 multiplicities, checked: an integer ``(resamples, n_images)`` array of
    values >= 0 whose resamples hold at most the elements refmetrics takes in one call (``sizes``: each
    image's element count), so that no count overflows."""
    w = np.asarray(weights)
    if w.ndim != 2 or w.shape[1] != n_images or w.dtype.kind not in "iu":
        raise ValueError(f"W: expected integer multiplicities of shape (resamples, {n_images}), received "
                         f"{w.dtype} {w.shape}")
    if w.size and (w < 0).any():
        raise ValueError("W: expected multiplicities >= 0, received a negative one")
    if w.size and int(w.max()) > MAX_RESAMPLE_ELEMENTS:
        raise ValueError(f"W: expected multiplicities of at most {MAX_RESAMPLE_ELEMENTS:,}, received "
                         f"{int(w.max()):,}")
    if sizes is not None and w.size:
        largest = float((w.astype(np.float64) @ np.asarray(sizes, np.float64)).max())
        if largest > MAX_RESAMPLE_ELEMENTS:
            raise ValueError(f"W: expected resamples of at most {MAX_RESAMPLE_ELEMENTS:,} elements, received one of "
                             f"{largest:,.0f} (the images repeated by their multiplicities)")
    return np.ascontiguousarray(w, np.int64)


def percentile_interval(values, level):
    """``(low, high)``: the ``(1 - level)/2`` and ``(1 + level)/2`` quantiles (linear, as
    ``numpy.nanquantile``) of the replicates, NaN ones left out; NaN if all are."""
    level = check_level(level)
    v = np.asarray(values, np.float64)
    v = v[~np.isnan(v)]
    if not v.size:
        return float("nan"), float("nan")
    low, high = np.quantile(v, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def paired_p_value(differences):
    """Two-sided bootstrap p-value of a paired difference:
    ``min(1, 2 min(1 + #{d <= 0}, 1 + #{d >= 0}) / (B + 1))`` over the ``B`` non-NaN replicates."""
    d = np.asarray(differences, np.float64)
    d = d[~np.isnan(d)]
    if not d.size:
        return float("nan")
    low = 1 + int(np.count_nonzero(d <= 0))
    high = 1 + int(np.count_nonzero(d >= 0))
    return min(1.0, 2 * min(low, high) / (d.size + 1))


def _image_bits(n_images):
    return max(1, int(n_images - 1).bit_length())


def _sort_pairs(keys, payload):
    tk, tp = np.empty_like(keys), np.empty_like(payload)
    if KG.radix_sort_pairs(keys, payload, tk, tp, KR.digit_shifts(keys.dtype), KR.digit_shifts(payload.dtype)):
        return tk, tp
    return keys, payload


class _Sorted:
    """Pooled keys of a set of images, sorted, each tagged with its image.

    ``pos``: positives (defect pixels), payload ``size << ib | image`` (size 0 at image
    level); ``neg``: negatives (background), payload = image. Per-image counts of
    positives, negatives and regions.
    """

    def __init__(self, pos_k, pos_p, neg_k, neg_p, n_pos, n_neg, n_regions):
        self.n_images = n_pos.size
        self.ib = _image_bits(self.n_images)
        self.mask = np.uint64((1 << self.ib) - 1)
        self.pos_k, self.pos_p = _sort_pairs(pos_k, pos_p)
        self.neg_k, self.neg_p = _sort_pairs(neg_k, neg_p.astype(np.uint16 if self.ib <= 16 else np.uint32))
        # per positive: the negatives below its key, and at most its key
        self.lo_of = np.searchsorted(self.neg_k, self.pos_k, "left").astype(np.int64)
        self.hi_of = np.searchsorted(self.neg_k, self.pos_k, "right").astype(np.int64)
        self.n_pos, self.n_neg, self.n_regions = n_pos, n_neg, n_regions
        self._pairs = None
        self._reciprocals = None
        self._walked = None

    def totals(self, w):
        return w @ self.n_pos, w @ self.n_neg

    def pair_matrix(self):
        """``M[i, j]`` = ``2U`` of image i's positives against image j's negatives (int64)."""
        if self._pairs is None:
            m = np.zeros((self.n_images, self.n_images), np.int64)
            if self.pos_k.size <= self.neg_k.size:
                K.pair_counts(self.pos_k, self.pos_p, self.neg_k, self.neg_p, self.mask, m)
            else:  # walk the negatives: reversed, complemented keys turn "above" into "below"
                t = np.zeros_like(m)
                K.pair_counts(~self.neg_k[::-1], self.neg_p[::-1].copy(), ~self.pos_k[::-1],
                              self.pos_p[::-1].copy(), self.mask, t)
                m = np.ascontiguousarray(t.T)
            self._pairs = m
        return self._pairs

    def ranking(self, w, metric):
        n_pos, n_neg = self.totals(w)
        out = np.full(w.shape[0], np.nan)
        if metric == "auroc" and self.n_images <= PAIR_MATRIX_MAX_IMAGES and self.pos_k.size + self.neg_k.size > \
                8 * self.n_images and int((n_pos + n_neg).max()) < PAIR_MATRIX_MAX_ELEMENTS:
            u2 = np.einsum("bi,bi->b", w @ self.pair_matrix(), w)
        else:
            out_i, out_f = self._walk(w, n_pos)
            if metric == "average_precision":
                return out_f
            u2 = [(int(high) << 63) + int(low) for low, high in zip(out_i[:, 0], out_i[:, 4])]
        for b in range(w.shape[0]):
            p, n = int(n_pos[b]), int(n_neg[b])
            if metric == "auroc":
                if p and n:
                    out[b] = float(Fraction(int(u2[b]), 2 * p * n))
            elif p and out_i[b, 3]:  # f1_max
                tp, fp = int(out_i[b, 1]), int(out_i[b, 2])
                out[b] = float(Fraction(2 * tp, tp + fp + p))
        return out

    def _walk(self, w, n_pos):
        """One weighted walk per resample gives 2U, AP and F1-max at once: the last walk's results are
        kept for the next metric asked on the same resamples."""
        if self._walked is not None and np.array_equal(self._walked[0], w):
            return self._walked[1:]
        out_i = np.zeros((w.shape[0], 5), np.int64)
        out_f = np.empty(w.shape[0])
        K.ranking_replicates(self.pos_k, self.pos_p, self.neg_p, self.lo_of, self.hi_of, self.mask, w, n_pos,
                             out_i, out_f)
        self._walked = (w.copy(), out_i, out_f)
        return out_i, out_f

    def aupro(self, w, fpr_limit):
        n_bg = w @ self.n_neg
        n_regions = w @ self.n_regions
        out = np.empty(w.shape[0])
        # the AUPRO stops at the group whose false positives exceed limit * n_bg (exactly)
        need = np.array([int(Fraction(fpr_limit) * int(n)) + 1 for n in n_bg], np.int64)
        if self._reciprocals is None:
            qh, ql = np.empty(self.pos_p.size), np.empty(self.pos_p.size)
            K.reciprocals(self.pos_p, self.ib, qh, ql)
            self._reciprocals = qh, ql
        K.aupro_replicates(self.neg_p, self.pos_k, self.pos_p, *self._reciprocals, self.lo_of, self.hi_of, self.ib,
                           w, n_bg, n_regions, float(fpr_limit), need, out)
        return out


def _check_metric(metric, allowed):
    if metric not in allowed:
        raise ValueError(f"metric: expected one of {', '.join(allowed)}, received {metric!r}")


class ImageResampler:
    """Replicates of an image-level metric (one score and one 0/1 label per image).

    >>> r = ImageResampler([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    >>> W = resample_counts(r.anomalous, 3, seed=1)
    >>> r.replicates(W, "auroc").tolist() == [float(__import__("refmetrics").functional.auroc(
    ...     np.repeat([0.1, 0.4, 0.35, 0.8], w), np.repeat([0, 0, 1, 1], w))) for w in W]
    True
    """

    metrics = RANKING

    def __init__(self, scores, labels, names=("scores", "labels")):
        s = A.host_array(scores, names[0])
        t = A.host_array(labels, names[1])
        V.check_pair(s, t, *names)
        values = A.exact_scores(s, names[0])
        V.raise_if_nan(names[0], int(np.isnan(values).sum()))
        lab = A.labels(t)
        if not np.isin(lab, (0, 1)).all():
            V.raise_bad_labels(names[1], lab, False, None, None, int((~np.isin(lab, (0, 1))).sum()))
        pos = lab.astype(bool)
        self.anomalous = pos
        keys = KEYS.keys_of(values)
        img = np.arange(values.size, dtype=np.uint64)
        self._sorted = _Sorted(keys[pos], img[pos], keys[~pos], img[~pos], pos.astype(np.int64),
                               (~pos).astype(np.int64), np.zeros(values.size, np.int64))

    @property
    def n_images(self):
        return self.anomalous.size

    def replicates(self, W, metric):
        """The metric on each resample (a row of ``W``): ``(B,)`` float64, NaN where undefined."""
        _check_metric(metric, self.metrics)
        return self._sorted.ranking(check_weights(W, self.n_images, np.ones(self.n_images)), metric)


class PixelResampler:
    """Replicates of a pixel or region metric: the images' maps and masks.

    Build it with :meth:`from_maps` or :meth:`from_state` (a
    :class:`refmetrics.state.PixelState` before ``finish()``, whose per-image
    keys it reads). ``anomalous`` says which images have a defect pixel.
    """

    metrics = RANKING + ("aupro",)

    def __init__(self, sorted_data, anomalous):
        self._sorted = sorted_data
        self.anomalous = anomalous

    @property
    def n_images(self):
        return self.anomalous.size

    @classmethod
    def from_state(cls, state):
        from ..state import PixelState

        if not isinstance(state, PixelState):
            raise TypeError(f"state: expected a refmetrics.state.PixelState, received {type(state).__name__}")
        n = state.n_images
        counts = state.pixels_per_image
        n_neg, n_pos = counts[:, 0].copy(), counts[:, 1].copy()
        ib = _image_bits(n)
        kd = state.kd
        neg_k, pos_k = np.empty(int(n_neg.sum()), kd), np.empty(int(n_pos.sum()), kd)
        neg_p, pos_p = np.empty(neg_k.size, np.uint64), np.empty(pos_k.size, np.uint64)
        n_regions = state.regions_per_image
        nb = nd = 0
        for i in range(n):
            bg, defect = state.image_keys(i)
            neg_k[nb:nb + bg.size] = bg
            neg_p[nb:nb + bg.size] = i
            nb += bg.size
            if defect.size:
                sizes = state.image_region_sizes(i).astype(np.uint64)
                pos_k[nd:nd + defect.size] = defect
                pos_p[nd:nd + defect.size] = (sizes << np.uint64(ib)) | np.uint64(i)
                nd += defect.size
        return cls(_Sorted(pos_k, pos_p, neg_k, neg_p, n_pos, n_neg, n_regions), n_pos > 0)

    @classmethod
    def from_maps(cls, maps, masks, connectivity=None, names=("maps", "masks")):
        """From maps ``(N, H, W)`` (or ``(N, 1, H, W)``) and their 0/1 masks (images on axis 0)."""
        from ..state import PixelState

        p = A.host_array(maps, names[0])
        t = A.host_array(masks, names[1])
        V.check_pair(p, t, *names)
        if p.ndim < 3:
            raise ValueError(f"{names[0]}: expected maps of shape (N, H, W) or (N, 1, H, W), images on the first "
                             f"axis, received shape {p.shape}" + (" (one map: add an axis, maps[None])"
                                                                 if p.ndim == 2 else ""))
        values = A.exact_scores(p, names[0]).reshape(p.shape[0], -1)
        lab = A.labels(t).reshape(p.shape[0], -1)
        if not np.isin(lab, (0, 1)).all():
            V.raise_bad_labels(names[1], lab, False, None, None, int((~np.isin(lab, (0, 1))).sum()))
        state = PixelState(values.size, values.dtype, connectivity)
        shape = p.shape[-2:] if p.ndim >= 3 else p.shape[1:]
        for i in range(values.shape[0]):
            state.add(values[i].reshape(shape), lab[i].reshape(shape), name=f"{names[0]}[{i}]")
        return cls.from_state(state)

    def replicates(self, W, metric, fpr_limit=0.3):
        """The metric on each resample (a row of ``W``): ``(B,)`` float64, NaN where undefined."""
        _check_metric(metric, self.metrics)
        w = check_weights(W, self.n_images, self._sorted.n_pos + self._sorted.n_neg)
        if metric == "aupro":
            from .regions import check_fpr_limit

            return self._sorted.aupro(w, check_fpr_limit(fpr_limit))
        return self._sorted.ranking(w, metric)
