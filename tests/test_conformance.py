"""The conformance suite: golden values, adapters, attribution of causes, the command."""

import hashlib
import json
import math
import subprocess
import sys
from fractions import Fraction
from importlib import resources

import pytest

from refmetrics import conformance as C
from refmetrics.conformance.causes import reference
from refmetrics.conformance.runner import AGREES, DISAGREES, KNOWN


def test_manifest_entries_are_complete_and_match_the_files():
    from refmetrics.conformance.cases import manifest

    man = manifest()
    assert len(man["cases"]) >= 15
    fixtures = resources.files("refmetrics.conformance").joinpath("fixtures")
    for name, entry in man["cases"].items():
        data = fixtures.joinpath(entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], name
        assert entry["seed"] == man["seed"] and entry["probes"]
        assert set(entry["expected"]) == set(C.METRICS)
        for value in entry["expected"].values():
            if value is not None:
                assert float(Fraction(value["fraction"])) == value["float64"]


@pytest.mark.parametrize("case", [c.name for c in C.load_cases()])
def test_refmetrics_reproduces_every_golden_value(case):
    (c,) = C.load_cases([case])
    for metric in C.METRICS:
        got = reference(c, metric)
        exact = c.expected[metric]
        if exact is None:
            assert math.isnan(got), (case, metric)
        else:
            assert abs(Fraction(got) - exact) <= Fraction(1, 10**12), (case, metric, got, float(exact))


def _rows(report, impl, metric=None, case=None):
    return [r for r in report.rows if r.impl == impl and (metric is None or r.metric == metric)
            and (case is None or r.case == case)]


def test_published_algorithms_are_attributed():
    report = C.run(impls=["mvtec-ad", "mvtec-3d-ad", "aupro-200"], metrics=["aupro"])
    cases_2d = [c.name for c in C.load_cases() if c.spatial_dims == 2]
    for impl in ("mvtec-ad", "mvtec-3d-ad", "aupro-200"):
        assert sorted(r.case for r in _rows(report, impl)) == sorted(cases_2d)
    assert all(r.verdict == AGREES for r in _rows(report, "mvtec-ad"))
    heavy = _rows(report, "aupro-200", case="heavy_ties")[0]
    assert heavy.verdict == KNOWN and heavy.cause.key == "sampled_thresholds_fpr_rescaled"
    assert abs(heavy.diff) > 0.01
    assert all(r.verdict != DISAGREES for r in _rows(report, "mvtec-3d-ad"))
    # the 200-threshold routine breaks down (NaN) where too few sampled points fall below the limit:
    # a NaN where a value exists is never excused
    for r in _rows(report, "aupro-200"):
        assert (r.verdict == DISAGREES) == (math.isnan(r.value) and not math.isnan(r.reference))


def test_scikit_learn_auroc_agrees():
    pytest.importorskip("sklearn")
    report = C.run(impls=["scikit-learn"])
    auroc = _rows(report, "scikit-learn", "pixel_auroc") + _rows(report, "scikit-learn", "image_auroc")
    assert len(auroc) == 2 * len(C.load_cases())
    defined = [r for r in auroc if not math.isnan(r.reference)]
    assert defined and all(r.verdict == AGREES for r in defined)
    assert not report.unexplained


def test_every_installed_adapter_runs_on_every_case():
    report = C.run()
    n_cases = len(C.load_cases())
    for name, adapter in C.ADAPTERS.items():
        if adapter.missing():
            assert name in report.skipped
            continue
        covered = {r.case for r in _rows(report, name)}
        provided = 2 if name in ("mvtec-ad", "mvtec-3d-ad", "aupro-200") else 0
        assert len(covered) >= n_cases - provided - 1, name  # 3-D volumes: 2-D-only algorithms skip them


def test_anomalib_sigmoid_saturation_is_flagged():
    pytest.importorskip("anomalib")
    report = C.run(impls=["anomalib"], cases=["raw_scores_20"])
    for metric in ("pixel_auroc", "pixel_ap", "image_auroc"):
        (row,) = _rows(report, "anomalib", metric)
        assert row.verdict == KNOWN and row.cause.key == "sigmoid_float32", (metric, row.as_dict())
        assert abs(row.diff) > 0.1


def test_torchmetrics_runs_live():
    pytest.importorskip("torchmetrics")
    report = C.run(impls=["torchmetrics"], cases=["continuous", "raw_scores_20"])
    (row,) = _rows(report, "torchmetrics", "pixel_auroc", "raw_scores_20")
    assert row.verdict == KNOWN and row.cause.key == "sigmoid_float32"
    (row,) = _rows(report, "torchmetrics", "pixel_auroc", "continuous")
    assert row.verdict in (AGREES, KNOWN)


def test_user_implementations_plug_in(tmp_path):
    report = C.run(impls=["tests.conformance_plugin:rank_auroc"])
    assert report.rows and all(r.verdict == AGREES for r in report.rows)
    mine = C.from_function("mine", lambda metric, p, t: 0.5)
    report = C.run(impls=[mine], metrics=["pixel_auroc"], cases=["continuous"])
    assert [r.verdict for r in report.rows] == [DISAGREES]
    with pytest.raises(ValueError, match="package.module:function"):
        C.run(impls=["no-such-implementation"])
    with pytest.raises(ValueError, match="--metric"):
        C.run(impls=["refmetrics"], metrics=["auroc"])


def test_attribution_does_not_excuse_wrong_values():
    report = C.run(impls=["tests.conformance_plugin:slightly_off"])
    defined = [r for r in report.rows if not math.isnan(r.reference)]
    assert defined and all(r.verdict == DISAGREES for r in defined)
    report = C.run(impls=["tests.conformance_plugin:always_nan"])
    verdicts = [r.verdict for r in report.rows if not math.isnan(r.reference)]
    assert verdicts and all(v == DISAGREES for v in verdicts)


def test_adeval_runs_live_when_installed():
    pytest.importorskip("adeval")
    report = C.run(impls=["adeval"], cases=["continuous"])
    (row,) = _rows(report, "adeval", "pixel_auroc")
    assert row.verdict in (AGREES, KNOWN) and abs(row.diff) < 1e-3


def test_command_line(tmp_path):
    out_json, out_md = tmp_path / "r.json", tmp_path / "r.md"
    cmd = [sys.executable, "-m", "refmetrics", "conformance", "--impl", "refmetrics", "--impl",
           "tests.conformance_plugin:broken_auroc", "--metric", "pixel_auroc", "--json", str(out_json),
           "--markdown", str(out_md)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "DISAGREES" in proc.stdout and "unexplained disagreement" in proc.stdout
    assert "... refmetrics 0.1.0: continuous" in proc.stderr  # progress
    rows = json.loads(out_json.read_text())["rows"]
    assert {r["impl"] for r in rows} == {"refmetrics", "tests.conformance_plugin:broken_auroc"}
    assert "| refmetrics 0.1.0 | pixel_auroc |" in out_md.read_text()
    strict = subprocess.run(cmd + ["--strict", "--quiet"], capture_output=True, text=True)
    assert strict.returncode == 1 and strict.stderr == ""
    ok = subprocess.run(cmd[:6] + ["--metric", "pixel_auroc", "--strict", "--quiet"], capture_output=True,
                        text=True)
    assert ok.returncode == 0


# --- the report at a terminal: width, deviation sizes, n/a (issue 10, item 2.1) -------------------

_FULL = {}


def _full_report():
    """One run of every installed implementation on every case, shared by the report tests."""
    if "report" not in _FULL:
        _FULL["report"] = C.run()
    return _FULL["report"]


def _summary_block(text, impl, version, metric):
    """The verdicts of one implementation and metric in the text summary, continuation lines joined."""
    lines = text.splitlines()
    start = lines.index(f"  {impl} {version}")
    for i in range(start + 1, len(lines)):
        if lines[i].startswith(f"    {metric} "):
            block = [lines[i][4 + len(metric):]]
            for line in lines[i + 1:]:
                if not line.startswith(" " * 6):
                    break
                block.append(line)
            return " ".join(part.strip() for part in block)
    raise AssertionError(f"no summary line for {impl} {metric}")


def test_text_report_fits_the_terminal(monkeypatch):
    report = _full_report()
    installed = {name for name, adapter in C.ADAPTERS.items() if not adapter.missing()}
    assert {"refmetrics", "mvtec-ad", "mvtec-3d-ad", "aupro-200"} <= installed
    assert {r.impl for r in report.rows} == installed
    monkeypatch.setenv("COLUMNS", "100")
    assert C.report_width() == 100
    for details in (False, True):
        lines = C.text(report, details=details).splitlines()
        assert max(len(line) for line in lines) <= 100, [line for line in lines if len(line) > 100]
        assert max(len(line) for line in C.text(report, details=details, width=100).splitlines()) <= 100
    # narrower terminals down to the floor of 60 columns; below it, 60
    for columns, width in (("60", 60), ("30", 60)):
        monkeypatch.setenv("COLUMNS", columns)
        assert C.report_width() == width
        assert max(len(line) for line in C.text(report, details=True).splitlines()) <= width
    # a wider terminal is used: the prose runs longer than 100 columns, never longer than the terminal
    monkeypatch.setenv("COLUMNS", "160")
    widths = [len(line) for line in C.text(report).splitlines()]
    assert 100 < max(widths) <= 160
    # Markdown: prose wrapped at 100 columns (tables may be wider)
    md = C.markdown(report).splitlines()
    assert all(len(line) <= 100 for line in md if not line.startswith("|"))
    assert f"| refmetrics 0.1.0 | aupro | {len(report.cases)} agree |" in md


def test_command_line_report_is_100_columns_when_not_a_terminal(tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    cmd = [sys.executable, "-m", "refmetrics", "conformance", "--quiet", "--impl", "refmetrics", "--impl",
           "mvtec-3d-ad", "--impl", "aupro-200", "--metric", "aupro", "--details"]
    for extra in ({}, {"COLUMNS": "100"}):
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**env, **extra}, check=False)
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        assert max(len(line) for line in lines) <= 100
        assert max(len(line) for line in lines) > 80  # the width is used, not a narrow default


def test_deviation_sizes_are_shown_and_equal_the_json():
    report = _full_report()
    data = json.loads(C.to_json(report))
    text = C.text(report, width=100)
    rows = data["rows"]

    def finite(x):  # JSON writes no NaN and infinities as strings
        return isinstance(x, float) and math.isfinite(x)

    checked = 0
    for entry in data["summary"]:
        group = [r for r in rows if (r["impl"], r["metric"]) == (entry["impl"], entry["metric"])]
        block = _summary_block(text, entry["impl"], entry["version"], entry["metric"])
        for key, cause in entry["causes"].items():
            diffs = [r["diff"] for r in group if r["cause"] == key and finite(r["diff"])]
            assert cause["count"] == sum(r["cause"] == key for r in group)
            if not diffs:
                assert cause["largest_deviation"] is None
                continue
            largest = max(diffs, key=abs)
            assert cause["largest_deviation"] == largest
            assert f"{cause['count']} {key} (up to {largest:.2g}" in block, (entry, block)
            checked += 1
    assert checked >= 2  # at least the two rewritten published AUPROs
    # the example: the 200-threshold AUPRO is off by up to -0.25 (heavy_tailed: -0.2498)
    assert "sampled_thresholds_fpr_rescaled (up to -0.25)" in _summary_block(text, "aupro-200", "rewritten here",
                                                                              "aupro")
    # every detail row shows its own deviation, as the JSON has it
    lines = text.splitlines()
    shown = [r for r in rows if r["verdict"] != AGREES]
    heading, seen = None, 0
    body = lines[lines.index("  the results that do not agree (--details lists every result):") + 2:]
    for i, line in enumerate(body):
        if not line.strip() or line.startswith("  causes"):
            break
        if not line.startswith("    "):
            heading = line.strip()
            continue
        if line.startswith("      "):
            continue  # a note, or a verdict wrapped below its row
        fields = line.split()
        if len(fields) == 4:  # the row is too wide for its verdict: it is on the next line
            fields.append(body[i + 1].strip())
        case, _value, _exact, deviation, verdict = fields
        (row,) = [r for r in shown if f"{r['impl']} {r['version']}: {r['metric']}" == heading and r["case"] == case]
        assert deviation == (f"{row['diff']:.2g}" if finite(row["diff"]) else "nan"), (line, row)
        assert verdict == (row["cause"] or row["verdict"])
        seen += 1
    assert seen == len(shown)


def test_not_applicable_cases_are_counted_and_listed():
    report = _full_report()
    cases_3d = [c.name for c in C.load_cases() if c.spatial_dims != 2]
    n_2d = len(C.load_cases()) - len(cases_3d)
    assert cases_3d == ["volume_3d"]
    text = C.text(report, width=100)
    md = C.markdown(report)
    data = json.loads(C.to_json(report))
    for impl in ("mvtec-ad", "mvtec-3d-ad", "aupro-200"):
        na = {(r["metric"], r["case"]) for r in data["not_applicable"] if r["impl"] == impl}
        assert {case for metric, case in na if metric == "aupro"} == set(cases_3d)
        assert {metric for metric, _ in na} == set(C.METRICS)
        block = _summary_block(text, impl, "rewritten here", "aupro")
        assert block.endswith(f", {len(cases_3d)} n/a")
        verdicts = sum(int(part.split()[0]) for part in block.split(", ") if part.split()[0].isdigit())
        assert verdicts == n_2d + len(cases_3d)
        assert f"    {impl}: computes only aupro; not on volume_3d" in text.splitlines()
        assert f"- {impl}: computes only aupro; not on volume_3d" in md.splitlines()
    assert not [r for r in data["not_applicable"] if r["impl"] == "refmetrics"]
    assert "refmetrics:" not in text
    if "scikit-learn" not in report.skipped:
        assert ("    scikit-learn: computes only image_auroc, image_ap, pixel_auroc, pixel_ap, pixel_f1max"
                in text.splitlines())
    if "anomalib" not in report.skipped:
        assert "    anomalib: does not compute au_spro; aupro, pro, aupimo not on volume_3d" in text.splitlines()


def test_output_files_are_written_atomically(tmp_path, monkeypatch):
    import os

    from refmetrics.conformance import report as report_module

    target = tmp_path / "r.json"
    C.write_atomic(target, "first")
    umask = os.umask(0)
    os.umask(umask)
    assert target.read_text() == "first" and (target.stat().st_mode & 0o777) == 0o666 & ~umask
    target.chmod(0o640)
    C.write_atomic(target, "second")
    assert target.read_text() == "second" and (target.stat().st_mode & 0o777) == 0o640

    def fail(src, dst):
        raise OSError("injected failure")

    monkeypatch.setattr(report_module.os, "replace", fail)
    with pytest.raises(OSError, match="injected"):
        C.write_atomic(target, "third")
    assert target.read_text() == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]  # no temporary file left behind
    monkeypatch.undo()
    with pytest.raises(TypeError):  # a failure while writing: the old file stays whole
        C.write_atomic(target, b"bytes are not text")
    assert target.read_text() == "second" and sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


# ---------------------------------------------------------------------------
# PIMO / AUPIMO (issue 13, section 1)
# ---------------------------------------------------------------------------

def test_anomalib_aupimo_rows_agree_or_are_explained_by_its_sampled_thresholds():
    """anomalib 2.7's AUPIMO: every row agrees, is undefined where anomalib raises, or is reproduced
    (within 1e-9) by the model of its 300,000 sampled thresholds and nearest-index bounds."""
    pytest.importorskip("anomalib")
    from refmetrics.conformance.causes import _model_aupimo_sampled

    report = C.run(impls=["anomalib"], metrics=["aupimo"],
                   cases=["continuous", "heavy_ties", "quantised_16", "defect_free_images", "one_class"])
    rows = {r.case: r for r in report.rows}
    assert not report.unexplained
    assert rows["one_class"].verdict == KNOWN and rows["one_class"].cause.key == "undefined_policy"
    assert rows["defect_free_images"].verdict == AGREES
    for case in ("continuous", "heavy_ties", "quantised_16"):
        row = rows[case]
        assert row.verdict == KNOWN and row.cause.key == "aupimo_sampled_thresholds", case
        (c,) = C.load_cases([case])
        assert abs(_model_aupimo_sampled(c, "aupimo")[0] - row.value) <= 1e-12
    assert abs(rows["heavy_ties"].diff) > 0.05  # nearest-index bounds on a coarse shared-FPR staircase
