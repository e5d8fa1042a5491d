"""VisA (Zou et al., 2022): MVTec AD's metrics on the release's split CSV, exactly; VisA's own numbers beside.

The exact columns are MVTec AD's: image AUROC/AP/F1-max, pixel AUROC/AP/F1-max
and AUPRO@0.3, over the ``split == test`` rows of ``split_csv/1cls.csv``
(:mod:`refmetrics.evaluate.readers.visa`). Beside them (``options.official``),
what the release's evaluation code (amazon-science/spot-diff, ``utils/metrics.py``)
reports:

- pixel AUROC at VisA's 200 thresholds (100 percentiles and 100 evenly spaced
  values of the defect pixels' scores, and the extremes moved out by 1e-8),
  positive when strictly above, the trapezoid in threshold order, rounded to 4
  decimals: :func:`refmetrics.conformance.published.visa_pixel_auroc` on every
  map and mask of the group in the maps' stored dtype, computed from the
  finished streaming pixel state (:func:`visa_pixel_auroc`: bit for bit the
  model's, reading only the order statistics its percentiles need);
- image AUPR: ``sklearn.metrics.auc(recall, precision)`` over the exact
  precision-recall curve, the trapezoid over its points in threshold order
  (:func:`visa_image_aupr`). This is neither the step-wise AP nor anomalib 1.x's
  trapezoid (``refmetrics.functional.aupr(curve="trapezoid")``), which pairs the
  points of tied recall in another order.

The release's CSV names no defect type, so there is no per-defect breakdown.
"""

import warnings

import numpy as np

from ... import _validation as validation
from ... import functional
from ..readers import Dataset
from ..readers import visa as reader
from ..samples import InputError
from ..state import Pixels
from .base import Column, Measured, Protocol, image_curves, image_metrics, measure_into, pixel_counts, pixel_metrics, \
    pixel_figure_curves

IMAGE_AUPR = "image AUPR (VisA, trapezoid)"
PIXEL_AUROC = "pixel AUROC (VisA, 200 thresholds)"


def visa_image_aupr(scores, labels):
    """VisA's image AUPR: ``sklearn.metrics.auc(recall, precision)`` over ``precision_recall_curve``.

    The trapezoid over the exact precision-recall curve's points (one per distinct score, then
    precision 1 at recall 0), taken in threshold order, not rounded: what the VisA release's
    ``compute_classification_metrics`` returns as ``au_pr``. NaN (with an undefined-metric warning)
    without an anomalous image.

    Examples
    --------
    >>> visa_image_aupr([0.59, 0.35, 0.72, 0.33, 0.73, 0.81, 0.30, 0.05, 0.04, 0.48],
    ...                 [0, 1, 1, 1, 0, 0, 0, 0, 1, 1])  # doctest: +ELLIPSIS
    0.38992063...
    """
    labels = np.asarray(labels)
    if not labels.any():
        validation.warn_undefined("no anomalous image; returning nan")
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", validation.UndefinedMetricWarning)
        precision, recall, _ = functional.precision_recall_curve(np.asarray(scores), labels)
    trapezoid = getattr(np, "trapezoid", None) or np.trapz  # NumPy 2 renamed it; NumPy 1.25 has trapz only
    return float(-trapezoid(precision, recall))  # recall decreases along the curve: sklearn's auc negates too


class Dtypes:
    """The dtypes of the group's maps as read (VisA's thresholds are computed in the maps' own dtype, the
    dtype NumPy's concatenation of every map would have)."""

    def __init__(self, samples, options):
        self.seen = set()

    def add(self, image):
        self.seen.add(np.dtype(image.dtype))

    def dtype(self):
        return np.result_type(*self.seen) if self.seen else np.dtype(np.float32)


def percentile_of_sorted(take, n, q):
    """``np.percentile(a, q)`` (method "linear", ``q`` an array of percentiles; a scalar is read as one) of
    an array ``a`` of ``n`` values known by its order statistics: ``take(i)`` returns ``np.sort(a)[i]`` for
    an int64 array of ranks ``i`` (same dtype as ``a``).

    The same floating-point operations as NumPy's (``numpy.lib._function_base_impl._quantile`` and
    ``_lerp``, NumPy >= 1.22): the virtual index ``(n - 1) * (q / 100)`` in float64, its floor and the next
    rank (both the last rank past it), the weight ``gamma`` against that floor, and the interpolation
    ``a + (b - a) * gamma``, or ``b - (b - a) * (1 - gamma)`` where ``gamma >= 0.5``. Tested against
    ``np.percentile`` bit for bit. Only the order statistics it reads are needed, so the values themselves
    never have to be held (a streaming, spilled or distributed state)."""
    quantiles = np.true_divide(np.atleast_1d(np.asarray(q, np.float64)), 100)
    virtual = (n - 1) * quantiles
    previous = np.floor(virtual)
    following = previous + 1
    above = virtual >= n - 1
    previous[above] = following[above] = -1  # NumPy's index of the largest value
    below = virtual < 0
    previous[below] = following[below] = 0
    previous, following = previous.astype(np.intp), following.astype(np.intp)
    gamma = np.asanyarray(virtual - previous, dtype=virtual.dtype)
    ranks = np.unique(np.concatenate([previous, following]) % n)
    values = take(ranks.astype(np.int64))
    a, b = values[np.searchsorted(ranks, previous % n)], values[np.searchsorted(ranks, following % n)]
    diff = b - a
    out = np.add(a, diff * gamma)
    np.subtract(b, diff * (1 - gamma), out=out, where=gamma >= 0.5, casting="unsafe", dtype=type(out.dtype))
    return out


def defect_order_statistics(pixels, dtype):
    """``take(ranks)``: the defect pixels' scores at those ranks of their increasing order, as ``dtype``
    (decoded from the finished state's sorted defect keys, which may be read on demand: a spilled state's
    files, a Dask state's passes)."""
    from ...kernels.cpu.keys import decode_keys

    _, rkeys = pixels.sorted_keys()
    return lambda ranks: decode_keys(np.asarray(rkeys[ranks])).astype(dtype)


def visa_pixel_auroc(pixels, dtype, num=200):
    """:func:`refmetrics.conformance.published.visa_pixel_auroc` of the group's maps (of ``dtype``, as
    read) and masks, from the finished :class:`refmetrics.state.PixelState`; NaN with an undefined-metric
    warning where the official code raises (no defect or no normal pixel).

    Bit for bit the model's: its thresholds (:func:`~refmetrics.conformance.published.visa_thresholds`) are
    formed by the same NumPy calls on the same values (the smallest and largest score from the sorted keys;
    the evenly spaced values from the extreme defect scores in ``dtype``; the percentiles from the same order
    statistics of the defect scores, in ``dtype``, interpolated by NumPy's operations,
    :func:`percentile_of_sorted`), the counts of pixels strictly above each
    threshold are exact (:meth:`~refmetrics.state.PixelState.counts_above`, the model's
    ``searchsorted(side="right")``), and the area is the same float64 expression.
    """
    if not pixels.n_defect or not pixels.n_bg:
        validation.warn_undefined(f"no {'defect' if not pixels.n_defect else 'normal'} pixel (VisA's code "
                                  "raises ValueError); returning nan")
        return float("nan")
    dtype = np.dtype(dtype)
    kind = dtype.type if dtype.kind == "f" else np.float64
    lo, hi = pixels.score_range()
    th_min = kind(dtype.type(lo)) - kind(1e-8)
    th_max = kind(dtype.type(hi)) + kind(1e-8)
    take, n = defect_order_statistics(pixels, dtype), pixels.n_defect
    # the order statistics, and so the percentiles, are those of the unsorted defect scores the model reads;
    # the 100th and 0th percentiles read the extremes, which the evenly spaced values then find known
    by_percentile = percentile_of_sorted(take, n, np.linspace(100, 0, num=num // 2))
    ends = take(np.array([0, n - 1], np.int64))
    evenly = np.linspace(ends[1], ends[0], num=num // 2)
    thresholds = np.sort(np.concatenate([by_percentile, evenly, [th_min, th_max]]))[::-1]
    fp, tp = pixels.counts_above(thresholds.astype(np.float64)).T
    tpr, fpr = tp / pixels.n_defect, fp / pixels.n_bg
    area = float(np.sum((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2))
    return round(area, 4)


class VisA(Protocol):
    name = "visa"
    title = "VisA (Zou et al., 2022)"
    layout = "--split-csv <root>/split_csv/1cls.csv (split == test rows), masks <root>/<object>/Data/Masks/" \
             "Anomaly/<name>.png (class ids, != 0), maps <maps>/<object>/Data/Images/{Normal,Anomaly}/<name>" \
             ".tiff|.npy|.png"
    official = "VisA's evaluation code (amazon-science/spot-diff utils/metrics.py): pixel AUROC at 200 " \
               "thresholds rounded to 4 decimals; image AUPR as sklearn.metrics.auc(recall, precision)"
    fpr_limits = (0.3,)
    inputs = ("maps", "gt", "split_csv")

    def read(self, options):
        if options.split_csv is None or options.maps is None:
            raise InputError("--split-csv and --maps: give both (the VisA release's split_csv/1cls.csv and the "
                             "maps' tree mirroring its image paths), or --demo")
        notes = []
        samples = reader.read(options.split_csv, options.maps, options.gt, options.categories, notes)
        notes.append("VisA's split CSV names no defect type: results are per object only")
        settings = {"split_csv": str(options.split_csv), "maps": str(options.maps),
                    "root": str(options.gt if options.gt is not None else options.split_csv.resolve().parent.parent)}
        return Dataset(samples, settings, notes)

    def demo_options(self, root):
        return {"maps": root / "maps", "split_csv": root / "VisA" / "split_csv" / "1cls.csv"}

    def columns(self, options):
        limit = self.limits(options)[0]
        official = options.official
        return tuple(c for c in (
            Column("image AUROC", "image", "AUROC"),
            Column("image AP", "image", "AP"),
            Column(IMAGE_AUPR, "image", "AUPR", official=True) if official else None,
            Column("image F1-max", "image", "F1-max"),
            Column("pixel AUROC", "pixel", "AUROC"),
            Column(PIXEL_AUROC, "pixel", "AUROC", official=True) if official else None,
            Column("pixel AP", "pixel", "AP"),
            Column("pixel F1-max", "pixel", "F1-max"),
            Column("AUPRO", "pixel", f"AUPRO@{limit:g}", label=f"AUPRO@{limit:g}"),
        ) if c is not None)

    def accumulators(self, options, context):
        # the official pixel AUROC is read from the finished pixel state (and the maps' dtype)
        return {"pixels": Pixels, **({"dtypes": Dtypes} if options.official else {})}

    def measure(self, state, options, context, figures):
        images, pixels = state["images"], state["pixels"].state
        limit = self.limits(options)[0]
        pixels.finish()
        scores, labels = images.arrays()
        values, notes = {}, []
        image_metrics(values, notes, scores, labels)
        pixel_metrics(values, notes, pixels, limit)
        if options.official:
            measure_into(values, notes, IMAGE_AUPR, visa_image_aupr, scores, labels)
            measure_into(values, notes, PIXEL_AUROC, visa_pixel_auroc, pixels, state["dtypes"].dtype())
        curves = {}
        if figures:
            curves = dict(image_curves(scores, labels), **pixel_figure_curves(pixels, (limit,)))
        return Measured(values, pixel_counts(images, pixels), curves, notes)

    def settings(self, options):
        return {"fpr_limit": self.limits(options)[0], "split": "test", "mask": "value != 0 (class ids)"}

    def summary(self, options):
        if not options.official:
            return []
        return [("(* VisA's evaluation code: pixel AUROC at its 200 thresholds, rounded to 4 decimals; image "
                 "AUPR the trapezoid over the precision-recall curve, sklearn.metrics.auc(recall, precision))")]

