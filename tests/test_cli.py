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
