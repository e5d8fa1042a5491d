"""Run implementations on the golden cases and explain every difference."""

import logging
import math
import time
import warnings

from . import adapters as AD
from .cases import METRICS, load_cases
from .causes import AGREE_TOL, attribute

AGREES, KNOWN, DISAGREES, ERROR = "agrees", "known deviation", "DISAGREES", "error"
FINDING = "finding"  # a named defect of the implementation (findings.py): explained, but not a convention
NOT_APPLICABLE = "n/a"  # the adapter raised NotImplementedError: the metric or the case is outside its scope


class Row:
    __slots__ = ("impl", "version", "metric", "case", "value", "reference", "diff", "verdict", "cause", "note")

    def __init__(self, **kw):
        for k in self.__slots__:
            setattr(self, k, kw.get(k))

    def as_dict(self):
        d = {k: getattr(self, k) for k in self.__slots__}
        d["cause"] = None if self.cause is None else self.cause.key
        for k in ("value", "reference", "diff"):  # JSON has no NaN or infinity
            if isinstance(d[k], float) and not math.isfinite(d[k]):
                d[k] = None if math.isnan(d[k]) else ("inf" if d[k] > 0 else "-inf")
        return d


class Report:
    """Rows of implementation x metric x case, plus the implementations skipped and why.

    A row's verdict is ``"agrees"``, ``"known deviation"`` (``cause``: the Cause whose model reproduces
    it), ``"finding"`` (``cause``: the Finding, a named defect of that implementation whose model
    reproduces it), or, unexplained, ``"DISAGREES"`` or ``"error"``.

    ``not_applicable`` holds a row (verdict ``"n/a"``, no value) for each metric x case an implementation
    does not apply to (its adapter raised NotImplementedError); ``impls`` is ``[(name, version), ...]`` of
    the implementations that ran and ``cases`` the case names, both in run order.
    """

    def __init__(self, rows, skipped, seconds, not_applicable=(), impls=None, cases=None):
        self.rows, self.skipped, self.seconds = rows, skipped, seconds
        self.not_applicable = list(not_applicable)
        both = self.rows + self.not_applicable
        self.impls = list(impls) if impls is not None else list(dict.fromkeys((r.impl, r.version) for r in both))
        self.cases = list(cases) if cases is not None else list(dict.fromkeys(r.case for r in both))

    @property
    def unexplained(self):
        return [r for r in self.rows if r.verdict in (DISAGREES, ERROR)]

    @property
    def findings(self):
        """The rows explained by a finding (a defect of the implementation, with its reproduction)."""
        return [r for r in self.rows if r.verdict == FINDING]


def _explained(found):
    from .findings import Finding

    return FINDING if isinstance(found, Finding) else KNOWN


def _classify(case, metric, value, error, impl=None, error_type=None):
    exact = case.expected[metric]
    ref = case.expected_float(metric)
    if error is not None:
        if exact is None:
            return ref, float("nan"), KNOWN, attribute(case, metric, 0.0), f"raised {error}"
        found = attribute(case, metric, float("nan"), error=error_type or error.split(":")[0], impl=impl)
        return ref, float("nan"), (_explained(found) if found else ERROR), found, f"raised {error}"
    if exact is None and math.isnan(value):
        return ref, float("nan"), AGREES, None, None
    diff = float("nan") if math.isnan(value) or exact is None else value - ref
    if not math.isnan(diff) and abs(diff) <= AGREE_TOL:
        return ref, diff, AGREES, None, None
    found = attribute(case, metric, value, impl=impl)
    return ref, diff, (_explained(found) if found else DISAGREES), found, None


def run(impls=None, metrics=None, cases=None, progress=None):
    """Run the suite; ``impls`` are names, ``package.module:function`` specs or Adapter objects.

    Returns a :class:`Report`. ``progress(message)`` is called as it goes.
    """
    t0 = time.perf_counter()
    chosen = []
    for spec in impls or list(AD.ADAPTERS):
        if isinstance(spec, AD.Adapter):
            chosen.append(spec)
        elif spec in AD.ADAPTERS:
            chosen.append(AD.ADAPTERS[spec])
        else:
            chosen.append(AD.user_adapter(spec))
    metrics = list(metrics or METRICS)
    bad = sorted(set(metrics) - set(METRICS))
    if bad:
        raise ValueError(f"--metric: expected some of {', '.join(METRICS)}, received {', '.join(bad)}")
    all_cases = load_cases(cases)
    rows, skipped, not_applicable, ran = [], {}, [], []
    for adapter in chosen:
        why = adapter.missing()
        if why:
            skipped[adapter.name] = why
            if progress:
                progress(f"{adapter.name}: skipped ({why})")
            continue
        version = adapter.version()
        ran.append((adapter.name, version))
        for case in all_cases:
            if progress:
                progress(f"{adapter.name} {version}: {case.name}")
            for metric in metrics:
                error = error_type = None
                value = float("nan")
                disabled = logging.root.manager.disable
                logging.disable(logging.CRITICAL)  # implementations' log lines about a case are no report
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        value = adapter(metric, case)
                except NotImplementedError:
                    not_applicable.append(Row(impl=adapter.name, version=version, metric=metric, case=case.name,
                                              verdict=NOT_APPLICABLE))
                    continue
                except Exception as exc:  # noqa: BLE001 - reported in the table, never hidden
                    error = f"{type(exc).__name__}: {exc}".splitlines()[0][:120]
                    error_type = type(exc).__name__
                finally:
                    logging.disable(disabled)
                ref, diff, verdict, cause, note = _classify(case, metric, value, error, adapter.name, error_type)
                rows.append(Row(impl=adapter.name, version=version, metric=metric, case=case.name, value=value,
                                reference=ref, diff=diff, verdict=verdict, cause=cause, note=note))
    return Report(rows, skipped, time.perf_counter() - t0, not_applicable=not_applicable, impls=ran,
                  cases=[case.name for case in all_cases])
