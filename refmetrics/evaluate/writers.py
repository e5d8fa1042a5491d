"""The outputs of a run: the terminal table, ``results.json``, ``results.md``, ``results.tex`` and figures.

Every writer reads the protocol's columns (:class:`refmetrics.evaluate.protocols.base.Column`), so one
set of writers serves every protocol. ``results.json`` has one schema for all protocols; it is documented
in ``docs/evaluate.md``.
"""

import json
import math
import textwrap

import numpy as np

from .. import __version__

SCHEMA = 3  # results.json's schema version (docs/evaluate.md); 2 had no intervals (--ci), 1 no --protocol


def mean_row(results, columns):
    """The mean over categories of each column (NaN if any category's value is NaN)."""
    return {c.key: float(np.mean([r.values[c.key] for r in results])) for c in columns}


def mean_replicates(results, key):
    """The mean over categories of resample ``b``'s values, for each ``b``: ``(B,)`` float64 (each category's
    resample ``b`` drawn from its own images with the run's seed), each mean computed as
    :func:`mean_row`'s (NumPy's mean of the categories' values, in category order); None unless every
    category has replicates of ``key``."""
    if not results or any(key not in r.replicates for r in results):
        return None
    stacked = np.ascontiguousarray(np.array([r.replicates[key] for r in results], np.float64).T)
    return stacked.mean(axis=1)  # each row reduced as a 1-D np.mean of the categories' values


def mean_intervals(results, columns):
    """``{key: (low, high) or None}``: the mean row's percentile intervals (from :func:`mean_replicates`; a
    resample where a category's value is undefined is left out), or ``{}`` without ``--ci``."""
    if not results or results[0].level is None:
        return {}
    from ..functional.bootstrap import percentile_interval

    level, means, out = results[0].level, mean_row(results, columns), {}
    for c in columns:
        reps = None if c.official or math.isnan(means[c.key]) else mean_replicates(results, c.key)
        if reps is None or np.isnan(reps).all():
            out[c.key] = None
        else:
            low, high = percentile_interval(reps, level)
            out[c.key] = (float(low), float(high))
    return out


def cell(value, interval, decimals=4, latex=False):
    """A table cell: the value with ``decimals`` decimals, and with an interval ``(low, high)`` its half
    width (high - low) / 2 at the same precision: ``0.9870 ±0.0040`` (LaTeX: ``0.9870{\\scriptsize$\\pm$0.0040}``).
    """
    text = f"{value:.{decimals}f}"
    if interval is None:
        return text
    half = (interval[1] - interval[0]) / 2
    return text + (f"{{\\scriptsize$\\pm${half:.{decimals}f}}}" if latex else f" \u00b1{half:.{decimals}f}")


def _intervals(result):
    return result.intervals if result.level is not None else {}


def _column_blocks(widths, room):
    """Split column indices into consecutive blocks whose cells fit in ``room`` characters (at least one
    column each)."""
    blocks, current, used = [], [], 0
    for i, w in enumerate(widths):
        if current and used + w + 2 > room:
            blocks.append(current)
            current, used = [], 0
        current.append(i)
        used += w + 2
    return blocks + [current]


def _text_block(names, rows, columns, widths, name_width, width, cis):
    subs = [c.short + ("*" if c.official else "") for c in columns]
    top = " " * name_width
    i = 0
    while i < len(columns):  # one title per run of columns of one level
        j = i
        while j < len(columns) and columns[j].level == columns[i].level:
            j += 1
        span = sum(widths[i:j]) + 2 * (j - i - 1)
        top += "  " + f" {columns[i].level} ".center(span, "-")
        i = j
    lines = [top, f"{'category':<{name_width}}" + "".join(f"  {h:>{w}}" for h, w in zip(subs, widths))]
    for name, row, ci in zip(names, rows, cis):
        if name == "mean" and row is rows[-1]:
            lines.append("-" * len(lines[1]))
        cells = "".join(f"  {cell(row[c.key], ci.get(c.key)):>{w}}" for c, w in zip(columns, widths))
        if len(name) > name_width:  # a line (or several) of its own, then its numbers
            lines += textwrap.wrap(name, width) + [" " * name_width + cells]
        else:
            lines.append(f"{name:<{name_width}}" + cells)
    return lines


def text_table(results, columns, width=100):
    """The table for a terminal, at most ``width`` columns: metrics grouped under their level (``image``,
    ``pixel``, ``sample``, ``mean``); a category name too long for the width gets a line of its own, and
    columns that do not fit beside each other continue in a second block (and a third...) below, each with
    the category names again."""
    names = [r.category for r in results] + ["mean"]
    rows = [r.values for r in results] + [mean_row(results, columns)]
    cis = [_intervals(r) for r in results] + [mean_intervals(results, columns)]
    widths = [max([len(c.short) + (1 if c.official else 0), 6]
                  + [len(cell(row[c.key], ci.get(c.key))) for row, ci in zip(rows, cis)]) for c in columns]
    width = max(width, 70)
    name_width = max([8] + [len(n) for n in names if len(n) <= width - (widths and max(widths) + 2)])
    name_width = min(name_width, width // 3)  # columns keep at least two thirds of the width
    lines = []
    for block in _column_blocks(widths, width - name_width):
        if lines:
            lines.append("")
        lines += _text_block(names, rows, [columns[i] for i in block], [widths[i] for i in block], name_width,
                             width, cis)
    if any(c.official for c in columns):
        lines.append("(* a benchmark tool's own convention, named below)")
    if results and results[0].level is not None:
        lines += textwrap.wrap(ci_legend(results), width, break_on_hyphens=False)
    return "\n".join(lines)


def ci_legend(results):
    """The line under a table with intervals: what the ``\u00b1`` is."""
    return (f"(\u00b1: half the width of the {results[0].level * 100:g}% percentile interval of a stratified "
            f"image bootstrap, {results[0].resamples} resamples; the interval itself, [low, high], is in "
            "results.json)")


_MARKDOWN_SPECIALS = set("\\`*_{}[]<>()#+-.!|~")


def md(text):
    """A name as literal Markdown text (table cells included: ``|`` escaped)."""
    return "".join("\\" + ch if ch in _MARKDOWN_SPECIALS else ch for ch in text)


def _md_rows(results, columns, first="category"):
    heads = [c.header + (" (official)" if c.official else "") for c in columns]
    lines = [f"| {first} | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(heads)]
    rows = [(md(r.category), r.values, _intervals(r)) for r in results]
    rows.append(("**mean**", mean_row(results, columns), mean_intervals(results, columns)))
    for name, row, ci in rows:
        lines.append(f"| {name} | " + " | ".join(cell(row[c.key], ci.get(c.key)) for c in columns) + " |")
    return lines


def markdown_table(results, columns, title=None):
    """The table as Markdown; with per-defect results, a table per category after it. With intervals
    (``--ci``) a cell reads ``0.9870 \u00b10.0040`` (:func:`cell`), explained under the table."""
    lines = ([f"## {title}", ""] if title else []) + _md_rows(results, columns)
    if results and results[0].level is not None:
        lines += ["", ci_legend(results)]
    defect_columns = [c for c in columns if c.per_defect]
    for r in results:
        if r.defects:
            lines += ["", f"### {md(r.category)}: per defect type (each with every good image)", ""]
            rows = list(r.defects.values())
            lines += _md_rows(rows, defect_columns, "defect type")[:-1]
    return "\n".join(lines) + "\n"


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#", "$": r"\$", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def tex(text):
    return "".join(_TEX.get(ch, ch) for ch in text)


def latex_table(results, columns):
    heads = [tex(c.header) + ("$^*$" if c.official else "") for c in columns]
    lines = [r"\begin{tabular}{l" + "r" * len(heads) + "}", r"\toprule",
             "Category & " + " & ".join(heads) + r" \\", r"\midrule"]
    for r in results:
        ci = _intervals(r)
        lines.append(tex(r.category) + " & " + " & ".join(cell(r.values[c.key], ci.get(c.key), latex=True)
                                                         for c in columns) + r" \\")
    mean, ci = mean_row(results, columns), mean_intervals(results, columns)
    lines += [r"\midrule", "Mean & " + " & ".join(cell(mean[c.key], ci.get(c.key), latex=True) for c in columns)
              + r" \\", r"\bottomrule", r"\end{tabular}"]
    if any(c.official for c in columns):
        lines.append(r"% $^*$: a benchmark tool's own convention, beside the exact value")
    if results and results[0].level is not None:
        lines.append("% " + ci_legend(results).replace("\u00b1", "$\\pm$"))
    defect_columns = [c for c in columns if c.per_defect]
    for r in results:  # per defect type (each with every good image), a table per category, as in Markdown
        if r.defects:
            lines += ["", f"% {tex(r.category)}: per defect type (each with every good image)",
                      r"\begin{tabular}{l" + "r" * len(defect_columns) + "}", r"\toprule",
                      "Defect type & " + " & ".join(tex(c.header) + ("$^*$" if c.official else "")
                                                    for c in defect_columns) + r" \\", r"\midrule"]
            for d in r.defects.values():
                ci = _intervals(d)
                lines.append(tex(d.category) + " & " + " & ".join(cell(d.values[c.key], ci.get(c.key), latex=True)
                                                                  for c in defect_columns) + r" \\")
            lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def _num(v):
    return None if isinstance(v, float) and math.isnan(v) else v


def beside(columns):
    """For each column, the key of the exact column an official one is shown beside (the exact column
    before it: every protocol places its official columns so), or None."""
    out, last = [], None
    for c in columns:
        out.append(last if c.official else None)
        if not c.official:
            last = c.key
    return out


def to_json(protocol, results, columns, settings, files=(), notes=()):
    """``results.json`` (schema :data:`SCHEMA`, documented in ``docs/evaluate.md``)."""
    ci = bool(results) and results[0].level is not None

    def pair(interval):
        return None if interval is None else [interval[0], interval[1]]

    def block(r, cols):
        out = {"metrics": {c.key: _num(r.values[c.key]) for c in cols}}
        if ci:
            out["intervals"] = {c.key: pair(r.intervals.get(c.key)) for c in cols}
        out.update({"counts": r.counts, "notes": r.notes})
        return out

    categories = {}
    for r in results:
        entry = block(r, columns)
        if r.defects:
            entry["defects"] = {d: block(dr, [c for c in columns if c.per_defect]) for d, dr in r.defects.items()}
        categories[r.category] = entry
    return json.dumps({
        "refmetrics": __version__,
        "schema": SCHEMA,
        "protocol": {"name": protocol.name, "title": protocol.title, "official": protocol.official},
        "settings": settings,
        "columns": [{"key": c.key, "level": c.level, "official": c.official, "beside": b,
                     "per_defect": c.per_defect} for c, b in zip(columns, beside(columns))],
        "files": list(files),
        "notes": list(notes),
        "categories": categories,
        "mean": {k: _num(v) for k, v in mean_row(results, columns).items()},
        **({"mean_intervals": {k: pair(v) for k, v in mean_intervals(results, columns).items()}} if ci else {}),
    }, indent=2) + "\n"


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


def _value(values, *keys):
    for k in keys:
        if k in values:
            return values[k]
    return float("nan")


def _roc_band(result):
    """The image ROC's band for :func:`refmetrics.plotting.curves_figure` (``--ci``), labelled with its level
    and number of resamples: ``{0: (label, fpr, low, high)}``, or ``{}``."""
    band = result.curves.get("image roc band")
    if band is None:
        return {}
    return {0: (f"image, pointwise {result.level * 100:g}% band ({result.resamples} resamples)", *band)}


def write_figures(results, fpr_limits, directory):
    """The standard figures of each category (ROC, PR, PRO to each limit, image-score histograms): the names
    written, relative to ``directory``."""
    from .. import plotting

    written = []
    slugs = figure_slugs(r.category for r in results)
    for r in results:
        c = r.curves
        slug = slugs[r.category]
        figs = {}
        if "image roc" in c:
            auroc = _value(r.values, "image AUROC")
            figs["roc"] = plotting.curves_figure(
                [(f"image (AUROC {auroc:.4f})", *c["image roc"]),
                 *([(f"pixel (AUROC {_value(r.values, 'pixel AUROC'):.4f})", *c["pixel roc"])]
                   if "pixel roc" in c else [])],
                "False positive rate", "True positive rate", f"{r.category}: ROC", diagonal=True,
                bands=_roc_band(r))
            figs["pr"] = plotting.curves_figure(
                [(f"image (AP {_value(r.values, 'image AP'):.4f})", *c["image pr"]),
                 *([(f"pixel (AP {_value(r.values, 'pixel AP'):.4f})", *c["pixel pr"])] if "pixel pr" in c
                   else [])],
                "Recall", "Precision", f"{r.category}: precision-recall", step=True)
        if "scores" in c:
            figs["scores"] = plotting.score_histogram_figure(*c["scores"], f"{r.category}: image scores")
        if c.get("pro") is not None:
            for i, limit in enumerate(fpr_limits):
                key = "AUPRO" if "AUPRO" in r.values else f"AUPRO@{limit:g}"
                value = _value(r.values, key)
                kind = "pro" if i == 0 else f"pro{limit:g}"
                figs[kind] = plotting.pro_figure(*c["pro"], value, limit)
                figs[kind].axes[0].set_title(f"{r.category}: PRO to FPR {limit:g}, AUPRO = {value:.4f}")
        for kind, fig in figs.items():
            name = f"{slug}_{kind}.png"
            fig.savefig(directory / name, dpi=100)
            written.append(name)
    return written
