"""``refmetrics compare``: two methods' maps on one test set -> per category and overall, each metric's two
values, their difference, the difference's paired bootstrap interval and p-value, Holm-corrected across
categories.

The flow, per category (one at a time, so that at most the two methods' states are in memory)::

    both datasets' samples   read by the protocol's reader, checked to be the same test set
    two GroupStates          each sample of both methods streamed in (every map read once)
    W                        resample_counts(image labels, B, seed, stream=category): one set of resamples
                             for both methods (paired), the category's own
    replicates               protocol.replicates(state, options, context, W) for each method, then
    values                   protocol.measure(state, ...) for each method: the numbers ``evaluate`` reports
    differences              replicate of A minus replicate of B, resample by resample

The values are exactly ``refmetrics evaluate``'s; the resample of every image-level and pixel-level metric
is the metric computed on the images repeated by their multiplicities (``docs/definitions.md``, section
"Bootstrap"). Columns the protocol gives no replicates for are compared without an interval or p-value.
``W`` gets one more row, every image once (the test set itself), whose replicate must be the column's value
bit for bit: a column whose resamples measure something else gets no interval, and a note says so.

The overall row is the mean over categories of each value and of the difference; its interval and p-value
come from the per-resample means of the differences (resample ``b`` of every category, each category's
resamples drawn from its own labels and its own stream, ``default_rng([seed, crc32(category)])``). The p-values of the categories are adjusted per
metric by Holm's step-down procedure (:func:`holm`); the overall row's is a single test, not adjusted.
"""

import contextlib
import dataclasses
import json
import math
from pathlib import Path

import numpy as np

from .. import __version__
from .. import _labels as labelling
from .._outdir import OutputDir, OutputError, listed_files
from ..functional import bootstrap as resampling
from . import writers
from .protocols.base import resample_weights
from .samples import InputError, by_category, check_headers, size_text
from .state import GroupState

SCHEMA = 1  # compare.json's schema version (docs/evaluate.md, "refmetrics compare")
FILES = ("compare.json", "compare.md", "compare.tex")
METHOD = ("paired stratified image bootstrap, percentile interval; two-sided p = min(1, 2 min(1 + #{d <= 0}, "
          "1 + #{d >= 0}) / (B + 1)); Holm across categories")


@dataclasses.dataclass(frozen=True)
class Settings:
    """The resampling of one ``refmetrics compare`` run: ``n_resamples`` (B), ``seed``, ``level`` (of the
    percentile interval) and the two methods' ``names``."""

    n_resamples: int = 1000
    seed: int = 0
    level: float = 0.95
    names: tuple = ("A", "B")


@dataclasses.dataclass
class Cell:
    """One metric of one category (or of the mean): both values, their difference ``a - b``, the paired
    percentile interval of the replicate differences, the p-value and its Holm-adjusted value (None for the
    mean); ``defined``: the number of resamples on which the difference is defined (None without
    replicates)."""

    a: float
    b: float
    difference: float
    low: float = math.nan
    high: float = math.nan
    p: float = math.nan
    p_holm: float = math.nan
    defined: int | None = None


@dataclasses.dataclass
class Comparison:
    """The numbers of one category: ``cells`` (column key -> :class:`Cell`), the counts (the same for both
    methods) and the notes (each prefixed with the method it concerns)."""

    category: str
    cells: dict
    counts: dict
    notes: list = dataclasses.field(default_factory=list)
    differences: dict = dataclasses.field(default_factory=dict)  # column key -> (B,) replicate differences


def holm(p_values):
    """Holm-Bonferroni step-down adjusted p-values.

    With the ``m`` defined p-values sorted, ``p_(1) <= ... <= p_(m)``, the adjusted value of ``p_(i)`` is
    ``max over j <= i of min(1, (m - j + 1) p_(j))``: monotone in ``p`` and at most 1. NaN (undefined) stays
    NaN and does not count in ``m``; ties keep their input order (their adjusted values are equal anyway).

    Examples
    --------
    >>> holm([0.01, 0.04, 0.03]).tolist()
    [0.03, 0.06, 0.06]
    >>> holm([0.5, float("nan"), 0.01]).tolist()
    [0.5, nan, 0.02]
    """
    p = np.asarray(p_values, np.float64)
    adjusted = np.full(p.shape, np.nan)
    defined = np.flatnonzero(~np.isnan(p))
    m = defined.size
    running = 0.0
    for rank, i in enumerate(defined[np.argsort(p[defined], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * float(p[i])))
        adjusted[i] = running
    return adjusted


# -- the two datasets ------------------------------------------------------------------------------------


def supports(protocol):
    """Whether ``compare`` can read the protocol's datasets: those named by ``--maps``/``--gt`` alone (VisA's
    test set is named by its split CSV, which ``compare`` does not take)."""
    return "maps" in protocol.inputs and "gt" in protocol.inputs and "split_csv" not in protocol.inputs


def protocol_of(name, manifests=False, demo=False):
    """The protocol ``--protocol NAME`` names for ``compare`` (default mvtec-ad), or an :class:`InputError`."""
    from .protocols import DEFAULT, PROTOCOLS, get

    if demo and name not in (None, DEFAULT):
        raise InputError(f"--protocol: the compare demo is laid out for {DEFAULT}, received {name!r}; leave "
                         "--protocol out with --demo")
    protocol = get(name or DEFAULT)
    if not supports(protocol):
        known = ", ".join(n for n, p in PROTOCOLS.items() if supports(p))
        raise InputError(f"--protocol: compare reads datasets named by --maps and --gt (or --manifest), expected "
                         f"one of {known}; received {protocol.name!r}, whose test set is named by "
                         f"{', '.join('--' + i.replace('_', '-') for i in protocol.inputs if i not in ('maps', 'gt'))}")
    if manifests and "manifest" not in protocol.inputs:
        raise InputError(f"--manifest: --protocol {protocol.name} reads --maps and --gt only (manifests: "
                         "mvtec-ad); give --maps twice and --gt")
    return protocol


@dataclasses.dataclass(frozen=True)
class Inputs:
    """The two methods' data: ``option`` (``"maps"`` or ``"manifest"``), ``paths`` (A's, B's) and ``gt``."""

    option: str
    paths: tuple
    gt: Path | None = None

    @property
    def where(self):
        """How the user named each method's data, for messages."""
        return tuple(f"--{self.option} {p}" for p in self.paths)

    @property
    def roots(self):
        """Each method's maps root, which names its images (None for a manifest: the map's file name)."""
        return self.paths if self.option == "maps" else (None, None)

    def default_names(self):
        """The methods' names: their directories' (or manifests') names, or A and B when these agree."""
        names = tuple(p.name if self.option == "maps" else p.stem for p in map(Path, self.paths))
        return names if names[0] and names[1] and names[0] != names[1] else ("A", "B")

    def settings(self):
        """What names the data in compare.json."""
        out = {f"{self.option}_a": str(self.paths[0]), f"{self.option}_b": str(self.paths[1])}
        if self.gt is not None:
            out["gt"] = str(self.gt)
        return out


def inputs_of(maps, gt, manifests, demo=False):
    """The :class:`Inputs` of the command line (``--maps`` twice with ``--gt``, or ``--manifest`` twice), or
    None with ``--demo`` (which takes none of them); an :class:`InputError` naming the option otherwise."""
    maps, manifests = list(maps or []), list(manifests or [])
    if demo:
        given = [o for o, v in (("--maps", maps), ("--gt", gt), ("--manifest", manifests)) if v]
        if given:
            raise InputError(f"--demo compares the two bundled methods: leave out {', '.join(given)}")
        return None
    if manifests:
        if maps or gt is not None:
            raise InputError("--manifest: give either two --manifest or two --maps with --gt, not both")
        if len(manifests) != 2:
            raise InputError(f"--manifest: expected two (method A's, then B's), received {len(manifests)}")
        return Inputs("manifest", tuple(manifests))
    if len(maps) != 2:
        raise InputError(f"--maps: expected two (method A's, then B's) with one --gt, or --demo; received "
                         f"{len(maps)}")
    if gt is None:
        raise InputError("--gt: expected the test set's ground-truth tree (shared by both --maps), received none")
    return Inputs("maps", tuple(maps), gt)


def demo_root():
    from importlib import resources

    return resources.files("refmetrics").joinpath("data/demo/compare")


@contextlib.contextmanager
def demo_inputs():
    """The :class:`Inputs` of the bundled demo (two synthetic methods on one MVTec AD layout test set)."""
    from importlib import resources

    with resources.as_file(demo_root()) as root:
        root = Path(root)
        yield Inputs("maps", (root / "maps_a", root / "maps_b"), root / "gt")


def check_names(names):
    """The two methods' names: two different non-empty names (``--names``)."""
    names = tuple(str(n) for n in names)
    if len(names) != 2 or not all(n.strip() for n in names) or names[0] == names[1]:
        raise InputError(f"--names: expected two different non-empty names, received {' '.join(map(repr, names))}")
    return names


def read_both(protocol, options, inputs):
    """Both methods' :class:`refmetrics.evaluate.readers.Dataset` read by the protocol's reader, and the
    options of the run (what the reader settled, such as Real-IAD's resizing, is the same for both)."""
    datasets, settled = [], []
    for path in inputs.paths:
        mine = dataclasses.replace(options, **{inputs.option: path, "gt": inputs.gt})
        datasets.append(protocol.read(mine))
        settled.append(mine)
    return datasets, dataclasses.replace(settled[0], maps=None, manifest=None)




def _image_id(sample, root):
    """What names a test image across the two methods: its map's path under the maps' root without its
    suffix (``disc/test/good/000``), or, for a manifest, the map's file name without its suffix."""
    if root is not None:
        try:
            return Path(sample.map).relative_to(root).with_suffix("").as_posix()
        except ValueError:
            pass
    return Path(sample.map).stem


def _truth(sample):
    return None if sample.truth is None else str(Path(sample.truth).resolve())


def _label(sample):
    return {True: "defective", False: "good", None: "from its mask"}[sample.defective]


def check_same(dataset_a, dataset_b, where, roots):
    """Raise an :class:`InputError` unless the two datasets list the same test set: the same categories,
    the same images in the same order, each with the same ground truth, label, defect type and group.

    ``where``: how the user named each dataset (``"--maps runs/a"``); ``roots``: the maps' roots (None for a
    manifest), which name the images.
    """
    a, b = dataset_a.samples, dataset_b.samples
    cats_a, cats_b = list(by_category(a)), list(by_category(b))
    if cats_a != cats_b:
        raise InputError(f"{where[1]}: categories {', '.join(cats_b)}; expected {', '.join(cats_a)} as in "
                         f"{where[0]} (the same test set)")
    ids_a = [(s.category, _image_id(s, roots[0])) for s in a]
    ids_b = [(s.category, _image_id(s, roots[1])) for s in b]
    if roots[0] is not None and roots[1] is not None:  # trees: an image's path names it, once
        known_a, known_b = dict(zip(ids_a, a)), dict(zip(ids_b, b))
        for key, s in known_a.items():
            if key not in known_b:
                raise InputError(f"{where[1]}: no map for the test image {key[1]} of category {key[0]!r}; "
                                 f"expected one as in {where[0]} ({s.map})")
        for key, s in known_b.items():
            if key not in known_a:
                raise InputError(f"{where[1]}: {s.map}: a test image ({key[1]}) that {where[0]} does not have; "
                                 "expected the same test set")
    groups_a, groups_b = by_category(a), by_category(b)
    for category in cats_a:  # manifests: rows are paired in order (file names may repeat across defect types)
        if len(groups_a[category]) != len(groups_b[category]):
            raise InputError(f"{where[1]}: {len(groups_b[category])} test images in category {category!r}; "
                             f"expected {len(groups_a[category])} as in {where[0]} (the same test set)")
    for i, (ka, kb, sa, sb) in enumerate(zip(ids_a, ids_b, a, b)):
        if ka != kb:
            raise InputError(f"{where[1]}: {sb.map}: test image {i + 1} is {kb[1]}; expected {ka[1]} "
                             f"({sa.map} in {where[0]}): the images must come in the same order")
        for field, value in (("ground truth", _truth), ("label", _label), ("defect type", lambda s: s.defect),
                             ("sample group", lambda s: s.group)):
            if value(sa) != value(sb):
                raise InputError(f"{where[1]}: {sb.map}: {field} {value(sb)}; expected {value(sa)} as for "
                                 f"{sa.map} in {where[0]}")


def check_sizes(samples_a, samples_b, where):
    """Both methods' maps of an image must have one size once read (the same pixels are compared)."""
    for sa, sb in zip(samples_a, samples_b):
        if sa.target != sb.target:
            raise InputError(f"{where[1]}: {sb.map}: map of size {size_text(sb.target)}; expected "
                             f"{size_text(sa.target)} as {sa.map} in {where[0]} (the same pixels)")


# -- the numbers -----------------------------------------------------------------------------------------


def _same(x, y):
    return x == y or (math.isnan(x) and math.isnan(y))


def summarize(differences, level):
    """``(low, high, p, defined)`` of the replicate differences: the percentile interval, the two-sided
    p-value and the number of resamples on which the difference is defined (NaN elsewhere)."""
    defined = int(np.count_nonzero(~np.isnan(differences)))
    if not defined:
        return math.nan, math.nan, math.nan, 0
    low, high = resampling.percentile_interval(differences, level)
    return float(low), float(high), float(resampling.paired_p_value(differences)), defined


def _fill(states, samples, quiet, name):
    """Stream each test image of both methods into their states, pair by pair."""
    from tqdm.auto import tqdm

    for sa, sb in tqdm(list(zip(*samples)), desc=f"{name}: reading", unit="pair", disable=quiet, leave=False):
        states[0].add(sa)
        states[1].add(sb)


def compare_category(protocol, datasets, samples, options, settings, where):
    """The :class:`Comparison` of one category: ``samples`` (A's, B's) streamed into one
    :class:`GroupState` each, resampled with one ``W``, measured as ``evaluate`` measures them."""
    category = samples[0][0].category
    contexts = [protocol.prepare(d, category, options) for d in datasets]
    states = [GroupState(s, options, protocol.accumulators(options, c), protocol.score_rule(options))
              for s, c in zip(samples, contexts)]
    _fill(states, samples, options.quiet, category)
    labels = [s["images"].arrays()[1] for s in states]
    differ = np.flatnonzero(labels[0] != labels[1])
    if differ.size:
        i = int(differ[0])
        raise InputError(f"{where[1]}: {samples[1][i].map}: label {int(labels[1][i])}; expected {int(labels[0][i])} "
                         f"as {samples[0][i].map} in {where[0]} (the same test set)")
    W = resample_weights(protocol, states[0], settings.n_resamples, settings.seed, category)
    # row 0: every image once, the test set itself: its replicate must be the value measure() reports
    # (a check that the protocol's resamples measure what its column does); rows 1..B: the resamples
    W = np.vstack([np.ones((1, W.shape[1]), W.dtype), W])
    replicates = [protocol.replicates(s, options, c, W) for s, c in zip(states, contexts)]
    measured = [protocol.measure(s, options, c, False) for s, c in zip(states, contexts)]
    del states
    # a note both methods have (an undefined metric, say) once; a method's own note with its name
    notes = [n if n in measured[1].notes else f"{settings.names[0]}: {n}" for n in measured[0].notes]
    notes += [f"{settings.names[1]}: {n}" for n in measured[1].notes if n not in measured[0].notes]
    cells, differences = {}, {}
    for column in protocol.columns(options):
        a, b = (float(m.values[column.key]) for m in measured)
        cell = Cell(a, b, a - b)
        paired = column.key in replicates[0] and column.key in replicates[1]
        for name, value, reps in zip(settings.names, (a, b), replicates):
            if paired and not _same(float(reps[column.key][0]), value):
                notes.append(f"{column.key}: {name}'s resampling gives {float(reps[column.key][0])!r} on the test "
                             f"set itself, not its value {value!r}: no interval or p-value")
                paired = False
        if paired:
            d = np.asarray(replicates[0][column.key][1:], np.float64) - \
                np.asarray(replicates[1][column.key][1:], np.float64)
            cell.low, cell.high, cell.p, cell.defined = summarize(d, settings.level)
            differences[column.key] = d
            if cell.defined < settings.n_resamples and not math.isnan(cell.difference):  # else: said above
                notes.append(f"{column.key}: the difference is undefined on {settings.n_resamples - cell.defined} "
                             f"of {settings.n_resamples} resamples (left out of its interval and p-value)")
        cells[column.key] = cell
    if measured[0].counts != measured[1].counts:  # cannot happen on one test set; said if it does
        notes.append(f"counts differ: {settings.names[0]} {measured[0].counts}, {settings.names[1]} "
                     f"{measured[1].counts}")
    return Comparison(category, cells, measured[0].counts, notes, differences)


def mean_comparison(comparisons, columns, settings):
    """The overall row: the mean over categories of each value and difference (NaN if a category's is),
    and the interval and p-value of the per-resample means of the differences (resample b of every
    category)."""
    cells, notes = {}, []
    for column in columns:
        key = column.key
        cell = Cell(*(float(np.mean([getattr(c.cells[key], f) for c in comparisons]))
                      for f in ("a", "b", "difference")))
        cell.p_holm = None
        if all(key in c.differences for c in comparisons):
            d = np.mean([c.differences[key] for c in comparisons], axis=0)
            cell.low, cell.high, cell.p, cell.defined = summarize(d, settings.level)
            if cell.defined < settings.n_resamples and not math.isnan(cell.difference):
                notes.append(f"{key}: the mean difference is undefined on {settings.n_resamples - cell.defined} "
                             f"of {settings.n_resamples} resamples (one category's is; left out)")
        cells[key] = cell
    return Comparison("mean", cells, {}, notes)


def compare(protocol, datasets, out, options, settings, where=("A", "B"), roots=(None, None), dataset_settings=None):
    """Compare two methods' datasets of one test set under ``protocol`` and write compare.json/.md/.tex into
    ``out`` (staged and switched in atomically, as ``evaluate`` does): ``(comparisons, mean, files, notes)``.

    ``datasets``: the two :class:`refmetrics.evaluate.readers.Dataset` (A, B); ``options``: the
    :class:`refmetrics.evaluate.Options` of both (no figures, no per-defect breakdown, no official
    columns); ``settings``: :class:`Settings`; ``where``: how the user named each dataset (for messages);
    ``roots``: each dataset's maps root (None for a manifest); ``dataset_settings``: what names the data in
    compare.json.
    """
    options.connectivity = labelling.check_connectivity(options.connectivity, 2)
    check_same(datasets[0], datasets[1], where, roots)
    for d in datasets:
        check_headers(d.samples, options.resize)
        for group in d.validation.values():
            check_headers(group, options.resize)
    check_sizes(datasets[0].samples, datasets[1].samples, where)
    columns = protocol.columns(options)
    target = OutputDir(out)
    try:
        target.prepare()
        target.check_destinations(FILES)
        groups = [by_category(d.samples) for d in datasets]
        comparisons = [compare_category(protocol, datasets, (groups[0][c], groups[1][c]), options, settings, where)
                       for c in groups[0]]
        for column in columns:
            adjusted = holm([c.cells[column.key].p for c in comparisons])
            for c, p in zip(comparisons, adjusted):
                c.cells[column.key].p_holm = float(p)
        mean = mean_comparison(comparisons, columns, settings)
        info = dict(dataset_settings or {}, protocol=protocol.name, **protocol.settings(options),
                    names=list(settings.names), resamples=settings.n_resamples, seed=settings.seed,
                    level=settings.level, method=METHOD, connectivity=options.connectivity, resize=options.resize,
                    image_score=protocol.score_rule(options).describe())
        notes = [f"{settings.names[i]}: {n}" for i, d in enumerate(datasets) for n in d.notes]
        try:
            staging = target.new
            (staging / "compare.md").write_text(markdown(comparisons, mean, columns, settings, protocol.title),
                                                encoding="utf-8")
            (staging / "compare.tex").write_text(latex(comparisons, mean, columns, settings), encoding="utf-8")
            (staging / "compare.json").write_text(to_json(protocol, comparisons, mean, columns, info, FILES, notes),
                                                  encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"--out: could not write the results into {target.out}: "
                              f"{exc.strerror or exc}; {target.out} was left as it was") from exc
        target.commit(FILES, remove=lambda: listed_files(target.out, "compare.json"))
    except BaseException:
        target.abort()
        raise
    return comparisons, mean, list(FILES), notes


# -- the outputs -----------------------------------------------------------------------------------------


def _num(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def _f(v):
    """A number as the tables show it (4 decimals; ``nan`` for undefined, ``-`` for not applicable)."""
    return "-" if v is None else f"{v:.4f}"


def _interval(cell):
    return "-" if cell.defined is None else f"[{cell.low:.4f}, {cell.high:.4f}]"


def _row_cells(cell):
    return [_f(cell.a), _f(cell.b), _f(cell.difference), _interval(cell),
            "-" if cell.defined is None else _f(cell.p), "-" if cell.defined is None else _f(cell.p_holm)]


def _heads(settings):
    a, b = settings.names
    return [a, b, f"{a} - {b}", f"{settings.level * 100:g}% interval", "p", "p (Holm)"]


def markdown(comparisons, mean, columns, settings, title=None):
    """compare.md: per metric a table of category | A | B | A - B | interval | p | p (Holm)."""
    a, b = settings.names
    lines = [f"## {writers.md(a)} vs {writers.md(b)}" + (f": {title}" if title else ""), "",
             f"{settings.n_resamples} paired resamples (seed {settings.seed}): `{METHOD}`.", ""]
    for column in columns:
        lines += [f"### {writers.md(column.header)}", "",
                  "| category | " + " | ".join(writers.md(h) for h in _heads(settings)) + " |",
                  "|---|" + "---:|" * 6]
        for c in comparisons:
            lines.append(f"| {writers.md(c.category)} | " + " | ".join(_row_cells(c.cells[column.key])) + " |")
        lines.append("| **mean** | " + " | ".join(_row_cells(mean.cells[column.key])) + " |")
        lines.append("")
    return "\n".join(lines)


def latex(comparisons, mean, columns, settings):
    """compare.tex: per metric a tabular of category | A | B | A - B | interval | p | p (Holm)."""
    lines = [f"% {writers.tex(settings.names[0])} vs {writers.tex(settings.names[1])}: {settings.n_resamples} "
             f"paired resamples (seed {settings.seed}); {writers.tex(METHOD)}"]
    heads = [writers.tex(h) for h in _heads(settings)]
    heads[2] = f"{writers.tex(settings.names[0])} $-$ {writers.tex(settings.names[1])}"
    heads[3] = f"{settings.level * 100:g}\\% interval"

    def cells(cell):  # a minus sign, not a hyphen; "--" where there is no number
        return " & ".join("--" if v == "-" else v.replace("-", "$-$") for v in _row_cells(cell))

    for column in columns:
        lines += ["", f"% {writers.tex(column.header)}", r"\begin{tabular}{lrrrcrr}", r"\toprule",
                  r"\multicolumn{7}{l}{" + writers.tex(column.header) + r"} \\", r"\midrule",
                  "Category & " + " & ".join(heads) + r" \\", r"\midrule"]
        for c in comparisons:
            lines.append(writers.tex(c.category) + " & " + cells(c.cells[column.key]) + r" \\")
        lines += [r"\midrule", "Mean & " + cells(mean.cells[column.key]) + r" \\",
                  r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def _cell_json(cell):
    out = {"a": _num(cell.a), "b": _num(cell.b), "difference": _num(cell.difference)}
    if cell.defined is not None:
        out.update(interval=[_num(cell.low), _num(cell.high)], p=_num(cell.p), resamples_defined=cell.defined)
        if cell.p_holm is not None:
            out["p_holm"] = _num(cell.p_holm)
    return out


def to_json(protocol, comparisons, mean, columns, settings, files=(), notes=()):
    """compare.json (schema :data:`SCHEMA`)."""
    return json.dumps({
        "refmetrics": __version__,
        "schema": SCHEMA,
        "command": "compare",
        "protocol": {"name": protocol.name, "title": protocol.title},
        "settings": settings,
        "columns": [{"key": c.key, "level": c.level, "label": c.header,
                     "paired": all(c.key in x.differences for x in comparisons)} for c in columns],
        "files": list(files),
        "notes": list(notes),
        "categories": {c.category: {"metrics": {k: _cell_json(v) for k, v in c.cells.items()}, "counts": c.counts,
                                    "notes": c.notes} for c in comparisons},
        "mean": {"metrics": {k: _cell_json(v) for k, v in mean.cells.items()}, "notes": mean.notes},
    }, indent=2) + "\n"


def text(comparisons, mean, columns, settings):
    """The terminal summary: per metric, a block of category | A | B | A - B | interval | p | p (Holm)."""
    heads = _heads(settings)
    names = [c.category for c in comparisons] + ["mean"]
    lines = []
    for column in columns:
        name_width = max(8, len(column.header), *(len(n) for n in names))
        rows = [_row_cells(c.cells[column.key]) for c in comparisons] + [_row_cells(mean.cells[column.key])]
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(heads)]
        if lines:
            lines.append("")
        header = f"{column.header:<{name_width}}" + "".join(f"  {h:>{w}}" for h, w in zip(heads, widths))
        lines.append(header)
        for name, row in zip(names, rows):
            if row is rows[-1]:
                lines.append("-" * len(header))
            lines.append(f"{name:<{name_width}}" + "".join(f"  {v:>{w}}" for v, w in zip(row, widths)))
    return "\n".join(lines)
