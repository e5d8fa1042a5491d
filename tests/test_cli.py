"""The ``refmetrics example`` command on the bundled data."""

import json
import subprocess
import sys
from fractions import Fraction

import numpy as np

from refmetrics import cli
from refmetrics import functional as F

from . import naive


def test_example_numbers_match_the_oracles(tmp_path):
    out = tmp_path / "example.json"
    assert cli.main(["example", "--json", str(out)]) == 0
    table = json.loads(out.read_text())
    maps, masks, labels = cli.load_example()
    scores = maps.reshape(len(maps), -1).max(axis=1)
    assert table["image AUROC"] == float(naive.auroc(scores, labels))
    assert abs(Fraction(table["image AP"]) - naive.average_precision(scores, labels)) <= Fraction(1, 10**12)
    thr, f1 = naive.f1_adaptive(scores, labels)
    assert table["image F1 threshold"] == thr
    assert abs(Fraction(table["image F1-max"]) - f1) <= Fraction(1, 10**12)
    assert table["pixel AUROC"] == float(naive.auroc_midranks(maps.reshape(-1).astype(np.float64),
                                                              masks.reshape(-1)))
    assert table["defect pixels"] == int(masks.sum()) and table["images"] == 24
    # AUPRO on the quantised maps (few thresholds) is cheap for the oracle; the exact value of the
    # full maps is checked against the same function that the oracle tests cover
    coarse = np.round(maps)
    assert abs(Fraction(F.aupro(coarse, masks)) - naive.aupro(coarse, masks, 0.3)) <= Fraction(1, 10**12)
    assert table["pixel AUPRO@0.3"] == F.aupro(maps, masks)
    assert table["pixel regions"] == sum(len(r) for r, _ in naive.regions_of(masks))


def test_command_line_entry_point():
    proc = subprocess.run([sys.executable, "-m", "refmetrics", "example"], capture_output=True, text=True,
                          check=True)
    assert "pixel AUROC" in proc.stdout and "image F1-max" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "refmetrics"], capture_output=True, text=True)
    assert proc.returncode == 2 and "required" in proc.stderr


def test_conformance_output_paths_are_checked_before_the_run(tmp_path, monkeypatch, capsys):
    from refmetrics import conformance

    def run(*args, **kwargs):
        raise AssertionError("the suite ran before the output paths were checked")

    monkeypatch.setattr(conformance, "run", run)
    missing = tmp_path / "missing" / "x.md"
    a_file = tmp_path / "file.txt"
    a_file.write_text("")
    for option, path, why in (("--json", tmp_path, "(a directory)"),
                              ("--markdown", missing, f"({missing.parent} does not exist)"),
                              ("--json", a_file / "r.json", f"({a_file} is not a directory)"),
                              ("--markdown", "", "(an empty path)")):
        assert cli.main(["conformance", "--impl", "refmetrics", option, str(path)]) == 2
        out, err = capsys.readouterr()
        assert out == ""
        assert err == (f"refmetrics conformance: {option}: expected a file path in an existing, writable "
                       f"directory, received {str(path)!r} {why}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def test_conformance_writes_its_files(tmp_path, capsys):
    out_json, out_md = tmp_path / "r.json", tmp_path / "r.md"
    out_json.write_text("old")
    assert cli.main(["conformance", "--impl", "refmetrics", "--metric", "pixel_auroc", "--case", "continuous",
                     "--quiet", "--json", str(out_json), "--markdown", str(out_md)]) == 0
    assert f"wrote {out_json}\nwrote {out_md}\n" in capsys.readouterr().out
    rows = json.loads(out_json.read_text())["rows"]
    assert [(r["impl"], r["metric"], r["case"], r["verdict"]) for r in rows] == [
        ("refmetrics", "pixel_auroc", "continuous", "agrees")]
    assert "| refmetrics 0.1.0 | pixel_auroc | 1 agree |" in out_md.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.md"]
