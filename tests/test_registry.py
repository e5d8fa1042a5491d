"""Every metric of the registry (refmetrics/registry.py), checked from its entry alone.

A new metric registered there is checked here without another line: its
export, its oracle against its function, its class's independence of batching
and merging, its undefined case, its section of docs/definitions.md, and the
evaluate columns and conformance metrics it claims.
"""

import math
import re
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import refmetrics as rm
from refmetrics import functional as F
from refmetrics import registry
from refmetrics.conformance import cases
from refmetrics.evaluate import METRICS as EVALUATE_COLUMNS

from . import naive
from .checks import close, quiet, same

ROOT = Path(__file__).resolve().parents[1]
NAMES = [m.name for m in registry.METRICS]

_rng = np.random.default_rng(20261128)


def _data(kind, seed):
    """Inputs of a kind, with ties, both classes, a few images."""
    rng = np.random.default_rng(seed)
    if kind == "scores":
        preds = rng.integers(0, 12, 40) / 8.0  # ties, and scores outside [0, 1]
        target = rng.integers(0, 2, 40)
        target[:2] = [0, 1]
        return preds, target
    if kind == "maps":
        preds = rng.integers(0, 10, (4, 6, 7)) / 9.0
        target = np.zeros((4, 6, 7), np.uint8)
        target[0, 1:3, 2:5] = 1
        target[1, 4:, :2] = 1
        target[1, 0, 6] = 1
        target[3, 2:4, 3] = 1
        return preds, target
    if kind == "values":
        return (rng.normal(size=30),)
    raise AssertionError(kind)


def _same_value(a, b):
    if isinstance(a, tuple):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)
    return same(float(a), float(b))


def _exact(value, expected):
    """The function's result within 1e-12 of the oracle's: scalars, curves (arrays against lists),
    or tuples of them; an oracle's list of points ``[(x, y), ...]`` is a curve ``(xs, ys)``."""
    if isinstance(expected, list) and expected and isinstance(expected[0], tuple):
        expected = tuple(list(column) for column in zip(*expected))
    if isinstance(expected, tuple) and isinstance(value, tuple):
        return len(value) == len(expected) and all(_exact(v, e) for v, e in zip(value, expected))
    if isinstance(value, np.ndarray):
        expected = list(expected)
        return value.size == len(expected) and all(_exact(v, e) for v, e in zip(value.tolist(), expected))
    if isinstance(expected, float) and math.isinf(expected):
        return float(value) == expected
    return close(float(value), None if expected is None else Fraction(expected))


def test_the_registry_covers_the_public_api():
    functions = set(F.__all__)
    classes = {n for n in rm.__all__ if isinstance(getattr(rm, n), type) and issubclass(getattr(rm, n), rm.Metric)
               and n != "Metric"}
    assert set(NAMES) <= functions
    assert functions - set(NAMES) == set(registry.UTILITIES), "public functions without a registry entry"
    registered = {m.cls for m in registry.METRICS if m.cls}
    # ManualThreshold is F1Score's threshold-only sibling: it has no function of its own
    assert classes - registered == {"ManualThreshold"}
    assert len(NAMES) == len(set(NAMES))


@pytest.mark.parametrize("name", NAMES)
def test_the_entry_names_what_exists(name):
    entry = registry.spec(name)
    assert entry.inputs in registry.INPUTS
    assert callable(entry.function) and entry.function is getattr(F, name)
    if entry.cls:
        assert issubclass(entry.metric_class, rm.Metric)
    if entry.oracle:
        assert callable(getattr(naive, entry.oracle))
    page = (ROOT / "docs" / "definitions.md").read_text(encoding="utf-8")
    assert re.search(rf"^#+ {re.escape(entry.section)}$", page, re.MULTILINE), entry.section
    assert entry.undefined


@pytest.mark.parametrize("name", [m.name for m in registry.METRICS if m.oracle and m.inputs != "other"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_function_equals_its_oracle(name, seed):
    entry = registry.spec(name)
    args = _data(entry.inputs, seed)
    value = quiet(entry.function, *args)
    assert _exact(value, getattr(naive, entry.oracle)(*args)), (name, value)


@pytest.mark.parametrize("name", [m.name for m in registry.METRICS if m.cls and m.inputs in ("scores", "maps")])
def test_the_class_is_independent_of_batching_and_merging(name):
    cls = registry.spec(name).metric_class
    preds, target = _data(registry.spec(name).inputs, 7)
    whole = cls()
    whole.update(preds, target)
    expected = quiet(whole.compute)
    split = cls()
    merged, other = cls(), cls()
    for i, (p, t) in enumerate(zip(np.array_split(preds, 3), np.array_split(target, 3))):
        split.update(p, t)
        (merged if i % 2 else other).update(p, t)
    assert _same_value(quiet(split.compute), expected)
    assert _same_value(quiet(merged.merge(other).compute), expected)


@pytest.mark.parametrize("name", [m.name for m in registry.METRICS if m.one_class_is_nan and m.inputs != "other"])
def test_one_class_data_is_undefined_with_a_reason(name):
    entry = registry.spec(name)
    preds, target = _data(entry.inputs, 4)
    for labels in (np.zeros_like(target), np.ones_like(target)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = entry.function(preds, labels)
        undefined = [w for w in caught if issubclass(w.category, rm.UndefinedMetricWarning)]
        scalars = [v for v in (value if isinstance(value, tuple) else (value,)) if np.ndim(v) == 0]
        if labels.any() and not entry.needs_negative:
            continue  # defined without a negative (AP, F1 need a positive only)
        assert undefined and str(undefined[0].message), name
        if scalars and name != "f1_adaptive_threshold":  # its threshold falls back to a score: only F1 is nan
            assert any(math.isnan(float(v)) for v in scalars), (name, value)


@pytest.mark.parametrize("name", sorted(registry.UTILITIES))
def test_utilities_have_a_section(name):
    assert callable(getattr(F, name))
    page = (ROOT / "docs" / "definitions.md").read_text(encoding="utf-8")
    assert re.search(rf"^#+ {re.escape(registry.UTILITIES[name])}$", page, re.MULTILINE)


def test_evaluate_reads_its_columns_from_the_registry():
    assert EVALUATE_COLUMNS == registry.evaluate_columns()
    assert EVALUATE_COLUMNS[:3] == ("image AUROC", "image AP", "image F1-max")


def test_the_conformance_metrics_come_from_the_registry():
    assert set(cases.METRICS) == set(registry.conformance_metrics())
    assert set(cases.METRIC_DOCS) == set(cases.METRICS)


def test_an_unknown_name_is_a_clear_error():
    with pytest.raises(KeyError, match="received 'aurco'"):
        registry.spec("aurco")
