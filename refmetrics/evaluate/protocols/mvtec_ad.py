"""MVTec AD (Bergmann et al., 2019; 2021): image AUROC/AP/F1-max, pixel AUROC/AP/F1-max and AUPRO@0.3.

The official evaluation script integrates the exact PRO curve with the trapezoid rule up to the limit,
which is refmetrics' own definition: there is no other convention to show beside.
"""

from ... import registry
from ..readers import Dataset
from ..samples import InputError
from ..readers import manifest
from ..readers import mvtec_ad as reader
from .base import Column, Measured, Protocol, image_curves, image_metrics, pixel_counts, pixel_figure_curves, \
    pixel_metrics

METRICS = registry.evaluate_columns()  # ("image AUROC", ..., "AUPRO")


class MVTecAD(Protocol):
    name = "mvtec-ad"
    title = "MVTec AD (Bergmann et al., 2019)"
    layout = "<maps>/<category>/test/<defect>/<name>.tiff|.npy|.png, <gt>/<category>/ground_truth/<defect>/" \
             "<name>_mask.png"
    official = ""
    fpr_limits = (0.3,)
    inputs = ("maps", "gt", "manifest")

    def read(self, options):
        if options.manifest is not None:
            if options.maps is not None or options.gt is not None:
                raise InputError("--manifest: give either --manifest or --maps with --gt, not both")
            notes = []
            samples = manifest.read(options.manifest, options.categories, notes)
            return Dataset(samples, {"manifest": str(options.manifest)}, notes)
        if options.maps is None or options.gt is None:
            raise InputError("--maps and --gt: give both (the MVTec AD layout), or --manifest, or --demo")
        samples = reader.discover(options.maps, options.gt, options.categories)
        return Dataset(samples, {"maps": str(options.maps), "gt": str(options.gt)})

    def columns(self, options):
        limit = self.limits(options)[0]
        levels = {m: ("image" if m.startswith("image") else "pixel") for m in METRICS}
        return tuple(Column(m, levels[m], f"AUPRO@{limit:g}" if m == "AUPRO" else m.split(" ", 1)[1],
                            label=f"AUPRO@{limit:g}" if m == "AUPRO" else "") for m in METRICS)

    def measure(self, state, options, context, figures):
        images, pixels = state["images"], state["pixels"].state
        limit = self.limits(options)[0]
        pixels.finish()
        scores, labels = images.arrays()
        values, notes = {}, []
        image_metrics(values, notes, scores, labels)
        pixel_metrics(values, notes, pixels, limit)
        curves = {}
        if figures:
            curves = dict(image_curves(scores, labels), **pixel_figure_curves(pixels, (limit,)))
        return Measured(values, pixel_counts(images, pixels), curves, notes)

    def settings(self, options):
        return {"fpr_limit": self.limits(options)[0]}
