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

SCHEMA = 2  # results.json's schema version (docs/evaluate.md); 1 was the schema before --protocol


def mean_row(results, columns):
    """The mean over categories of each column (NaN if any category's value is NaN)."""
    return {c.key: float(np.mean([r.values[c.key] for r in results])) for c in columns}


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


def _text_block(names, rows, columns, widths, name_width, width):
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
    for name, row in zip(names, rows):
        if name == "mean" and row is rows[-1]:
            lines.append("-" * len(lines[1]))
        cells = "".join(f"  {row[c.key]:>{w}.4f}" for c, w in zip(columns, widths))
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
    widths = [max(len(c.short) + (1 if c.official else 0), 6) for c in columns]
    width = max(width, 70)
    name_width = max([8] + [len(n) for n in names if len(n) <= width - (widths and max(widths) + 2)])
    name_width = min(name_width, width // 3)  # columns keep at least two thirds of the width
    lines = []
    for block in _column_blocks(widths, width - name_width):
        if lines:
            lines.append("")
        lines += _text_block(names, rows, [columns[i] for i in block], [widths[i] for i in block], name_width,
                             width)
    if any(c.official for c in columns):
        lines.append("(* a benchmark tool's own convention, named below)")
    return "\n".join(lines)


_MARKDOWN_SPECIALS = set("\\`*_{}[]<>()#+-.!|~")


def md(text):
    """A name as literal Markdown text (table cells included: ``|`` escaped)."""
    return "".join("\\" + ch if ch in _MARKDOWN_SPECIALS else ch for ch in text)


def _md_rows(results, columns, first="category"):
    heads = [c.header + (" (official)" if c.official else "") for c in columns]
    lines = [f"| {first} | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(heads)]
    for name, row in [(md(r.category), r.values) for r in results] + [("**mean**", mean_row(results, columns))]:
        lines.append(f"| {name} | " + " | ".join(f"{row[c.key]:.4f}" for c in columns) + " |")
    return lines


def markdown_table(results, columns, title=None):
    """The table as Markdown; with per-defect results, a table per category after it."""
    lines = ([f"## {title}", ""] if title else []) + _md_rows(results, columns)
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
        lines.append(tex(r.category) + " & " + " & ".join(f"{r.values[c.key]:.4f}" for c in columns) + r" \\")
    mean = mean_row(results, columns)
    lines += [r"\midrule", "Mean & " + " & ".join(f"{mean[c.key]:.4f}" for c in columns) + r" \\",
              r"\bottomrule", r"\end{tabular}"]
    if any(c.official for c in columns):
        lines.append(r"% $^*$: a benchmark tool's own convention, beside the exact value")
    defect_columns = [c for c in columns if c.per_defect]
    for r in results:  # per defect type (each with every good image), a table per category, as in Markdown
        if r.defects:
            lines += ["", f"% {tex(r.category)}: per defect type (each with every good image)",
                      r"\begin{tabular}{l" + "r" * len(defect_columns) + "}", r"\toprule",
                      "Defect type & " + " & ".join(tex(c.header) + ("$^*$" if c.official else "")
                                                    for c in defect_columns) + r" \\", r"\midrule"]
            for d in r.defects.values():
                lines.append(tex(d.category) + " & " + " & ".join(f"{d.values[c.key]:.4f}" for c in defect_columns)
                             + r" \\")
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
    def block(r, cols):
        out = {"metrics": {c.key: _num(r.values[c.key]) for c in cols}, "counts": r.counts, "notes": r.notes}
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
                "False positive rate", "True positive rate", f"{r.category}: ROC", diagonal=True)
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
