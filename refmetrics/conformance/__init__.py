"""The conformance suite: golden fixtures, adapters to other implementations, and a
report that explains, metric by metric, where they agree with refmetrics and why not:
each difference is a cause (a convention whose model reproduces the value) or a
finding (a named defect of the implementation, with a one-line reproduction), or
else an unexplained disagreement.

>>> from refmetrics import conformance
>>> report = conformance.run(impls=["refmetrics"], metrics=["pixel_auroc"], cases=["continuous"])
>>> [(r.impl, r.case, r.verdict) for r in report.rows]
[('refmetrics', 'continuous', 'agrees')]

Plug in your own implementation, ``f(metric, preds, target) -> float``:

>>> from sklearn.metrics import roc_auc_score  # doctest: +SKIP
>>> mine = conformance.from_function("mine", lambda m, p, t: roc_auc_score(t.ravel(), p.ravel()))  # doctest: +SKIP
>>> conformance.run(impls=[mine], metrics=["pixel_auroc"])  # doctest: +SKIP
"""

from .adapters import ADAPTERS, from_function, user_adapter
from .cases import METRICS, load_cases
from .causes import CAUSES
from .findings import FINDINGS
from .report import (
           check_output_file,
           markdown,
           report_width,
           text,
           to_json,
           write_atomic,
)
from .runner import Report, run

__all__ = ["ADAPTERS", "CAUSES", "FINDINGS", "METRICS", "Report", "check_output_file", "from_function", "load_cases",
           "markdown", "report_width", "run", "text", "to_json", "user_adapter", "write_atomic"]
