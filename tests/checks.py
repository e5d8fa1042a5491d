"""Comparisons shared by the tests: closeness to an exact value, bit-identity, quiet calls."""

import math
import warnings
from fractions import Fraction

import refmetrics as rm

TOL = Fraction(1, 10**12)  # SPEC: every scalar within 1e-12 of the exact value


def close(value, exact):
    """``value`` (float) within 1e-12 of ``exact`` (Fraction, or None meaning undefined -> nan)."""
    if exact is None:
        return math.isnan(value)
    return not math.isnan(value) and abs(Fraction(value) - exact) <= TOL


def same(a, b):
    """Bit-identical floats (nan equals nan, -0.0 differs from 0.0)."""
    return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))


def quiet(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` without the warnings undefined and binned cases emit."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rm.UndefinedMetricWarning)
        warnings.simplefilter("ignore", rm.BinningWarning)
        return fn(*args, **kwargs)
