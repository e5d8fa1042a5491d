"""Saturated per-region overlap (sPRO) and its area (AU-sPRO): MVTec LOCO AD.

Bergmann, Batzner, Fauser, Sattlegger, Steger, "Beyond Dents and Scratches:
Logical Constraints in Unsupervised Anomaly Detection and Localization",
IJCV 130 (2022). Ground truth is a list of *defects* per image, each one
ground-truth channel (a mask that may span several connected components) with
a saturation threshold: a defect counts as fully found once that many of its
pixels are predicted anomalous.

The curve is exact over every distinct score (the official evaluation samples
thresholds, see :mod:`refmetrics.conformance.published`). The state keeps the
key of every pixel that lies in no defect and, per defect, the keys of its
``S`` highest-scoring pixels with ``S`` (see ``kernels/cpu/spro.py``): batch
splits, batch orders and merges give bit-identical results, on every backend.
On the CUDA backend the masks are read on the host; the scores stay on the
device, where the keys are formed, each defect's pixels ranked (device radix
sort) and its top ``S`` kept.
"""

import json
import math
import numbers
import os

import numpy as np

from .. import _arrays as arrays
from .. import _validation as validation
from ..kernels.cpu import keys
from ..kernels.cpu import regions as cpu_regions
from ..kernels.cpu import spro as cpu_spro
from ..kernels.cpu._int128 import count_ratios
from . import _regions as regions

OFFICIAL_FPR_LIMITS = (0.01, 0.05, 0.1, 0.3, 1.0)


# ---------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------

def check_fpr_limits(fpr_limit):
    """``(limits as a tuple of floats, whether one was given as a scalar)``."""
    scalar = not isinstance(fpr_limit, (list, tuple, np.ndarray))
    values = [fpr_limit] if scalar else list(np.asarray(fpr_limit).ravel().tolist()
                                             if isinstance(fpr_limit, np.ndarray) else fpr_limit)
    if not values:
        raise ValueError("fpr_limit: expected a number in (0, 1] or a non-empty sequence of them, received an "
                         "empty sequence")
    return tuple(validation.check_unit("fpr_limit", v, "numbers") for v in values), scalar


def saturation_area(area, saturation_threshold, relative_saturation):
    """``S`` of a defect of ``area`` pixels: ``floor(thr * area)`` (the float64 product,
    as the official script computes it) if relative, else ``min(thr, area)``."""
    if relative_saturation:
        return math.floor(float(saturation_threshold) * float(area))
    return int(min(int(saturation_threshold), area))


def _check_threshold(name, thr, relative):
    if not isinstance(relative, (bool, np.bool_)):
        raise TypeError(f"{name}: expected relative_saturation to be True or False, received {relative!r}")
    if relative:
        value = validation.check_real(f"{name} saturation_threshold", thr)
        if not 0.0 < value <= 1.0:
            raise ValueError(f"{name}: expected a relative saturation_threshold in (0, 1], received {thr!r}")
        return value, True
    if isinstance(thr, (bool, np.bool_)) or not isinstance(thr, numbers.Integral):
        raise TypeError(f"{name}: expected an absolute saturation_threshold as an int (a number of pixels), "
                        f"received {thr!r}")
    if thr < 0:
        raise ValueError(f"{name}: expected an absolute saturation_threshold >= 0, received {thr!r}")
    return int(thr), False


def _check_mask(name, mask, spatial):
    m = arrays.to_host(mask, f"{name} mask")
    squeeze = tuple(s for s in m.shape if s != 1)
    if squeeze != tuple(s for s in spatial if s != 1) or m.size != int(np.prod(spatial)):
        raise ValueError(f"{name}: expected a mask of the image's shape {tuple(spatial)}, received shape "
                         f"{m.shape}")
    labels = arrays.labels(m)
    if m.dtype == np.bool_:
        flat = labels.view(np.bool_)
        n = int(np.count_nonzero(flat))
    else:
        flat = np.empty(labels.size, np.bool_)
        n, n_bad = cpu_regions.binary_mask(labels, False, labels.dtype.type(0), flat)
        validation.raise_bad_labels(f"{name} mask", labels, False, None, None, n_bad)
    if n == 0:
        raise ValueError(f"{name}: expected a mask with at least one defect pixel, received an empty mask "
                         f"(an image without defects has an empty list)")
    return flat, n


class DefectBatch:
    """One validated batch: flat scores (host or device), per image its defects as
    ``(flat bool mask, area, S)`` and the union of its masks."""

    __slots__ = ("device", "images", "n_pixels", "scores", "unions")

    def __init__(self, scores, images, unions, n_pixels, device):
        self.scores, self.images, self.unions = scores, images, unions
        self.n_pixels, self.device = n_pixels, device


def intake(preds, defects, backend):
    """Validate ``preds`` ``(B, H, W)`` (or ``(B, 1, H, W)``) and ``defects`` into a :class:`DefectBatch`."""
    where = arrays.resolve_backend(backend, preds)
    p = arrays.array_on(where, preds, "preds")
    if not (p.ndim == 3 or (p.ndim == 4 and p.shape[1] == 1)):
        raise ValueError(f"preds: expected anomaly maps of shape (B, H, W) or (B, 1, H, W), received shape "
                         f"{tuple(p.shape)}")
    if p.size == 0:
        raise ValueError(f"preds: expected at least one pixel, received shape {tuple(p.shape)}")
    n_images = p.shape[0]
    spatial = tuple(p.shape[-2:])
    if isinstance(defects, (str, bytes)) or not hasattr(defects, "__len__"):
        raise TypeError(f"defects: expected a list with one list of (mask, saturation_threshold, "
                        f"relative_saturation) per image, received {type(defects).__name__}")
    if len(defects) != n_images:
        raise ValueError(f"defects: expected one list of defects per image ({n_images}), received {len(defects)}")
    images, unions = [], []
    n_pixels = int(np.prod(spatial))
    for b, items in enumerate(defects):
        if isinstance(items, (str, bytes)) or not hasattr(items, "__len__"):
            raise TypeError(f"defects[{b}]: expected a (possibly empty) list of (mask, saturation_threshold, "
                            f"relative_saturation) tuples, received {type(items).__name__}")
        image = []
        union = None
        for j, item in enumerate(items):
            name = f"defects[{b}][{j}]"
            if not isinstance(item, (tuple, list)) or len(item) != 3:
                raise TypeError(f"{name}: expected a (mask, saturation_threshold, relative_saturation) tuple, "
                                f"received {type(item).__name__}"
                                f"{' of length ' + str(len(item)) if isinstance(item, (tuple, list)) else ''}")
            mask, thr, relative = item
            thr, relative = _check_threshold(name, thr, relative)
            flat, area = _check_mask(name, mask, spatial)
            s = saturation_area(area, thr, relative)
            if s == 0:
                validation.warn_undefined(
                    f"{name}: the saturation area is 0 ({'floor(' + repr(thr) + ' * ' + str(area) + ')' if relative else 'threshold 0'}): "
                    f"0 of 0 pixels needed, so this defect's sPRO is taken as 1 at every threshold (the official "
                    f"script divides by 0 and returns NaN)", stacklevel=5)
            image.append((flat, area, s))
            union = flat.copy() if union is None else np.logical_or(union, flat, out=union)
        images.append(image)
        unions.append(union)
    if where == "cuda":
        scores = arrays.device_scores(p, "preds")
    else:
        scores = arrays.exact_scores(p, "preds").reshape(n_images, -1)
    return DefectBatch(scores, images, unions, n_pixels, device=where == "cuda")


# ---------------------------------------------------------------------------
# state
# ---------------------------------------------------------------------------

class DefectScores(regions.RegionScores):
    """Exact sPRO state: background keys, and per defect its ``S`` highest keys with ``S``
    (as the PRO state's region pixels with their region size), plus the number of
    defects that saturate at zero pixels (``n_full``: sPRO 1 at every threshold).

    ``n_regions`` counts every defect.
    """

    def __init__(self):
        super().__init__()
        self.n_full = 0

    def add(self, part, n_full=0):
        super().add(part)
        self.n_full += n_full

    def merge(self, other):
        super().merge(other)
        self.n_full += other.n_full


def partition(batch):
    """One batch's part: ``(part, n_full)``."""
    if batch.device:
        return _partition_device(batch)
    kd = keys.KEY_OF[batch.scores.dtype]
    consts = keys.CONSTS[kd]
    n_bg_all = sum(batch.n_pixels - (int(np.count_nonzero(u)) if u is not None else 0) for u in batch.unions)
    n_kept = sum(s for image in batch.images for _, _, s in image)
    bg = np.empty(n_bg_all, kd)
    rkeys = np.empty(n_kept, kd)
    rsizes = np.empty(n_kept, np.uint64)
    largest = max((a for image in batch.images for _, a, _ in image), default=0)
    buf = np.empty(largest, kd)
    no_defect = np.zeros(batch.n_pixels, np.bool_)
    n_bg = n_nan = n_r = n_defects = n_full = 0
    for b, image in enumerate(batch.images):
        bits = batch.scores[b].view(kd)
        union = batch.unions[b] if batch.unions[b] is not None else no_defect
        n_bg, nan = cpu_spro.background_keys(bits, union, consts, bg, n_bg)
        n_nan += nan
        if nan:
            continue
        for flat, area, s in image:
            n_defects += 1
            if s == 0:
                n_full += 1
                continue
            n = cpu_spro.defect_keys(bits, flat, consts, buf)
            # the S largest keys of the defect (a multiset: ties at the boundary are interchangeable)
            rkeys[n_r:n_r + s] = np.partition(buf[:n], n - s)[n - s:] if s < n else buf[:n]
            rsizes[n_r:n_r + s] = s
            n_r += s
    validation.raise_if_nan("preds", n_nan)
    return regions._Part(bg[:n_bg], rkeys[:n_r], rsizes[:n_r], n_defects), n_full


def _partition_device(batch):
    from ..kernels.cuda import _driver as driver
    from ..kernels.cuda import spro as cuda_spro

    m = batch.n_pixels
    n_images = len(batch.images)
    union = np.zeros(n_images * m, np.uint8)
    idx, ids, seg_end, sat = [], [], [], []
    n_defects = n_full = 0
    total = 0
    for b, image in enumerate(batch.images):
        if batch.unions[b] is not None:
            union[b * m:(b + 1) * m] = batch.unions[b]
        for flat, area, s in image:
            n_defects += 1
            if s == 0:
                n_full += 1
                continue
            idx.append(np.flatnonzero(flat) + b * m)
            ids.append(np.full(area, len(sat), np.uint64))
            total += area
            seg_end.append(total)
            sat.append(s)
    keys, codes, n_nan = driver.encode_pixels(batch.scores, driver.to_device(union))
    validation.raise_if_nan("preds", n_nan)
    bg, _ = driver.select(keys, codes, driver.BACKGROUND, 0)
    if sat:
        rkeys, rsizes = cuda_spro.saturated_keys(keys, np.concatenate(idx), np.concatenate(ids),
                                                 np.array(seg_end, np.int64), np.array(sat, np.uint64))
    else:
        rkeys = driver.to_device(np.empty(0, keys.dtype))
        rsizes = driver.to_device(np.empty(0, np.uint64))
    return regions._DevicePart(bg, rkeys, rsizes, n_defects, max(sat, default=0)), n_full


def add_batch(state, preds, defects, backend):
    batch = intake(preds, defects, backend)
    part, n_full = partition(batch)
    state.add(part, n_full)


def _undefined(state, what, stacklevel=5):
    k, n_bg = state.n_regions, state.n_bg
    if k and n_bg:
        return False
    if not (k or n_bg or state.n_region_pixels):
        why = "no image"
    else:
        why = "no defect" if not k else "no defect-free pixel (the false positive rate has no denominator)"
    validation.warn_undefined(f"{what} is undefined with {why}; returning nan", stacklevel=stacklevel)
    return True


def _groups(state, collapse, fpr_limit=1.0):
    if state.on_device:
        if collapse and fpr_limit < 1.0:
            return regions.device_region_groups(*state.device_sorted_top(fpr_limit), collapse=True)
        return regions.device_region_groups(*state.device_sorted(), collapse=collapse)
    if collapse and fpr_limit < 1.0:
        return regions.exact_region_groups(*state.sorted_top(fpr_limit), collapse=True)
    return regions.exact_region_groups(*state.sorted(), collapse=collapse)


def au_spro_from_state(state, limits):
    """One float per limit (NaN, with one warning, when undefined)."""
    if _undefined(state, "AU-sPRO"):
        return [float("nan")] * len(limits)
    n_bg, k = state.n_bg, state.n_regions
    counts = [np.zeros(2, np.int64) for _ in limits]
    sums = [np.array([0.0, 0.0, float(state.n_full), 0.0]) for _ in limits]  # the curve starts at n_full / K
    # one pass over the group chunks (the generator reuses its buffers: each chunk is read before the next)
    for dfp, dsh, dsl in _groups(state, True, max(limits)):
        for limit, c, s in zip(limits, counts, sums):
            if not c[1]:
                cpu_regions.acc_aupro(dfp, dsh, dsl, n_bg, limit, c, s)
        if all(c[1] for c in counts):
            break
    return [float(cpu_regions.finish_aupro(s, n_bg, k, limit)) for limit, s in zip(limits, sums)]


def spro_points_from_state(state, fpr_limit=1.0):
    """Yield ``(fpr, spro)`` chunks of the exact sPRO curve after its start point ``(0, n_full / K)``,
    threshold decreasing, up to and including the first point past ``fpr_limit``: for figures, with
    a bounded memory (no copy of the whole curve). Runs of scores held by defect-free pixels only are
    one point (the curve is flat along them). Nothing is yielded when the curve is undefined (no
    defect, or no defect-free pixel).
    """
    n_bg, k = state.n_bg, state.n_regions
    if not (n_bg and k):
        return
    yield from spro_points_from_groups(_groups(state, True, fpr_limit), n_bg, k, state.n_full, fpr_limit)


def spro_points_from_groups(groups, n_bg, k, n_full, fpr_limit=1.0):
    """:func:`spro_points_from_state`'s points from its collapsed ``(dfp, dS_h, dS_l)`` group chunks."""
    fp, total = 0, float(n_full)
    for dfp, dsh, dsl in groups:
        cfp = np.cumsum(dfp) + fp
        cs = np.cumsum(dsh + dsl) + total
        fp, total = int(cfp[-1]), float(cs[-1])
        past = np.flatnonzero(cfp > fpr_limit * n_bg)
        end = past[0] + 1 if past.size else cfp.size
        yield count_ratios(cfp[:end], n_bg), cs[:end] / k
        if past.size:
            return


def spro_curve_from_state(state):
    if _undefined(state, "the sPRO curve") and not (state.n_bg or state.n_region_pixels or state.n_regions):
        return np.zeros(1), np.full(1, np.nan)
    # copies: the CPU generator reuses its buffers from one chunk to the next
    chunks = [(a.copy(), b.copy(), c.copy()) for a, b, c in _groups(state, False)]
    dfp = np.concatenate([c[0] for c in chunks]) if chunks else np.empty(0, np.int64)
    dsh = np.concatenate([c[1] for c in chunks]) if chunks else np.empty(0)
    dsl = np.concatenate([c[2] for c in chunks]) if chunks else np.empty(0)
    fpr = np.empty(dfp.size + 1)
    spro = np.empty(dfp.size + 1)
    cpu_spro.curve_points(dfp, dsh, dsl, state.n_bg, state.n_regions, state.n_full, fpr, spro)
    return fpr, spro


# ---------------------------------------------------------------------------
# public functions
# ---------------------------------------------------------------------------

def _check_curve_thresholds(thresholds):
    values = arrays.host_array(thresholds, "thresholds")
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"thresholds: expected a non-empty 1-D array of thresholds, received shape {values.shape}")
    values = values.astype(np.float64)
    n_nan = int(np.isnan(values).sum())
    if n_nan:
        raise ValueError(f"thresholds: expected real thresholds (+-inf allowed), received {n_nan:,} NaN"
                         f"{'s' if n_nan != 1 else ''}")
    return values


def spro_at_thresholds_from_state(state, thresholds):
    """``(fpr, spro)`` at each threshold (``score > t``), in the order given.

    Counts are exact integers; the sum of ``1/S`` over the counted pixels is taken per
    distinct ``S`` (count / S) and added with ``math.fsum`` (correctly rounded), so the
    result depends only on the data, not on how it was batched.
    """
    if _undefined(state, "the sPRO curve", stacklevel=5) and not (state.n_bg or state.n_region_pixels
                                                                   or state.n_regions):
        return np.full(thresholds.size, np.nan), np.full(thresholds.size, np.nan)
    if state.on_device:
        bg, rkeys, rsizes = (a.copy_to_host() for a in state.device_sorted())
    else:
        bg, rkeys, rsizes = state.sorted()
    bg_values = keys.decode_keys(bg)
    by_size = {int(s): np.sort(keys.decode_keys(rkeys[rsizes == s])) for s in np.unique(rsizes)}
    n_bg, k = state.n_bg, state.n_regions
    fpr = np.empty(thresholds.size)
    spro = np.empty(thresholds.size)
    for i, t in enumerate(thresholds.tolist()):
        fp = bg_values.size - int(np.searchsorted(bg_values, t, side="right"))
        fpr[i] = fp / n_bg if n_bg else np.nan
        terms = [float(state.n_full)]
        for s, values in by_size.items():
            terms.append((values.size - int(np.searchsorted(values, t, side="right"))) / s)
        spro[i] = math.fsum(terms) / k if k else np.nan
    return fpr, spro


def spro_curve(preds, defects, *, thresholds=None, backend="auto"):
    """Mean saturated per-region overlap (sPRO) against the false positive rate, exact.

    Defined in ``docs/definitions.md``, section "sPRO and AU-sPRO" (the page a paper cites).

    Parameters
    ----------
    preds : array_like
        Anomaly maps ``(B, H, W)`` (or ``(B, 1, H, W)``). Any real dtype; NaN rejected.
    defects : sequence of sequences
        ``defects[b]``: the (possibly empty) list of the defects of image ``b``,
        one ``(mask, saturation_threshold, relative_saturation)`` tuple per
        ground-truth channel. ``mask``: an ``(H, W)`` {0, 1} mask with at least
        one pixel (it may span several components: it is one defect);
        ``relative_saturation``: a bool; ``saturation_threshold``: a fraction of
        the defect's area in (0, 1] if relative, else an int number of pixels.
        :func:`read_defects_config` and :func:`defects_from_channels` build them
        from the MVTec LOCO AD files.
    thresholds : array_like, optional
        None (default): the exact curve. Otherwise the points at these
        thresholds (``score > t`` positive), in the order given: how a sampled
        evaluation (the official script) sees the curve.
    backend : {"auto", "cpu", "cuda"}

    Returns
    -------
    fpr, spro : ndarray of float64
        The start (nothing predicted anomalous), then one point per distinct
        score at which the curve moves, in decreasing score order (with
        ``thresholds``: one point per threshold).

    Notes
    -----
    A defect of area ``A`` saturates at ``S = floor(thr * A)`` pixels if
    relative (the float64 product, as the official script), else
    ``S = min(thr, A)``. At threshold ``t`` a pixel is predicted anomalous when
    ``score > t`` (strict, as the official script): ``sPRO_d(t) =
    min(TP_d(t) / S, 1)``; the curve is the mean of ``sPRO_d`` over all defects
    of all images, and ``FPR(t)`` the share of the pixels that lie in no defect
    (over all images) predicted anomalous. Pixels of equal score are crossed
    together. A pixel in two defects counts for both. A defect with ``S = 0``
    counts 1 at every threshold (with an UndefinedMetricWarning; the official
    script gives NaN). Scores whose crossing changes neither coordinate (only
    pixels of already saturated defects) add no point. With no defect (no
    defect-free pixel) the ``spro`` (``fpr``) values are NaN, with an
    UndefinedMetricWarning.

    References
    ----------
    Bergmann et al., "Beyond Dents and Scratches: Logical Constraints in
    Unsupervised Anomaly Detection and Localization", IJCV 130 (2022).

    Examples
    --------
    >>> import numpy as np
    >>> from refmetrics.functional import spro_curve
    >>> maps = np.array([[[0.9, 0.8, 0.1, 0.5]]])
    >>> defect = (np.array([[1, 1, 0, 0]]), 1, False)  # 2 pixels, saturated by 1
    >>> fpr, spro = spro_curve(maps, [[defect]])
    >>> fpr.tolist(), spro.tolist()
    ([0.0, 0.0, 0.5, 1.0], [0.0, 1.0, 1.0, 1.0])
    >>> [a.tolist() for a in spro_curve(maps, [[defect]], thresholds=[0.85, 0.5, 0.0])]
    [[0.0, 0.0, 1.0], [1.0, 1.0, 1.0]]
    """
    if thresholds is not None:
        thresholds = _check_curve_thresholds(thresholds)
    state = DefectScores()
    add_batch(state, preds, defects, backend)
    if thresholds is not None:
        return spro_at_thresholds_from_state(state, thresholds)
    return spro_curve_from_state(state)


def au_spro(preds, defects, *, fpr_limit=0.05, backend="auto"):
    """Normalised area under the sPRO curve up to a false positive rate (AU-sPRO), exact.

    Defined in ``docs/definitions.md``, section "sPRO and AU-sPRO" (the page a paper cites).

    Parameters
    ----------
    preds, defects, backend
        As in :func:`spro_curve`.
    fpr_limit : float or sequence of floats
        Integration limit(s) in (0, 1]; 0.05 by default. The official MVTec
        LOCO AD evaluation reports ``(0.01, 0.05, 0.1, 0.3, 1.0)``
        (``OFFICIAL_FPR_LIMITS``).

    Returns
    -------
    float, or list of floats (one per limit, when ``fpr_limit`` is a sequence)
        The trapezoid under :func:`spro_curve` from FPR 0 to the limit, the
        curve linearly interpolated at the limit, divided by the limit. NaN with
        an UndefinedMetricWarning when there is no defect or no defect-free pixel.

    Notes
    -----
    The official evaluation samples thresholds (50 at quantiles of sampled
    scores, refined until adjacent points are within 0.01); this is the exact
    value over every distinct score. See :func:`spro_curve` for the definition.

    References
    ----------
    Bergmann et al., IJCV 130 (2022), see :func:`spro_curve`.

    Examples
    --------
    >>> import numpy as np
    >>> from refmetrics.functional import au_spro
    >>> maps = np.array([[[0.9, 0.8, 0.1, 0.5]]])
    >>> defect = (np.array([[1, 1, 0, 0]]), 1, False)
    >>> au_spro(maps, [[defect]], fpr_limit=1.0)
    1.0
    >>> half = (np.array([[1, 1, 0, 0]]), 0.5, True)  # floor(0.5 * 2) = 1 pixel
    >>> au_spro(np.array([[[0.1, 0.8, 0.9, 0.5]]]), [[half]], fpr_limit=[0.75, 1.0])
    [0.3333333333333333, 0.5]
    """
    limits, scalar = check_fpr_limits(fpr_limit)
    state = DefectScores()
    add_batch(state, preds, defects, backend)
    values = au_spro_from_state(state, limits)
    return values[0] if scalar else values


# ---------------------------------------------------------------------------
# MVTec LOCO AD files
# ---------------------------------------------------------------------------

class DefectType:
    """One entry of ``defects_config.json``."""

    __slots__ = ("defect_name", "pixel_value", "relative_saturation", "saturation_threshold")

    def __init__(self, defect_name, pixel_value, saturation_threshold, relative_saturation):
        self.defect_name, self.pixel_value = defect_name, pixel_value
        self.saturation_threshold, self.relative_saturation = saturation_threshold, relative_saturation

    def __repr__(self):
        return (f"DefectType(defect_name={self.defect_name!r}, pixel_value={self.pixel_value!r}, "
                f"saturation_threshold={self.saturation_threshold!r}, "
                f"relative_saturation={self.relative_saturation!r})")

    def __eq__(self, other):
        return isinstance(other, DefectType) and all(getattr(self, k) == getattr(other, k) for k in self.__slots__)


def read_defects_config(path, *, encoding="utf-8"):
    """Read an MVTec LOCO AD ``defects_config.json``: ``{pixel_value: DefectType}``.

    Defined in ``docs/definitions.md``, section "sPRO and AU-sPRO" (the page a paper cites).

    Parameters
    ----------
    path : str or os.PathLike
        The file: a JSON list of objects with ``defect_name``, ``pixel_value``
        (1..255: the value of the defect's pixels in its ground-truth PNG),
        ``saturation_threshold`` and ``relative_saturation``.
    encoding : str
        The file's text encoding.

    Returns
    -------
    dict
        ``pixel_value -> DefectType`` (attributes named as the JSON keys).

    Examples
    --------
    >>> import json, os, tempfile
    >>> from refmetrics.functional import read_defects_config
    >>> entries = [{"defect_name": "missing_box", "pixel_value": 255, "saturation_threshold": 1.0,
    ...             "relative_saturation": True}]
    >>> path = os.path.join(tempfile.mkdtemp(), "defects_config.json")
    >>> with open(path, "w") as f:
    ...     json.dump(entries, f)
    >>> read_defects_config(path)[255].defect_name
    'missing_box'
    """
    with open(os.fspath(path), encoding=encoding) as f:
        try:
            entries = json.load(f)
        except json.JSONDecodeError as exc:
            raise ValueError(f"path: expected a JSON file, received {os.fspath(path)!r} ({exc})") from exc
    if not isinstance(entries, list):
        raise ValueError(  # noqa: TRY004 - the file's content is wrong, not an argument's type
            f"path: expected a JSON list of defect entries, received a {type(entries).__name__}")
    out = {}
    keys = ("defect_name", "pixel_value", "saturation_threshold", "relative_saturation")
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or any(k not in e for k in keys):
            raise ValueError(f"path: expected entry {i} to be an object with keys {', '.join(keys)}, received {e!r}")
        value = e["pixel_value"]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 255:
            raise ValueError(f"path: expected entry {i}'s pixel_value to be an int in 1..255, received {value!r}")
        if value in out:
            raise ValueError(f"path: expected distinct pixel_values, received {value} twice")
        thr, relative = _check_threshold(f"path: entry {i}", e["saturation_threshold"], e["relative_saturation"])
        out[value] = DefectType(e["defect_name"], value, thr, relative)
    return out


def defects_from_channels(channels, *, config):
    """The defects of one image from its ground-truth channels and the dataset's config.

    Defined in ``docs/definitions.md``, section "sPRO and AU-sPRO" (the page a paper cites).

    Parameters
    ----------
    channels : sequence of paths or arrays
        One ground-truth PNG (or its array) per channel: 0 where there is no
        defect, the defect type's ``pixel_value`` on its pixels. MVTec LOCO AD
        keeps them as ``ground_truth/<split>/<image>/000.png, 001.png, ...``;
        pass them sorted. An image without defects has no channel: pass ``[]``.
    config : dict
        :func:`read_defects_config`'s result.

    Returns
    -------
    list of (mask, saturation_threshold, relative_saturation)
        One entry of the ``defects`` argument of :func:`au_spro`.

    Examples
    --------
    >>> import numpy as np
    >>> from refmetrics.functional.spro import DefectType, defects_from_channels
    >>> config = {7: DefectType("extra_part", 7, 2, False)}
    >>> [(m.tolist(), t, r) for m, t, r in defects_from_channels([np.array([[0, 7], [7, 7]])], config=config)]
    [([[False, True], [True, True]], 2, False)]
    """
    out = []
    for j, channel in enumerate(channels):
        if isinstance(channel, (str, os.PathLike)):
            from PIL import Image

            with Image.open(channel) as image:
                array = np.array(image)
        else:
            array = arrays.to_host(channel, f"channels[{j}]")
        values = np.unique(array)
        positive = values[values != 0]
        if positive.size != 1 or (values < 0).any():
            raise ValueError(f"channels[{j}]: expected 0 and exactly one positive pixel value (the defect type), "
                             f"received values {values[:8].tolist()}")
        value = int(positive[0])
        if value not in config:
            raise ValueError(f"channels[{j}]: expected a pixel value listed in the defects config "
                             f"({sorted(config)}), received {value}")
        entry = config[value]
        out.append((array != 0, entry.saturation_threshold, entry.relative_saturation))
    return out
