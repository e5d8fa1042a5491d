"""Text, Markdown and JSON renderings of a conformance :class:`Report`, and the safe writing of files.

The text report fits the terminal: :func:`report_width` columns (the terminal's, or ``COLUMNS``; 100 when
the output is not a terminal; never fewer than 60). Prose is wrapped, and a table row too wide for the
width has its verdict, then its numbers, stacked below it. The Markdown report keeps one table row per
result (tables may be wider) and wraps its prose at 100 columns. The JSON is the full record. A finding (a
defect of one implementation) shows as ``finding:NAME`` and is listed at the end with the line that
reproduces it.
"""

import json
import math
import os
import shutil
import tempfile
import textwrap
from collections import OrderedDict

from .cases import METRICS
from .causes import AGREE_TOL, CAUSES
from .findings import FINDINGS
from .runner import AGREES, DISAGREES, ERROR, FINDING, KNOWN

MIN_WIDTH = 60
DEFAULT_WIDTH = 100
MARKDOWN_WIDTH = 100


def report_width():
    """Columns for the text report: the terminal's (``COLUMNS`` first), 100 if not a terminal, at least 60."""
    return max(MIN_WIDTH, shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns)


def _fmt(x):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "nan"
    return f"{x:.10g}"


def _size(x):
    """A deviation as the report shows it: two significant digits, signed."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "nan"
    return f"{x:.2g}"


def _finite(x):
    return isinstance(x, float) and math.isfinite(x)


def largest_deviation(rows):
    """The signed deviation of largest magnitude among ``rows`` (the first of equal ones), or None."""
    diffs = [r.diff for r in rows if _finite(r.diff)]
    return max(diffs, key=abs) if diffs else None


def _metric_order(metric):
    return METRICS.index(metric) if metric in METRICS else len(METRICS)


def _groups(report):
    """``OrderedDict[(impl, version, metric)] -> {"rows": [...], "n/a": [case, ...]}``.

    Implementations in run order, metrics in the fixtures' order. A metric an implementation applies to
    on no case has no group (see :func:`_not_applicable`).
    """
    order = {impl: i for i, impl in enumerate(report.impls)}
    keys = {(r.impl, r.version, r.metric) for r in report.rows}
    keys = sorted(keys, key=lambda k: (order.get((k[0], k[1]), len(order)), _metric_order(k[2])))
    out = OrderedDict((k, {"rows": [], "n/a": []}) for k in keys)
    for r in report.rows:
        out[(r.impl, r.version, r.metric)]["rows"].append(r)
    for r in report.not_applicable:
        if (r.impl, r.version, r.metric) in out:
            out[(r.impl, r.version, r.metric)]["n/a"].append(r.case)
    return out


def _what(rows):
    """What a set of rows deviates by: the largest deviation, or (where there is no exact value to
    deviate from) the values the implementation gives, or that it raises."""
    parts = []
    d = largest_deviation(rows)
    if d is not None:
        parts.append(f"up to {_size(d)}")
    others = [r for r in rows if not _finite(r.diff)]
    raised = [r for r in others if r.note and r.note.startswith("raised")]
    values = sorted({_size(r.value + 0.0) for r in others if r not in raised},  # + 0.0: -0.0 reads as 0
                    key=lambda v: (v == "nan", float(v) if v != "nan" else 0.0))
    if values:
        parts.append("gives " + ", ".join(values[:3]) + (", ..." if len(values) > 3 else ""))
    if raised:
        parts.append("raises")
    return "; ".join(parts)


def _verdict_items(group):
    rows = group["rows"]
    items = []
    n_agree = sum(r.verdict == AGREES for r in rows)
    if n_agree:
        items.append(f"{n_agree} agree")
    for cause in CAUSES:
        caused = [r for r in rows if r.cause is not None and r.cause.key == cause.key]
        if caused:
            items.append(f"{len(caused)} {cause.key} ({_what(caused)})")
    for finding in FINDINGS:
        found = [r for r in rows if r.verdict == FINDING and r.cause.key == finding.key]
        if found:
            items.append(f"{len(found)} {_verdict(found[0])} ({_what(found)})")
    bad = [r for r in rows if r.verdict == DISAGREES]
    if bad:
        items.append(f"{len(bad)} DISAGREE ({_what(bad)})")
    n_error = sum(r.verdict == ERROR for r in rows)
    if n_error:
        items.append(f"{n_error} error")
    if group["n/a"]:
        items.append(f"{len(group['n/a'])} n/a")
    return items


def _not_applicable(report):
    """``[(impl, phrase), ...]``: per implementation, the metrics it computes on no case and the cases
    that other metrics do not apply to, in a few words (the JSON lists every pair)."""
    computed = {}
    for r in report.rows:
        computed.setdefault(r.impl, set()).add(r.metric)
    by_impl = OrderedDict()
    for r in report.not_applicable:
        by_impl.setdefault(r.impl, OrderedDict()).setdefault(r.metric, []).append(r.case)
    out = []
    for impl, metrics in by_impl.items():
        done = sorted(computed.get(impl, ()), key=_metric_order)
        never = sorted((m for m in metrics if m not in done), key=_metric_order)
        phrases = []
        if never:
            phrases.append(f"computes only {', '.join(done)}" if done and len(done) < len(never)
                           else f"does not compute {', '.join(never)}")
        by_cases = OrderedDict()
        for metric in sorted((m for m in metrics if m in done), key=_metric_order):
            by_cases.setdefault(", ".join(metrics[metric]), []).append(metric)
        for cases_text, names in by_cases.items():
            if names != done:
                phrases.append(f"{', '.join(names)} not on {cases_text}")
            elif never:  # every metric it computes leaves out the same cases
                phrases.append(f"{'not' if phrases[0].startswith('computes') else 'the others not'} on {cases_text}")
            else:
                phrases.append(f"no metric on {cases_text}")
        out.append((impl, "; ".join(phrases)))
    return out


def _wrap(text, width, first, rest):
    return textwrap.wrap(text, width=width, initial_indent=first, subsequent_indent=rest,
                         break_on_hyphens=False) or [first.rstrip()]


def _wrap_items(items, width, first, rest):
    """``items`` joined by commas, line breaks only between items unless one is longer than a line."""
    out, line, fresh = [], first, True
    for i, item in enumerate(items):
        piece = item + ("," if i + 1 < len(items) else "")
        candidate = line + ("" if fresh else " ") + piece
        if len(candidate) <= width:
            line, fresh = candidate, False
            continue
        if not fresh:
            out.append(line)
            line, fresh = rest, True
            if len(line + piece) <= width:
                line, fresh = line + piece, False
                continue
        wrapped = _wrap(piece, width, line, rest)
        out.extend(wrapped[:-1])
        line, fresh = wrapped[-1], False
    out.append(line if not fresh else line.rstrip())
    return out


def _verdict(r):
    if r.verdict == KNOWN and r.cause is not None:
        return r.cause.key
    if r.verdict == FINDING:
        return f"finding:{r.cause.key}"
    return r.verdict


def _findings_used(report):
    used = {r.cause.key for r in report.findings}
    return [f for f in FINDINGS if f.key in used]


def _detail_lines(rows, width):
    """The detail table: rows under a heading per implementation and metric. Where a row is wider than
    ``width``, its verdict goes on the next line, or (narrower still) its case and verdict on one line
    and its numbers below."""
    wc = max([4] + [len(r.case) for r in rows])
    wv = max([5] + [len(_fmt(r.value)) for r in rows])
    we = max([5] + [len(_fmt(r.reference)) for r in rows])
    wd = max([9] + [len(_size(r.diff)) for r in rows])

    def numbers(a, b, c):
        return f"{a:>{wv}s}  {b:>{we}s}  {c:>{wd}s}"

    head = numbers("value", "exact", "deviation")
    wide = 4 + wc + 2 + len(head) <= width
    if wide:
        lines = [f"    {'case':{wc}s}  {head}"]
        if len(lines[0]) + len("  verdict") <= width:
            lines[0] += "  verdict"
    else:
        lines = ["    case  verdict", f"      {head}"]
    heading = None
    for r in rows:
        if (r.impl, r.version, r.metric) != heading:
            heading = (r.impl, r.version, r.metric)
            lines += _wrap(f"{r.impl} {r.version}: {r.metric}", width, "  ", "      ")
        verdict = _verdict(r)
        nums = numbers(_fmt(r.value), _fmt(r.reference), _size(r.diff))
        if not wide:
            lines += _wrap(f"{r.case}  {verdict}", width, "    ", "      ")
            lines.append(f"      {nums}")
        elif 4 + wc + 2 + len(nums) + 2 + len(verdict) <= width:
            lines.append(f"    {r.case:{wc}s}  {nums}  {verdict}")
        else:
            lines.append(f"    {r.case:{wc}s}  {nums}")
            lines += _wrap(verdict, width, "      ", "      ")
        if r.note:
            lines += _wrap(r.note, width, "      ", "      ")
    return lines


def text(report, details=False, width=None):
    """The report as text, ``width`` columns wide (default :func:`report_width`)."""
    width = max(MIN_WIDTH, int(width)) if width is not None else report_width()
    lines = _wrap(f"refmetrics conformance: {len(report.rows)} results on {len(report.cases)} cases in "
                  f"{report.seconds:.1f} s (agrees = within {AGREE_TOL:g} of the exact value)", width, "", "  ")
    for name, why in report.skipped.items():
        lines += _wrap(f"skipped {name}: {why}", width, "  ", "    ")
    groups = _groups(report)
    if groups:
        lines.append("")
        lines += _wrap("verdicts per implementation and metric; a known deviation is named by its cause, with "
                       "the largest deviation from the exact value; finding:NAME is a defect of the "
                       "implementation, listed below with its reproduction (n/a: the implementation does not "
                       "apply to the case)", width, "  ", "  ")
        wm = max(len(metric) for _, _, metric in groups)
        current = None
        for (impl, version, metric), group in groups.items():
            if (impl, version) != current:
                current = (impl, version)
                lines += _wrap(f"{impl} {version}", width, "  ", "      ")
            lines += _wrap_items(_verdict_items(group), width, f"    {metric:{wm}s}  ", " " * (6 + wm))
    na = _not_applicable(report)
    if na:
        lines.append("")
        lines += _wrap("not applicable (the implementation raises NotImplementedError):", width, "  ", "  ")
        for impl, phrase in na:
            lines += _wrap(f"{impl}: {phrase}", width, "    ", "      ")
    shown = [r for group in groups.values() for r in group["rows"] if details or r.verdict != AGREES]
    if shown:
        lines.append("")
        lines += _wrap("every result, by implementation and metric:" if details else
                       "the results that do not agree (--details lists every result):", width, "  ", "  ")
        lines += _detail_lines(shown, width)
    used = {r.cause.key for r in report.rows if r.cause}
    if used:
        lines.append("")
        lines.append("  causes:")
        for cause in CAUSES:
            if cause.key in used:
                lines += _wrap(f"{cause.key}: {cause.sentence}", width, "    ", "      ")
    findings = _findings_used(report)
    if findings:
        lines.append("")
        lines += _wrap("findings (defects of one implementation, not conventions; each with a line that "
                       "reproduces it):", width, "  ", "  ")
        for finding in findings:
            lines += _wrap(f"finding:{finding.key} ({', '.join(finding.impls)}): {finding.sentence}", width,
                           "    ", "      ")
            lines += _wrap(f"reproduce: {finding.reproduction}", width, "      ", "        ")
    n_bad = len(report.unexplained)
    n_found = len(report.findings)
    lines.append("")
    lines.append(f"  {n_bad} unexplained disagreement{'s' if n_bad != 1 else ''}; "
                 f"{n_found} finding{'s' if n_found != 1 else ''}")
    return "\n".join(lines)


def _cell(value):
    return str(value).replace("\\", "\\\\").replace("|", "\\|")


def markdown(report):
    """The report as Markdown: one table row per result, prose wrapped at 100 columns."""

    def fill(paragraph, rest=""):
        return _wrap(paragraph, MARKDOWN_WIDTH, "", rest)

    lines = ["# refmetrics conformance report", ""]
    lines += fill(f"{len(report.rows)} results on {len(report.cases)} cases. Agrees: within {AGREE_TOL:g} of "
                  f"the exact value (fractions in the fixture manifest). A known deviation is named by its cause, "
                  f"with the largest deviation from the exact value; finding:NAME is a defect of the "
                  f"implementation (see Findings); n/a: the implementation does not apply to the case. "
                  f"{len(report.unexplained)} unexplained, {len(report.findings)} findings.") + [""]
    if report.skipped:
        lines += ["Skipped:", ""]
        for k, v in report.skipped.items():
            lines += fill(f"- {k}: {v}", "  ")
        lines.append("")
    lines += ["| implementation | metric | verdicts |", "|---|---|---|"]
    groups = _groups(report)
    for (impl, version, metric), group in groups.items():
        lines.append(f"| {_cell(impl)} {_cell(version)} | {metric} | {_cell(', '.join(_verdict_items(group)))} |")
    na = _not_applicable(report)
    if na:
        lines += ["", "Not applicable (the implementation raises NotImplementedError):", ""]
        for impl, phrase in na:
            lines += fill(f"- {_cell(impl)}: {phrase}", "  ")
    lines += ["", "| implementation | metric | case | value | exact | deviation | verdict |",
              "|---|---|---|---:|---:|---:|---|"]
    for r in (row for group in groups.values() for row in group["rows"]):
        verdict = r.verdict + (f" ({r.cause.key})" if r.cause else "") + (f" [{r.note}]" if r.note else "")
        if r.verdict == FINDING:
            verdict = f"**{verdict}**"
        lines.append(f"| {_cell(r.impl)} | {r.metric} | {r.case} | {_fmt(r.value)} | {_fmt(r.reference)} | "
                     f"{_fmt(r.diff)} | {_cell(verdict)} |")
    lines += ["", "## Causes", ""]
    for c in CAUSES:
        lines += fill(f"- **{c.key}** ({c.title}): {c.sentence}", "  ")
    lines += ["", "## Findings", ""]
    lines += fill("Defects of one implementation (not conventions): the verdict `finding`, with a line that "
                  "reproduces each with the implementation alone.") + [""]
    lines += ["| finding | implementations | what | reproduction |", "|---|---|---|---|"]
    for f in FINDINGS:
        lines.append(f"| **{f.key}** | {_cell(', '.join(f.impls))} | {_cell(f.sentence)} | "
                     f"`{_cell(f.reproduction)}` |")
    return "\n".join(lines) + "\n"


def _json_summary(report):
    out = []
    for (impl, version, metric), group in _groups(report).items():
        rows = group["rows"]
        causes = OrderedDict()
        for cause in CAUSES:
            caused = [r for r in rows if r.cause is not None and r.cause.key == cause.key]
            if caused:
                causes[cause.key] = {"count": len(caused), "largest_deviation": largest_deviation(caused)}
        findings = OrderedDict()
        for finding in FINDINGS:
            found = [r for r in rows if r.verdict == FINDING and r.cause.key == finding.key]
            if found:
                findings[finding.key] = {"count": len(found), "largest_deviation": largest_deviation(found)}
        out.append({"impl": impl, "version": version, "metric": metric,
                    "agree": sum(r.verdict == AGREES for r in rows), "causes": causes, "findings": findings,
                    "disagree": sum(r.verdict == DISAGREES for r in rows),
                    "error": sum(r.verdict == ERROR for r in rows), "not_applicable": list(group["n/a"])})
    return out


def to_json(report):
    """The full record: every row, the n/a pairs, the summary and the causes."""
    return json.dumps({"seconds": report.seconds, "tolerance": AGREE_TOL, "skipped": report.skipped,
                       "cases": report.cases,
                       "rows": [r.as_dict() for r in report.rows],
                       "not_applicable": [{k: getattr(r, k) for k in ("impl", "version", "metric", "case")}
                                          for r in report.not_applicable],
                       "summary": _json_summary(report),
                       "causes": {c.key: c.sentence for c in CAUSES},
                       "findings": {f.key: {"impls": list(f.impls), "title": f.title, "sentence": f.sentence,
                                            "reproduction": f.reproduction} for f in FINDINGS},
                       "unexplained": len(report.unexplained), "n_findings": len(report.findings)}, indent=1)


def check_output_file(option, path):
    """Raise ValueError unless ``path`` can be written as a file: it is not a directory and its directory
    exists and is writable. Run before the work, so a bad path costs nothing."""
    path = os.fspath(path)
    expected = f"{option}: expected a file path in an existing, writable directory, received {path!r}"
    if not path:
        raise ValueError(f"{expected} (an empty path)")
    if path.endswith(("/", os.sep)) or os.path.isdir(path):
        raise ValueError(f"{expected} (a directory)")
    parent = os.path.dirname(os.path.realpath(path)) or "."
    if not os.path.isdir(parent):
        why = "is not a directory" if os.path.exists(parent) else "does not exist"
        raise ValueError(f"{expected} ({parent} {why})")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{expected} ({parent} is not writable)")


def write_atomic(path, content):
    """Write ``content`` to ``path`` through a temporary file in the same directory and ``os.replace``:
    readers see the old file or the whole new one, never part of it; a failure leaves no temporary file."""
    target = os.path.realpath(os.fspath(path))  # through a symlink: the link stays, its target is replaced
    directory, name = os.path.split(target)
    if os.path.exists(target):
        mode = os.stat(target).st_mode & 0o7777
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
