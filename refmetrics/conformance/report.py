"""Text, Markdown and JSON renderings of a conformance :class:`Report`."""

import json
import math
from collections import Counter, OrderedDict

from .causes import AGREE_TOL, CAUSES
from .runner import AGREES, DISAGREES, ERROR


def _fmt(x):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "nan"
    return f"{x:.10g}"


def summary(report):
    """``OrderedDict[(impl, version, metric)] -> Counter(verdict, cause keys)``."""
    out = OrderedDict()
    for r in report.rows:
        c = out.setdefault((r.impl, r.version, r.metric), Counter())
        c[r.verdict] += 1
        if r.cause:
            c["cause:" + r.cause.key] += 1
    return out


def _verdict_text(counter):
    parts = []
    if counter[AGREES]:
        parts.append(f"{counter[AGREES]} agree")
    causes = [(k[6:], v) for k, v in counter.items() if k.startswith("cause:")]
    for key, n in sorted(causes):
        parts.append(f"{n} {key}")
    if counter[DISAGREES]:
        parts.append(f"{counter[DISAGREES]} DISAGREE")
    if counter[ERROR]:
        parts.append(f"{counter[ERROR]} error")
    return ", ".join(parts)


def text(report, details=False):
    lines = [f"refmetrics conformance: {len(report.rows)} results in {report.seconds:.1f} s "
             f"(agrees = within {AGREE_TOL:g} of the exact value)"]
    for name, why in report.skipped.items():
        lines.append(f"  skipped {name}: {why}")
    lines.append("")
    groups = summary(report)
    wi = max([28] + [len(f"{i} {v}") for i, v, _ in groups])
    wm = max([18] + [len(m) for _, _, m in groups])
    lines.append(f"  {'implementation':{wi}s} {'metric':{wm}s} verdicts over the cases")
    for (impl, version, metric), c in groups.items():
        lines.append(f"  {impl + ' ' + str(version):{wi}s} {metric:{wm}s} {_verdict_text(c)}")
    shown = report.rows if details else [r for r in report.rows if r.verdict != AGREES]
    if shown:
        wr = max([14] + [len(r.impl) for r in shown])
        lines.append("")
        lines.append(f"  {'implementation':{wr}s} {'metric':{wm}s} {'case':24s} {'value':>14s} {'exact':>14s} "
                     f"{'difference':>11s}  verdict")
        for r in shown:
            verdict = r.verdict + (f" ({r.cause.key})" if r.cause else "") + (f" [{r.note}]" if r.note else "")
            lines.append(f"  {r.impl:{wr}s} {r.metric:{wm}s} {r.case:24s} {_fmt(r.value):>14s} "
                         f"{_fmt(r.reference):>14s} {_fmt(r.diff):>11s}  {verdict}")
    used = sorted({r.cause.key for r in report.rows if r.cause})
    if used:
        lines.append("")
        lines.append("  causes:")
        for cause in CAUSES:
            if cause.key in used:
                lines.append(f"    {cause.key}: {cause.sentence}")
    n_bad = len(report.unexplained)
    lines.append("")
    lines.append(f"  {n_bad} unexplained disagreement{'s' if n_bad != 1 else ''}")
    return "\n".join(lines)


def markdown(report):
    lines = ["# refmetrics conformance report", "",
             f"Agrees: within {AGREE_TOL:g} of the exact value (fractions in the fixture manifest).", ""]
    if report.skipped:
        lines += ["Skipped: " + "; ".join(f"{k} ({v})" for k, v in report.skipped.items()), ""]
    lines += ["| implementation | metric | verdicts |", "|---|---|---|"]
    for (impl, version, metric), c in summary(report).items():
        lines.append(f"| {impl} {version} | {metric} | {_verdict_text(c)} |")
    lines += ["", "| implementation | metric | case | value | exact | difference | verdict |",
              "|---|---|---|---:|---:|---:|---|"]
    for r in report.rows:
        verdict = r.verdict + (f" ({r.cause.key})" if r.cause else "")
        lines.append(f"| {r.impl} | {r.metric} | {r.case} | {_fmt(r.value)} | {_fmt(r.reference)} | "
                     f"{_fmt(r.diff)} | {verdict} |")
    lines += ["", "## Causes", ""]
    lines += [f"- **{c.key}** ({c.title}): {c.sentence}" for c in CAUSES]
    return "\n".join(lines) + "\n"


def to_json(report):
    return json.dumps({"seconds": report.seconds, "tolerance": AGREE_TOL, "skipped": report.skipped,
                       "rows": [r.as_dict() for r in report.rows],
                       "causes": {c.key: c.sentence for c in CAUSES}}, indent=1)
