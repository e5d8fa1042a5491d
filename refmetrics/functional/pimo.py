"""PIMO curve and AUPIMO (Bertoldo et al., BMVC 2024), exactly.

Images are the first axis of the maps. An image with no defect pixel is
*normal*; the others are *anomalous*. A pixel is positive at threshold ``t``
when ``score >= t``, and the curve has one point per distinct score:

- the shared FPR, ``shFPR(t)``, is the mean over normal images of
  ``FP_i(t) / N_i``;
- each anomalous image has its own ``TPR_i(t) = TP_i(t) / P_i``.

Exact arithmetic: every count is an integer; the shared FPR is
``(sum over distinct image sizes N, ascending, of FP_N(t) / N) / n_normal``,
where ``FP_N`` counts the positive pixels of all normal images of ``N``
pixels: one correctly rounded float64 division per size, summed in that fixed
order, then divided by the number of normal images. The value depends on the
counts only, never on batch split, batch order or merge order.

AUPIMO reads only the part of the curve where the shared FPR lies in
``[L, U]``, a few thousand normal pixels at the top of their scores for the
default bounds: the state keeps the keys of the normal images' pixels and of
the anomalous images' defect pixels, finds the top window of normal scores
from a histogram of their keys' top bits (``kernels/cpu/pimo.py``), and counts
each anomalous image's defect pixels at the window's thresholds by binary
search. ``pimo_curve`` builds the full curve (every distinct score).
"""

import math

import numpy as np

from .. import _arrays as A
from .. import _validation as V
from ..kernels.cpu import keys as KEYS
from ..kernels.cpu import pimo as K
from ..kernels.cpu import regions as KR
from ..kernels.cpu._int128 import count_ratios

# The score-key map, used here by these four names only. On this branch they live in functional/_ranked.py;
# after the lead's key module (kernels/cpu/keys.py) they are KEYS.KEY_OF, KEYS.CONSTS, KEYS.decode_keys and
# KEYS.widen_keys: this line is the whole change a merge needs.
_KEY_OF, _CONSTS, _decode_keys, _widen_keys = KEYS.KEY_OF, KEYS.CONSTS, KEYS.decode_keys, KEYS.widen_keys

TOP_BITS = 16  # resolution of the histogram that finds the window of normal scores
AREA_CELLS = 1 << 24  # window columns x images counted at once (bounds the count arrays to 2 x 128 MiB)


# ---------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------

def check_fpr_bounds(fpr_bounds):
    """``(L, U)`` as floats with ``0 < L < U <= 1``."""
    if isinstance(fpr_bounds, (str, bytes)) or not hasattr(fpr_bounds, "__len__") or len(fpr_bounds) != 2:
        raise TypeError(f"fpr_bounds: expected a pair (lower, upper) of shared-FPR bounds with "
                        f"0 < lower < upper <= 1, received {fpr_bounds!r}")
    lower = V.check_real("fpr_bounds[0]", fpr_bounds[0])
    upper = V.check_real("fpr_bounds[1]", fpr_bounds[1])
    if not (0.0 < lower < upper <= 1.0):
        raise ValueError(f"fpr_bounds: expected 0 < lower < upper <= 1, received ({fpr_bounds[0]!r}, "
                         f"{fpr_bounds[1]!r})")
    return lower, upper


def check_return_per_image(value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"return_per_image: expected True or False, received {value!r}")
    return bool(value)


def _image_layout(p, t):
    """``(n_images, pixels_per_image)`` of maps ``(B, ...)``."""
    V.check_pair(p, t)
    if p.ndim < 2:
        raise ValueError(f"preds: expected maps of shape (B, H, W) (or (B, ...)), images along the first axis, "
                         f"received shape {p.shape}")
    n_images = p.shape[0]
    if t.ndim < 1 or t.shape[0] != n_images:
        raise ValueError(f"target: expected masks with the images along the first axis, as preds "
                         f"{p.shape}, received shape {t.shape}")
    return n_images, p.size // n_images


# ---------------------------------------------------------------------------
# state
# ---------------------------------------------------------------------------

class _Part:
    """The keys of one batch of images (host NumPy or numba device arrays).

    ``normal``: every pixel of the batch's normal images (``n_normal`` images of
    ``n_per`` pixels); ``defect``: the defect pixels of its anomalous images,
    image after image (``n_defect[a]`` each); ``other``: the remaining pixels
    of anomalous images (kept only for the full curve, else None);
    ``anomalous``: one flag per image of the batch, in order.
    """

    __slots__ = ("n_per", "normal", "n_normal", "defect", "n_defect", "other", "anomalous", "device")

    def __init__(self, n_per, normal, defect, n_defect, other, anomalous, device=False):
        self.n_per, self.normal, self.defect, self.n_defect = n_per, normal, defect, n_defect
        self.other, self.anomalous, self.device = other, anomalous, device
        self.n_normal = int(anomalous.size - np.count_nonzero(anomalous))

    @property
    def key_dtype(self):
        return np.dtype(self.normal.dtype)

    def widened(self):
        """The part with float32 keys re-keyed as float64 keys (exact)."""
        if self.device:
            from ..kernels.cuda import _driver as D

            widen = D.widen
        else:
            widen = _widen_keys
        return _Part(self.n_per, widen(self.normal), widen(self.defect), self.n_defect,
                     None if self.other is None else widen(self.other), self.anomalous, self.device)


def _partition_host(scores, labels, n_images, n_per, keep_other):
    kd = _KEY_OF[scores.dtype]
    positives = np.empty(n_images, np.int64)
    n_bad = K.image_positives(labels, n_per, positives)
    if n_bad:
        V.raise_bad_labels("target", labels, False, None, None, n_bad)
    anomalous = positives > 0
    n_def = int(positives.sum())
    n_norm = int(n_per * (n_images - np.count_nonzero(anomalous)))
    n_oth = int(n_per * np.count_nonzero(anomalous)) - n_def if keep_other else 0
    normal = np.empty(n_norm, kd)
    defect = np.empty(n_def, kd)
    other = np.empty(max(n_oth, 0), kd)
    nn, nd, no, n_nan = K.partition_images(scores.view(kd), labels, n_per, positives, _CONSTS[kd], keep_other,
                                           normal, defect, other)
    V.raise_if_nan("preds", n_nan)
    return _Part(n_per, normal, defect, positives[anomalous], other if keep_other else None, anomalous)


def _partition_device(scores, labels, n_images, n_per, keep_other):
    from ..kernels.cuda import _driver as D

    normal, defect, other, positives, n_nan, n_bad = D.pimo_partition(scores, labels, n_images, n_per, keep_other)
    if n_bad:
        V.raise_bad_labels("target", labels.copy_to_host(), False, None, None, n_bad)
    V.raise_if_nan("preds", n_nan)
    anomalous = positives > 0
    return _Part(n_per, normal, defect, positives[anomalous], other if keep_other else None, anomalous,
                 device=True)


def intake_images(preds, target, backend, keep_other):
    """Validate one batch of maps and masks into a :class:`_Part` (on the backend that runs)."""
    where = A.resolve_backend(backend, preds, target)
    p = A.array_on(where, preds, "preds")
    t = A.array_on(where, target, "target")
    n_images, n_per = _image_layout(p, t)
    if where == "cuda":
        return _partition_device(A.device_scores(p, "preds"), A.device_labels(t), n_images, n_per, keep_other)
    return _partition_host(A.exact_scores(p, "preds"), A.labels(t), n_images, n_per, keep_other)


class PimoState:
    """The parts of every batch; merging concatenates the lists (images keep their order).

    Per-image results follow the images in update order (then merged states'
    images); every other result is a function of the multiset of images only.
    """

    def __init__(self, keep_other=False):
        self.keep_other = keep_other
        self.parts = []

    def add(self, part):
        self.parts.append(part)

    def merge(self, other):
        self.parts.extend(other.parts)  # parts are never modified in place: sharing them is safe

    @property
    def n_images(self):
        return sum(p.anomalous.size for p in self.parts)

    @property
    def n_normal(self):
        return sum(p.n_normal for p in self.parts)

    @property
    def n_anomalous(self):
        return sum(p.n_defect.size for p in self.parts)

    @property
    def n_pixels(self):
        return sum(p.anomalous.size * p.n_per for p in self.parts)

    @property
    def on_device(self):
        return any(p.device for p in self.parts)

    def uniform_parts(self):
        """The parts with one key dtype (float32 keys widened where float64 ones are present), and all on
        the device as soon as one is."""
        parts = self.parts
        if len({p.key_dtype for p in parts}) > 1:
            parts = [p if p.key_dtype == np.uint64 else p.widened() for p in parts]
        if any(p.device for p in parts) and not all(p.device for p in parts):
            from numba import cuda

            parts = [p if p.device else _Part(p.n_per, cuda.to_device(p.normal), cuda.to_device(p.defect),
                                              p.n_defect, None if p.other is None else cuda.to_device(p.other),
                                              p.anomalous, device=True) for p in parts]
        return parts

    def image_classes(self):
        """1 for anomalous, 0 for normal images, in image order (int64)."""
        if not self.parts:
            return np.empty(0, np.int64)
        return np.concatenate([p.anomalous for p in self.parts]).astype(np.int64)


def _size_groups(parts):
    """Distinct image sizes of normal images, ascending: ``(sizes int64, group index of each part or -1)``."""
    sizes = sorted({p.n_per for p in parts if p.n_normal})
    index = {n: g for g, n in enumerate(sizes)}
    return np.array(sizes, np.int64), [index.get(p.n_per, -1) if p.n_normal else -1 for p in parts]


def _shared_fpr_array(fp, sizes, n_normal):
    """The kernel's ``shared_fpr`` for arrays of counts ``fp[g, j]`` (the same float64 operations in
    the same order, element by element)."""
    s = np.zeros(fp.shape[1], np.float64)
    for g in range(sizes.size):
        s = s + count_ratios(fp[g], sizes[g])
    return s / np.float64(n_normal)


# ---------------------------------------------------------------------------
# AUPIMO
# ---------------------------------------------------------------------------

def _window(parts, sizes, group_of, n_normal, upper):
    """The top of the curve: distinct normal keys from the highest down to the first whose shared FPR
    reaches ``upper``, and their shared FPRs: ``(keys descending, fpr)``."""
    kd = parts[0].key_dtype
    shift = kd.type(8 * kd.itemsize - TOP_BITS)
    hist = np.zeros((sizes.size, 1 << TOP_BITS), np.int64)
    for p, g in zip(parts, group_of):
        if g < 0:
            continue
        if p.device:
            from ..kernels.cuda import _driver as D

            hist[g] += D.top_histogram(p.normal, None, shift, 1 << TOP_BITS)
        else:
            KR.top_histogram(p.normal, shift, hist[g])
    from_top = np.cumsum(hist[:, ::-1], axis=1)[:, ::-1]  # keys in buckets >= b, per group
    fpr_at = _shared_fpr_array(from_top, sizes, n_normal)  # non-increasing in b; fpr_at[0] == 1
    bucket = int(np.flatnonzero(fpr_at >= upper)[-1])
    cut = kd.type(bucket) << shift
    per_group = [[] for _ in range(sizes.size)]
    for p, g in zip(parts, group_of):
        if g < 0:
            continue
        if p.device:
            from ..kernels.cuda import _driver as D

            keys, _ = D.select(p.normal, None, 0, cut)
            per_group[g].append(keys.copy_to_host())
        else:
            per_group[g].append(p.normal[p.normal >= cut])
    cand = [np.sort(np.concatenate(c)) for c in per_group]
    starts = np.zeros(sizes.size + 1, np.int64)
    starts[1:] = np.cumsum([c.size for c in cand])
    keys = np.concatenate(cand) if cand else np.empty(0, kd)
    out_keys = np.empty(keys.size, kd)
    out_fpr = np.empty(keys.size, np.float64)
    w = K.shared_fpr_walk(keys, starts, np.arange(sizes.size, dtype=np.int64), sizes, n_normal, upper,
                          out_keys, out_fpr)
    return out_keys[:w], out_fpr[:w]


def _areas(parts, window_desc, fpr, lower, upper):
    """AUPIMO of every anomalous image, in image order."""
    window = np.ascontiguousarray(window_desc[::-1])
    n_win = window.size
    rows = max(1, AREA_CELLS // (n_win + 1))
    out = []
    for p in parts:
        offsets = np.zeros(p.n_defect.size + 1, np.int64)
        offsets[1:] = np.cumsum(p.n_defect)
        for a0 in range(0, p.n_defect.size, rows):
            a1 = min(p.n_defect.size, a0 + rows)
            if p.device:
                from ..kernels.cuda import _driver as D

                at_le, at_lt = D.pimo_defect_bins(p.defect, offsets[a0:a1 + 1], window)
            else:
                at_le = np.zeros((a1 - a0, n_win + 1), np.int64)
                at_lt = np.zeros((a1 - a0, n_win + 1), np.int64)
                K.defect_bins(p.defect, offsets[a0:a1 + 1], window, 0, at_le, at_lt)
            res = np.empty(a1 - a0, np.float64)
            K.aupimo_areas(fpr, at_le, at_lt, p.n_defect[a0:a1], lower, upper, res)
            out.append(res)
    return np.concatenate(out) if out else np.empty(0)


def _undefined(state, what):
    """None when both classes are present; else warn and say so."""
    n, a = state.n_normal, state.n_anomalous
    if n and a:
        return False
    why = "no images" if not (n or a) else ("no normal image (every image has a defect pixel)" if not n
                                            else "no anomalous image (no defect pixel anywhere)")
    V.warn_undefined(f"{what} is undefined with {why}; returning nan", stacklevel=5)
    return True


def aupimo_from_state(state, fpr_bounds):
    """``(mean, per_image)``: the mean AUPIMO over anomalous images and one value per image (NaN for
    normal images), or NaN and all-NaN with an UndefinedMetricWarning."""
    lower, upper = fpr_bounds
    per_image = np.full(state.n_images, np.nan)
    if _undefined(state, "AUPIMO"):
        return float("nan"), per_image
    parts = state.uniform_parts()
    sizes, group_of = _size_groups(parts)
    keys, fpr = _window(parts, sizes, group_of, state.n_normal, upper)
    if lower < fpr[0]:
        V.warn_undefined(
            f"AUPIMO is undefined with fpr_bounds=({lower:g}, {upper:g}): the lower bound is below the "
            f"smallest positive shared FPR these {state.n_normal:,} normal images can reach, {fpr[0]:.6g} "
            f"(their pixels' highest score alone); the reachable shared FPR range is [{fpr[0]:.6g}, 1]: "
            f"raise the lower bound to at least {fpr[0]:.6g}, or add normal images; returning nan",
            stacklevel=4)
        return float("nan"), per_image
    areas = _areas(parts, keys, fpr, lower, upper)
    per_image[state.image_classes() == 1] = areas
    return math.fsum(areas.tolist()) / areas.size, per_image


def aupimo(preds, target, *, fpr_bounds=(1e-5, 1e-4), return_per_image=False, backend="auto"):
    """Area under the per-image overlap curve (AUPIMO), averaged over anomalous images.

    Defined in ``docs/definitions.md``, section "PIMO curve and AUPIMO" (the page a paper cites).

    Parameters
    ----------
    preds : array_like
        Anomaly maps ``(B, H, W)`` (or ``(B, ...)``): images along the first
        axis. Any real dtype; NaN rejected, +-inf allowed.
    target : array_like
        {0, 1} masks with as many elements (``(B, 1, H, W)`` maps with
        ``(B, H, W)`` masks are fine). An image with no defect pixel is normal.
    fpr_bounds : (float, float)
        ``(L, U)`` with ``0 < L < U <= 1``: the shared-FPR integration range,
        ``(1e-5, 1e-4)`` by default (Bertoldo et al.).
    return_per_image : bool
        Also return one AUPIMO per image.
    backend : {"auto", "cpu", "cuda"}

    Returns
    -------
    float or (float, ndarray of float64)
        The mean AUPIMO over anomalous images; with ``return_per_image``, also
        the per-image values (NaN for normal images), in image order.

    Notes
    -----
    A pixel is positive at ``t`` when ``score >= t``; the curve has one point
    per distinct score. ``shFPR(t)`` is the mean over normal images of
    ``FP_i(t) / N_i``; ``TPR_i(t) = TP_i(t) / P_i``. ``AUPIMO_i`` is the
    trapezoid area under ``(ln shFPR, TPR_i)`` from ``ln L`` to ``ln U``, the
    curve interpolated linearly in ``ln shFPR`` at both bounds, divided by
    ``ln U - ln L``. The mean is a correctly rounded sum (``math.fsum``) over
    the images divided by their number. Undefined (NaN and an
    UndefinedMetricWarning that says why): no normal image, no anomalous image,
    or ``L`` below the smallest positive shared FPR the data can reach (the
    warning gives the reachable range). Counts are integers; the shared FPR is
    computed as ``docs/definitions.md`` spells out, independently of batching.

    See Also
    --------
    pimo_curve : the full curve.
    refmetrics.AUPIMO : the stateful form.

    References
    ----------
    J. P. C. Bertoldo, D. Ameln, A. Vaidya, S. Akçay, "AUPIMO: Redefining Visual Anomaly Detection
    Benchmarks with High Speed and Low Tolerance", BMVC 2024.

    Examples
    --------
    Two normal images of four pixels and one anomalous image:

    >>> import numpy as np
    >>> from refmetrics.functional import aupimo
    >>> maps = np.array([[[0.1, 0.2, 0.3, 0.9]], [[0.1, 0.2, 0.4, 0.5]], [[0.8, 0.7, 0.2, 0.1]]])
    >>> masks = np.array([[[0, 0, 0, 0]], [[0, 0, 0, 0]], [[1, 1, 0, 0]]])
    >>> mean, per_image = aupimo(maps, masks, fpr_bounds=(0.125, 0.25), return_per_image=True)
    >>> mean  # shFPR 1/8 at 0.9, 2/8 at 0.5; both defect pixels are above 0.5
    1.0
    >>> per_image.tolist()
    [nan, nan, 1.0]
    >>> round(aupimo(maps, masks, fpr_bounds=(0.125, 0.5)), 12)  # TPR 1 up to shFPR 1/4, then 1 again
    1.0
    """
    bounds = check_fpr_bounds(fpr_bounds)
    return_per_image = check_return_per_image(return_per_image)
    state = PimoState()
    state.add(intake_images(preds, target, backend, keep_other=False))
    mean, per_image = aupimo_from_state(state, bounds)
    return (mean, per_image) if return_per_image else mean


# ---------------------------------------------------------------------------
# PIMO curve
# ---------------------------------------------------------------------------

def _host(arr):
    return arr.copy_to_host() if hasattr(arr, "copy_to_host") else arr


def pimo_from_state(state):
    """``(thresholds, shared_fpr, per_image_tpr, image_classes)``, one point per distinct score."""
    n_img = state.n_images
    classes = state.image_classes()
    if not (state.n_normal and state.n_anomalous):
        _undefined(state, "the PIMO curve")
    parts = state.uniform_parts()
    if not parts:
        return np.empty(0), np.empty(0), np.empty((0, 0)), classes
    kd = parts[0].key_dtype
    every = [_host(a) for p in parts for a in (p.normal, p.defect, p.other) if a is not None]
    thresholds = np.unique(np.concatenate(every))[::-1]  # keys, decreasing
    sizes, group_of = _size_groups(parts)
    fp = np.zeros((sizes.size, thresholds.size), np.int64)
    for g in range(sizes.size):
        keys = np.sort(np.concatenate([_host(p.normal) for p, pg in zip(parts, group_of) if pg == g]))
        fp[g] = keys.size - np.searchsorted(keys, thresholds, side="left")
    with np.errstate(invalid="ignore", divide="ignore"):
        shared = _shared_fpr_array(fp, sizes, state.n_normal) if state.n_normal \
            else np.full(thresholds.size, np.nan)
    tpr = np.full((n_img, thresholds.size), np.nan)
    row = 0
    for p in parts:
        defect = _host(p.defect)
        start = 0
        image_rows = np.flatnonzero(p.anomalous) + row
        for a, count in enumerate(p.n_defect):
            keys = np.sort(defect[start:start + count])
            start += count
            tpr[image_rows[a]] = (count - np.searchsorted(keys, thresholds, side="left")) / np.float64(count)
        row += p.anomalous.size
    return _decode_keys(thresholds.astype(kd)), shared, tpr, classes


def pimo_curve(preds, target, *, backend="auto"):
    """Per-image overlap (PIMO) curves: a shared FPR and one TPR curve per anomalous image.

    Defined in ``docs/definitions.md``, section "PIMO curve and AUPIMO" (the page a paper cites).

    Parameters
    ----------
    preds, target, backend
        As in :func:`aupimo`.

    Returns
    -------
    thresholds : ndarray of float64
        Every distinct score, decreasing.
    shared_fpr : ndarray of float64
        ``shFPR(t)``, the mean over normal images of ``FP_i(t) / N_i``
        (non-decreasing); NaN without a normal image.
    per_image_tpr : ndarray of float64, shape (B, T)
        ``TPR_i(t) = TP_i(t) / P_i``; NaN rows for normal images.
    image_classes : ndarray of int64
        1 for anomalous images, 0 for normal ones.

    Notes
    -----
    A pixel is positive at ``t`` when ``score >= t``. Unlike anomalib's
    ``pimo_curves`` (thresholds increasing, 300,000 of them evenly spaced over
    the normal images' scores), every distinct score is a threshold, in
    decreasing order as :func:`refmetrics.functional.roc_curve`. The TPR
    array has one row per image and one column per distinct score: on large
    data prefer :func:`aupimo`, which reads only the window it integrates.

    Examples
    --------
    >>> import numpy as np
    >>> from refmetrics.functional import pimo_curve
    >>> maps = np.array([[[0.1, 0.2, 0.3, 0.9]], [[0.1, 0.2, 0.4, 0.5]], [[0.8, 0.7, 0.2, 0.1]]])
    >>> masks = np.array([[[0, 0, 0, 0]], [[0, 0, 0, 0]], [[1, 1, 0, 0]]])
    >>> thr, shfpr, tpr, classes = pimo_curve(maps, masks)
    >>> thr.tolist()
    [0.9, 0.8, 0.7, 0.5, 0.4, 0.3, 0.2, 0.1]
    >>> shfpr.tolist()
    [0.125, 0.125, 0.125, 0.25, 0.375, 0.5, 0.75, 1.0]
    >>> tpr[2].tolist(), classes.tolist()
    ([0.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [0, 0, 1])
    """
    state = PimoState(keep_other=True)
    state.add(intake_images(preds, target, backend, keep_other=True))
    return pimo_from_state(state)
