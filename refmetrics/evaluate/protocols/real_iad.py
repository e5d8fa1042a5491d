"""Real-IAD (Wang et al., 2024): multi-view samples; S-AUROC/S-AP beside image and pixel metrics.

A sample's five camera views are grouped by ``--sample-key``
(:mod:`refmetrics.evaluate.readers.real_iad`); a sample's score is the
maximum of its views' image scores and its label the maximum of their labels,
as ADEval (Real-IAD's official evaluator) computes them. Masks are binarised
``> 127`` and maps whose size differs from their mask's are resized to it
bilinearly with the edges clamped (OpenCV's ``INTER_LINEAR``, which ADEval
calls), unless ``--resize`` says otherwise.

Beside the exact numbers, ADEval's own convention
(:func:`refmetrics.conformance.causes.adeval_model`): each level's scores counted
in 1000 bins between their smallest and largest value, the curves integrated
over the bin edges alone. The pixel ones are computed from the finished streaming
pixel state (:func:`refmetrics.evaluate.protocols.ader.adeval_pixel`: counts at
each bin edge by binary search of the sorted keys), so they keep the streaming
memory bound.
"""

import math

import numpy as np

from ... import functional
from ..readers import Dataset
from ..readers import real_iad as reader
from ..samples import InputError
from ..state import Pixels
from .ader import adeval_pixel
from .base import (Column, Measured, Protocol, image_curves, image_metrics, measure_into,
                   note, pixel_counts, pixel_metrics, pixel_figure_curves)

NSTRIPS = 1000  # ADEval's default number of bins (python -m adeval --nstrips; the pixel level always uses 1000)
RESIZE_MODE = "edge"  # scikit-image's bilinear resize with the edges clamped = OpenCV's INTER_LINEAR

# (key, level, short header, Markdown/LaTeX header, ADEval's name of its binned value or None)
_EXACT = (
    ("sample AUROC", "sample", "AUROC", "S-AUROC", "s_auroc"),
    ("sample AP", "sample", "AP", "S-AP", "s_aupr"),
    ("image AUROC", "image", "AUROC", "", "i_auroc"),
    ("image AP", "image", "AP", "", "i_aupr"),
    ("image F1-max", "image", "F1-max", "", None),
    ("pixel AUROC", "pixel", "AUROC", "", "p_auroc"),
    ("pixel AP", "pixel", "AP", "", "p_aupr"),
    ("pixel F1-max", "pixel", "F1-max", "", None),
    ("AUPRO", "pixel", "AUPRO", "", "p_aupro"),
)
# the model's metric names, for a level's case
_MODEL = {"AUROC": "image_auroc", "AP": "image_ap"}


ADEVAL_LIMIT = 0.3  # ADEval's AUPRO limit, fixed in its summary() whatever --fpr-limit says (as ader's)


def official_key(key):
    return f"{key} (ADEval)"


class _Case:
    """What :func:`refmetrics.conformance.causes.adeval_model` reads for an image metric: ``image_level()``
    (the scores and labels of one level: images or samples)."""

    def __init__(self, scores, labels):
        self.scores, self.labels = scores, labels

    def image_level(self):
        return self.scores, self.labels


def sample_level(scores, labels, keys):
    """``(scores, labels, keys)`` of the samples: the maximum over each key's views, in first-seen order."""
    order = {}
    index = np.array([order.setdefault(k, len(order)) for k in keys], np.int64)
    sample_scores = np.full(len(order), -np.inf)
    sample_labels = np.zeros(len(order), np.uint8)
    np.maximum.at(sample_scores, index, scores)
    np.maximum.at(sample_labels, index, labels)
    return sample_scores, sample_labels, list(order)


def _adeval(values, notes, key, data, metric, limit):
    """``values[official_key(key)]``: ADEval's binned value of ``metric`` (NaN with a note where ADEval would
    raise, or where the value is undefined). ``data``: a level's :class:`_Case` for the image metrics, the
    group's finished :class:`refmetrics.state.PixelState` for the pixel ones (:func:`.ader.adeval_pixel`:
    the model's pixel AUROC and AP bit for bit, its AUPRO within a few ulps)."""
    from ...conformance import causes

    name = official_key(key)
    if metric.startswith("image_"):
        result = causes.adeval_model(data, metric, NSTRIPS, fpr_limit=limit)
    else:
        result = adeval_pixel(data, metric, NSTRIPS, limit)
    if isinstance(result, causes.Raises):
        note(notes, f"{name}: ADEval raises {result.name} here ({result.why}) (reported as nan)")
        result = math.nan
    elif result is None:
        note(notes, f"{name}: undefined (no defect region or no defect-free pixel) (reported as nan)")
        result = math.nan
    elif math.isnan(result):
        note(notes, f"{name}: ADEval's value is nan here (reported as nan)")
    values[name] = float(result)


class RealIAD(Protocol):
    name = "real-iad"
    title = "Real-IAD (Wang et al., 2024)"
    layout = ("<maps>/<category>/{OK/<sample>, NG/<defect>/<sample>}/<name>_C<k>_<time>.tiff|.npy|.png mirroring "
              "the images of <gt>/<category>/, masks <gt>/<category>/NG/<defect>/<sample>/<name>_C<k>_<time>.png")
    official = f"ADEval ({NSTRIPS} bins between the smallest and largest score of each level)"
    fpr_limits = (0.3,)
    inputs = ("maps", "gt", "split_json")
    options = ("sample_key",)

    def read(self, options):
        if options.maps is None or options.gt is None:
            raise InputError("--maps and --gt: give both (the Real-IAD layout; --split-json optionally), or --demo")
        if options.resize is None:  # ADEval resizes every map to its mask's size, bilinearly (OpenCV)
            options.resize = "bilinear"
        if options.resize == "bilinear":
            options.resize_mode = RESIZE_MODE
        notes = []
        settings = {"maps": str(options.maps), "gt": str(options.gt)}
        if options.split_json is not None:
            samples = reader.from_split(options.maps, options.gt, options.split_json, options.categories,
                                        options.sample_key, notes)
            settings["split_json"] = str(options.split_json)
        else:
            samples = reader.discover(options.maps, options.gt, options.categories, options.sample_key, notes)
        return Dataset(samples, settings, notes)

    def columns(self, options):
        limit = self.limits(options)[0]
        out = []
        for key, level, short, label, adeval in _EXACT:
            if key == "AUPRO":
                short = label = f"AUPRO@{limit:g}"
            out.append(Column(key, level, short, label=label))
            if adeval and options.official:
                if key == "AUPRO":  # ADEval's own limit, whatever --fpr-limit says
                    short = label = f"AUPRO@{ADEVAL_LIMIT:g}"
                out.append(Column(official_key(key), level, short, official=True,
                                  label=f"{label or key} ADEval"))
        return tuple(out)

    def accumulators(self, options, context):
        return {"pixels": Pixels}  # the official pixel columns too are read from the finished pixel state

    def measure(self, state, options, context, figures):
        images, pixels = state["images"], state["pixels"].state
        limit = self.limits(options)[0]
        pixels.finish()
        scores, labels = images.arrays()
        sample_scores, sample_labels, _ = sample_level(scores, labels, images.groups)
        values, notes = {}, []
        measure_into(values, notes, "sample AUROC", functional.auroc, sample_scores, sample_labels)
        measure_into(values, notes, "sample AP", functional.average_precision, sample_scores, sample_labels)
        image_metrics(values, notes, scores, labels)
        pixel_metrics(values, notes, pixels, limit)
        resized = [s for s in state.samples if s.target != s.shape]
        if resized:
            how = ("bilinearly, edges clamped: OpenCV's INTER_LINEAR, as ADEval resizes"
                   if options.resize == "bilinear" and options.resize_mode == RESIZE_MODE
                   else f"{options.resize}; ADEval resizes bilinearly (OpenCV's INTER_LINEAR)")
            note(notes, f"{len(resized)} of {len(state.samples)} maps resized to their masks' size ({how})")
        if options.official:
            self._official(state, values, notes, (scores, labels), (sample_scores, sample_labels), limit)
        counts = dict(pixel_counts(images, pixels), samples=int(sample_labels.size),
                      **{"defective samples": int(sample_labels.sum())})
        curves = {}
        if figures:
            curves = dict(image_curves(scores, labels), **pixel_figure_curves(pixels, (limit,)))
        return Measured(values, counts, curves, notes)

    def resampling_units(self, state):
        """The sample is the unit: a resample draws samples (stratified by the sample labels, the maximum over
        their views), and each view enters it as often as its sample."""
        images = state["images"]
        scores, labels = images.arrays()
        _, sample_labels, keys = sample_level(scores, labels, images.groups)
        index = {k: i for i, k in enumerate(keys)}
        return np.array([index[k] for k in images.groups], np.int64), sample_labels

    def replicates(self, state, options, context, W):
        """The default replicates (image and pixel columns: the views repeated by their sample's multiplicity)
        and the sample columns' (S-AUROC, S-AP): the samples repeated by their multiplicities, read from ``W``
        at each sample's first view (:meth:`resampling_units`); each replicate the exact value."""
        from ...functional.bootstrap import ImageResampler

        out = dict(super().replicates(state, options, context, W))
        images = state["images"]
        scores, labels = images.arrays()
        sample_scores, sample_labels, keys = sample_level(scores, labels, images.groups)
        first = {}
        for i, k in enumerate(images.groups):
            first.setdefault(k, i)
        samples = ImageResampler(sample_scores, sample_labels)
        weights = np.ascontiguousarray(W[:, [first[k] for k in keys]])
        out["sample AUROC"] = samples.replicates(weights, "auroc")
        out["sample AP"] = samples.replicates(weights, "average_precision")
        return out

    def _official(self, state, values, notes, image, sample, limit):
        for level, (scores, labels) in (("sample", sample), ("image", image)):
            for what, metric in _MODEL.items():
                _adeval(values, notes, f"{level} {what}", _Case(scores, labels), metric, limit)
        if len({s.target for s in state.samples}) > 1:
            for key in ("pixel AUROC", "pixel AP", "AUPRO"):
                values[official_key(key)] = math.nan
            note(notes, "pixel (ADEval): the maps of this category have several sizes; the ADEval model needs "
                        "one (reported as nan)")
            return
        pixels = state["pixels"].state  # the pixel columns from the finished streaming state (ader.adeval_pixel)
        for key, metric in (("pixel AUROC", "pixel_auroc"), ("pixel AP", "pixel_ap"), ("AUPRO", "aupro")):
            _adeval(values, notes, key, pixels, metric, ADEVAL_LIMIT if metric == "aupro" else limit)

    def settings(self, options):
        return {"fpr_limit": self.limits(options)[0], "sample_key": options.sample_key or reader.VIEW,
                "sample_score": "maximum over the views' image scores", "sample_label": "maximum over the views",
                "mask_threshold": f"> {reader.MASK_ABOVE}",
                "resize_mode": options.resize_mode if options.resize else None,
                "adeval_nstrips": NSTRIPS if options.official else None}

    def summary(self, options):
        lines = [(f"(sample: a sample's score and label are the maximum over its views, grouped by --sample-key "
                  f"{options.sample_key or reader.VIEW!r}; masks binarised > {reader.MASK_ABOVE})")]
        if options.resize == "bilinear" and options.resize_mode == RESIZE_MODE:
            lines.append("(maps whose size differs from their mask's are resized to it bilinearly with the edges "
                         "clamped, as ADEval does with OpenCV's INTER_LINEAR)")
        if options.official:
            lines.append(f"(* ADEval's convention: each level's scores counted in {NSTRIPS} bins between their "
                         "smallest and largest value, the ROC/PR/PRO curves integrated over the bin edges alone; "
                         f"ADEval's AUPRO limit is fixed at {ADEVAL_LIMIT:g}, whatever --fpr-limit says)")
        return lines
