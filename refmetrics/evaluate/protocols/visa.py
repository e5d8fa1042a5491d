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
  model's, holding only the defect pixels' scores once);
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
        self.seen.add(np.asarray(image.values).dtype)

    def dtype(self):
        return np.result_type(*self.seen) if self.seen else np.dtype(np.float32)


def defect_scores(pixels, dtype):
    """The defect pixels' scores, sorted increasing, as an array of ``dtype`` (decoded from the finished
    state's sorted keys a chunk at a time: the only array of this computation that grows with the data,
    ``dtype``'s size per defect pixel)."""
    from ...kernels.cpu.keys import decode_keys

    _, rkeys = pixels.sorted_keys()
    out = np.empty(rkeys.size, dtype)
    chunk = 1 << 20
    for a in range(0, rkeys.size, chunk):
        out[a:a + chunk] = decode_keys(rkeys[a:a + chunk])
    return out


def visa_pixel_auroc(pixels, dtype, num=200):
    """:func:`refmetrics.conformance.published.visa_pixel_auroc` of the group's maps (of ``dtype``, as
    read) and masks, from the finished :class:`refmetrics.state.PixelState`; NaN with an undefined-metric
    warning where the official code raises (no defect or no normal pixel).

    Bit for bit the model's: its thresholds (:func:`~refmetrics.conformance.published.visa_thresholds`) are
    formed by the same NumPy calls on the same values (the smallest and largest score from the sorted keys;
    the percentiles and the evenly spaced values from the defect pixels' scores, sorted, in ``dtype``: the
    percentiles are the same order statistics interpolated alike), the counts of pixels strictly above each
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
    positives = defect_scores(pixels, dtype)
    evenly = np.linspace(positives[-1], positives[0], num=num // 2)
    # sorted already: overwrite_input lets NumPy partition it in place (no copy); the order statistics,
    # and so the percentiles, are those of the unsorted defect scores the model reads
    by_percentile = np.percentile(positives, np.linspace(100, 0, num=num // 2), overwrite_input=True)
    del positives
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

