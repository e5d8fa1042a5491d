"""Public functions of :mod:`refmetrics.dask` (see the package docstring)."""

import math
import numbers
from fractions import Fraction

import numpy as np

from .. import _arrays as A
from .. import _buckets as B
from .. import _labels as L
from .. import _validation as V
from ..functional import _regions as G
from ..functional import regions as FR
from ..kernels.cpu import keys as KEYS
from . import _graph as D

#: keys per bucket when ``bucket_size`` is None: 2**24 (64 MiB of float32 keys, 128 MiB of float64)
DEFAULT_BUCKET_SIZE = B.DEFAULT_BUDGET


# ---------------------------------------------------------------------------
# arguments
# ---------------------------------------------------------------------------

def _as_dask(x, name):
    import dask.array as da

    if isinstance(x, da.Array):
        return x
    try:
        return da.asarray(x)
    except Exception as err:
        raise TypeError(f"{name}: expected a dask array or array_like, received {type(x).__name__}") from err


def _check_options(bucket_size, backend, thresholds=None):
    if thresholds is not None:
        raise ValueError(f"thresholds: refmetrics.dask computes the exact metrics only: expected None, "
                         f"received {thresholds!r}")
    if backend not in ("auto", "cpu"):
        raise ValueError(f"backend: refmetrics.dask computes on the workers' CPUs: expected 'auto' or 'cpu', "
                         f"received {backend!r}")
    if bucket_size is None:
        return DEFAULT_BUCKET_SIZE
    if isinstance(bucket_size, (bool, np.bool_)) or not isinstance(bucket_size, numbers.Integral) \
            or bucket_size < 1:
        raise ValueError(f"bucket_size: expected None or a positive int (keys per bucket), received {bucket_size!r}")
    return int(bucket_size)


def _same_size(p, t):
    if p.size != t.size:
        raise ValueError(f"target: expected as many elements as preds ({p.size:,}, shape {p.shape}), received "
                         f"{t.size:,} (shape {t.shape})")


def _ranking_chunks(preds, target):
    """The ``(preds, target)`` chunk pairs (delayed), target chunked as preds."""
    p, t = _as_dask(preds, "preds"), _as_dask(target, "target")
    _same_size(p, t)
    if p.shape != t.shape:
        p, t = p.reshape(-1), t.reshape(-1)
    t = t.rechunk(p.chunks)
    return list(zip(p.to_delayed().ravel().tolist(), t.to_delayed().ravel().tolist()))


def _region_chunks(preds, target, spatial_dims):
    """``(maps, masks)`` chunk pairs of whole images: spatial axes rechunked to full size."""
    m, t = _as_dask(preds, "preds"), _as_dask(target, "target")
    L.sample_layout(t.shape, spatial_dims)  # raises for a layout the functional API refuses
    _same_size(m, t)
    if m.shape != t.shape:
        m = m.reshape(t.shape)
    if t.ndim == spatial_dims:  # one image
        m = m.rechunk(-1)
    else:
        m = m.rechunk({i: -1 for i in range(1, t.ndim)})
    t = t.rechunk(m.chunks)
    return list(zip(m.to_delayed().ravel().tolist(), t.to_delayed().ravel().tolist())), m.dtype


def _key_dtype(score_dtype):
    return KEYS.KEY_OF[A.exact_scores(np.zeros(1, score_dtype), "preds").dtype]


def _ranking(preds, target, ignore_index, bucket_size, backend, scheduler, thresholds=None):
    bucket_size = _check_options(bucket_size, backend, thresholds)
    V.check_ignore_index(ignore_index)
    return D.RankingPlan(_ranking_chunks(preds, target), ignore_index, bucket_size, scheduler)


def _why(p, n, pos_name="positive (anomalous) sample", neg_name="negative (normal) sample"):
    return "no samples" if not (p or n) else (f"no {pos_name}" if not p else f"no {neg_name}")


def _one_class(rp, what):
    if rp.n_pos and rp.n_neg:
        return False
    V.warn_undefined(f"{what} is undefined with {_why(rp.n_pos, rp.n_neg)}; returning nan", stacklevel=4)
    return True


def _no_positive(rp, what):
    if rp.n_pos:
        return False
    V.warn_undefined(f"{what} is undefined with {_why(0, rp.n_neg)}; returning nan", stacklevel=4)
    return True


# ---------------------------------------------------------------------------
# ranking metrics
# ---------------------------------------------------------------------------

_COMMON = """preds, target : dask.array.Array or array_like
        As in :mod:`refmetrics.functional` (any shape, as many elements each); chunks
        of ``target`` follow those of ``preds``.
    thresholds : None
        Only the exact mode (None) is computed on Dask.
    ignore_index, backend
        As in :mod:`refmetrics.functional`; ``backend`` ``"auto"`` or ``"cpu"``.
    bucket_size : int, optional
        The most keys one bucket holds (one task sorts one bucket), except a single
        16-bit key prefix holding more; default :data:`DEFAULT_BUCKET_SIZE`.
    scheduler : optional
        Passed to ``dask.compute``; None: Dask's current scheduler."""


def auroc(preds, target, *, thresholds=None, ignore_index=None, backend="auto", bucket_size=None, scheduler=None):
    """Area under the ROC curve on Dask, exactly as :func:`refmetrics.functional.auroc`.

    Defined in ``docs/definitions.md``, section "AUROC" (the page a paper cites).

    Parameters
    ----------
    {common}

    Returns
    -------
    float
        ``2U / (2 P N)`` from Python-int sums of per-bucket parts; NaN with an
        UndefinedMetricWarning when only one class is present.
    """
    rp = _ranking(preds, target, ignore_index, bucket_size, backend, scheduler, thresholds)
    if _one_class(rp, "AUROC"):
        return float("nan")
    u2, p, n = rp.run({"auroc"})["auroc"]
    return float(Fraction(u2, 2 * p * n))


def average_precision(preds, target, *, thresholds=None, ignore_index=None, backend="auto", bucket_size=None,
                      scheduler=None):
    """Average precision on Dask, exactly as :func:`refmetrics.functional.average_precision`.

    Defined in ``docs/definitions.md``, section "average precision" (the page a paper cites).

    Parameters
    ----------
    {common}

    Returns
    -------
    float
        The double-double sum carried from bucket to bucket in decreasing score order.
    """
    rp = _ranking(preds, target, ignore_index, bucket_size, backend, scheduler, thresholds)
    if _no_positive(rp, "average precision"):
        return float("nan")
    return B.ap_finish(rp.run({"ap"})["ap"], rp.n_pos)


def aupr(preds, target, *, curve="step", thresholds=None, ignore_index=None, backend="auto", bucket_size=None,
         scheduler=None):
    """Area under the precision-recall curve on Dask, as :func:`refmetrics.functional.aupr`.

    Defined in ``docs/definitions.md``, section "AUPR (step and trapezoid)" (the page a paper cites).

    Parameters
    ----------
    curve : {{"step", "trapezoid"}}
        As in :func:`refmetrics.functional.aupr`.
    {common}

    Returns
    -------
    float
    """
    V.check_choice("curve", curve, ("step", "trapezoid"))
    rp = _ranking(preds, target, ignore_index, bucket_size, backend, scheduler, thresholds)
    what = "average precision" if curve == "step" else "AUPR"
    if _no_positive(rp, what):
        return float("nan")
    if curve == "step":
        return B.ap_finish(rp.run({"ap"})["ap"], rp.n_pos)
    return B.pr_trapezoid_finish(rp.run({"trapezoid"})["trapezoid"], rp.n_pos)


def f1_max(preds, target, *, ignore_index=None, backend="auto", bucket_size=None, scheduler=None):
    """The largest F1 over all thresholds on Dask, as :func:`refmetrics.functional.f1_max`.

    Defined in ``docs/definitions.md``, section "F1-max" (the page a paper cites).

    Parameters
    ----------
    {common}

    Returns
    -------
    float
        Per-bucket bests (counts above known from the histogram) compared exactly
        in integers, ties to the lowest threshold.
    """
    rp = _ranking(preds, target, ignore_index, bucket_size, backend, scheduler)
    if _no_positive(rp, "F1"):
        return float("nan")
    tp, fp, _ = rp.run({"f1"})["f1"]
    return float(Fraction(2 * tp, tp + fp + rp.n_pos))


def f1_adaptive_threshold(preds, target, *, ignore_index=None, backend="auto", bucket_size=None, scheduler=None):
    """The threshold that maximises F1, and that F1, on Dask.

    Defined in ``docs/definitions.md``, section "F1AdaptiveThreshold" (the page a paper cites).

    Parameters
    ----------
    {common}

    Returns
    -------
    threshold, f1 : float
        As :func:`refmetrics.functional.f1_adaptive_threshold` when both classes are
        present. With one class only (anomalib's fall-backs) a ValueError names
        the missing class: use the functional API on such data.
    """
    rp = _ranking(preds, target, ignore_index, bucket_size, backend, scheduler)
    if not (rp.n_pos and rp.n_neg):
        raise ValueError(f"target: refmetrics.dask.f1_adaptive_threshold needs both classes, received "
                         f"{_why(rp.n_pos, rp.n_neg)}")
    tp, fp, key = rp.run({"f1"})["f1"]
    return B.threshold_of(key), float(Fraction(2 * tp, tp + fp + rp.n_pos))


def roc_curve(preds, target, *, thresholds=None, ignore_index=None, backend="auto", bucket_size=None,
              scheduler=None):
    """Receiver operating characteristic curve on Dask, as :func:`refmetrics.functional.roc_curve`.

    Defined in ``docs/definitions.md``, section "roc_curve" (the page a paper cites).

    Parameters
    ----------
    {common}

    Returns
    -------
    fpr, tpr, thresholds : ndarray of float64
        One point per distinct score (the curve itself comes back to the client).
    """
    rp = _ranking(preds, target, ignore_index, bucket_size, backend, scheduler, thresholds)
    thr, tp, fp = rp.run({"curve"})["curve"]
    p, n = rp.n_pos, rp.n_neg
    if not (p and n):
        _one_class(rp, "the true or false positive rate")
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = np.concatenate([[0.0], tp / p]) if p else np.full(tp.size + 1, np.nan)
        fpr = np.concatenate([[0.0], fp / n]) if n else np.full(fp.size + 1, np.nan)
    return fpr, tpr, np.concatenate([[np.inf], thr])


def precision_recall_curve(preds, target, *, thresholds=None, ignore_index=None, backend="auto",
                           bucket_size=None, scheduler=None):
    """Precision-recall curve on Dask, as :func:`refmetrics.functional.precision_recall_curve`.

    Defined in ``docs/definitions.md``, section "precision_recall_curve" (the page a paper cites).

    Parameters
    ----------
    {common}

    Returns
    -------
    precision, recall, thresholds : ndarray of float64
    """
    rp = _ranking(preds, target, ignore_index, bucket_size, backend, scheduler, thresholds)
    thr, tp, fp = rp.run({"curve"})["curve"]
    p = rp.n_pos
    if not p:
        _no_positive(rp, "recall")
    with np.errstate(invalid="ignore", divide="ignore"):
        predicted = tp + fp
        precision = np.where(predicted > 0, tp / np.maximum(predicted, 1), 1.0)
        recall = tp / p if p else np.full(tp.size, np.nan)
    return (np.concatenate([precision[::-1], [1.0]]), np.concatenate([recall[::-1], [0.0]]), thr[::-1].copy())


# ---------------------------------------------------------------------------
# region metrics
# ---------------------------------------------------------------------------

_REGIONS = """preds : dask.array.Array or array_like
        Anomaly maps ``(N,H,W)`` or ``(N,1,H,W)`` (``(N,D,H,W)`` with ``spatial_dims=3``),
        chunked along the image axis (the other axes are rechunked to full size).
    target : dask.array.Array or array_like
        {0, 1} masks in a layout :func:`refmetrics.functional.label_regions` accepts.
    connectivity, spatial_dims, backend
        As in :func:`refmetrics.functional.pro_curve`; ``backend`` ``"auto"`` or ``"cpu"``.
    bucket_size, scheduler
        As in :func:`refmetrics.dask.auroc`."""


def _regions(preds, target, connectivity, spatial_dims, bucket_size, backend, scheduler):
    bucket_size = _check_options(bucket_size, backend)
    connectivity = L.check_connectivity(connectivity, spatial_dims)
    chunks, dtype = _region_chunks(preds, target, spatial_dims)
    return D.RegionPlan(chunks, spatial_dims, connectivity, bucket_size, scheduler), dtype


def _region_undefined(rp, what):
    if rp.n_regions and rp.n_bg:
        return False
    why = _why(rp.n_regions, rp.n_bg, "defect region", "background pixel")
    V.warn_undefined(f"{what} is undefined with {why}; returning nan", stacklevel=4)
    return True


def _only_exact(num_thresholds):
    if num_thresholds is not None:
        raise ValueError(f"num_thresholds: refmetrics.dask computes the exact curve only: expected None, "
                         f"received {num_thresholds!r}")


def aupro(preds, target, *, fpr_limit=0.3, num_thresholds=None, connectivity=None, spatial_dims=2, backend="auto",
          bucket_size=None, scheduler=None):
    """Normalised area under the PRO curve up to ``fpr_limit`` on Dask, as :func:`refmetrics.functional.aupro`.

    Defined in ``docs/definitions.md``, section "AUPRO (exact and sampled)" (the page a paper cites).

    Parameters
    ----------
    fpr_limit : float
        Upper integration limit in (0, 1]. Only the buckets at or above the key
        where the false positive rate can reach it are shuffled and sorted.
    num_thresholds : None
        Only the exact curve (None) is computed on Dask.
    {regions}

    Returns
    -------
    float
        The area carried from bucket to bucket (a chain of small tasks), NaN with
        an UndefinedMetricWarning when there is no region or no background pixel.
    """
    fpr_limit = FR.check_fpr_limit(fpr_limit)
    _only_exact(num_thresholds)
    rp, dtype = _regions(preds, target, connectivity, spatial_dims, bucket_size, backend, scheduler)
    if _region_undefined(rp, "AUPRO"):
        return float("nan")
    return rp.aupro([fpr_limit], _key_dtype(dtype))[0]


def pro_curve(preds, target, *, num_thresholds=None, connectivity=None, spatial_dims=2, backend="auto",
              bucket_size=None, scheduler=None):
    """Per-region overlap against false positive rate on Dask, as :func:`refmetrics.functional.pro_curve`.

    Defined in ``docs/definitions.md``, section "pro_curve" (the page a paper cites).

    Parameters
    ----------
    num_thresholds : None
        Only the exact curve (None) is computed on Dask.
    {regions}

    Returns
    -------
    fpr, pro : ndarray of float64
        One point per distinct score (the curve itself comes back to the client).
    """
    _only_exact(num_thresholds)
    rp, _ = _regions(preds, target, connectivity, spatial_dims, bucket_size, backend, scheduler)
    if not (rp.n_regions and rp.n_bg):
        _region_undefined(rp, "the PRO curve")
        if not (rp.n_bg or rp.n_region_pixels):
            return np.zeros(1), np.zeros(1)
    return rp.pro_curve()


def pro_score(preds, target, *, threshold=0.5, connectivity=None, spatial_dims=2, backend="auto", scheduler=None):
    """Per-region overlap at one threshold on Dask, as :func:`refmetrics.functional.pro_score`.

    Defined in ``docs/definitions.md``, section "PRO" (the page a paper cites).

    Parameters
    ----------
    threshold : float
        A pixel is predicted anomalous when ``score > threshold``.
    {regions}

    Returns
    -------
    float
        Per chunk, each region's overlap and size (one pair per region comes back
        to the client), summed in the canonical order of the functional API.
    """
    threshold = V.check_real("threshold", threshold)
    _check_options(None, backend)
    connectivity = L.check_connectivity(connectivity, spatial_dims)
    chunks, _ = _region_chunks(preds, target, spatial_dims)
    parts, = D.compute([D._delayed(D.region_overlaps)(m, t, threshold, spatial_dims, connectivity)
                        for m, t in chunks], scheduler=scheduler)
    state = G.RegionOverlaps()
    state.above = [p[0] for p in parts if p[0].size]
    state.sizes = [p[1] for p in parts if p[1].size]
    if not state.n_regions:
        V.warn_undefined("PRO is undefined with no defect region; returning nan", stacklevel=2)
        return float("nan")
    return state.pro()


for _fn in (auroc, average_precision, aupr, f1_max, f1_adaptive_threshold, roc_curve, precision_recall_curve):
    _fn.__doc__ = _fn.__doc__.format(common=_COMMON)
def au_spro(preds, defects, *, fpr_limit=0.05, backend="auto", bucket_size=None, scheduler=None):
    """Area under the sPRO curve (MVTec LOCO AD) on Dask, as :func:`refmetrics.functional.au_spro`.

    Defined in ``docs/definitions.md``, section "sPRO and AU-sPRO" (the page a paper cites).

    Parameters
    ----------
    preds : dask.array.Array or array_like
        Anomaly maps ``(B,H,W)`` or ``(B,1,H,W)``, chunked along the image axis.
    defects : list
        Per image, its list of ``(mask, saturation_threshold, relative_saturation)``,
        as :func:`refmetrics.functional.au_spro`; each chunk's task receives the
        entries of its images.
    fpr_limit : float or sequence of float
        As :func:`refmetrics.functional.au_spro` (one shuffle serves every limit).
    backend, bucket_size, scheduler
        As in :func:`refmetrics.dask.auroc`.

    Returns
    -------
    float, or list of floats (one per limit, when ``fpr_limit`` is a sequence)
    """
    from ..functional import spro as S

    limits, scalar = S.check_fpr_limits(fpr_limit)
    bucket_size = _check_options(bucket_size, backend)
    m = _as_dask(preds, "preds")
    if not (m.ndim == 3 or (m.ndim == 4 and m.shape[1] == 1)):
        raise ValueError(f"preds: expected anomaly maps of shape (B, H, W) or (B, 1, H, W), received shape "
                         f"{tuple(m.shape)}")
    if isinstance(defects, (str, bytes)) or not hasattr(defects, "__len__"):
        raise TypeError(f"defects: expected a list with one list of (mask, saturation_threshold, "
                        f"relative_saturation) per image, received {type(defects).__name__}")
    if len(defects) != m.shape[0]:
        raise ValueError(f"defects: expected one list of defects per image ({m.shape[0]}), received {len(defects)}")
    m = m.rechunk({i: -1 for i in range(1, m.ndim)})
    starts = np.concatenate([[0], np.cumsum(m.chunks[0])]).astype(int)
    blocks = m.to_delayed().ravel().tolist()
    chunks = [(blk, list(defects[starts[i]:starts[i + 1]])) for i, blk in enumerate(blocks)]
    rp = D.SProPlan(chunks, bucket_size, scheduler)
    k, n_bg = rp.n_regions, rp.n_bg
    if not (k and n_bg):
        why = "no image" if not (k or n_bg or rp.n_region_pixels) else (
            "no defect" if not k else "no defect-free pixel (the false positive rate has no denominator)")
        V.warn_undefined(f"AU-sPRO is undefined with {why}; returning nan", stacklevel=2)
        values = [float("nan")] * len(limits)
    else:
        values = rp.aupro(limits, _key_dtype(m.dtype), s0=rp.n_full)
    return values[0] if scalar else values


# ---------------------------------------------------------------------------
# per-image metrics
# ---------------------------------------------------------------------------

def _pimo_chunks(preds, target):
    """``(maps, masks)`` chunk pairs of whole images (images along the first axis) and pixels per image."""
    m, t = _as_dask(preds, "preds"), _as_dask(target, "target")
    _same_size(m, t)
    if m.ndim < 2:
        raise ValueError(f"preds: expected maps of shape (B, H, W) (or (B, ...)), images along the first axis, "
                         f"received shape {tuple(m.shape)}")
    if t.ndim < 1 or t.shape[0] != m.shape[0]:
        raise ValueError(f"target: expected masks with the images along the first axis, as preds "
                         f"{tuple(m.shape)}, received shape {tuple(t.shape)}")
    m = m.rechunk({i: -1 for i in range(1, m.ndim)})
    t = t.rechunk((m.chunks[0],) + tuple((n,) for n in t.shape[1:]))
    n_per = m.size // m.shape[0] if m.shape[0] else 0
    return list(zip(m.to_delayed().ravel().tolist(), t.to_delayed().ravel().tolist())), m.shape[0], n_per, m.dtype


def aupimo(preds, target, *, fpr_bounds=(1e-5, 1e-4), return_per_image=False, backend="auto", scheduler=None):
    """Area under the per-image overlap curve (AUPIMO) on Dask, as :func:`refmetrics.functional.aupimo`.

    Defined in ``docs/definitions.md``, section "PIMO curve and AUPIMO" (the page a paper cites).

    Parameters
    ----------
    preds : dask.array.Array or array_like
        Anomaly maps ``(B, H, W)`` (or ``(B, ...)``), chunked along the image axis
        (the other axes are rechunked to full size: an image is never split).
    target : dask.array.Array or array_like
        {0, 1} masks with the images along the first axis, rechunked as ``preds``.
    fpr_bounds, return_per_image
        As in :func:`refmetrics.functional.aupimo`.
    backend : {"auto", "cpu"}
    scheduler : optional
        Passed to ``dask.compute``; None: Dask's current scheduler.

    Returns
    -------
    float or (float, ndarray of float64)
        The mean AUPIMO over anomalous images; with ``return_per_image``, also
        the per-image values (NaN for normal images), in image order.

    Notes
    -----
    Three passes over the chunks: a histogram of the top 16 bits of the normal
    images' keys (summed by a tree) gives the cut above which the shared FPR
    reaches ``fpr_bounds[1]``; the normal keys at or above the cut (about
    ``fpr_bounds[1]`` of the normal pixels, plus one 16-bit prefix) come to the
    client, which walks the shared FPR down from the top; the window (keys and
    shared FPRs) goes back to every chunk's task, which computes the areas of
    its anomalous images. Per-image values come back to the client; no task
    holds more than one chunk and the window.
    """
    from ..functional import pimo as P

    lower, upper = P.check_fpr_bounds(fpr_bounds)
    return_per_image = P.check_return_per_image(return_per_image)
    _check_options(None, backend)
    chunks, n_images, n_per, dtype = _pimo_chunks(preds, target)
    plan = D.PimoPlan(chunks, n_per, scheduler)
    per_image = np.full(n_images, np.nan)
    n, a = plan.n_normal, plan.n_anomalous
    if not (n and a):
        why = "no images" if not (n or a) else ("no normal image (every image has a defect pixel)" if not n
                                                else "no anomalous image (no defect pixel anywhere)")
        V.warn_undefined(f"AUPIMO is undefined with {why}; returning nan", stacklevel=2)
        return (float("nan"), per_image) if return_per_image else float("nan")
    keys, fpr = plan.window(_key_dtype(dtype), upper)
    if lower < fpr[0]:
        V.warn_undefined(
            f"AUPIMO is undefined with fpr_bounds=({lower:g}, {upper:g}): the lower bound is below the "
            f"smallest positive shared FPR these {n:,} normal images can reach, {fpr[0]:.6g} "
            f"(their pixels' highest score alone); the reachable shared FPR range is [{fpr[0]:.6g}, 1]: "
            f"raise the lower bound to at least {fpr[0]:.6g}, or add normal images; returning nan",
            stacklevel=2)
        return (float("nan"), per_image) if return_per_image else float("nan")
    areas, flags = plan.areas(keys, fpr, lower, upper)
    per_image[flags] = areas
    mean = math.fsum(areas.tolist()) / areas.size
    return (mean, per_image) if return_per_image else mean


for _fn in (aupro, pro_curve, pro_score):
    _fn.__doc__ = _fn.__doc__.format(regions=_REGIONS)
del _fn
