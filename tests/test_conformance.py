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
