"""``refmetrics evaluate``: saved anomaly maps -> the table of a paper, exactly.

Datasets come in the MVTec AD layout::

    <maps>/<category>/test/<defect>/<name>.tiff|.tif|.npy|.png
    <gt>/<category>/ground_truth/<defect>/<name>_mask.png   (optional for "good": all zero)

or as a CSV manifest with the columns ``map``, ``mask`` (a path, or empty /
``none`` for a defect-free image), and optionally ``score`` (the image score;
default the maximum of the map), ``label`` (0 good, 1 defective) and
``category`` (default ``all``); other columns are ignored (and named in the
notes); relative paths are relative to the manifest.

Every map of a category has the category's size: its own mask's, a good
image's one of its category's masks' sizes, and, in a category without masks,
the size all its maps share (``--resize`` resizes maps to their masks).

Per category it computes image AUROC, image AP, image F1-max (image score = max
of the map unless given, or another reduction of the map: ``image_score``; an image is defective when its MVTec defect is not
``good``, as the manifest's label says, or else when its mask has a defect
pixel), pixel AUROC, pixel AP, pixel F1-max and AUPRO up to ``fpr_limit``, all
exact, and the mean over categories (NaN if any category's value is undefined;
the notes say which metric, at which level, and why).

The data are streamed: the headers are checked first (missing, unreadable or
mismatched files are reported before anything is computed); then maps are read
one at a time into one shared exact state per category: the background pixels'
keys and the defect pixels' (key, region size). The pixel AUROC, AP, F1-max and
AUPRO are all computed from that one state, sorted in place, so the peak memory
is close to one copy of the maps (4 bytes per float32 pixel). Outputs are
staged inside ``--out`` and switched in by a journaled transaction
(:mod:`refmetrics._outdir`) once everything is computed, so ``--out`` holds
either the previous run or this one, never a mix.
"""

import csv
import json
import math
import textwrap
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__
from . import _files as IO
from . import _labels as L
from ._outdir import InterruptedAfterCommit, OutputDir, OutputError  # noqa: F401 - the command catches them
from . import _validation as V
from . import functional as F
from . import registry
from .state import PixelState

InputError = IO.InputError

METRICS = registry.evaluate_columns()  # ("image AUROC", ..., "AUPRO"): the columns of every table
RESIZE = {"nearest": 0, "bilinear": 1}
CURVE_CELLS = 2000  # figure curves keep a point where it enters a new cell of a 2000x2000 grid


@dataclass
class Sample:
    category: str
    map: Path
    mask: Path | None
    defective: bool
    score: float | None = None
    shape: tuple = ()
    dtype: np.dtype = None
    mask_shape: tuple = ()
    target: tuple = ()  # the map's size once read (resized to the mask's with --resize)
    empty_mask: bool = False  # a good image's mask (MVTec ground_truth/good/): must hold no defect pixel


@dataclass
class Result:
    category: str
    values: dict
    counts: dict
    curves: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)


# ---------------------------------------------------------------------------
# discovery
# ---------------------------------------------------------------------------

def discover_mvtec(maps_dir, gt_dir, categories=None):
    """Samples of an MVTec-layout tree, in a fixed order (category, defect, name).

    Masks under ``ground_truth/good/`` (all zero; several public datasets ship
    them) are matched to the good images' maps and checked to be empty when read.
    """
    maps_dir, gt_dir = Path(maps_dir), Path(gt_dir)
    for name, d in (("--maps", maps_dir), ("--gt", gt_dir)):
        if not d.is_dir():
            raise InputError(f"{name}: {d} is not a directory")
    if categories:
        missing = [c for c in categories if not (maps_dir / c / "test").is_dir()]
        if missing:
            raise InputError(f"--categories: no {maps_dir}/<category>/test directory for "
                             f"{', '.join(missing)}")
    else:
        categories = sorted(p.name for p in maps_dir.iterdir() if (p / "test").is_dir())
        if not categories:
            raise InputError(f"--maps: no <category>/test/<defect>/ directories under {maps_dir} "
                             "(expected the MVTec AD layout)")
    samples = []
    for category in categories:
        test = maps_dir / category / "test"
        truth = gt_dir / category / "ground_truth"
        found = []
        for defect_dir in sorted(p for p in test.iterdir() if p.is_dir()):
            by_stem = {}
            for path in sorted(defect_dir.iterdir()):
                suffix = path.suffix.lower()
                if suffix in _OTHER_IMAGES:
                    raise InputError(f"{path}: unsupported map file type {suffix!r}; save maps as "
                                     f"{', '.join(IO.MAP_SUFFIXES)} (lossless, exact scores)")
                if suffix not in IO.MAP_SUFFIXES:
                    continue
                if path.stem in by_stem:
                    raise InputError(f"{path}: two maps for image {path.stem!r} ({by_stem[path.stem].name} too)")
                by_stem[path.stem] = path
            defect = defect_dir.name
            for stem, path in by_stem.items():
                mask = truth / defect / f"{stem}_mask.png"
                if defect == "good":
                    # an all-zero mask shipped for a good image is used (and checked); none is fine
                    sample = Sample(category, path, mask if mask.is_file() else None, defective=False,
                                    empty_mask=True)
                elif not mask.is_file():
                    raise InputError(f"{path}: missing mask, expected {mask}")
                else:
                    sample = Sample(category, path, mask, defective=True)
                found.append(sample)
        if not found:
            raise InputError(f"{test}: no anomaly maps ({', '.join(IO.MAP_SUFFIXES)}) in its defect directories")
        # every ground-truth mask needs its map
        masks = {s.mask for s in found if s.mask is not None}
        if truth.is_dir():
            for mask in sorted(truth.glob("*/*_mask.png")):
                if mask not in masks:
                    stem = mask.name[:-len("_mask.png")]
                    raise InputError(f"{mask}: missing map, expected {test / mask.parent.name / stem}"
                                     f"{{{','.join(IO.MAP_SUFFIXES)}}}")
        samples += found
    return samples


_OTHER_IMAGES = {".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".exr", ".hdr", ".pfm"}
_MANIFEST_COLUMNS = ("map", "mask", "score", "label", "category")


def read_manifest(path, categories=None, notes=None):
    """Samples of a CSV manifest (see the module docstring); only ``categories`` when given.

    Columns other than map, mask, score, label and category are ignored; ``notes``
    (a list), when given, receives a line naming them.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:  # utf-8-sig: Excel's "CSV UTF-8" BOM
            reader = csv.reader(fh)
            header = [h.strip().lower() for h in next(reader, [])]
            rows = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: could not read the manifest ({type(exc).__name__}: {exc}); "
                         "expected a UTF-8 CSV file") from exc
    known = [h for h in header if h in _MANIFEST_COLUMNS]
    if "map" not in header or "mask" not in header or len(set(known)) != len(known):
        raise InputError(f"{path}: expected a CSV whose header names the columns map, mask and optionally "
                         f"score, label, category (each once), received {', '.join(header) or 'no header'}")
    unknown = [h or "(unnamed)" for h in header if h not in _MANIFEST_COLUMNS]
    if unknown and notes is not None:
        notes.append(f"{path}: column{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} ignored "
                     f"(used: {', '.join(known)})")
    base = path.parent
    samples, seen = [], {}
    for line, cells in rows:
        where = f"{path}, line {line}"
        if len(cells) != len(header):
            raise InputError(f"{where}: expected {len(header)} fields ({', '.join(header)}), received {len(cells)}")
        row = {h: c.strip() for h, c in zip(header, cells) if h in _MANIFEST_COLUMNS}
        category = row.get("category") or "all"
        if categories and category not in categories:
            continue
        if not row["map"]:
            raise InputError(f"{where}: the map path is empty")
        map_path = base / row["map"]
        mask = None if row["mask"].lower() in ("", "none") else base / row["mask"]
        score = label = None
        if row.get("score"):
            try:
                score = float(row["score"])
            except ValueError as exc:
                raise InputError(f"{where}: score {row['score']!r} is not a number") from exc
            if math.isnan(score):
                raise InputError(f"{where}: score is NaN")
        if row.get("label"):
            if row["label"] not in ("0", "1"):
                raise InputError(f"{where}: label must be 0 (good) or 1 (defective), received {row['label']!r}")
            label = row["label"] == "1"
        if not map_path.is_file():
            raise InputError(f"{where}: missing map {map_path}")
        if mask is not None and not mask.is_file():
            raise InputError(f"{where}: missing mask {mask}")
        if map_path.resolve() in seen:
            raise InputError(f"{where}: map {map_path} is listed twice (also on line {seen[map_path.resolve()]})")
        seen[map_path.resolve()] = line
        # without a label column: defective when the mask has a defect pixel (decided once read)
        samples.append(Sample(category, map_path, mask, defective=label, score=score))
    if not samples:
        raise InputError(f"{path}: no rows" + (f" of the categories {', '.join(categories)}" if categories else ""))
    return samples


def _size(shape):
    return f"{shape[0]}x{shape[1]}"


def check_headers(samples, resize):
    """Read every header and set each sample's target size.

    Every map of a category must have its category's size, so that every pixel
    weighs the same: a map with a mask must have its mask's size; a map without
    one (a good image) the size of one of its category's masks; and in a category
    without any mask, all maps must have one size. With ``resize``, a map is
    resized to its mask's size and a good image's map to its category's mask size
    (when the masks have one size).
    """
    for s in samples:
        shape, s.dtype = IO.header(s.map)
        s.shape = IO.map_shape(s.map, shape)
        if s.dtype.kind not in "biuf":
            raise InputError(f"{s.map}: expected real anomaly scores, received dtype {s.dtype}")
        if s.mask is not None:
            mshape, _ = IO.header(s.mask)
            s.mask_shape = IO.mask_shape(s.mask, mshape)
            if s.mask_shape != s.shape and resize is None:
                raise InputError(f"{s.map}: map of size {_size(s.shape)} but its mask {s.mask} is "
                                 f"{_size(s.mask_shape)}; pass --resize nearest|bilinear to "
                                 "resize maps to their masks")
        s.target = s.mask_shape if s.mask is not None else s.shape
    for category in dict.fromkeys(s.category for s in samples):
        group = [s for s in samples if s.category == category]
        with_mask = {}
        for s in group:
            if s.mask is not None:
                with_mask.setdefault(s.mask_shape, s.mask)
        sizes = sorted(with_mask)
        if not sizes:  # no mask at all: the maps must agree with each other
            first = group[0]
            other = next((s for s in group if s.shape != first.shape), None)
            if other is not None:
                raise InputError(f"{other.map}: map of size {_size(other.shape)} but {first.map} (same category "
                                 f"{category!r}, which has no mask) is {_size(first.shape)}; every map of a "
                                 "category must have one size")
            continue
        for s in group:
            if s.mask is not None or s.shape in sizes:
                continue
            shown = " or ".join(f"{_size(z)} (as {with_mask[z]})" for z in sizes)
            if resize is None:
                raise InputError(f"{s.map}: map of size {_size(s.shape)} but the masks of its category "
                                 f"{category!r} are {shown}; pass --resize nearest|bilinear to resize maps to "
                                 "their category's mask size")
            if len(sizes) > 1:
                raise InputError(f"{s.map}: map of size {_size(s.shape)} has no mask, and the masks of its "
                                 f"category {category!r} have several sizes ({shown}): --resize cannot tell which "
                                 "size it should have")
            s.target = sizes[0]


# ---------------------------------------------------------------------------
# streaming state of one category
# ---------------------------------------------------------------------------

_WIDE = {np.dtype(t) for t in (np.float64, np.int32, np.uint32, np.int64, np.uint64)}


@dataclass(frozen=True)
class ImageScore:
    """How an image's score is reduced from its map, as stored (before any resizing):
    :func:`refmetrics.functional.image_scores`'s ``reduce``, ``k`` and ``kernel``."""

    reduce: str = "max"
    k: float = 0.01
    kernel: int = 16

    def describe(self):
        if self.reduce == "top_k_mean":
            return f"top_k_mean (mean of the largest max(1, floor({self.k:g} x pixels)) pixels)"
        if self.reduce == "pooled_max":
            return f"pooled_max (maximum of the {self.kernel}x{self.kernel} average-pooled map)"
        return "max (the maximum of the map)"

    def of(self, values, path):
        """The score of one map (float), or an :class:`InputError` naming the file."""
        if self.reduce == "max":
            return float(values.max())
        try:
            return float(F.image_scores(values[np.newaxis], reduce=self.reduce, k=self.k, kernel=self.kernel,
                                        backend="cpu")[0])
        except ValueError as exc:
            raise InputError(f"{path}: --image-score {self.reduce}: {exc}") from exc


class CategoryState:
    """The exact state of one category, filled one image at a time: a :class:`refmetrics.state.PixelState`
    for the pixels (every pixel in one key buffer), the image scores and labels beside it."""

    def __init__(self, samples, resize, connectivity, image_score=ImageScore()):
        wide = any(s.dtype.newbyteorder("=") in _WIDE or s.target != s.shape for s in samples)
        total = sum(s.target[0] * s.target[1] for s in samples)
        V.check_size_limit(total)
        self.pixels = PixelState(total, np.float64 if wide else np.float32, connectivity)
        self.image_scores, self.image_labels = [], []
        self.resize = resize
        self.image_score = image_score
        self.contradicted = []

    def add(self, sample):
        values = IO.read_map(sample.map)
        # the image score is reduced from the map as stored (before any resizing), unless the manifest gives it
        score = sample.score if sample.score is not None else self.image_score.of(values, sample.map)
        mask = IO.read_mask(sample.mask) if sample.mask is not None else None
        n_defect_pixels = int(np.count_nonzero(mask)) if mask is not None else 0
        if sample.empty_mask and n_defect_pixels:
            raise InputError(f"{sample.mask}: the mask of a good image holds {n_defect_pixels:,} defect "
                             f"pixel{'s' if n_defect_pixels != 1 else ''}; masks under ground_truth/good/ must be "
                             "all zero")
        if sample.defective is False and n_defect_pixels:
            self.contradicted.append(sample.map)  # labelled good, with defect pixels: they count as defect pixels
        if values.shape != sample.target:
            from skimage.transform import resize

            values = resize(values.astype(np.float64), sample.target, order=RESIZE[self.resize],
                            preserve_range=True, anti_aliasing=False)
        defective = sample.defective if sample.defective is not None else bool(mask is not None and mask.any())
        self.pixels.add(values, mask, name=str(sample.map))  # NaN: float maps were checked when read
        self.image_scores.append(score)
        self.image_labels.append(int(defective))


# ---------------------------------------------------------------------------
# metrics of one category
# ---------------------------------------------------------------------------

def _cells(x, y):
    return np.floor(np.asarray(x) * CURVE_CELLS).astype(np.int64) * (CURVE_CELLS + 1) + \
        np.floor(np.asarray(y) * CURVE_CELLS).astype(np.int64)


def _thin_stream(points, stop=None):
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


def _pixel_curves(pixels):
    """ROC and PR points for the figures (thinned; the numbers themselves are exact)."""
    thinned = _thin_stream(pixels.roc_pr_points())
    if thinned is None:
        return None
    fpr, tpr, precision = thinned
    return {"roc": (np.concatenate([[0.0], fpr]), np.concatenate([[0.0], tpr])),
            "pr": (np.concatenate([[0.0], tpr]), np.concatenate([[1.0], precision]))}


def _pro_curve(pixels, fpr_limit):
    """PRO points up to just past ``fpr_limit`` for the figure (thinned)."""
    thinned = _thin_stream(pixels.pro_points(), stop=fpr_limit)
    if thinned is None:
        return None
    return np.concatenate([[0.0], thinned[0]]), np.concatenate([[0.0], thinned[1]])


def _note(notes, text):
    if text not in notes:
        notes.append(text)


def _measure(values, notes, name, func, *args):
    """``values[name] = func(*args)``; an undefined-metric warning becomes a note that names the metric
    (and so its level, image or pixel); other warnings pass through."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        values[name] = func(*args)
    for w in caught:
        if issubclass(w.category, V.UndefinedMetricWarning):
            _note(notes, f"{name}: {str(w.message).replace('; returning nan', '')} (reported as nan)")
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def evaluate_category(samples, fpr_limit, resize, connectivity, figures=True, quiet=True, image_score=ImageScore()):
    """Stream one category's samples into its state and compute every metric (and, with ``figures``,
    the curves to draw)."""
    from tqdm.auto import tqdm

    category = samples[0].category
    state = CategoryState(samples, resize, connectivity, image_score)
    pixels = state.pixels
    for sample in tqdm(samples, desc=f"{category}: reading", unit="map", disable=quiet, leave=False):
        state.add(sample)
    notes = []
    steps = ["sorting", "image metrics", "pixel AUROC, AP, F1-max", "AUPRO"] + (["curves"] if figures else [])
    with tqdm(total=len(steps), desc=f"{category}: computing", disable=quiet, leave=False,
              bar_format="{desc} {n_fmt}/{total_fmt} [{elapsed}] {postfix}") as bar:
        def step(name):
            bar.set_postfix_str(name, refresh=False)
            bar.update(0 if name == steps[0] else 1)

        step(f"sorting {pixels.n_bg + pixels.n_defect:,} pixels")
        pixels.finish()
        step("image metrics")
        scores = np.array(state.image_scores)
        labels = np.array(state.image_labels, np.uint8)
        values = {}
        _measure(values, notes, "image AUROC", F.auroc, scores, labels)
        _measure(values, notes, "image AP", F.average_precision, scores, labels)
        _measure(values, notes, "image F1-max", F.f1_max, scores, labels)
        step("pixel AUROC, AP, F1-max")
        _measure(values, notes, "pixel AUROC", pixels.auroc)
        _measure(values, notes, "pixel AP", pixels.average_precision)
        _measure(values, notes, "pixel F1-max", pixels.f1_max)
        step("AUPRO")
        _measure(values, notes, "AUPRO", pixels.aupro, fpr_limit)
        curves = {}
        if figures:  # the curves' own undefined warnings repeat the metrics' notes: dropped
            step("curves")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", V.UndefinedMetricWarning)
                precision, recall, _ = F.precision_recall_curve(scores, labels)
                curves = {"image roc": F.roc_curve(scores, labels)[:2],
                          "image pr": (recall[::-1], precision[::-1])}
                pixel = _pixel_curves(pixels) if pixels.n_defect and pixels.n_bg else None
                if pixel:
                    curves["pixel roc"], curves["pixel pr"] = pixel["roc"], pixel["pr"]
                if pixels.n_regions and pixels.n_bg:
                    curves["pro"] = _pro_curve(pixels, fpr_limit)
            curves["scores"] = (scores[labels == 0], scores[labels == 1])
        bar.update(1)
    if state.contradicted:
        n, shown = len(state.contradicted), ", ".join(str(p) for p in state.contradicted[:3])
        _note(notes, f"{n} image{'s' if n > 1 else ''} labelled good (label 0) in the manifest "
                     f"ha{'ve' if n > 1 else 's'} defect pixels in {'their masks' if n > 1 else 'its mask'} "
                     f"({shown}{', ...' if n > 3 else ''}): the image counts as good, its defect pixels as "
                     "defect pixels")
    counts = {"images": len(samples), "defective images": int(labels.sum()),
              "pixels": pixels.n_bg + pixels.n_defect, "defect pixels": pixels.n_defect,
              "regions": pixels.n_regions}
    return Result(category, values, counts, curves, notes)


def mean_row(results):
    return {m: float(np.mean([r.values[m] for r in results])) for m in METRICS}


# ---------------------------------------------------------------------------
# outputs
# ---------------------------------------------------------------------------

def _header(fpr_limit):
    return [m if m != "AUPRO" else f"AUPRO@{fpr_limit:g}" for m in METRICS]


def text_table(results, fpr_limit, width=100):
    """The table for a terminal, at most ``width`` columns (a category name too long for that gets a line
    of its own); metrics grouped under ``image`` and ``pixel``."""
    names = [r.category for r in results] + ["mean"]
    rows = [r.values for r in results] + [mean_row(results)]
    subs = ["AUROC", "AP", "F1-max", "AUROC", "AP", "F1-max", f"AUPRO@{fpr_limit:g}"]
    widths = [max(len(h), 6) for h in subs]
    cells_width = sum(w + 2 for w in widths)
    width = max(width, 70)
    name_width = max([8] + [len(n) for n in names if len(n) <= width - cells_width])

    def group(title, ws):
        span = sum(ws) + 2 * (len(ws) - 1)
        return f" {title} ".center(span, "-")

    lines = [" " * name_width + "  " + group("image", widths[:3]) + "  " + group("pixel", widths[3:]),
             f"{'category':<{name_width}}" + "".join(f"  {h:>{w}}" for h, w in zip(subs, widths))]
    for name, row in zip(names, rows):
        if name == "mean" and row is rows[-1]:
            lines.append("-" * len(lines[1]))
        cells = "".join(f"  {row[m]:>{w}.4f}" for m, w in zip(METRICS, widths))
        if len(name) > name_width:  # a line (or several) of its own, then its numbers
            lines += textwrap.wrap(name, width) + [" " * name_width + cells]
        else:
            lines.append(f"{name:<{name_width}}" + cells)
    return "\n".join(lines)


_MARKDOWN_SPECIALS = set("\\`*_{}[]<>()#+-.!|~")


def _md(text):
    """A category name as literal Markdown text (table cells included: ``|`` escaped)."""
    return "".join("\\" + ch if ch in _MARKDOWN_SPECIALS else ch for ch in text)


def markdown_table(results, fpr_limit):
    heads = _header(fpr_limit)
    lines = ["| category | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(heads)]
    for name, row in [(_md(r.category), r.values) for r in results] + [("**mean**", mean_row(results))]:
        lines.append(f"| {name} | " + " | ".join(f"{row[m]:.4f}" for m in METRICS) + " |")
    return "\n".join(lines) + "\n"


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#", "$": r"\$", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _tex(text):
    return "".join(_TEX.get(ch, ch) for ch in text)


def latex_table(results, fpr_limit):
    heads = _header(fpr_limit)
    lines = [r"\begin{tabular}{l" + "r" * len(heads) + "}", r"\toprule",
             "Category & " + " & ".join(_tex(h) for h in heads) + r" \\", r"\midrule"]
    for r in results:
        lines.append(_tex(r.category) + " & " + " & ".join(f"{r.values[m]:.4f}" for m in METRICS) + r" \\")
    lines += [r"\midrule", "Mean & " + " & ".join(f"{v:.4f}" for v in mean_row(results).values()) + r" \\",
              r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def to_json(results, settings, files=(), notes=()):
    def num(v):
        return None if isinstance(v, float) and math.isnan(v) else v

    return json.dumps({
        "refmetrics": __version__,
        "settings": settings,
        "files": list(files),
        "notes": list(notes),
        "categories": {r.category: {"metrics": {m: num(r.values[m]) for m in METRICS}, "counts": r.counts,
                                    "notes": r.notes} for r in results},
        "mean": {m: num(v) for m, v in mean_row(results).items()},
    }, indent=2) + "\n"


FIGURE_KINDS = ("roc", "pr", "pro", "scores")


def figure_slugs(categories):
    """``{category: file-name stem}``: safe characters, unique even on a case-insensitive disk."""
    slugs, taken = {}, set()
    for category in categories:
        slug = base = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in category) or "category"
        k = 1
        while slug.lower() in taken:  # "a b" and "a_b" (or "A" and "a" on a case-insensitive disk)
            k += 1
            slug = f"{base}-{k}"
        taken.add(slug.lower())
        slugs[category] = slug
    return slugs


def write_figures(results, fpr_limit, directory):
    from . import plotting as P

    written = []
    slugs = figure_slugs(r.category for r in results)
    for r in results:
        c = r.curves
        slug = slugs[r.category]
        figs = {
            "roc": P.curves_figure(
                [(f"image (AUROC {r.values['image AUROC']:.4f})", *c["image roc"]),
                 *([(f"pixel (AUROC {r.values['pixel AUROC']:.4f})", *c["pixel roc"])] if "pixel roc" in c
                   else [])],
                "False positive rate", "True positive rate", f"{r.category}: ROC", diagonal=True),
            "pr": P.curves_figure(
                [(f"image (AP {r.values['image AP']:.4f})", *c["image pr"]),
                 *([(f"pixel (AP {r.values['pixel AP']:.4f})", *c["pixel pr"])] if "pixel pr" in c
                   else [])],
                "Recall", "Precision", f"{r.category}: precision-recall", step=True),
            "scores": P.score_histogram_figure(*c["scores"], f"{r.category}: image scores"),
        }
        if c.get("pro") is not None:
            figs["pro"] = P.pro_figure(*c["pro"], r.values["AUPRO"], fpr_limit)
            figs["pro"].axes[0].set_title(f"{r.category}: PRO to FPR {fpr_limit:g}, "
                                          f"AUPRO = {r.values['AUPRO']:.4f}")
        for kind, fig in figs.items():
            name = f"{slug}_{kind}.png"
            fig.savefig(directory / name, dpi=100)
            written.append(name)
    return written


# ---------------------------------------------------------------------------
# the command
# ---------------------------------------------------------------------------

def _previous_files(out):
    """Files the previous ``refmetrics evaluate`` wrote into ``out`` (listed in its results.json)."""
    try:
        previous = json.loads((out / "results.json").read_text(encoding="utf-8"))
        files = previous.get("files", []) if previous.get("refmetrics") else []
    except (OSError, ValueError, AttributeError):
        return []
    return [f for f in files if isinstance(f, str) and ".." not in Path(f).parts and not Path(f).is_absolute()]


def _stage(staging, results, fpr_limit, figures, settings, notes):
    """Write every output of the run into ``staging``; the files written, relative to it."""
    (staging / "results.md").write_text(markdown_table(results, fpr_limit), encoding="utf-8")
    (staging / "results.tex").write_text(latex_table(results, fpr_limit), encoding="utf-8")
    written = ["results.json", "results.md", "results.tex"]
    if figures:
        (staging / "figures").mkdir()
        written += [f"figures/{n}" for n in write_figures(results, fpr_limit, staging / "figures")]
    (staging / "results.json").write_text(to_json(results, settings, written, notes), encoding="utf-8")
    return written


def run(samples, out, fpr_limit=0.3, resize=None, connectivity=None, figures=True, quiet=False, settings=None,
        notes=(), image_score=ImageScore()):
    """Evaluate samples and write the outputs into ``out``: ``(results, files written)``.

    ``out`` holds either the previous run or this one, never a mix: the new
    files are staged inside ``out`` (the same filesystem) and switched in by one
    journaled transaction (:mod:`refmetrics._outdir`) once everything has been
    computed and rendered. ``out`` itself is created and checked (a writable
    directory that takes our files) before anything is computed. The files of
    a previous run into the same ``out`` that this run does not rewrite (figures
    of other categories, say) are removed with the switch, so ``out`` always
    describes one run. ``notes``: dataset-level notes for ``results.json``. ``image_score``: how image
    scores are reduced from the maps (:class:`ImageScore`; a manifest's ``score`` column wins).
    """
    connectivity = L.check_connectivity(connectivity, 2)  # maps are 2-D: None is 2, 8 neighbours
    check_headers(samples, resize)
    by_category = {}
    for s in samples:
        by_category.setdefault(s.category, []).append(s)
    target = OutputDir(out)
    try:
        target.prepare()
        names = ["results.json", "results.md", "results.tex"]
        if figures:
            if (target.out / "figures").exists() and not (target.out / "figures").is_dir():
                raise OutputError(f"--out: {target.out / 'figures'} exists and is not a directory")
            target.check_writable("figures")
            slugs = figure_slugs(by_category).values()
            names += [f"figures/{slug}_{kind}.png" for slug in slugs for kind in FIGURE_KINDS]
        target.check_destinations(names)
        results = [evaluate_category(group, fpr_limit, resize, connectivity, figures, quiet, image_score)
                   for group in by_category.values()]
        settings = dict(settings or {}, fpr_limit=fpr_limit, connectivity=connectivity, resize=resize,
                        image_score=image_score.describe())
        try:
            written = _stage(target.new, results, fpr_limit, figures, settings, notes)
        except OSError as exc:  # a full disk, a quota: the staging area is inside --out
            raise OutputError(f"--out: could not write the results into {target.out}: "
                              f"{exc.strerror or exc}; {target.out} was left as it was") from exc
        target.commit(written, remove=lambda: _previous_files(target.out))
    except BaseException:
        target.abort()
        raise
    return results, written
