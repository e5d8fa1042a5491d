"""MVTec AD 2 (Heckler-Kram et al., 2025): AU-PRO@0.05 (the headline) and AU-PRO@0.3, SegF1 at the
validation threshold, image AUROC and AP, on ``test_public``.

AU-PRO: MVTec AD 2's public code points to the MVTec AD evaluation script for ``test_public``; that
script integrates the exact PRO curve with the trapezoid rule to the limit (here 0.05 and 0.3), which
is refmetrics' own definition: the official convention equals the exact value, so no column is shown
beside it. Image scores are the maps' maxima, as that script takes them.

SegF1: each object's threshold is ``mean + 3 std`` (ddof 0) of every pixel of its ``validation/good``
maps (the baseline of the official ``check_and_prepare_data_for_upload.py``: ``np.mean(v) + 3 *
np.std(v)``), computed exactly (:class:`refmetrics.ValidationThreshold`), from maps rounded to float16
first with ``--float16``, as the test maps (and as stored otherwise: ``--resize`` resizes test maps to
their masks, never validation maps). A pixel is predicted defective when its score is
``> threshold``. ``SegF1``: ``2TP/(2TP+FP+FN)`` over every ``test_public`` pixel of the object;
``SegF1 (per image)``: the mean over the object's ``test_public`` images of each image's F1 (0 for an
image with neither a defect pixel nor a predicted one): the ``average="global"`` and
``average="samplewise"`` results of :func:`refmetrics.functional.segmentation_scores`. How the
evaluation server aggregates SegF1 (over which images, and how over objects) is not public; the
output says so.

References
----------
Heckler-Kram, Neudeck, Scheler, König, Steger, "The MVTec AD 2 Dataset: Advanced Scenarios for
Unsupervised Anomaly Detection", arXiv:2503.21622, 2025.
"""

import math

import numpy as np

from ... import functional
from ...functional.segmentation import rates, scores_from_counts
from ...metrics.segmentation import ValidationThreshold
from ..options import ImageScore
from ..readers import Dataset
from ..readers import mvtec_ad2 as reader
from ..samples import InputError
from ..state import GroupState, Pixels
from .base import Column, Measured, Protocol, image_curves, measure_into, note, pixel_counts, pixel_figure_curves

N_STD = 3.0
SERVER_NOTE = ("not public (which images the MVTec AD 2 evaluation server pools, and how it averages over "
               "objects): SegF1 here is pooled over each object's test_public pixels, and SegF1 (per image) the "
               "mean of the images' F1; neither is guaranteed to be the leaderboard's number")


class ValidationMoments:
    """Accumulator of the validation maps: the exact moments of their pixels (no map kept)."""

    def __init__(self, samples, options):
        self.metric = ValidationThreshold(n_std=N_STD, backend="cpu")
        self.images = 0
        self.pixels = 0

    def add(self, image):
        self.add_part(image, self.part_of(image))

    @staticmethod
    def part_of(image):
        """What one map adds, computed where it is read (on a worker under ``--dask``): its exact moments
        (a :class:`~refmetrics.ValidationThreshold` of the map alone) and its number of pixels."""
        moments = ValidationThreshold(n_std=N_STD, backend="cpu")
        moments.update(image.values)
        return moments, image.values.size

    def add_part(self, image, part):
        moments, n = part
        self.metric.merge(moments)
        self.images += 1
        self.pixels += n


class SegmentationCounts:
    """Accumulator of the test maps: TP, FP, FN, TN of ``score > threshold`` per image (four integers per
    image; no map kept)."""

    def __init__(self, threshold):
        self.threshold = threshold
        self.rows = []

    def add(self, image):
        self.add_part(image, self.part_of(image))

    def part_of(self, image):
        """One map's TP, FP, FN, TN, computed where it is read (on a worker under ``--dask``); None without
        a threshold."""
        if math.isnan(self.threshold):
            return None
        mask = image.mask if image.mask is not None else np.zeros(image.values.shape, bool)
        s = functional.segmentation_scores(image.values, mask, self.threshold, strict=True, backend="cpu")
        return s["tp"], s["fp"], s["fn"], s["tn"]

    def add_part(self, image, part):
        if part is not None:
            self.rows.append(part)

    def counts(self):
        """``(images, 4)`` int64 TP, FP, FN, TN."""
        return np.array(self.rows, np.int64).reshape(-1, 4)


class MVTecAD2(Protocol):
    name = "mvtec-ad-2"
    title = "MVTec AD 2 (Heckler-Kram et al., 2025)"
    layout = "<maps>/<object>/{test_public/{good,bad},validation/good}/<name>.tiff|.npy|.png, " \
             "<gt>/<object>/test_public/ground_truth/bad/<name>_mask.png"
    official = ""
    fpr_limits = (0.05, 0.3)
    inputs = ("maps", "gt")

    def read(self, options):
        if options.maps is None or options.gt is None:
            raise InputError("--maps and --gt: give both (the MVTec AD 2 layout: --maps <maps>/<object>/"
                             "{test_public/{good,bad},validation/good}/, --gt the dataset's root), or --demo")
        samples, validation, notes = reader.discover(options.maps, options.gt, options.categories)
        return Dataset(samples, {"maps": str(options.maps), "gt": str(options.gt)}, notes, validation)

    def columns(self, options):
        aupro = [Column(f"AUPRO@{limit:g}", "pixel", f"AUPRO@{limit:g}") for limit in self.limits(options)]
        return tuple(aupro) + (Column("SegF1", "pixel", "SegF1"),
                               Column("SegF1 (per image)", "pixel", "SegF1/img"),
                               Column("image AUROC", "image", "AUROC"),
                               Column("image AP", "image", "AP"))

    def prepare(self, dataset, category, options):
        """The object's validation threshold, streamed over its ``validation/good`` maps (each read once,
        rounded to float16 first with ``--float16``)."""
        group = dataset.validation.get(category)
        if not group:
            raise InputError(f"{category}: expected the maps of its validation/good images (SegF1's threshold), "
                             "found none")
        state = GroupState(group, options, {"moments": ValidationMoments}, ImageScore())
        if options.dask is not None:  # the workers read the maps; their moments come back
            from ..dask_state import stream

            stream(state, group)
        else:
            for sample in group:
                state.add(sample)
        moments = state["moments"]
        values, notes = {}, []
        measure_into(values, notes, "SegF1", moments.metric.compute)
        threshold = values["SegF1"]
        notes = [n.replace("SegF1: ", "SegF1: its threshold: ") for n in notes]
        return {"threshold": threshold, "images": moments.images, "pixels": moments.pixels, "notes": notes}

    def accumulators(self, options, context):
        return {"pixels": Pixels,
                "segmentation": lambda samples, options: SegmentationCounts(context["threshold"])}

    def measure(self, state, options, context, figures):
        images, pixels = state["images"], state["pixels"].state
        limits = self.limits(options)
        pixels.finish()
        scores, labels = images.arrays()
        values, notes = {}, list(context["notes"])
        for limit in limits:
            measure_into(values, notes, f"AUPRO@{limit:g}", pixels.aupro, limit)
        threshold = context["threshold"]
        counts = state["segmentation"].counts()
        if math.isnan(threshold):
            values["SegF1"] = values["SegF1 (per image)"] = float("nan")
            pooled = None
        else:
            pooled = scores_from_counts(counts.sum(axis=0, keepdims=True), False)
            values["SegF1"] = pooled["f1"]
            values["SegF1 (per image)"] = scores_from_counts(counts, True)["mean_f1"]
            note(notes, f"SegF1 at the validation threshold {threshold!r} (mean + {N_STD:g} std, ddof 0, of the "
                        f"{context['pixels']:,} pixels of {context['images']} validation/good maps"
                        f"{', rounded to float16' if options.float16 else ''}); a pixel is predicted defective "
                        "where its score is > the threshold")
        measure_into(values, notes, "image AUROC", functional.auroc, scores, labels)
        measure_into(values, notes, "image AP", functional.average_precision, scores, labels)
        out = pixel_counts(images, pixels)
        out.update({"validation threshold": None if math.isnan(threshold) else threshold,
                    "validation images": context["images"], "validation pixels": context["pixels"]})
        if pooled is not None:
            out.update({f"SegF1 {k.upper()}": pooled[k] for k in ("tp", "fp", "fn", "tn")})
        curves = {}
        if figures:
            curves = image_curves(scores, labels)
            pro = pixel_figure_curves(pixels, limits).get("pro")
            if pro is not None:
                curves["pro"] = pro
        return Measured(values, out, curves, notes)

    def replicates(self, state, options, context, W):
        """The default replicates (image AUROC and AP, the AU-PROs) and SegF1's: resample ``b`` repeats each
        test image ``W[b, i]`` times, so its pooled counts are ``W[b] @ counts`` (exact integers) and its
        per-image F1s are the images' own, repeated: ``SegF1`` is :func:`~refmetrics.functional.segmentation.
        rates` of the pooled counts, ``SegF1 (per image)`` the correctly rounded sum (``math.fsum``) of the
        repeated per-image F1s over their number, as :meth:`measure` computes them on the test images."""
        out = dict(super().replicates(state, options, context, W))
        if math.isnan(context["threshold"]):
            return out  # no threshold: SegF1 is undefined, and so are its replicates
        counts = state["segmentation"].counts()
        out["SegF1"] = rates(W @ counts)["f1"]
        per_image = rates(counts)["f1"]
        out["SegF1 (per image)"] = np.array([math.fsum(np.repeat(per_image, w).tolist()) / int(w.sum())
                                             for w in W])
        return out

    def settings(self, options):
        return {"fpr_limits": list(self.limits(options)),
                "segmentation_threshold": f"mean + {N_STD:g} std (ddof 0) of every pixel of the object's "
                                          "validation/good maps, exact; a pixel is positive where score > "
                                          "threshold",
                "segf1": "SegF1: 2TP/(2TP+FP+FN) pooled over the object's test_public pixels; SegF1 (per "
                         "image): the mean over its test_public images of each image's F1 (0 where an image "
                         "has neither a defect pixel nor a predicted one)",
                "segf1_server_aggregation": SERVER_NOTE,
                "evaluated_split": "test_public (test_private and test_private_mixed have no public ground "
                                   "truth)"}

    def figure_kinds(self, options):
        limits = self.limits(options)
        return ("roc", "pr", "scores", "pro") + tuple(f"pro{limit:g}" for limit in limits[1:])

    def summary(self, options):
        lines = [(f"(SegF1: pixels above each object's validation threshold, mean + {N_STD:g} std of its "
                 "validation/good maps' pixels. "
                 f"The evaluation server's SegF1 aggregation is {SERVER_NOTE}.)"),
                 ("(AU-PRO: exact; the official MVTec AD evaluation script, which MVTec AD 2 points to for "
                 "test_public, computes the same curve and area, so no other convention is shown.)")]
        if options.float16:
            lines.append("(--float16: every score, validation maps included, rounded to float16 first, as the "
                         "evaluation server receives them.)")
        return lines
