"""MVTec 3D-AD (Bergmann et al., 2022): image AUROC, pixel AUROC, AUPRO@0.3 and AUPRO@0.01, exactly.

The official evaluation script (``evaluate_experiment.py``) integrates the exact PRO
curve, as refmetrics does; 3-D papers report AUPRO at both 0.3 and 0.01. Most of
their numbers, though, come from the 100-threshold routine that M3DM's
``utils/au_pro_util.py`` (``calculate_au_pro``) spread: thresholds at 100 evenly
spaced positions of the sorted background scores, the curve starting at (1, 1).
That routine's value is shown beside each exact AUPRO (``options.official``):
:func:`refmetrics.conformance.published.mvtec3d_aupro` on the group's maps and
masks, computed from the finished streaming pixel state (:func:`sampled_aupro`),
so it keeps the streaming memory bound although that code holds them whole.
"""

import warnings

import numpy as np

from ... import _validation as validation
from ... import functional
from ..readers import Dataset
from ..readers import mvtec_3d_ad as reader
from ..samples import InputError
from ..state import Pixels
from .base import Column, Measured, Protocol, image_curves, measure_into, pixel_counts, pixel_figure_curves


def official_key(limit):
    return f"AUPRO@{limit:g} (100 thresholds)"


def sampled_aupro(pixels, shapes, fpr_limit, num_thresholds=100):
    """:func:`refmetrics.conformance.published.mvtec3d_aupro` of the group's maps (as float64) and masks,
    from the finished :class:`refmetrics.state.PixelState` (``shapes``: the maps' sizes); NaN with an
    undefined-metric warning without a region or a background pixel, or when the maps differ in size (that
    code stacks them).

    The thresholds are the model's (the background scores at the same evenly spaced positions of their
    sorted order, read from the sorted background keys), its FPRs the same float64 expression, and its
    curve integrated by the same :func:`~refmetrics.conformance.published.trapezoid_to`. Each PRO is the
    mean over regions of the share of the region's pixels strictly above the threshold: the model adds
    the regions' float64 shares one by one, here the sum is exact up to each ``1 / size`` rounded to float64
    (:meth:`~refmetrics.state.PixelState.region_overlap_at_least`), then divided by the number of regions,
    so the AUPRO agrees with the model within a few float64 ulps (well within 1e-12), not bit for bit.
    """
    if len(shapes) > 1:
        validation.warn_undefined(f"the maps have several sizes ({', '.join(f'{h}x{w}' for h, w in sorted(shapes))})"
                                  ", which the 100-threshold routine cannot stack; returning nan")
        return float("nan")
    if not pixels.n_defect or not pixels.n_bg:
        validation.warn_undefined(f"no {'defect' if not pixels.n_defect else 'background'} pixel; returning nan")
        return float("nan")
    from ...conformance import published  # imported when used: it loads the conformance suite
    from ...kernels.cpu.keys import decode_keys

    bg, _ = pixels.sorted_keys()
    positions = np.linspace(0, bg.size - 1, num=num_thresholds, dtype=int)
    thresholds = decode_keys(bg[positions])
    fprs = [1.0, *(1.0 - (positions + 1) / bg.size)]
    pros = [1.0, *(pixels.region_overlap_at_least(thresholds, strict=True) / pixels.n_regions)]
    return published.trapezoid_to(fprs[::-1], pros[::-1], fpr_limit) / fpr_limit


class MVTec3DAD(Protocol):
    name = "mvtec-3d-ad"
    title = "MVTec 3D-AD (Bergmann et al., 2022)"
    layout = "<maps>/<object>/test/<defect>/<name>.tiff|.npy|.png, <gt>/<object>/test/<defect>/gt/<name>.png " \
             "(the dataset itself)"
    official = "the 100-threshold AUPRO of M3DM's utils/au_pro_util.py (calculate_au_pro), which most 3-D " \
               "papers' numbers come from; the official script's exact AUPRO is refmetrics' own"
    fpr_limits = (0.3, 0.01)
    inputs = ("maps", "gt")

    def read(self, options):
        if options.maps is None or options.gt is None:
            raise InputError("--maps and --gt: give both (the maps' tree and the MVTec 3D-AD dataset), or --demo")
        samples = reader.discover(options.maps, options.gt, options.categories)
        return Dataset(samples, {"maps": str(options.maps), "gt": str(options.gt)})

    def columns(self, options):
        columns = [Column("image AUROC", "image", "AUROC"), Column("pixel AUROC", "pixel", "AUROC")]
        for limit in self.limits(options):
            columns.append(Column(f"AUPRO@{limit:g}", "pixel", f"AUPRO@{limit:g}"))
            if options.official:
                columns.append(Column(official_key(limit), "pixel", f"AUPRO@{limit:g}", official=True))
        return tuple(columns)

    def accumulators(self, options, context):
        return {"pixels": Pixels}  # the official AUPRO too is read from the finished pixel state

    def measure(self, state, options, context, figures):
        images, pixels = state["images"], state["pixels"].state
        limits = self.limits(options)
        pixels.finish()
        scores, labels = images.arrays()
        values, notes = {}, []
        measure_into(values, notes, "image AUROC", functional.auroc, scores, labels)
        measure_into(values, notes, "pixel AUROC", pixels.auroc)
        for limit in limits:
            measure_into(values, notes, f"AUPRO@{limit:g}", pixels.aupro, limit)
            if options.official:
                measure_into(values, notes, official_key(limit), sampled_aupro, pixels,
                             {s.target for s in state.samples}, limit)
        curves = {}
        if figures:  # the PR figure's legends show the APs, which the table leaves out
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", validation.UndefinedMetricWarning)
                values["image AP"] = functional.average_precision(scores, labels)
                values["pixel AP"] = pixels.average_precision()
            curves = dict(image_curves(scores, labels), **pixel_figure_curves(pixels, limits))
        return Measured(values, pixel_counts(images, pixels), curves, notes)

    def settings(self, options):
        return {"fpr_limits": list(self.limits(options))}

    def figure_kinds(self, options):
        limits = self.limits(options)
        return ("roc", "pr", "pro", *(f"pro{limit:g}" for limit in limits[1:]), "scores")

    def summary(self, options):
        if not options.official:
            return []
        return [("(* the 100-threshold AUPRO of M3DM's au_pro_util.calculate_au_pro, which most 3-D papers "
                 "report; the official MVTec 3D-AD script integrates the exact curve, as the unstarred columns)")]
