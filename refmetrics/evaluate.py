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
                if path.suffix.lower() not in IO.MAP_SUFFIXES:
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
    return samples


def read_manifest(path):
    """Samples of a CSV manifest (see the module docstring)."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise InputError(f"{path}: could not read the manifest ({exc})") from exc
    if not rows or "map" not in rows[0] or "mask" not in rows[0]:
        raise InputError(f"{path}: expected a CSV with a header naming the columns map, mask "
                         "(and optionally score, category)")
    base = path.parent
    samples = []
    for line, row in enumerate(rows, start=2):
        where = f"{path}, line {line}"
        if not row.get("map"):
            raise InputError(f"{where}: empty map path")
        map_path = base / row["map"].strip()
        mask_text = (row.get("mask") or "").strip()
        mask = None if mask_text.lower() in ("", "none") else base / mask_text
        score = None
        if (row.get("score") or "").strip():
            try:
                score = float(row["score"])
            except ValueError as exc:
                raise InputError(f"{where}: score {row['score']!r} is not a number") from exc
            if math.isnan(score):
                raise InputError(f"{where}: score is NaN")
        if not map_path.is_file():
            raise InputError(f"{where}: missing map {map_path}")
        if mask is not None and not mask.is_file():
            raise InputError(f"{where}: missing mask {mask}")
        # defective: decided from the mask's pixels once read
        samples.append(Sample((row.get("category") or "all").strip() or "all", map_path, mask,
                              defective=None, score=score))
    return samples


def check_headers(samples, resize):
    """Read every header; maps and masks must have one 2-D size (or ``resize`` is given)."""
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


# ---------------------------------------------------------------------------
# streaming state of one category
# ---------------------------------------------------------------------------

_WIDE = {np.dtype(t) for t in (np.float64, np.int32, np.uint32, np.int64, np.uint64)}


class CategoryState:
    """The exact state of one category, filled one image at a time.

    Buffers are allocated for the category's pixel count up front; the operating
    system backs only the pages written, so the background keys take 4 (or 8)
    bytes per background pixel and the defect pixels' keys and region sizes
    4 (8) + 8 bytes per defect pixel.
    """

    def __init__(self, samples, resize):
        wide = any(s.dtype in _WIDE for s in samples) or any(
            s.mask is not None and s.mask_shape != s.shape for s in samples)
        self.float = np.dtype(np.float64 if wide else np.float32)
        self.kd = R._KEY_OF[self.float]
        self.consts = R._CONSTS[self.kd]
        total = sum((s.mask_shape if s.mask is not None and resize else s.shape)[0]
                    * (s.mask_shape if s.mask is not None and resize else s.shape)[1] for s in samples)
        V.check_size_limit(total)
        self.bg = np.empty(total, self.kd)
        self.rkeys = np.empty(total, self.kd)
        self.rsizes = np.empty(total, np.uint64)
        self.n_bg = self.n_reg = self.n_regions = 0
        self.image_scores, self.image_labels = [], []
        self.resize = resize

    def add(self, sample, connectivity):
        values = IO.read_map(sample.map)
        mask = IO.read_mask(sample.mask) if sample.mask is not None else None
        if mask is not None and mask.shape != values.shape:
            from skimage.transform import resize

            values = resize(values.astype(np.float64), mask.shape, order=RESIZE[self.resize],
                            preserve_range=True, anti_aliasing=False)
        if values.dtype.kind in "iu" and values.dtype.itemsize == 8:
            V.check_integer_scores_exact(str(sample.map), values)
        flat = np.ascontiguousarray(values, dtype=self.float).reshape(-1)
        defective = sample.defective if sample.defective is not None else bool(mask is not None and mask.any())
        score = sample.score if sample.score is not None else float(flat.max())
        bits = flat.view(self.kd)
        if mask is None or not mask.any():
            self.n_bg, n_nan = KG.partition_background(bits, self.consts, self.kd.type(0), self.bg, self.n_bg)
        else:
            regions, n = L.label_sample(mask, connectivity)
            regions = regions.reshape(-1)
            sizes = np.bincount(regions, minlength=n + 1).astype(np.int64)
            self.n_bg, self.n_reg, n_nan = KG.partition_regions(bits, regions, sizes, self.consts,
                                                                self.kd.type(0), self.bg, self.n_bg, self.rkeys,
                                                                self.rsizes, self.n_reg)
            self.n_regions += n
        if n_nan:  # float maps were checked when read; resized maps cannot hold NaN either
            raise InputError(f"{sample.map}: the anomaly map holds {n_nan:,} NaN values")
        self.image_scores.append(score)
        self.image_labels.append(int(defective))

    def sorted(self):
        """Sort in place (background keys) and by (key, size) (defect pixels, with a scratch copy)."""
        bg = self.bg[:self.n_bg]
        bg.sort()  # NumPy's in-place sort: no second copy of the background
        rkeys, rsizes = self.rkeys[:self.n_reg], self.rsizes[:self.n_reg]
        tk, tp = np.empty_like(rkeys), np.empty_like(rsizes)
        if KG.radix_sort_pairs(rkeys, rsizes, tk, tp, R._SHIFTS[self.kd], G._SIZE_SHIFTS):
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
    progress.step(category, f"computing ({state.n_bg + state.n_reg:,} pixels)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bg, rkeys, rsizes = state.sorted()
        scores = np.array(state.image_scores)
        labels = np.array(state.image_labels, np.uint8)
        values = {"image AUROC": F.auroc(scores, labels), "image AP": F.average_precision(scores, labels),
                  "image F1-max": F.f1_max(scores, labels)}
        pixels = R.ExactScores()
        pixels.add(R._Part(rkeys, bg, None, is_sorted=True))
        values["pixel AUROC"] = FR.auroc_from_state(pixels)
        values["pixel AP"] = FR.average_precision_from_state(pixels)
        best = FR.f1_from_state(pixels)
        values["pixel F1-max"] = float("nan") if best is None else best[1]
        regions = G.RegionScores()
        regions.add(G._Part(bg, rkeys, rsizes, state.n_regions, is_sorted=True))
        values["AUPRO"] = FG.aupro_from_state(regions, fpr_limit, None)
        precision, recall, _ = F.precision_recall_curve(scores, labels)
        curves = {"image roc": F.roc_curve(scores, labels)[:2], "image pr": (recall[::-1], precision[::-1])}
        pixel = _pixel_curves(rkeys, bg) if rkeys.size and bg.size else None
        if pixel:
            curves["pixel roc"], curves["pixel pr"] = pixel["roc"], pixel["pr"]
        if state.n_regions and bg.size:
            curves["pro"] = _pro_curve(bg, rkeys, rsizes, state.n_regions, fpr_limit)
    for w in caught:
        if issubclass(w.category, V.UndefinedMetricWarning) and str(w.message) not in notes:
            notes.append(str(w.message))
    counts = {"images": len(samples), "defective images": int(labels.sum()),
              "pixels": int(bg.size + rkeys.size), "defect pixels": int(rkeys.size), "regions": state.n_regions}
    curves["scores"] = (scores[labels == 0], scores[labels == 1])
    return Result(category, values, counts, curves, notes)


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


def to_json(results, settings):
    def num(v):
        return None if isinstance(v, float) and math.isnan(v) else v

    return json.dumps({
        "refmetrics": __version__,
        "settings": settings,
        "categories": {r.category: {"metrics": {m: num(r.values[m]) for m in METRICS}, "counts": r.counts,
                                    "notes": r.notes} for r in results},
        "mean": {m: num(v) for m, v in mean_row(results).items()},
    }, indent=2) + "\n"


def write_figures(results, fpr_limit, directory):
    from . import plotting as P

    written = []
    for r in results:
        c = r.curves
        slug = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in r.category)
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
    """A progress bar on stderr while maps are read, then a line per computing step."""

    def __init__(self, enabled):
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, category, done, total):
        if not self.enabled:
            return
        now = time.monotonic()
        if done != total and now - self.last < (0.1 if self.tty else 5.0):
            return
        self.last = now
        bar = "#" * int(30 * done / total)
        line = f"  {category}: [{bar:<30}] {done}/{total} maps read"
        print(("\r" + line) if self.tty else line, end="\n" if (done == total or not self.tty) else "",
              file=sys.stderr, flush=True)

    def step(self, category, text):
        if self.enabled:
            print(f"  {category}: {text}", file=sys.stderr, flush=True)


def run(samples, out, fpr_limit=0.3, resize=None, connectivity=2, figures=True, quiet=False, settings=None):
    """Evaluate samples, write the outputs into ``out``; returns the results."""
    if figures:
        import importlib.util

        if importlib.util.find_spec("matplotlib") is None:
            raise InputError("figures need matplotlib: pip install 'refmetrics[plot]', or pass --no-figures")
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
        (staging / "results.json").write_text(to_json(results, settings), encoding="utf-8")
        (staging / "results.md").write_text(markdown_table(results, fpr_limit), encoding="utf-8")
        (staging / "results.tex").write_text(latex_table(results, fpr_limit), encoding="utf-8")
        written = ["results.json", "results.md", "results.tex"]
        if figures:
            (staging / "figures").mkdir()
            written += [f"figures/{n}" for n in write_figures(results, fpr_limit, staging / "figures")]
        out.mkdir(exist_ok=True)
        if figures:
            (out / "figures").mkdir(exist_ok=True)
        for name in written:
            os.replace(staging / name, out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return results, written
