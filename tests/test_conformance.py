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
from refmetrics.conformance.runner import AGREES, DISAGREES, FINDING, KNOWN


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
    # a NaN where a value exists is never excused as a convention; it is a named finding
    for r in _rows(report, "aupro-200"):
        assert (r.verdict == FINDING) == (math.isnan(r.value) and not math.isnan(r.reference))
        if r.verdict == FINDING:
            assert r.cause.key == "rescaled_aupro_degenerate"


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
        expected = f"finding:{row['cause']}" if row["verdict"] == FINDING else (row["cause"] or row["verdict"])
        assert verdict == expected, (line, row)
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


# =====================================================================================================
# Issue 13, section 6: conformance with zero unexplained rows. Every ADEval convention, the anomalib 2.7
# defects, and the rewritten published routines (VisA, ADer, anomalib <= 2.2) are a cause whose model
# reproduces the implementation's number, or a finding (a named defect with a one-line reproduction).
# =====================================================================================================

import numpy as np

from refmetrics.conformance import adapters as conformance_adapters
from refmetrics.conformance import causes as conformance_causes
from refmetrics.conformance import published as conformance_published
from refmetrics.conformance.cases import METRICS as ALL_METRICS
from refmetrics.conformance.cases import Case
from refmetrics.conformance.findings import FINDING_BY_KEY, FINDINGS


def _case(name):
    (case,) = C.load_cases([name])
    return case


def _made_case(maps, masks):
    """A case that is not in the manifest (its expected values are never read by the models used here)."""
    entry = {"probes": "built in a test", "seed": 0, "expected": {m: None for m in ALL_METRICS}}
    return Case("made", entry, np.asarray(maps), np.asarray(masks, np.uint8), np.array([], int))


def test_adeval_model_on_a_hand_worked_case():
    # one normal pixel at 0, one defect pixel at 1: a perfect detector, exact AP 1 and AUROC 1. ADEval's
    # edges run from 0 to 1; the defect pixel is in the last bin at every edge but the first, so recall
    # is 1 at every edge: its PR curve never leaves recall 1 and its trapezoid area is 0. Its ROC points
    # are (1, 1) and (0, 1): area 1.
    case = _made_case([[[0.0, 1.0]]], [[[0, 1]]])
    assert conformance_causes.adeval_model(case, "pixel_ap") == 0.0
    assert conformance_causes.adeval_model(case, "pixel_auroc") == 1.0
    edges = conformance_causes.adeval_edges(0.25, 0.75, 4)
    assert edges.tolist() == [0.25, 0.375, 0.5, 0.625, 0.75]
    # float64 scores closer than float32 collapse ADEval's float32 edges to one value
    assert np.unique(conformance_causes.adeval_edges(1.0, 1.0 + 1e-12, 1000)).size == 1
    pytest.importorskip("adeval")
    assert conformance_adapters._adeval("pixel_ap", case) == 0.0
    assert conformance_adapters._adeval("pixel_auroc", case) == 1.0


def test_adeval_model_predicts_its_errors_and_nan_without_adeval():
    Raises = conformance_causes.Raises
    bounds = conformance_causes.adeval_model(_case("binary_maps"), "image_auroc")  # every image score is 1
    assert isinstance(bounds, Raises) and bounds.name == "AssertionError"
    collapsed = conformance_causes.adeval_model(_case("float64_close"), "aupro")
    assert isinstance(collapsed, Raises) and collapsed.name == "IndexError"
    assert math.isnan(conformance_causes.adeval_model(_case("anomalib_aupr_example"), "aupro"))
    assert _case("anomalib_aupr_example").expected["aupro"] == 0  # the exact value exists: 0


@pytest.mark.parametrize("adapter,nstrips,case,metric", [
    ("adeval", 1000, "continuous", "image_ap"),
    ("adeval", 1000, "continuous", "pixel_auroc"),
    ("adeval", 1000, "continuous", "pixel_ap"),
    ("adeval", 1000, "continuous", "aupro"),
    ("adeval", 1000, "float64_close", "pixel_auroc"),  # collapsed float32 edges: 0 where the exact is 0.86
    ("ader-adeval", 50, "heavy_tailed", "pixel_auroc"),
    ("ader-adeval", 50, "heavy_tailed", "pixel_ap"),
    ("ader-adeval", 50, "heavy_tailed", "aupro"),
])
def test_adeval_binned_curve_reproduces_adeval(adapter, nstrips, case, metric):
    pytest.importorskip("adeval")
    c = _case(case)
    live = C.ADAPTERS[adapter](metric, c)
    assert abs(live - c.expected_float(metric)) > 1e-5  # a difference to explain
    assert abs(conformance_causes.adeval_model(c, metric, nstrips) - live) <= 1e-12
    report = C.run(impls=[adapter], metrics=[metric], cases=[case])
    (row,) = report.rows
    assert row.verdict == KNOWN and row.cause.key == "adeval_binned_curve"


def test_adeval_errors_are_a_cause_or_findings():
    pytest.importorskip("adeval")
    report = C.run(impls=["adeval"], metrics=["image_auroc", "aupro"],
                   cases=["binary_maps", "float64_close", "anomalib_aupr_example"])
    (row,) = _rows(report, "adeval", "image_auroc", "binary_maps")
    assert row.verdict == KNOWN and row.cause.key == "adeval_equal_bounds" and "AssertionError" in row.note
    (row,) = _rows(report, "adeval", "aupro", "float64_close")
    assert row.verdict == FINDING and row.cause.key == "adeval_aupro_index_error" and "IndexError" in row.note
    (row,) = _rows(report, "adeval", "aupro", "anomalib_aupr_example")
    assert row.verdict == FINDING and row.cause.key == "adeval_aupro_nan" and math.isnan(row.value)
    assert not report.unexplained and len(report.findings) == 2


def test_findings_belong_to_their_implementations():
    # the same NaN from another implementation is no ADEval finding: it stays unexplained
    nan = C.from_function("mine", lambda metric, p, t: float("nan"))
    report = C.run(impls=[nan], metrics=["aupro"], cases=["anomalib_aupr_example"])
    assert [r.verdict for r in report.rows] == [DISAGREES]
    # a finding that predicts an error explains that error only, not a value
    finding = FINDING_BY_KEY["anomalib_pro_float64"]
    heavy = _case("heavy_ties")  # float64 maps
    assert finding.explains(heavy, "pro", float("nan"), error="TypeError")
    assert not finding.explains(heavy, "pro", float("nan"), error="ValueError")
    assert not finding.explains(heavy, "pro", 0.5)


def test_anomalib_findings():
    pytest.importorskip("anomalib")
    report = C.run(impls=["anomalib"], metrics=["pro", "aupro"], cases=["heavy_ties", "anomalib_auroc_example"])
    (row,) = _rows(report, "anomalib", "pro", "heavy_ties")
    assert row.verdict == FINDING and row.cause.key == "anomalib_pro_float64" and "TypeError" in row.note
    for metric, value in (("pro", 1.0), ("aupro", 0.0)):
        (row,) = _rows(report, "anomalib", metric, "anomalib_auroc_example")
        assert row.verdict == FINDING and row.cause.key == "anomalib_full_mask_region_lost"
        assert row.value == value and row.reference == 0.5


def test_anomalib_full_mask_model_matches_anomalib_when_some_regions_survive():
    pytest.importorskip("anomalib")
    rng = np.random.default_rng(20261128)
    masks = np.zeros((3, 4, 4), np.uint8)
    masks[0] = 1                 # all defect: anomalib drops this region
    masks[1, 1:3, 1:3] = 1       # kept
    masks[2, 0, 3] = 1           # kept
    maps = (rng.random((3, 4, 4)) + 0.6 * masks).astype(np.float32)
    maps[0] = rng.random((4, 4)) * 0.4  # the lost region scores low: its overlap at 0.5 is 0
    case = _made_case(maps, masks)
    model = FINDING_BY_KEY["anomalib_full_mask_region_lost"].model
    for metric in ("pro", "aupro"):
        live = conformance_adapters._anomalib(metric, case)
        exact = conformance_causes.reference(case, metric)
        assert abs(live - exact) > 1e-3, metric  # the lost region changes the value
        (predicted,) = model(case, metric)
        assert abs(live - predicted) <= conformance_causes.F32_ULPS, (metric, live, predicted)


def test_visa_pixel_auroc_is_reproduced_by_its_cause():
    case = _case("continuous")
    value = conformance_published.visa_pixel_auroc(case.maps, case.masks)
    assert value == round(value, 4) and abs(value - case.expected_float("pixel_auroc")) > 1e-3
    (modelled,) = conformance_causes._model_visa(case, "pixel_auroc")
    assert modelled == value
    thresholds = conformance_published.visa_thresholds(case.maps, case.masks)
    assert thresholds.size == 202 and np.all(np.diff(thresholds) <= 0)
    # the 1e-8 widening is done in the maps' dtype: for these float32 maps it rounds away at the top
    assert thresholds[0] == case.maps.max()
    report = C.run(impls=["visa"], cases=["continuous", "one_class"])
    (row,) = _rows(report, "visa", "pixel_auroc", "continuous")
    assert row.verdict == KNOWN and row.cause.key == "visa_sampled_thresholds"
    (row,) = _rows(report, "visa", "pixel_auroc", "one_class")  # no defect pixel: undefined, it raises
    assert row.verdict == KNOWN and row.cause.key == "undefined_policy"


# anomalib v2.0.0's own AUPRO (src/anomalib/metrics/aupro.py at tag v2.0.0, run once on these cases with
# torch float32 and the same regions) gave these numbers; the float64 rewrite matches them to float32
# rounding. (Out-of-range maps go through torchmetrics' sigmoid first there, which keeps their order
# unless scores saturate: none of these cases saturate.)
ANOMALIB_2_0_AUPRO = {"continuous": 0.5658227205276489, "heavy_ties": 0.6782455444335938,
                      "quantised_16": 0.5744959115982056, "binary_maps": 0.4084489047527313}


@pytest.mark.parametrize("case", sorted(ANOMALIB_2_0_AUPRO))
def test_anomalib_legacy_aupro_rewrite_and_its_cause(case):
    c = _case(case)
    value = conformance_published.anomalib_legacy_aupro(c.maps, c.masks)
    assert abs(value - ANOMALIB_2_0_AUPRO[case]) <= 1e-6
    assert abs(value - c.expected_float("aupro")) > 1e-4  # the legacy aggregation deviates
    (modelled,) = conformance_causes._model_legacy_anomalib(c, "aupro")
    assert abs(modelled - value) <= 1e-9
    report = C.run(impls=["anomalib-2.2-aupro"], metrics=["aupro"], cases=[case])
    (row,) = report.rows
    assert row.verdict == KNOWN and row.cause.key == "averaged_end_point_normalisation"


def test_aupro_100_is_the_rescaled_routine_with_100_steps():
    case = _case("continuous")
    value = conformance_published.aupro_100(case.maps, case.masks)
    assert value == conformance_published.aupro_200(case.maps, case.masks, steps=100)
    assert abs(value - conformance_published.aupro_200(case.maps, case.masks)) > 1e-3  # not the 200-step value
    assert abs(conformance_causes._rescaled_area(case, 100) - value) <= 1e-9
    report = C.run(impls=["aupro-100"], cases=["continuous", "binary_maps"])
    (row,) = _rows(report, "aupro-100", "aupro", "continuous")
    assert row.verdict == KNOWN and row.cause.key == "sampled_thresholds_fpr_rescaled"
    (row,) = _rows(report, "aupro-100", "aupro", "binary_maps")
    assert row.verdict == FINDING and row.cause.key == "rescaled_aupro_degenerate"


def test_findings_are_shown_in_every_report():
    report = _full_report()
    found = report.findings
    assert found and all(r.cause.key in FINDING_BY_KEY for r in found)
    assert not set(found) & set(report.unexplained)
    text = C.text(report, width=100)
    md = C.markdown(report)
    data = json.loads(C.to_json(report))
    assert text.splitlines()[-1] == f"  {len(report.unexplained)} unexplained disagreements; {len(found)} findings"
    for key in {r.cause.key for r in found}:
        finding = FINDING_BY_KEY[key]
        assert f"finding:{key}" in text
        assert "reproduce: " + finding.reproduction.split()[0] in text
        assert f"| **{key}** |" in md and f"`{finding.reproduction}`" in md.replace("\\|", "|")
        assert data["findings"][key]["reproduction"] == finding.reproduction
    assert sum(r["verdict"] == FINDING for r in data["rows"]) == len(found) == data["n_findings"]
    assert sum(sum(v["count"] for v in e["findings"].values()) for e in data["summary"]) == len(found)


# each finding's reproduction, run with the implementation alone, shows the defect (marker in its output)
REPRODUCED = {"adeval_aupro_nan": ("adeval", "nan"), "adeval_aupro_index_error": ("adeval", "IndexError"),
              "anomalib_pro_float64": ("anomalib", "TypeError"),
              "anomalib_full_mask_region_lost": ("anomalib", "tensor([0]"),
              "rescaled_aupro_degenerate": (None, "nan")}


@pytest.mark.parametrize("key", sorted(REPRODUCED))
def test_each_finding_reproduces_in_one_line(key):
    package, marker = REPRODUCED[key]
    if package:
        pytest.importorskip(package)
    finding = FINDING_BY_KEY[key]
    assert finding.reproduction.startswith("python -c ") and "\n" not in finding.reproduction
    import os
    import shlex

    argv = shlex.split(finding.reproduction)
    argv[0] = sys.executable
    proc = subprocess.run(argv, capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert marker in proc.stdout + proc.stderr, (proc.stdout, proc.stderr[-500:])


def test_every_finding_is_documented():
    for finding in FINDINGS:
        assert finding.impls and finding.sentence and finding.reproduction
        assert set(finding.impls) <= set(C.ADAPTERS), finding.key


def test_full_report_has_no_unexplained_row():
    report = _full_report()
    if report.skipped:
        pytest.skip(f"adapters not installed, so the zero-unexplained check cannot be made: {report.skipped}")
    unexplained = [(r.impl, r.metric, r.case, r.value, r.note) for r in report.unexplained]
    assert not unexplained, unexplained
    for r in report.rows:
        assert r.verdict == AGREES or r.cause is not None, r.as_dict()


def test_cflow_aupro_is_reproduced_by_its_cause():
    case = _case("heavy_ties")
    value = conformance_published.cflow_aupro(case.maps, case.masks)
    assert abs(value - case.expected_float("aupro")) > 0.01
    (modelled,) = conformance_causes._model_cflow(case, "aupro")
    assert abs(modelled - value) <= 1e-9
    # not the ADer/200-step routine: another grid, and FPR <= limit kept (inclusive)
    assert all(abs(v - value) > 1e-6 for v in conformance_causes._model_rescaled(case, "aupro"))
    report = C.run(impls=["cflow-aupro"], cases=["heavy_ties", "anomalib_auroc_example"])
    (row,) = _rows(report, "cflow-aupro", "aupro", "heavy_ties")
    assert row.verdict == KNOWN and row.cause.key == "sampled_thresholds_fpr_rescaled_cflow"
    (row,) = _rows(report, "cflow-aupro", "aupro", "anomalib_auroc_example")
    assert row.verdict == FINDING and row.cause.key == "rescaled_aupro_degenerate"


def test_cflow_overlap_counts_a_regions_holes():
    # a ring: 8 defect pixels around a normal centre (17 normal pixels in all), the 9 of them scoring 1,
    # one more normal pixel 0.5, the rest 0. cflow-ad counts the centre in the ring's overlap (scikit-image's
    # filled_image), so once the 9 are positive the ring's overlap is 9/8, not 1.
    masks = np.zeros((1, 5, 5), np.uint8)
    masks[0, 1:4, 1:4] = 1
    masks[0, 2, 2] = 0
    maps = np.zeros((1, 5, 5))
    maps[0, 1:4, 1:4] = 1.0
    maps[0, 0, 0] = 0.5
    value = conformance_published.cflow_aupro(maps, masks, max_step=4)  # thresholds 1, 0.75, 0.5, 0.25
    # points (FPR, PRO): (0, 0) at 1; (1/17, 9/8) at 0.75 and at 0.5 (the 0.5 pixel is not above 0.5);
    # (2/17, 9/8) at 0.25. Rescaled: (0, 0), (0.5, 9/8), (0.5, 9/8), (1, 9/8)
    assert abs(value - (0.5 * 9 / 8 / 2 + 0.5 * 9 / 8)) <= 1e-12


def test_adeval_quadratic_closing_is_the_linear_interpolation():
    # ADEval closes its AUPRO with rect * t + tri * t**2 (t: the fraction of the last segment's width
    # below the limit); that is exactly the area under the straight segment cut at t, which is what
    # adeval_model integrates: a linear interpolation at the limit, nothing quadratic about the curve.
    mem_effic = pytest.importorskip("adeval.mem_effic")
    rng = np.random.default_rng(20261128)
    for _ in range(200):
        y1, y2 = np.sort(rng.random(2))
        width, t = rng.random() + 1e-3, rng.random()
        segment = width * (y1 + y2) / 2
        linear = t * width * y1 + (t * width) ** 2 * (y2 - y1) / width / 2
        assert abs(mem_effic._trapezoid_intep(t, segment, y1, y2) - linear) <= 1e-12
    zero = np.float64(0.0)  # ADEval passes NumPy floats: 0/0 is NaN there (the adeval_aupro_nan finding)
    with np.errstate(invalid="ignore"):
        assert math.isnan(mem_effic._trapezoid_intep(0.5, 0.0, zero, zero))
