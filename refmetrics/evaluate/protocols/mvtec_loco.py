"""MVTec LOCO AD (Bergmann et al., IJCV 2022): AU-sPRO at (0.01, 0.05, 0.1, 0.3, 1.0) and image AUROC.

The official evaluation (``evaluate_experiment.py``) reports each subset, ``logical_anomalies`` and
``structural_anomalies``, each evaluated with every good image of the object, and their mean, in
``metrics_<object>.json``::

    {"classification": {"auc_roc": {"logical_anomalies": .., "structural_anomalies": .., "mean": ..}},
     "localization": {"auc_spro": {"logical_anomalies": {"0.01": .., ..., "1.0": ..},
                                   "structural_anomalies": {..}, "mean": {..}}}}

Here a group's value is that mean over the subsets it holds: the category row is the official
``mean``, and each row of the per-defect breakdown (a subset with every good image, as
:mod:`refmetrics.evaluate.run` forms it) is that subset's official value, computed again from its own
state. The numbers are exact (every distinct score a threshold); the official tool's convention
(thresholds sampled and refined, :func:`refmetrics.conformance.published.mvtec_loco_curve`) is shown
beside them. The official tool selects its thresholds once per object, from every test image, and
evaluates each subset at them: the category's measure computes the official values of every subset
and leaves them in the category's context, where the per-defect rows (measured after it, with the
same context) find them.

Memory: unlike the other protocols' official columns (read from the finished streaming pixel
state), the official AU-sPRO samples scores and refines its thresholds on the whole maps, so with
``options.official`` every map of the object is held at once (:class:`OfficialArrays`: its size in
the maps' dtype, beside the streaming state), and the model's temporaries add to that while it runs;
``--no-official`` keeps the streaming memory bound.
"""

import json
import math

import numpy as np

from ... import functional
from ...functional import spro as functional_spro
from ..readers import Dataset
from ..readers import mvtec_loco as reader
from ..samples import InputError
from ..state import is_wide
from ..writers import figure_slugs
from .base import Column, Measured, Protocol, measure_into, note, thin_stream

GOOD, SUBSETS = reader.GOOD, reader.SUBSETS
SHORT = {"logical_anomalies": "logical", "structural_anomalies": "structural"}
TABLE = {"logical_anomalies": "logical", "structural_anomalies": "struct."}  # the terminal's headers
SEED = 20261125  # the official tool samples scores for its initial thresholds from NumPy's global generator


def spro_key(limit, official=False):
    return f"AU-sPRO@{limit:g}" + (" (official)" if official else "")


class Defects:
    """The exact AU-sPRO state of each subset of the group (:class:`refmetrics.functional.spro.DefectScores`,
    filled by :func:`refmetrics.functional.spro.add_batch` with each image's defects). The good images have
    a state of their own, merged into each subset's when it is measured: its parts are shared, not copied."""

    def __init__(self, samples, options):
        self.states = {}
        self.n_pixels = self.n_defect_pixels = self.n_defects = 0
        self.parts = [] if options.ci else None  # --ci: each image's (part, n_full), in image order

    def add(self, image):
        sample = image.sample
        defects = image.truth or []
        state = self.states.setdefault(sample.defect, functional_spro.DefectScores())
        try:
            if self.parts is None:
                functional_spro.add_batch(state, image.values[np.newaxis], [defects], "cpu")
            else:  # add_batch's steps, keeping the image's part (shared with the state, not copied)
                part, n_full = functional_spro.partition(functional_spro.intake(image.values[np.newaxis],
                                                                                [defects], "cpu"))
                state.add(part, n_full)
                self.parts.append((part, n_full))
        except ValueError as exc:
            raise InputError(f"{sample.truth or sample.map}: {exc}") from exc
        self.n_pixels += image.values.size
        self.n_defect_pixels += int(np.count_nonzero(image.mask)) if image.mask is not None else 0
        self.n_defects += len(defects)

    def subsets(self):
        return [s for s in SUBSETS if s in self.states]

    def subset_state(self, subset):
        """The state of ``subset`` and every good image (the subset's own state is handed over)."""
        state = self.states.pop(subset)
        if GOOD in self.states:
            state.merge(self.states[GOOD])
        return state


class DaskDefects:
    """:class:`Defects` under ``--dask``: the workers read the maps and defects. Each image's defects are
    checked where it is read (:meth:`part_of`, the same checks and messages as :class:`Defects`), and each
    subset's AU-sPRO is computed on the cluster from its images and every good one
    (:class:`refmetrics.evaluate.dask_state.DaskSpro`)."""

    def __init__(self, samples, options):
        self.options = options
        self.dtype = np.float64 if is_wide(samples, options.float16) else np.float32
        self.order, self.seen = [], set()
        self.n_pixels = self.n_defect_pixels = self.n_defects = 0
        self.parts = None

    @staticmethod
    def part_of(image):
        """On a worker: the image's pixels, defect pixels and defects, its defects checked as :class:`Defects`
        checks them."""
        sample, defects = image.sample, image.truth or []
        try:
            functional_spro.partition(functional_spro.intake(image.values[np.newaxis], [defects], "cpu"))
        except ValueError as exc:
            raise InputError(f"{sample.truth or sample.map}: {exc}") from exc
        n_mask = int(np.count_nonzero(image.mask)) if image.mask is not None else 0
        return image.values.size, n_mask, len(defects)

    def add_part(self, image, part):
        self.order.append(image.sample)
        self.seen.add(image.sample.defect)
        self.n_pixels += part[0]
        self.n_defect_pixels += part[1]
        self.n_defects += part[2]

    def subsets(self):
        return [s for s in SUBSETS if s in self.seen]

    def subset_state(self, subset):
        """The subset's images and every good image, on the cluster (their histogram pass runs here)."""
        from ..dask_state import DaskSpro

        return DaskSpro([s for s in self.order if s.defect in (GOOD, subset)], self.options, self.dtype)


def subset_au_spro(state, limits):
    """AU-sPRO at each limit of a subset's state: in-memory (:class:`Defects`) or on the cluster."""
    if hasattr(state, "au_spro"):
        return state.au_spro(limits)
    return functional_spro.au_spro_from_state(state, limits)


class OfficialArrays:
    """Every map of the group (in its own dtype, as read: the official tool forms its end thresholds in
    the maps' dtype) and its defects, kept whole as the official tool does: what
    :func:`refmetrics.conformance.published.mvtec_loco_curve` reads. Used with ``options.official`` only."""

    def __init__(self, samples, options):
        shapes = {s.target for s in samples}
        self.shape = shapes.pop() if len(shapes) == 1 else None
        if any(s.target != s.shape for s in samples):  # resized: float64 values, float16 or not
            dtype = np.float64
        elif options.float16:
            dtype = np.float32
        elif is_wide(samples):
            dtype = np.float64
        else:
            dtype = np.result_type(*[s.dtype.newbyteorder("=") for s in samples])
        self.maps = np.empty((len(samples), *self.shape), dtype) if self.shape else None
        self.defects, self.subsets = [], []

    def add(self, image):
        if self.maps is not None:
            self.maps[len(self.defects)] = image.values
        self.defects.append(image.truth or [])
        self.subsets.append(image.sample.defect)


def official_values(arrays, subsets, limits, notes):
    """``{subset: [AU-sPRO at each limit]}`` as the official tool computes them: thresholds selected once
    from every image of ``arrays``, each subset (with every good image) evaluated at them."""
    nan = {s: [math.nan] * len(limits) for s in subsets}
    if arrays.maps is None:
        note(notes, "official AU-sPRO: the official tool needs every map of an object at one size (reported "
                    "as nan)")
        return nan
    curve = _published().mvtec_loco_curve(arrays.maps, arrays.defects, seed=SEED)
    if curve is None:
        return nan  # no defect or no defect-free pixel: the exact values say why
    out = {}
    for subset in subsets:
        keep = [i for i, d in enumerate(arrays.subsets) if d in (GOOD, subset)]
        spro, fpr = _published().loco_points([arrays.maps[i] for i in keep], [arrays.defects[i] for i in keep],
                                             curve[0])
        try:
            out[subset] = [_published().loco_area(fpr, spro, limit) for limit in limits]
        except (AssertionError, TypeError, IndexError):
            note(notes, f"official AU-sPRO ({subset}): the official evaluation fails on these maps (its "
                        "thresholds do not take the curve from FPR 0 to 1, or there is no defect-free pixel; "
                        "reported as nan)")
            out[subset] = [math.nan] * len(limits)
    return out


def _published():
    from ...conformance import published

    return published


def _mean(values):
    return float(np.mean(values)) if values else math.nan


class MVTecLOCO(Protocol):
    name = "mvtec-loco"
    title = "MVTec LOCO AD (Bergmann et al., 2022)"
    layout = "<maps>/<object>/test/{good,logical_anomalies,structural_anomalies}/<name>.tiff|.npy|.png, " \
             "<gt>/<object>/ground_truth/<subset>/<name>/000.png, ..., <gt>/<object>/defects_config.json"
    official = "AU-sPRO at the official tool's sampled and refined thresholds (selected once per object)"
    fpr_limits = functional_spro.OFFICIAL_FPR_LIMITS
    inputs = ("maps", "gt")

    def read(self, options):
        if options.maps is None or options.gt is None:
            raise InputError("--maps and --gt: give both (the MVTec LOCO AD layout), or --demo")
        samples = reader.discover(options.maps, options.gt, options.categories)
        return Dataset(samples, {"maps": str(options.maps), "gt": str(options.gt)})

    def columns(self, options):
        columns = [Column(f"image AUROC ({SHORT[s]})", "image", TABLE[s], per_defect=False) for s in SUBSETS]
        columns.append(Column("image AUROC", "image", "mean"))
        for limit in self.limits(options):
            columns.append(Column(spro_key(limit), "pixel", f"@{limit:g}"))
            if options.official:
                columns.append(Column(spro_key(limit, True), "pixel", f"@{limit:g}", official=True,
                                      label=spro_key(limit)))
        return tuple(columns)

    def accumulators(self, options, context):
        parts = {"defects": DaskDefects if options.dask is not None else Defects}
        if options.official and "official" not in context:
            parts["official"] = OfficialArrays
        return parts

    def measure(self, state, options, context, figures):
        limits = self.limits(options)
        images, defects = state["images"], state["defects"]
        scores, labels = images.arrays()
        types = np.array(images.defects, dtype=object)
        subsets = defects.subsets()
        first = context.setdefault("subsets", subsets) is subsets  # the category, measured before its subsets
        values, notes, curves = {}, [], {}
        aurocs, areas = {}, {}
        for subset in subsets:
            keep = (types == GOOD) | (types == subset)
            got = {}
            measure_into(got, notes, f"image AUROC ({SHORT[subset]})", functional.auroc, scores[keep], labels[keep])
            aurocs[subset] = got[f"image AUROC ({SHORT[subset]})"]
            subset_state = defects.subset_state(subset)
            measure_into(got, notes, f"AU-sPRO ({subset})", subset_au_spro, subset_state, limits)
            areas[subset] = got[f"AU-sPRO ({subset})"]
            if figures:
                curves.setdefault("spro", {})[subset] = self._spro_curve(subset_state, max(limits))
                curves.setdefault("image roc", {})[subset] = _quiet_roc(scores[keep], labels[keep])
            del subset_state
        if first:
            absent = [s for s in SUBSETS if s not in subsets]
            if not subsets:
                note(notes, f"no {' or '.join(SUBSETS)} images: AU-sPRO and image AUROC are undefined (reported "
                            "as nan)")
            elif absent:
                note(notes, f"no {absent[0]} images: the category's values are those of {subsets[0]} alone "
                            "(the official tool needs both subsets)")
        for subset in SUBSETS:
            values[f"image AUROC ({SHORT[subset]})"] = aurocs.get(subset, math.nan)
        values["image AUROC"] = _mean(list(aurocs.values()))
        for i, limit in enumerate(limits):
            values[spro_key(limit)] = _mean([a[i] for a in areas.values()])
        official = {}
        if options.official:
            official = context.get("official")
            if official is None:
                official = official_values(state["official"], subsets, limits, notes)
                if first:
                    context["official"] = official
                    context["official notes"] = [n for n in notes if n.startswith("official")]
            else:
                notes += [n for n in context.get("official notes", []) if n not in notes]
            for i, limit in enumerate(limits):
                values[spro_key(limit, True)] = _mean([official[s][i] for s in subsets])
        if figures:
            good = scores[types == GOOD]
            curves["scores"] = (good, scores[types != GOOD])
        counts = {"images": len(images.scores), "defective images": int(labels.sum()),
                  "pixels": defects.n_pixels, "defect pixels": defects.n_defect_pixels,
                  "defects": defects.n_defects}
        for subset in subsets:
            counts[f"{subset} images"] = int(np.count_nonzero(types == subset))
        extra = {"loco": {"limits": list(limits), "auc_roc": aurocs, "auc_spro": areas,
                          "official auc_spro": {s: official[s] for s in subsets} if official else {}}}
        return Measured(values, counts, curves, notes, extra)

    def replicates(self, state, options, context, W):
        """Each subset's image AUROC on every resample (the group's resample restricted to the subset's
        images and the good ones, :class:`~refmetrics.functional.bootstrap.ImageResampler`), and their mean
        per resample as :meth:`measure` forms it (NumPy's mean over the subsets the group holds); likewise
        each subset's AU-sPRO at every limit (:class:`~refmetrics.functional.bootstrap.SproResampler`
        from each image's part, kept by :class:`Defects` with ``--ci``) and their mean, where the engine
        is installed."""
        from ...functional.bootstrap import ImageResampler

        images = state["images"]
        scores, labels = images.arrays()
        types = np.array(images.defects, dtype=object)
        subsets = [s for s in SUBSETS if (types == s).any()]
        out, per_subset = {}, []
        for subset in subsets:
            keep = (types == GOOD) | (types == subset)
            reps = ImageResampler(scores[keep], labels[keep]).replicates(np.ascontiguousarray(W[:, keep]), "auroc")
            out[f"image AUROC ({SHORT[subset]})"] = reps
            per_subset.append(reps)
        if per_subset:
            out["image AUROC"] = np.array([_mean([float(r[b]) for r in per_subset]) for b in range(W.shape[0])])
        from ...functional.bootstrap import SproResampler

        parts = state["defects"].parts
        if parts is None or not subsets:
            return out
        limits = self.limits(options)
        areas = []
        for subset in subsets:  # (B, limits): the subset's AU-sPROs, as measure's au_spro_from_state
            keep = np.flatnonzero((types == GOOD) | (types == subset))
            engine = SproResampler.from_parts([parts[i][0] for i in keep], [parts[i][1] for i in keep])
            areas.append(np.asarray(engine.replicates(np.ascontiguousarray(W[:, keep]), list(limits))))
        for i, limit in enumerate(limits):
            out[spro_key(limit)] = np.array([_mean([float(a[b, i]) for a in areas]) for b in range(W.shape[0])])
        return out

    @staticmethod
    def _spro_curve(subset_state, limit):
        """The exact sPRO curve to just past ``limit``, thinned for a figure (None when undefined)."""
        points = (subset_state.spro_points(limit) if hasattr(subset_state, "spro_points")
                  else functional_spro.spro_points_from_state(subset_state, limit))
        thinned = thin_stream(points, stop=limit)
        if thinned is None:
            return None
        start = subset_state.n_full / subset_state.n_regions
        return np.concatenate([[0.0], thinned[0]]), np.concatenate([[start], thinned[1]])

    def settings(self, options):
        out = {"fpr_limits": list(self.limits(options)), "subsets": list(SUBSETS),
               "category_value": "the mean over the subsets (each with every good image), as the official "
                                 "metrics_<object>.json's 'mean'; per-defect rows: each subset's value"}
        if options.official:
            out["official_seed"] = SEED
        return out

    # -- outputs -----------------------------------------------------------------

    def figure_kinds(self, options):
        return ("roc", "scores") + tuple(f"spro{limit:g}" for limit in self.limits(options))

    def figures(self, results, options, directory):
        from ... import plotting

        written = []
        slugs = figure_slugs(r.category for r in results)
        for r in results:
            c, loco = r.curves, r.extra.get("loco", {})
            figs = {}
            if c.get("image roc"):
                figs["roc"] = plotting.curves_figure(
                    [(f"{s} (AUROC {loco['auc_roc'][s]:.4f})", *roc) for s, roc in c["image roc"].items()],
                    "False positive rate", "True positive rate",
                    f"{r.category}: image ROC (each subset with every good image)", diagonal=True)
            if "scores" in c:
                figs["scores"] = plotting.score_histogram_figure(*c["scores"], f"{r.category}: image scores")
            spro_curves = {s: curve for s, curve in c.get("spro", {}).items() if curve is not None}
            for i, limit in enumerate(self.limits(options)):
                if not spro_curves:
                    break
                lines = [(f"{s} (AU-sPRO {loco['auc_spro'][s][i]:.4f})", *_cut(*curve, limit))
                         for s, curve in spro_curves.items()]
                fig = plotting.curves_figure(lines, "False positive rate", "Saturated per-region overlap",
                                             f"{r.category}: sPRO to FPR {limit:g}, mean AU-sPRO = "
                                             f"{r.values[spro_key(limit)]:.4f}")
                fig.axes[0].set_xlim(0, limit)
                figs[f"spro{limit:g}"] = fig
            for kind, fig in figs.items():
                name = f"{slugs[r.category]}_{kind}.png"
                fig.savefig(directory / name, dpi=100)
                written.append(name)
        return written

    def extra_file_names(self, categories, options):
        return [f"metrics_{slug}.json" for slug in figure_slugs(categories).values()]

    def extra_files(self, results, options):
        """``metrics_<object>.json`` per object, in the official evaluation's schema, with the exact values."""
        files = {}
        slugs = figure_slugs(r.category for r in results)
        for r in results:
            loco = r.extra.get("loco")
            if loco is None:
                continue
            keys = [str(float(limit)) for limit in loco["limits"]]
            spro = {s: dict(zip(keys, map(_json, v))) for s, v in loco["auc_spro"].items()}
            if spro:
                spro["mean"] = {k: _json(r.values[spro_key(limit)]) for k, limit in zip(keys, loco["limits"])}
            roc = {s: _json(v) for s, v in loco["auc_roc"].items()}
            if roc:
                roc["mean"] = _json(r.values["image AUROC"])
            doc = {"localization": {"auc_spro": spro}, "classification": {"auc_roc": roc}}
            files[f"metrics_{slugs[r.category]}.json"] = json.dumps(doc, indent=4, sort_keys=True) + "\n"
        return files

    def summary(self, options):
        lines = [("image: AUROC of logical_anomalies and of structural_anomalies images, each against every "
                  "good image, and their mean; pixel: AU-sPRO to each FPR limit, the mean over the two subsets "
                  "(the official 'mean'; each subset's value in the per-defect rows and in "
                  "metrics_<object>.json)")]
        if options.official:
            lines.append("* the official evaluation's AU-sPRO: thresholds selected once per object (50 at "
                         "quantiles of sampled scores, refined until adjacent curve points are within 0.01), "
                         "every subset evaluated at them, the trapezoid to each limit")
        return lines


def _quiet_roc(scores, labels):
    import warnings

    from ... import UndefinedMetricWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        fpr, tpr, _ = functional.roc_curve(scores, labels)
    return fpr, tpr


def _cut(fpr, spro, limit):
    """The curve from FPR 0 to ``limit``, linearly interpolated there."""
    keep = fpr <= limit
    x, y = fpr[keep], spro[keep]
    after = np.flatnonzero(~keep)
    if after.size and x.size and x[-1] < limit:
        i = after[0]
        y_at = spro[i - 1] + (spro[i] - spro[i - 1]) * (limit - fpr[i - 1]) / (fpr[i] - fpr[i - 1])
        x, y = np.append(x, limit), np.append(y, y_at)
    return x, y


def _json(value):
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value
