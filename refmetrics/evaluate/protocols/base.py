"""What a protocol is: its reader, its columns, its accumulators and how it measures a group.

A protocol (one module per benchmark in this package) subclasses :class:`Protocol`
and sets its name, title and layout, the columns of its table (:class:`Column`:
exact values, and the official tool's convention beside them), the accumulators
its metrics need, and :meth:`Protocol.measure`, which turns one group's state
into numbers. The run (:mod:`refmetrics.evaluate.run`) and the writers
(:mod:`refmetrics.evaluate.writers`) are the same for every protocol.
"""

import warnings
from dataclasses import dataclass, field
from importlib import resources

import numpy as np

from ... import _validation as validation
from ... import functional
from ..options import ImageScore
from ..state import Pixels

CURVE_CELLS = 2000  # figure curves keep a point where it enters a new cell of a 2000x2000 grid


@dataclass(frozen=True)
class Column:
    """One number of the table.

    ``key``: its name in ``results.json`` (and the Markdown/LaTeX header unless ``label`` is given);
    ``level``: ``image``, ``pixel`` or ``sample``, the group it is shown under in the terminal; ``short``: its
    header there; ``official``: True for an official tool's convention, shown beside the exact value it
    approximates; ``per_defect``: also reported for each defect type.
    """

    key: str
    level: str
    short: str
    official: bool = False
    per_defect: bool = True  # also reported per defect type
    label: str = ""  # the Markdown/LaTeX header (default: the key)

    @property
    def header(self):
        return self.label or self.key


@dataclass
class Measured:
    """What :meth:`Protocol.measure` returns for one group."""

    values: dict
    counts: dict
    curves: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)


def note(notes, text):
    if text not in notes:
        notes.append(text)


def measure_into(values, notes, name, func, *args, **kwargs):
    """``values[name] = func(*args)``; an undefined-metric warning becomes a note that names the metric
    (and so its level, image or pixel); other warnings pass through."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        values[name] = func(*args, **kwargs)
    for w in caught:
        if issubclass(w.category, validation.UndefinedMetricWarning):
            note(notes, f"{name}: {str(w.message).replace('; returning nan', '')} (reported as nan)")
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _cells(x, y):
    return np.floor(np.asarray(x) * CURVE_CELLS).astype(np.int64) * (CURVE_CELLS + 1) + \
        np.floor(np.asarray(y) * CURVE_CELLS).astype(np.int64)


def thin_stream(points, stop=None):
    """Points ``(x, y, *rest)`` chunks -> arrays keeping each point that enters a new grid cell,
    and the last one; stops after the first chunk whose x passes ``stop``."""
    kept, last_cell, tail = [], None, None
    for chunk in points:
        x, y = chunk[0], chunk[1]
        if not x.size:
            continue
        cells = _cells(x, y)
        keep = np.empty(x.size, bool)
        keep[0] = last_cell is None or cells[0] != last_cell
        keep[1:] = cells[1:] != cells[:-1]
        kept.append(tuple(a[keep] for a in chunk))
        tail = tuple(a[-1:] for a in chunk)
        last_cell = cells[-1]
        if stop is not None and x[-1] > stop:
            break
    if not kept:
        return None
    kept.append(tail)
    return tuple(np.concatenate([k[i] for k in kept]) for i in range(len(kept[0])))


def pixel_curves(pixels):
    """ROC and PR points of a finished :class:`refmetrics.state.PixelState` for the figures (thinned; the
    numbers themselves are exact)."""
    thinned = thin_stream(pixels.roc_pr_points())
    if thinned is None:
        return None
    fpr, tpr, precision = thinned
    return {"roc": (np.concatenate([[0.0], fpr]), np.concatenate([[0.0], tpr])),
            "pr": (np.concatenate([[0.0], tpr]), np.concatenate([[1.0], precision]))}


def pro_curve(pixels, fpr_limit):
    """PRO points of a finished pixel state up to just past ``fpr_limit`` for the figure (thinned)."""
    thinned = thin_stream(pixels.pro_points(), stop=fpr_limit)
    if thinned is None:
        return None
    return np.concatenate([[0.0], thinned[0]]), np.concatenate([[0.0], thinned[1]])


def image_metrics(values, notes, scores, labels, prefix="image"):
    """Exact AUROC, AP and F1-max of image (or sample) scores into ``values``."""
    measure_into(values, notes, f"{prefix} AUROC", functional.auroc, scores, labels)
    measure_into(values, notes, f"{prefix} AP", functional.average_precision, scores, labels)
    measure_into(values, notes, f"{prefix} F1-max", functional.f1_max, scores, labels)


def pixel_metrics(values, notes, pixels, fpr_limit):
    """Exact pixel AUROC, AP, F1-max and AUPRO up to ``fpr_limit`` of a finished pixel state into ``values``
    (MVTec AD's pixel columns, which several protocols share)."""
    measure_into(values, notes, "pixel AUROC", pixels.auroc)
    measure_into(values, notes, "pixel AP", pixels.average_precision)
    measure_into(values, notes, "pixel F1-max", pixels.f1_max)
    measure_into(values, notes, "AUPRO", pixels.aupro, fpr_limit)


def resample_weights(protocol, state, n_resamples, seed, stream):
    """``W`` (int64, ``(n_resamples, images)``): the group's stratified resamples, drawn over the protocol's
    resampling units (:meth:`Protocol.resampling_units`; by default the images, stratified by their labels)
    with the seed and the group's stream, each image counted as often as its unit."""
    from ...functional.bootstrap import resample_counts

    units = protocol.resampling_units(state)
    if units is None:
        _, labels = state["images"].arrays()
        return resample_counts(labels.astype(bool), n_resamples, seed, stream=stream)
    unit_of, unit_labels = units
    return resample_counts(np.asarray(unit_labels).astype(bool), n_resamples, seed, stream=stream)[:, unit_of]


IMAGE_REPLICATES = {"image AUROC": "auroc", "image AP": "average_precision", "image F1-max": "f1_max"}
PIXEL_REPLICATES = {"pixel AUROC": "auroc", "pixel AP": "average_precision", "pixel F1-max": "f1_max"}


def aupro_limit(key, limits):
    """The FPR limit of an ``AUPRO`` / ``AUPRO@x`` column key (``x`` one of ``limits`` as the columns print it,
    ``:g``), or None for any other key: the limit itself, never the rounded number of the key."""
    if key == "AUPRO":
        return limits[0]
    return {f"AUPRO@{limit:g}": limit for limit in limits}.get(key)


def default_replicates(protocol, state, options, weights):
    """The default of :meth:`Protocol.replicates` (see there)."""
    from ...functional.bootstrap import ImageResampler, PixelResampler

    keys = [c.key for c in protocol.columns(options) if not c.official]
    out = {}
    scores, labels = state["images"].arrays()
    wanted = [k for k in keys if k in IMAGE_REPLICATES]
    if wanted:
        images = ImageResampler(scores, labels)
        for key in wanted:
            out[key] = images.replicates(weights, IMAGE_REPLICATES[key])
    limits = protocol.limits(options)
    wanted = [k for k in keys if k in PIXEL_REPLICATES or aupro_limit(k, limits) is not None]
    pixels = state.parts.get("pixels")
    if wanted and isinstance(pixels, Pixels):
        resampler = PixelResampler.from_state(pixels.state)
        for key in wanted:
            limit = aupro_limit(key, limits)
            out[key] = resampler.replicates(weights, "aupro", fpr_limit=limit) if limit is not None else \
                resampler.replicates(weights, PIXEL_REPLICATES[key])
    return out


def image_curves(scores, labels):
    """The image ROC and PR curves and the score histograms' two samples, for the figures."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", validation.UndefinedMetricWarning)
        precision, recall, _ = functional.precision_recall_curve(scores, labels)
        return {"image roc": functional.roc_curve(scores, labels)[:2], "image pr": (recall[::-1], precision[::-1]),
                "scores": (scores[labels == 0], scores[labels == 1])}


def pixel_figure_curves(pixels, fpr_limits):
    """Pixel ROC/PR and PRO curves (to the largest limit) of a finished pixel state, for the figures."""
    curves = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", validation.UndefinedMetricWarning)
        pixel = pixel_curves(pixels) if pixels.n_defect and pixels.n_bg else None
        if pixel:
            curves["pixel roc"], curves["pixel pr"] = pixel["roc"], pixel["pr"]
        if pixels.n_regions and pixels.n_bg:
            curves["pro"] = pro_curve(pixels, max(fpr_limits))
    return curves


def pixel_counts(images, pixels):
    """The counts every protocol reports for a group."""
    scores, labels = images.arrays()
    return {"images": len(images.scores), "defective images": int(labels.sum()),
            "pixels": pixels.n_bg + pixels.n_defect, "defect pixels": pixels.n_defect,
            "regions": pixels.n_regions}


class Protocol:
    """A benchmark's evaluation protocol. Subclasses set the class attributes and override what differs.

    Attributes
    ----------
    name : str
        ``--protocol NAME``.
    title : str
        The benchmark and its paper, for the outputs.
    layout : str
        The dataset layout the reader expects, one line (for ``--help`` and the README's table).
    official : str
        The official tool's convention shown beside the exact values ("" when there is none).
    image_score : ImageScore
        The protocol's image-score rule (``--image-score`` overrides it).
    fpr_limits : tuple of float
        The AUPRO (or AU-sPRO) limits (``--fpr-limit`` replaces them by one).
    inputs : tuple of str
        The options naming the dataset (``maps``, ``gt``, ``manifest``, ``split_csv``, ``split_json``).
    options : tuple of str
        The options only this protocol uses (``sample_key``).
    """

    name = ""
    title = ""
    layout = ""
    official = ""
    image_score = ImageScore()
    fpr_limits = (0.3,)
    inputs = ("maps", "gt")
    options = ()  # options only this protocol uses (``sample_key``): an error with any other

    # -- the dataset -------------------------------------------------------------

    def read(self, options):
        """The :class:`refmetrics.evaluate.readers.Dataset` the options name."""
        raise NotImplementedError

    def demo_options(self, root):
        """The dataset options of the bundled demo tree at ``root`` (``refmetrics/data/demo/<name>``)."""
        return {"maps": root / "maps", "gt": root / "gt"}

    def demo_root(self):
        return resources.files("refmetrics").joinpath(f"data/demo/{self.name}")

    # -- the numbers -------------------------------------------------------------

    def limits(self, options):
        return (options.fpr_limit,) if options.fpr_limit is not None else self.fpr_limits

    def score_rule(self, options):
        return options.image_score or self.image_score

    def columns(self, options):
        """The :class:`Column` list of the table (the JSON's ``columns``)."""
        raise NotImplementedError

    def accumulators(self, options, context):
        """``{name: factory(samples, options)}`` beyond the image scores, which are always kept."""
        return {"pixels": Pixels}

    def prepare(self, dataset, category, options):
        """The per-category context :meth:`measure` and :meth:`accumulators` receive, computed before the
        test maps are read (MVTec AD 2's validation threshold). Default: nothing."""
        return {}

    def measure(self, state, options, context, figures):
        """A :class:`Measured` of one group's filled :class:`refmetrics.evaluate.state.GroupState`."""
        raise NotImplementedError

    def resampling_units(self, state):
        """``(unit of each image (int64, in image order), each unit's 0/1 label)`` when the independent unit
        of the protocol is not the image (Real-IAD: a sample, whose views are drawn together), or None:
        each image is its own unit (the default). The resamples are drawn over the units, stratified by
        their labels, and an image enters a resample as often as its unit (:func:`resample_weights`)."""
        return None

    def replicates(self, state, options, context, weights):
        """``{column key: (B,) float64}``: each column's value on every resample of the group.

        Called before :meth:`measure` (which sorts the pixel state), with ``weights`` = the
        multiplicities ``W`` of :func:`refmetrics.functional.bootstrap.resample_counts`, drawn from
        the group's image labels. Value ``b`` is the column's exact value on the images repeated by
        ``W[b]``. The default covers image AUROC/AP/F1-max, pixel AUROC/AP/F1-max and AUPRO (``AUPRO``
        at the first limit, ``AUPRO@x`` at x) when the state has them; a protocol with other columns
        extends it. Columns left out get no interval.
        """
        return default_replicates(self, state, options, weights)

    def settings(self, options):
        """The protocol's own settings for ``results.json``."""
        return {}

    # -- the outputs -------------------------------------------------------------

    def figure_kinds(self, options):
        """The figure file suffixes written per category (``<slug>_<kind>.png``)."""
        return ("roc", "pr", "pro", "scores")

    def figures(self, results, options, directory):
        """Write the figures of ``results`` into ``directory``: the names written, relative to it, each
        ``<slug>_<kind>.png`` with a kind of :meth:`figure_kinds`. Default: the standard figures
        (:func:`refmetrics.evaluate.writers.write_figures`); a protocol with its own curves (MVTec LOCO's
        sPRO) overrides it."""
        from ..writers import write_figures

        return write_figures(results, self.limits(options), directory)

    def extra_file_names(self, categories, options):
        """The names :meth:`extra_files` may write for these categories, checked before anything is computed
        (so that, say, a directory in their way fails the run at once). Default: none."""
        return []

    def extra_files(self, results, options):
        """``{relative path: text}`` of the protocol's own files (MVTec LOCO's ``metrics_<obj>.json``)."""
        return {}

    def summary(self, options):
        """Lines printed under the table (what the official columns are, what is not public)."""
        return []
