"""Run anomalib's own metric unit tests against refmetrics' classes, imported in place of anomalib's.

anomalib's tests (``tests/unit/metrics/`` of its repository, not shipped in its wheel) import the tensor-level
classes of each metric module (``anomalib.metrics.aupro._AUPRO``, ``f1_score._F1Max``, ...). This script copies
those tests, unchanged, into a temporary directory, beside a ``conftest.py`` that replaces each such name in
anomalib's modules with the :mod:`refmetrics.integrations.torchmetrics` class of the same metric before the
tests import it, runs pytest there, and prints the pass counts per file with each failure's first line.
Tests of anomalib's own machinery (``AnomalibMetric``, binning, the ``Threshold`` base) run against anomalib.
The tests import the tensor-level classes, so those are what is substituted: the
:mod:`refmetrics.integrations.anomalib` drop-ins are ``AnomalibMetric`` plus exactly these classes.

Exit status: 0 when every test passed, 1 when one failed or could not be collected (as pytest), 2 on a
bad checkout path.

Usage::

    python tools/anomalib_metric_tests.py PATH_TO_ANOMALIB_CHECKOUT [--json OUT.json]

Nothing of anomalib is copied into this repository: the tests are read from the checkout given.
"""

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

#: anomalib module -> {name in that module: refmetrics.integrations.torchmetrics class}
SUBSTITUTES = {
    "anomalib.metrics.aupro": {"_AUPRO": "AUPRO"},
    "anomalib.metrics.f1_score": {"_F1Max": "F1Max"},
    "anomalib.metrics.min_max": {"_MinMax": "MinMax"},
    "anomalib.metrics.pg_pb": {"_PGn": "PGn", "_PBn": "PBn"},
    "anomalib.metrics.pro": {"_PRO": "PRO"},
    "anomalib.metrics.threshold.f1_adaptive_threshold": {"_F1AdaptiveThreshold": "F1AdaptiveThreshold"},
    "anomalib.metrics.pimo.pimo": {"_AUPIMO": "AUPIMO"},
    "anomalib.metrics": {"BinaryPrecisionRecallCurve": "BinaryPrecisionRecallCurve"},
}

CONFTEST = '''"""Written by refmetrics' tools/anomalib_metric_tests.py: refmetrics' classes in place of anomalib's."""
import importlib

from refmetrics.integrations import torchmetrics as refmetrics_torchmetrics

for module, names in {substitutes!r}.items():
    target = importlib.import_module(module)
    for name, ours in names.items():
        setattr(target, name, getattr(refmetrics_torchmetrics, ours))
'''


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", type=Path, help="a clone of anomalib's repository (holds tests/unit/metrics)")
    parser.add_argument("--json", type=Path, default=None, help="write the counts and failures here")
    parser.add_argument("--baseline", action="store_true",
                        help="run the tests against anomalib's own classes (no substitution), for comparison")
    args = parser.parse_args(argv)
    source = args.checkout / "tests" / "unit" / "metrics"
    if not source.is_dir():
        parser.error(f"checkout: expected anomalib's repository with tests/unit/metrics/, received {args.checkout}")
    with tempfile.TemporaryDirectory(prefix="refmetrics-anomalib-tests-") as tmp:
        root = Path(tmp) / "anomalib_tests"
        shutil.copytree(source, root / "metrics")
        (root / "conftest.py").write_text(CONFTEST.format(substitutes={} if args.baseline else SUBSTITUTES),
                                          encoding="utf-8")
        report = Path(tmp) / "report.xml"
        run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(root),
                              "-o", "addopts=", "--continue-on-collection-errors", f"--junitxml={report}", str(root)],
                             capture_output=True, text=True, cwd=root)
        counts, failures = _read(report)
    print(f"anomalib's metric tests ({source}) "
          + ("against anomalib's own classes:" if args.baseline else "with refmetrics' classes in place of anomalib's:"))
    for name, c in sorted(counts.items()):
        print(f"  {name:48s} {c['passed']:3d} passed {c['failed']:3d} failed {c['errors']:3d} errors "
              f"{c['skipped']:3d} skipped")
    total = {k: sum(c[k] for c in counts.values()) for k in ("passed", "failed", "errors", "skipped")}
    print(f"  {'total':48s} {total['passed']:3d} passed {total['failed']:3d} failed {total['errors']:3d} errors "
          f"{total['skipped']:3d} skipped")
    for test, why in failures:
        print(f"  FAILED {test}: {why}")
    if not counts:
        print(run.stdout[-3000:], run.stderr[-3000:])
    if args.json:
        args.json.write_text(json.dumps({"source": str(source), "counts": counts, "total": total,
                                         "failures": failures}, indent=1) + "\n", encoding="utf-8")
    return 0 if counts and not (total["failed"] or total["errors"]) else 1


def _read(report):
    import xml.etree.ElementTree as ET

    counts, failures = {}, []
    if not report.exists():
        return counts, failures
    for case in ET.parse(report).getroot().iter("testcase"):
        module = (case.get("classname") or "").replace("metrics.", "", 1)
        c = counts.setdefault(module.split(".")[-1] if module else "?", dict(passed=0, failed=0, errors=0, skipped=0))
        kinds = {child.tag for child in case}
        if "failure" in kinds or "error" in kinds:
            child = case.find("failure") if "failure" in kinds else case.find("error")
            c["failed" if child.tag == "failure" else "errors"] += 1
            text = (child.get("message") or child.text or "").strip().splitlines()
            failures.append([f"{case.get('classname')}::{case.get('name')}",
                             re.sub(r"\s+", " ", text[0] if text else "")[:200]])
        elif "skipped" in kinds:
            c["skipped"] += 1
        else:
            c["passed"] += 1
    return counts, failures


if __name__ == "__main__":
    sys.exit(main())
