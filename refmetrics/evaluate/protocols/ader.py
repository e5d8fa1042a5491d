"""ADer (Zhang et al., 2024): mAD, the mean of seven metrics, and mF1 / mAcc / mIoU over thresholds 0.2..0.8.

ADer's evaluator (``util/metric.py``) scores an image by the maximum of its
16x16 average-pooled map (stride 1, no padding), and reports per category the
image AUROC, AP and F1-max, the pixel AUROC, AP and F1-max, AUPRO@0.3 and their
mean, mAD; beside them the pixel mF1, mAcc and mIoU of the maps min-max
normalised over the category and thresholded at 0.2, 0.3, ..., 0.8. Here every
one of them is exact: the seven metrics from the streaming pixel state, mF1 /
mAcc / mIoU as :func:`refmetrics.functional.ader_segmentation` defines them,
from the same state once every map is read (its minimum, maximum and the exact
pixel counts at each normalised cut).

ADer's default configuration (``use_adeval=True``) takes the pixel AUROC, AP and
AUPRO from ADEval's histogram with 50 strips between the maps' smallest and
largest score; those numbers are shown beside the exact ones, as
:func:`refmetrics.conformance.causes.adeval_model` computes them (ADEval is not
needed), from the same streaming pixel state once every map is read
(:func:`adeval_pixel`: the counts at each bin edge by binary search of the
sorted keys), so they keep the streaming memory bound; ``--no-official``
leaves them out.

Where ADer's own code differs from the exact values, by design: its image scores
are pooled in the maps' dtype (torch's ``avg_pool2d``), here in float64; its pixel
F1-max (``mF1_max_px``) is the best F1 at 21 cuts 0, 0.05, ..., 1 of the
normalised maps with 1e-8 added to each denominator, here the exact F1-max over
every distinct score; and its mF1 / mAcc / mIoU normalise in the maps' dtype
and add 1e-8 to each denominator (see ``ader_segmentation``).
"""

import math
import warnings

import numpy as np

from ... import _validation as validation

from ...functional import segmentation
from ..options import ImageScore
from ..readers import Dataset
from ..readers import mvtec_ad as reader
from ..samples import InputError
from ..state import Pixels
from . import mvtec_ad
from .base import (
    Column,
    Measured,
    Protocol,
    image_curves,
    image_metrics,
    pixel_metrics,
    measure_into,
    note,
    pixel_counts,
    pixel_figure_curves,
)

ADEVAL_NSTRIPS = 50  # ADer's use_adeval: EvalAccumulatorCuda(..., nstrips=50)
ADEVAL_LIMIT = 0.3  # ADEval's AUPRO limit, fixed in its summary() whatever --fpr-limit says
MAD_PARTS = ("image AUROC", "image AP", "image F1-max", "pixel AUROC", "pixel AP", "pixel F1-max", "AUPRO")
SEGMENTATION = ("mF1", "mAcc", "mIoU")
OFFICIAL = {"pixel AUROC": "pixel_auroc", "pixel AP": "pixel_ap", "AUPRO": "aupro"}  # column -> model metric


def official_key(metric):
    return f"{metric} (ADEval, {ADEVAL_NSTRIPS} bins)"


def adeval_pixel(pixels, metric, nstrips, fpr_limit):
    """:func:`refmetrics.conformance.causes.adeval_model` of a pixel ``metric`` ("pixel_auroc", "pixel_ap" or
    "aupro") from a finished :class:`refmetrics.state.PixelState` of the group, without its maps.

    The same edges (:func:`~refmetrics.conformance.causes.adeval_edges` between the exact smallest and
    largest score), the same integer counts at each edge (``score >= edge``, by binary search of the sorted
    keys, :meth:`~refmetrics.state.PixelState.counts_at_least`) and the same float64 operations on them in
    the same order: the pixel AUROC and AP are the model's, bit for bit. The AUPRO's weighted TPR sums
    ADEval's float32 ``1 / area`` weights over the defect pixels at or above each edge: the model adds them
    region by region in float64, here they are added exactly and rounded once
    (:meth:`~refmetrics.state.PixelState.region_overlap_at_least`), so the AUPRO agrees with the model
    within a few float64 ulps (well within 1e-12), not bit for bit. Returns what the model returns: a
    float, a :class:`~refmetrics.conformance.causes.Raises`, or None (no region or no background pixel).
    """
    from ...conformance.causes import Raises, _trapz, adeval_edges

    lo, hi = pixels.score_range()
    if not lo < hi:
        return Raises("AssertionError", "its bins need lower < upper bound: every score is equal")
    edges = adeval_edges(lo, hi, nstrips)
    p, n = pixels.n_defect, pixels.n_bg
    if metric in ("pixel_auroc", "pixel_ap"):
        fp, tp = pixels.counts_at_least(edges[::-1]).T  # decreasing edges, as the binned curves
        with np.errstate(invalid="ignore", divide="ignore"):
            if metric == "pixel_auroc":
                return _trapz(tp / p, fp / n)
            predicted = tp + fp
            precision = np.where(predicted > 0, tp / np.maximum(predicted, 1), 1.0)
            return _trapz(precision, tp / p)
    if metric != "aupro":
        return None
    if not pixels.n_regions or not n:
        return None  # no region or no background: undefined (undefined_policy)

    def weight(sizes):  # ADEval's float32 1 / area
        return (1.0 / sizes).astype(np.float32).astype(np.float64)

    weighted = pixels.region_overlap_at_least(np.append(edges, -np.inf), weight)
    fpr = pixels.counts_at_least(edges)[:, 0] / n
    pro = weighted[:-1] / weighted[-1]  # at -inf: every defect pixel, the sum of weight * area
    x, y = fpr[::-1], pro[::-1]  # increasing FPR
    n_below = int(np.count_nonzero(x <= fpr_limit))
    if n_below in (0, x.size):
        return Raises("IndexError", "no bin edge on one side of the FPR limit")
    x0, x1, y0, y1 = x[n_below - 1], x[n_below], y[n_below - 1], y[n_below]
    if y0 + y1 == 0:
        return float("nan")
    cut = fpr_limit - x0
    partial = cut * y0 + cut * cut * (y1 - y0) / (x1 - x0) / 2
    return (_trapz(y[:n_below], x[:n_below]) + partial) / fpr_limit


def adeval_columns(values, notes, pixels):
    """ADEval's 50-strip pixel AUROC, AP and AUPRO@0.3 (ADer's printed numbers) into ``values``, from the
    finished pixel state (:func:`adeval_pixel`)."""
    from ...conformance.causes import Raises

    for metric, name in OFFICIAL.items():
        key = official_key(metric if metric != "AUPRO" else f"AUPRO@{ADEVAL_LIMIT:g}")
        value = adeval_pixel(pixels, name, ADEVAL_NSTRIPS, ADEVAL_LIMIT)
        if isinstance(value, Raises):
            note(notes, f"{key}: ADEval raises {value.name} here: {value.why} (reported as nan)")
            value = float("nan")
        elif value is None or math.isnan(value):
            if metric == "AUPRO" and value is not None:
                why = "ADEval's interpolation at the FPR limit divides by zero (the PRO is 0 on both sides of it)"
            else:
                why = "undefined without a defect pixel or without a defect-free pixel"
            note(notes, f"{key}: {why} (reported as nan)")
            value = float("nan")
        values[key] = float(value)


class ADer(Protocol):
    name = "ader"
    title = "ADer (Zhang et al., 2024)"
    layout = mvtec_ad.MVTecAD.layout
    official = f"ADEval with {ADEVAL_NSTRIPS} bins (ADer's use_adeval): pixel AUROC, AP and AUPRO"
    image_score = ImageScore("pooled_max", kernel=16)
    fpr_limits = (0.3,)
    inputs = ("maps", "gt")

    def read(self, options):
        if options.maps is None or options.gt is None:
            raise InputError("--maps and --gt: give both (the MVTec AD layout), or --demo")
        samples = reader.discover(options.maps, options.gt, options.categories)
        return Dataset(samples, {"maps": str(options.maps), "gt": str(options.gt)})

    def columns(self, options):
        limit = self.limits(options)[0]
        aupro = f"AUPRO@{limit:g}"
        cols = [Column("image AUROC", "image", "AUROC"), Column("image AP", "image", "AP"),
                Column("image F1-max", "image", "F1-max")]
        for metric, short in (("pixel AUROC", "AUROC"), ("pixel AP", "AP"), ("pixel F1-max", "F1-max"),
                              ("AUPRO", aupro)):
            cols.append(Column(metric, "pixel", short, label=aupro if metric == "AUPRO" else ""))
            if options.official and metric in OFFICIAL:
                name = f"AUPRO@{ADEVAL_LIMIT:g}" if metric == "AUPRO" else metric
                cols.append(Column(official_key(name), "pixel", f"{short.split('@')[0]}{ADEVAL_NSTRIPS}",
                                   official=True))
        cols += [Column(m, "pixel", m) for m in SEGMENTATION]
        cols.append(Column("mAD", "mean", "mAD"))
        return tuple(cols)

    def accumulators(self, options, context):
        return {"pixels": Pixels}  # the official columns too are read from the finished pixel state

    def measure(self, state, options, context, figures):
        images, pixels = state["images"], state["pixels"].state
        limit = self.limits(options)[0]
        pixels.finish()
        scores, labels = images.arrays()
        values, notes = {}, []
        image_metrics(values, notes, scores, labels)
        pixel_metrics(values, notes, pixels, limit)
        seg = {}
        measure_into(seg, notes, "mF1, mAcc, mIoU", segmentation_from_state, pixels)
        values.update(seg["mF1, mAcc, mIoU"])
        values["mAD"] = math.fsum(values[m] for m in MAD_PARTS) / len(MAD_PARTS)
        if math.isnan(values["mAD"]):
            note(notes, "mAD: undefined as one of its seven metrics is (reported as nan)")
        if options.official:
            adeval_columns(values, notes, pixels)
        curves = {}
        if figures:
            curves = dict(image_curves(scores, labels), **pixel_figure_curves(pixels, (limit,)))
        return Measured(values, pixel_counts(images, pixels), curves, notes)

    def replicates(self, state, options, context, W):
        """The default replicates (image and pixel AUROC, AP, F1-max, AUPRO), mF1 / mAcc / mIoU's
        (:func:`segmentation_replicates`, exact) and mAD's: each resample's mean of its seven metrics, the
        same ``math.fsum`` over seven as :meth:`measure` (NaN where one of them is)."""
        out = dict(super().replicates(state, options, context, W))
        out.update(segmentation_replicates(state["pixels"].state, W))
        if all(m in out for m in MAD_PARTS):
            out["mAD"] = np.array([math.fsum(float(out[m][b]) for m in MAD_PARTS) / len(MAD_PARTS)
                                   for b in range(W.shape[0])])
        return out

    def settings(self, options):
        return {"fpr_limit": self.limits(options)[0], "segmentation_thresholds": list(segmentation.ADER_THRESHOLDS),
                "adeval_nstrips": ADEVAL_NSTRIPS if options.official else None}

    def summary(self, options):
        lines = [("mAD: the mean of image AUROC, AP, F1-max, pixel AUROC, AP, F1-max and AUPRO (exact); mF1, mAcc, "
                  "mIoU: the maps min-max normalised over the category (float64), positive where > 0.2, 0.3, "
                  "..., 0.8, exact pooled rates averaged over the seven thresholds")]
        if self.score_rule(options) != self.image_score:
            lines.append(f"(--image-score: not ADer's image score, {self.image_score.describe()})")
        if options.official:
            lines.append(f"*: ADEval's {ADEVAL_NSTRIPS}-bin histogram between the maps' smallest and largest "
                         "score, as ADer's default configuration (use_adeval) prints them"
                         + (f"; ADEval's AUPRO limit is {ADEVAL_LIMIT:g} whatever --fpr-limit says"
                            if self.limits(options)[0] != ADEVAL_LIMIT else ""))
        return lines


def segmentation_from_state(pixels):
    """:func:`refmetrics.functional.ader_segmentation` of a finished
    :class:`refmetrics.state.PixelState`: the same numbers, bit for bit (the same minimum, maximum and
    integer counts at each normalised cut)."""
    lo, hi = pixels.score_range()
    n_bg, n_defect = pixels.n_bg, pixels.n_defect
    cuts = table = None
    if math.isfinite(lo) and math.isfinite(hi) and math.isfinite(hi - lo) and hi != lo:
        # every cut's counts asked at once: one binary search each here, one pass over the images on a cluster
        cuts = [segmentation.normalised_cut(lo, hi, t) for t in segmentation.ADER_THRESHOLDS]
        table = dict(zip(cuts, pixels.counts_at_least(cuts).tolist()))

    def counts_at(cut):
        fp, tp = table[cut] if table is not None else (int(c) for c in pixels.counts_at_least([cut])[0])
        return np.array([tp, fp, n_defect - tp, n_bg - fp], np.int64)

    return segmentation.ader_from_counts(lo, hi, segmentation.ADER_THRESHOLDS, counts_at, cuts=cuts)


def segmentation_replicates(pixels, W):
    """mF1, mAcc and mIoU (:func:`segmentation_from_state`) of each resample of the images of an unfinished
    :class:`refmetrics.state.PixelState`: ``{name: (B,) float64}``.

    Resample ``b`` holds image ``i`` ``W[b, i]`` times: its smallest and largest score are those of the
    images it holds (the normalisation's ``lo`` and ``hi``), and its counts at a cut are ``W[b]`` times each
    image's own counts (each image's keys sorted once, counted by binary search with the threshold keys
    the pooled state uses). The numbers are then :func:`refmetrics.functional.segmentation.ader_from_counts`'s
    on those exact counts, as :meth:`ADer.measure` computes them on the pooled state: the same floats as
    :func:`refmetrics.functional.ader_segmentation` on the repeated maps. The cuts are found once per
    distinct ``(lo, hi)``, each image's counts once per cut.
    """
    from ...kernels.cpu.keys import decode_keys, threshold_keys

    n = pixels.n_images
    keys = [tuple(np.sort(k) for k in pixels.image_keys(i)) for i in range(n)]
    sizes = np.array([[bg.size, fg.size] for bg, fg in keys], np.int64)  # background, defect pixels
    ends = []
    for bg, fg in keys:
        first = [k[0] for k in (bg, fg) if k.size]
        last = [k[-1] for k in (bg, fg) if k.size]
        ends.append((decode_keys(np.array(first)).min(), decode_keys(np.array(last)).max()) if first
                    else (np.inf, -np.inf))
    ends = np.array(ends, np.float64).reshape(n, 2)
    out = {name: np.full(W.shape[0], np.nan) for name in SEGMENTATION}
    table = {}  # cut -> each image's (background, defect) pixels >= cut: the same for every resample
    cuts = {}  # (lo, hi) -> the normalised cuts of the thresholds
    for b, w in enumerate(W):
        held = w > 0
        if not held.any() or not np.isfinite(ends[held]).all():
            continue  # infinite scores: undefined (ader_from_counts' NaN)
        lo, hi = float(ends[held, 0].min()), float(ends[held, 1].max())
        n_bg, n_defect = (int(x) for x in w @ sizes)

        def counts_at(cut, w=w, n_bg=n_bg, n_defect=n_defect):
            if cut not in table:
                t = threshold_keys(np.array([cut]), pixels.kd)[0]
                table[cut] = np.array([[k.size - np.searchsorted(k, t, side="left") for k in pair]
                                       for pair in keys], np.int64)
            fp, tp = (int(x) for x in w @ table[cut])
            return np.array([tp, fp, n_defect - tp, n_bg - fp], np.int64)

        if (lo, hi) not in cuts and math.isfinite(hi - lo) and hi > lo:
            cuts[lo, hi] = [segmentation.normalised_cut(lo, hi, t) for t in segmentation.ADER_THRESHOLDS]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", validation.UndefinedMetricWarning)
            values = segmentation.ader_from_counts(lo, hi, segmentation.ADER_THRESHOLDS, counts_at,
                                                   cuts=cuts.get((lo, hi)))
        for name in SEGMENTATION:
            out[name][b] = values[name]
    return out
