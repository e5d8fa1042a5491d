"""``refmetrics evaluate``: saved anomaly maps -> the table of a paper, exactly.

Datasets come in the MVTec AD layout::

    <maps>/<category>/test/<defect>/<name>.tiff|.tif|.npy|.png
    <gt>/<category>/ground_truth/<defect>/<name>_mask.png      (none for defect "good")

or as a CSV manifest with the columns ``map``, ``mask`` (a path, or empty /
``none`` for a defect-free image), and optionally ``score`` (the image score;
default the maximum of the map) and ``category`` (default ``all``); relative
paths are relative to the manifest.

Per category it computes image AUROC, image AP, image F1-max (image score = max
of the map unless given; an image is defective when it has a mask with any
defect pixel, or, in the MVTec layout, when its defect is not ``good``), pixel
AUROC, pixel AP, pixel F1-max and AUPRO up to ``fpr_limit``, all exact, and the
mean over categories (NaN if any category's value is undefined).

The data are streamed: the headers are checked first (missing, unreadable or
mismatched files are reported before anything is computed); then maps are read
one at a time into one shared exact state per category: the background pixels'
keys and the defect pixels' (key, region size). The pixel AUROC, AP, F1-max and
AUPRO are all computed from that one state, sorted in place, so the peak memory
is close to one copy of the maps (4 bytes per float32 pixel). Outputs are
written only once everything is computed, through a temporary directory, so a
failure leaves ``--out`` as it was.
"""

import csv
import json
import math
import os
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__
from . import _files as IO
from . import _labels as L
from . import _validation as V
from . import functional as F
from .functional import _ranked as R
from .functional import _regions as G
from .functional import ranking as FR
from .functional import regions as FG
from .kernels.cpu import regions as KG

InputError = IO.InputError

METRICS = ("image AUROC", "image AP", "image F1-max", "pixel AUROC", "pixel AP", "pixel F1-max", "AUPRO")
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
    """Samples of an MVTec-layout tree, in a fixed order (category, defect, name)."""
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
        found = 0
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
                mask = None
                if defect != "good":
                    mask = gt_dir / category / "ground_truth" / defect / f"{stem}_mask.png"
                    if not mask.is_file():
                        raise InputError(f"{path}: missing mask, expected {mask}")
                samples.append(Sample(category, path, mask, defective=defect != "good"))
                found += 1
        if not found:
            raise InputError(f"{test}: no anomaly maps ({', '.join(IO.MAP_SUFFIXES)}) in its defect directories")
        # every ground-truth mask needs its map
        truth = gt_dir / category / "ground_truth"
        masks = {s.mask for s in samples if s.category == category and s.mask is not None}
        if truth.is_dir():
            for mask in sorted(truth.glob("*/*_mask.png")):
                if mask not in masks:
                    stem = mask.name[:-len("_mask.png")]
                    raise InputError(f"{mask}: missing map, expected {test / mask.parent.name / stem}"
                                     f"{{{','.join(IO.MAP_SUFFIXES)}}}")
    return samples


_OTHER_IMAGES = {".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".exr", ".hdr", ".pfm"}
_MANIFEST_COLUMNS = ("map", "mask", "score", "label", "category")


def read_manifest(path, categories=None):
    """Samples of a CSV manifest (see the module docstring); only ``categories`` when given."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:  # utf-8-sig: Excel's "CSV UTF-8" BOM
            reader = csv.reader(fh)
            header = [h.strip().lower() for h in next(reader, [])]
            rows = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: could not read the manifest ({type(exc).__name__}: {exc}); "
                         "expected a UTF-8 CSV file") from exc
    unknown = [h for h in header if h not in _MANIFEST_COLUMNS]
    if "map" not in header or "mask" not in header or unknown or len(set(header)) != len(header):
        raise InputError(f"{path}: expected a CSV whose header names the columns map, mask and optionally "
                         f"score, label, category (each once), received {', '.join(header) or 'no header'}")
    base = path.parent
    samples, seen = [], {}
    for line, cells in rows:
        where = f"{path}, line {line}"
        if len(cells) != len(header):
            raise InputError(f"{where}: expected {len(header)} fields ({', '.join(header)}), received {len(cells)}")
        row = {h: c.strip() for h, c in zip(header, cells)}
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


def check_headers(samples, resize):
    """Read every header and set each sample's target size.

    Without ``resize`` a map must have its mask's size. With it, a map is resized
    to its mask's size, and a good image's map to the size of its category's
    masks (so every pixel of a category has the same weight); maps keep their
    size when their category has no mask.
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
                raise InputError(f"{s.map}: map of size {s.shape[0]}x{s.shape[1]} but its mask {s.mask} is "
                                 f"{s.mask_shape[0]}x{s.mask_shape[1]}; pass --resize nearest|bilinear to "
                                 "resize maps to their masks")
        s.target = s.mask_shape if s.mask is not None else s.shape
    if resize is None:
        return
    for category in dict.fromkeys(s.category for s in samples):
        group = [s for s in samples if s.category == category]
        sizes = sorted({s.mask_shape for s in group if s.mask is not None})
        if len(sizes) > 1 and any(s.mask is None and s.shape not in sizes for s in group):
            shown = ", ".join(f"{h}x{w}" for h, w in sizes)
            raise InputError(f"--resize: the masks of category {category!r} have several sizes ({shown}), so "
                             "its good images (no mask) have no size to be resized to")
        for s in group:
            if s.mask is None and len(sizes) == 1:
                s.target = sizes[0]


# ---------------------------------------------------------------------------
# streaming state of one category
# ---------------------------------------------------------------------------

_WIDE = {np.dtype(t) for t in (np.float64, np.int32, np.uint32, np.int64, np.uint64)}


class CategoryState:
    """The exact state of one category, filled one image at a time.

    One key buffer holds every pixel of the category (4 bytes per float32 pixel,
    8 for float64): background keys fill it from the front, defect pixels' keys
    from the back. The defect pixels' region sizes (4 bytes each, a few percent
    of the pixels) are kept per image and joined once at the end.
    """

    def __init__(self, samples, resize):
        wide = any(s.dtype.newbyteorder("=") in _WIDE or s.target != s.shape for s in samples)
        self.float = np.dtype(np.float64 if wide else np.float32)
        self.kd = R._KEY_OF[self.float]
        self.consts = R._CONSTS[self.kd]
        total = sum(s.target[0] * s.target[1] for s in samples)
        V.check_size_limit(total)
        self.keys = np.empty(total, self.kd)
        self.rsizes = []
        self.n_bg = self.n_reg = self.n_regions = 0
        self.image_scores, self.image_labels = [], []
        self.resize = resize

    def add(self, sample, connectivity):
        values = IO.read_map(sample.map)
        # the image score is the maximum of the map as stored (before any resizing)
        score = sample.score if sample.score is not None else float(values.max())
        mask = IO.read_mask(sample.mask) if sample.mask is not None else None
        if values.shape != sample.target:
            from skimage.transform import resize

            values = resize(values.astype(np.float64), sample.target, order=RESIZE[self.resize],
                            preserve_range=True, anti_aliasing=False)
        flat = np.ascontiguousarray(values, dtype=self.float).reshape(-1)
        defective = sample.defective if sample.defective is not None else bool(mask is not None and mask.any())
        bits = flat.view(self.kd)
        if mask is None or not mask.any():
            self.n_bg, n_nan = KG.partition_background(bits, self.consts, self.kd.type(0), self.keys, self.n_bg)
        else:
            regions, n = L.label_sample(mask, connectivity)
            regions = regions.reshape(-1)
            sizes = np.bincount(regions, minlength=n + 1).astype(np.int64)
            n_defect = int(flat.size - sizes[0])
            end = self.keys.size - self.n_reg
            rsizes = np.empty(n_defect, np.uint32)  # a region of one image: fewer than 2**32 pixels
            self.n_bg, _, n_nan = KG.partition_regions(bits, regions, sizes, self.consts, self.kd.type(0),
                                                       self.keys, self.n_bg, self.keys[end - n_defect:end],
                                                       rsizes, 0)
            self.rsizes.append(rsizes)
            self.n_reg += n_defect
            self.n_regions += n
        if n_nan:  # float maps were checked when read; resized maps cannot hold NaN either
            raise InputError(f"{sample.map}: the anomaly map holds {n_nan:,} NaN values")
        self.image_scores.append(score)
        self.image_labels.append(int(defective))

    def sorted(self):
        """Sort in place (background keys) and by (key, size) (defect pixels, with a scratch copy)."""
        bg = self.keys[:self.n_bg]
        bg.sort()  # NumPy's in-place sort: no second copy of the background
        rkeys = self.keys[self.keys.size - self.n_reg:]  # the images' defect keys, last image first
        rsizes = np.concatenate(self.rsizes[::-1]) if self.rsizes else np.empty(0, np.uint32)
        self.rsizes = []
        tk, tp = np.empty_like(rkeys), np.empty_like(rsizes)
        if KG.radix_sort_pairs(rkeys, rsizes, tk, tp, R._SHIFTS[self.kd], R._SHIFTS[np.dtype(np.uint32)]):
            rkeys[...], rsizes[...] = tk, tp
        del tk, tp
        return bg, rkeys, rsizes


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


def _pixel_curves(pos, neg):
    """ROC and PR points for the figures (thinned; the numbers themselves are exact)."""
    p, n = pos.size, neg.size

    def points():
        tp = fp = 0
        for _keys, dtp, dfp in R.exact_groups(pos, neg):
            ctp, cfp = np.cumsum(dtp) + tp, np.cumsum(dfp) + fp
            tp, fp = int(ctp[-1]), int(cfp[-1])
            yield cfp / n, ctp / p, ctp / (ctp + cfp)

    thinned = _thin_stream(points())
    if thinned is None:
        return None
    fpr, tpr, precision = thinned
    return {"roc": (np.concatenate([[0.0], fpr]), np.concatenate([[0.0], tpr])),
            "pr": (np.concatenate([[0.0], tpr]), np.concatenate([[1.0], precision]))}


def _pro_curve(bg, rkeys, rsizes, n_regions, fpr_limit):
    """PRO points up to just past ``fpr_limit`` for the figure (thinned)."""
    n_bg = bg.size

    def points():
        fp, s = 0, 0.0
        for dfp, dsh, dsl in G.exact_region_groups(bg, rkeys, rsizes):
            cfp = np.cumsum(dfp) + fp
            cs = np.cumsum(dsh + dsl) + s
            fp, s = int(cfp[-1]), float(cs[-1])
            yield cfp / n_bg, cs / n_regions

    thinned = _thin_stream(points(), stop=fpr_limit)
    if thinned is None:
        return None
    return np.concatenate([[0.0], thinned[0]]), np.concatenate([[0.0], thinned[1]])


def evaluate_category(samples, fpr_limit, resize, connectivity, progress):
    """Stream one category's samples into its state and compute every metric."""
    category = samples[0].category
    state = CategoryState(samples, resize)
    for i, sample in enumerate(samples):
        state.add(sample, connectivity)
        progress(category, i + 1, len(samples))
    notes = []
    steps = ["sorting", "image metrics", "pixel AUROC, AP, F1-max", "AUPRO", "curves for the figures"]
    step = iter(range(len(steps)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        progress.step(category, next(step), steps, f"{state.n_bg + state.n_reg:,} pixels")
        bg, rkeys, rsizes = state.sorted()
        progress.step(category, next(step), steps)
        scores = np.array(state.image_scores)
        labels = np.array(state.image_labels, np.uint8)
        values = {"image AUROC": F.auroc(scores, labels), "image AP": F.average_precision(scores, labels),
                  "image F1-max": F.f1_max(scores, labels) if labels.any() else _undefined_f1("image", notes)}
        progress.step(category, next(step), steps)
        pixels = R.ExactScores()
        pixels.add(R._Part(rkeys, bg, None, is_sorted=True))
        values["pixel AUROC"] = FR.auroc_from_state(pixels)
        values["pixel AP"] = FR.average_precision_from_state(pixels)
        best = FR.f1_from_state(pixels) if rkeys.size else None
        values["pixel F1-max"] = best[1] if best is not None else _undefined_f1("pixel", notes)
        progress.step(category, next(step), steps)
        regions = G.RegionScores()
        regions.add(G._Part(bg, rkeys, rsizes, state.n_regions, is_sorted=True))
        values["AUPRO"] = FG.aupro_from_state(regions, fpr_limit, None)
        progress.step(category, next(step), steps)
        precision, recall, _ = F.precision_recall_curve(scores, labels)
        curves = {"image roc": F.roc_curve(scores, labels)[:2], "image pr": (recall[::-1], precision[::-1])}
        pixel = _pixel_curves(rkeys, bg) if rkeys.size and bg.size else None
        if pixel:
            curves["pixel roc"], curves["pixel pr"] = pixel["roc"], pixel["pr"]
        if state.n_regions and bg.size:
            curves["pro"] = _pro_curve(bg, rkeys, rsizes, state.n_regions, fpr_limit)
        progress.step(category, len(steps), steps)
    for w in caught:
        if issubclass(w.category, V.UndefinedMetricWarning) and str(w.message) not in notes:
            notes.append(str(w.message))
    counts = {"images": len(samples), "defective images": int(labels.sum()),
              "pixels": int(bg.size + rkeys.size), "defect pixels": int(rkeys.size), "regions": state.n_regions}
    curves["scores"] = (scores[labels == 0], scores[labels == 1])
    return Result(category, values, counts, curves, notes)


def _undefined_f1(level, notes):
    """F1-max without a defective image (pixel): undefined here, NaN in the table (the functional
    ``f1_max`` returns 0.0, torchmetrics' convention, which would drag a mean down silently)."""
    what = "defective image" if level == "image" else "defect pixel"
    notes.append(f"{level} F1-max is undefined with no {what}; reported as nan")
    return float("nan")


def mean_row(results):
    return {m: float(np.mean([r.values[m] for r in results])) for m in METRICS}


# ---------------------------------------------------------------------------
# outputs
# ---------------------------------------------------------------------------

def _header(fpr_limit):
    return [m if m != "AUPRO" else f"AUPRO@{fpr_limit:g}" for m in METRICS]


def text_table(results, fpr_limit):
    names = [r.category for r in results] + ["mean"]
    rows = [r.values for r in results] + [mean_row(results)]
    heads = _header(fpr_limit)
    width = max(len(n) for n in names + ["category"])
    lines = ["  ".join([f"{'category':<{width}}"] + [f"{h:>13}" for h in heads])]
    for name, row in zip(names, rows):
        if name == "mean":
            lines.append("-" * len(lines[0]))
        lines.append("  ".join([f"{name:<{width}}"] + [f"{row[m]:>13.4f}" for m in METRICS]))
    return "\n".join(lines)


def markdown_table(results, fpr_limit):
    heads = _header(fpr_limit)
    lines = ["| category | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(heads)]
    for name, row in [(r.category, r.values) for r in results] + [("**mean**", mean_row(results))]:
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


def to_json(results, settings, files=()):
    def num(v):
        return None if isinstance(v, float) and math.isnan(v) else v

    return json.dumps({
        "refmetrics": __version__,
        "settings": settings,
        "files": list(files),
        "categories": {r.category: {"metrics": {m: num(r.values[m]) for m in METRICS}, "counts": r.counts,
                                    "notes": r.notes} for r in results},
        "mean": {m: num(v) for m, v in mean_row(results).items()},
    }, indent=2) + "\n"


def write_figures(results, fpr_limit, directory):
    from . import plotting as P

    written, slugs = [], set()
    for r in results:
        c = r.curves
        slug = base = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in r.category) or "category"
        k = 1
        while slug.lower() in slugs:  # "a b" and "a_b" (or "A" and "a" on a case-insensitive disk)
            k += 1
            slug = f"{base}-{k}"
        slugs.add(slug.lower())
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

class _Progress:
    """Progress on stderr: a bar while the maps are read, then one while the metrics are computed."""

    def __init__(self, enabled):
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def _bar(self, category, done, total, text, final):
        bar = "#" * int(30 * done / total)
        line = f"  {category}: [{bar:<30}] {text}"
        if self.tty:
            print("\r" + line.ljust(100), end="\n" if final else "", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)

    def __call__(self, category, done, total):
        """``done`` of ``total`` maps read."""
        if not self.enabled:
            return
        now = time.monotonic()
        if done != total and now - self.last < (0.1 if self.tty else 5.0):
            return
        self.last = now
        self._bar(category, done, total, f"{done}/{total} maps read", final=done == total)

    def step(self, category, index, steps, detail=""):
        """Computing step ``index`` of ``steps`` begins (``index == len(steps)``: done)."""
        if not self.enabled:
            return
        if index == len(steps):
            self._bar(category, index, len(steps), "computed", final=True)
        else:
            text = f"computing: {steps[index]}" + (f" ({detail})" if detail else "")
            self._bar(category, index, len(steps), text, final=False)


def check_out(out, figures):
    """``--out`` must be (or become) a writable directory; checked before anything is computed."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out: {out} exists and is not a directory")
    if figures and (out / "figures").exists() and not (out / "figures").is_dir():
        raise InputError(f"--out: {out / 'figures'} exists and is not a directory")
    existing = out
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"--out: {out} cannot be created: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"--out: {existing} is not writable")


def _previous_files(out):
    """Files the previous ``refmetrics evaluate`` wrote into ``out`` (listed in its results.json)."""
    try:
        previous = json.loads((out / "results.json").read_text(encoding="utf-8"))
        files = previous.get("files", []) if previous.get("refmetrics") else []
    except (OSError, ValueError, AttributeError):
        return []
    return [f for f in files if isinstance(f, str) and ".." not in Path(f).parts and not Path(f).is_absolute()]


def run(samples, out, fpr_limit=0.3, resize=None, connectivity=2, figures=True, quiet=False, settings=None):
    """Evaluate samples and write the outputs into ``out``: ``(results, files written)``.

    Everything is computed and rendered into a temporary directory beside
    ``out`` first; the files are moved into ``out`` only then, after checking
    that none of their destinations is a directory. The files of a previous run
    into the same ``out`` that this run does not rewrite (figures of other
    categories, say) are removed, so ``out`` always describes one run.
    """
    if figures:
        import importlib.util

        if importlib.util.find_spec("matplotlib") is None:
            raise InputError("figures need matplotlib: pip install 'refmetrics[plot]', or pass --no-figures")
    check_out(out, figures)
    check_headers(samples, resize)
    by_category = {}
    for s in samples:
        by_category.setdefault(s.category, []).append(s)
    progress = _Progress(not quiet)
    results = [evaluate_category(group, fpr_limit, resize, connectivity, progress)
               for group in by_category.values()]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".refmetrics-", dir=out.parent))
    try:
        settings = dict(settings or {}, fpr_limit=fpr_limit, connectivity=connectivity, resize=resize)
        (staging / "results.md").write_text(markdown_table(results, fpr_limit), encoding="utf-8")
        (staging / "results.tex").write_text(latex_table(results, fpr_limit), encoding="utf-8")
        written = ["results.json", "results.md", "results.tex"]
        if figures:
            (staging / "figures").mkdir()
            written += [f"figures/{n}" for n in write_figures(results, fpr_limit, staging / "figures")]
        (staging / "results.json").write_text(to_json(results, settings, written), encoding="utf-8")
        clashes = [str(out / name) for name in written if (out / name).is_dir()]
        if clashes:
            raise InputError(f"--out: cannot write over the director{'ies' if len(clashes) > 1 else 'y'} "
                             f"{', '.join(clashes)}")
        stale = [name for name in _previous_files(out) if name not in written and (out / name).is_file()]
        out.mkdir(exist_ok=True)
        if figures:
            (out / "figures").mkdir(exist_ok=True)
        for name in written:
            os.replace(staging / name, out / name)
        for name in stale:
            (out / name).unlink()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return results, written
