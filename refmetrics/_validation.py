"""Every check of user input and every error message of refmetrics.

Messages name the argument, say what was expected and what was received.
"""

import numbers
import warnings

import numpy as np


class UndefinedMetricWarning(UserWarning):
    """A metric is mathematically undefined on the data and was returned as NaN
    (or, for F1AdaptiveThreshold, replaced by its documented fall-back)."""


class BinningWarning(UserWarning):
    """Binned mode (``thresholds=``) left scores below its lowest threshold: they
    are never predicted positive and the curve stops short of (1, 1)."""


class BackendUnavailableError(RuntimeError):
    """The requested compute backend cannot run here."""


# Binned mode keeps two int64 counts per threshold.
MAX_THRESHOLDS = 1 << 24


def warn_undefined(message, stacklevel=3):
    warnings.warn(message, UndefinedMetricWarning, stacklevel=stacklevel)


def check_choice(name, value, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(repr(c) for c in choices)}, received {value!r}")


def check_numeric_dtype(name, arr):
    if arr.dtype.kind not in "biuf" or (arr.dtype.kind == "f" and arr.dtype.itemsize > 8):
        raise TypeError(f"{name}: expected an array of bool, integer or float16/32/64 numbers, "
                        f"received dtype {arr.dtype}")


def check_nonempty(name, arr):
    if arr.size == 0:
        raise ValueError(f"{name}: expected at least one element, received an empty array of shape {arr.shape}")


def _squeezed(shape):
    return tuple(d for d in shape if d != 1)


def check_pair(preds, target, pred_name="preds", target_name="target"):
    """Same number of elements, shapes equal once size-1 axes are dropped.

    That admits a ``(B,1,H,W)`` map with a ``(B,H,W)`` mask.
    """
    check_nonempty(pred_name, preds)
    if preds.shape != target.shape and _squeezed(preds.shape) != _squeezed(target.shape):
        raise ValueError(f"{pred_name} and {target_name}: expected the same shape (size-1 axes aside), "
                         f"received {pred_name} {preds.shape} and {target_name} {target.shape}")


def raise_if_nan(name, n_nan):
    if n_nan:
        raise ValueError(f"{name}: expected no NaN values, received {n_nan:,} NaN"
                         f"{'s' if n_nan != 1 else ''}")


def raise_bad_labels(name, labels, has_ignore, ignore, ignore_index, n_bad):
    """Raise for labels outside {0, 1} (and ``ignore_index``), listing a few found.

    ``labels`` and ``ignore`` are what the kernel compared (same dtype), so the
    values listed are exactly the ones it counted.
    """
    if not n_bad:
        return
    flat = labels.reshape(-1)
    bad = (flat != 0) & (flat != 1)
    if has_ignore:
        bad &= flat != ignore
    found = np.unique(flat[bad])[:5]
    shown = ", ".join(repr(v.item()) for v in found)
    raise ValueError(f"{name}: expected binary labels in {{0, 1}}"
                     f"{'' if ignore_index is None else f' (or ignore_index={ignore_index!r})'}, "
                     f"received {n_bad:,} other value{'s' if n_bad != 1 else ''} (e.g. {shown}); "
                     f"for 0/255 masks or soft labels pass `{name} > 0` (or your own cut-off)")


def check_ignore_index(ignore_index):
    """None, or a real number (compared in the labels' dtype).

    Any value is allowed, the labels 0 and 1 included: elements whose target
    equals it are dropped before the labels are checked, so with
    ``ignore_index=0`` the labels left must all be 1 (and the reverse), and a
    metric that needs both classes is then undefined (NaN with a warning).
    """
    if ignore_index is None:
        return
    if isinstance(ignore_index, (bool, np.bool_)) or not isinstance(ignore_index, numbers.Real):
        raise TypeError(f"ignore_index: expected None or a number, received {ignore_index!r}")
    if ignore_index != ignore_index:
        raise ValueError(f"ignore_index: expected None or a number other than NaN, received {ignore_index!r}")


def check_integer_scores_exact(name, arr):
    if arr.size and (int(arr.min()) < -(2**53) or int(arr.max()) > 2**53):
        raise ValueError(f"{name}: integer scores must lie within +-2**53 to be handled exactly, "
                         f"received values from {int(arr.min())} to {int(arr.max())}")


def check_thresholds(thresholds):
    """``None`` (exact), an int ``T >= 2`` or a 1-D array of thresholds, sorted ascending.

    +-inf are valid thresholds (what a curve returns: ``roc_curve`` starts at
    ``+inf``): with ``score >= t``, ``+inf`` predicts only ``+inf`` scores
    positive (nothing, for finite scores) and ``-inf`` predicts every score
    positive. NaN orders nowhere and is rejected.
    """
    if thresholds is None:
        return None
    if isinstance(thresholds, numbers.Integral) and not isinstance(thresholds, (bool, np.bool_)):
        if not 2 <= thresholds <= MAX_THRESHOLDS:
            raise ValueError(f"thresholds: expected None, an int in [2, {MAX_THRESHOLDS:,}] or an array of "
                             f"thresholds, received {thresholds}")
        return np.linspace(0.0, 1.0, int(thresholds))
    if isinstance(thresholds, (bool, np.bool_, float, str)):
        raise TypeError(f"thresholds: expected None, an int >= 2 or an array of thresholds, "
                        f"received {thresholds!r}")
    try:
        raw = np.asarray(thresholds)
        if raw.dtype.kind not in "iuf":
            raise TypeError(f"dtype {raw.dtype}")
        arr = raw.astype(np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise TypeError(f"thresholds: expected None, an int >= 2 or an array of real thresholds, "
                        f"received {type(thresholds).__name__} ({exc})") from exc
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"thresholds: expected a non-empty 1-D array, received shape {arr.shape}")
    n_nan = int(np.isnan(arr).sum())
    if n_nan:
        raise ValueError(f"thresholds: expected real thresholds (+-inf allowed), received {n_nan:,} NaN"
                         f"{'s' if n_nan != 1 else ''}")
    return np.sort(arr)


def check_real(name, value):
    """A real number parameter as a float: TypeError for a non-number, ValueError for NaN."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, received {value!r}")
    if value != value:
        raise ValueError(f"{name}: expected a real number, received NaN")
    try:
        return float(value)
    except OverflowError as exc:
        raise ValueError(f"{name}: expected a number within the float64 range, received {value!r}") from exc


def check_unit(name, value, what="a number", zero=False):
    """A real parameter in (0, 1] (``zero``: in [0, 1]) as a float; ``what`` names it in the error."""
    f = check_real(name, value)
    if not (0.0 <= f <= 1.0 if zero else 0.0 < f <= 1.0):
        raise ValueError(f"{name}: expected {what} in {'[0, 1]' if zero else '(0, 1]'}, received {value!r}")
    return f


def check_count(name, value, minimum=0):
    """A whole-number parameter (at least ``minimum``) as an int."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, received {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected an integer of at least {minimum}, received {value}")
    return int(value)


def check_same_config(a, b):
    if type(a) is not type(b):
        raise TypeError(f"other: expected a {type(a).__name__} to merge, received {type(b).__name__}")
    # the backend is where a state computes, not what it computes: CPU and CUDA states merge
    mine = {k: v for k, v in a._config().items() if k != "backend"}
    theirs = {k: v for k, v in b._config().items() if k != "backend"}
    if mine != theirs:
        raise ValueError(f"other: expected a {type(a).__name__} with the same parameters "
                         f"{mine}, received {theirs}")


def check_level(value, name="level"):
    """A confidence level in the open interval (0, 1) as a float (0.95 for a 95% interval)."""
    f = check_real(name, value)
    if not 0.0 < f < 1.0:
        raise ValueError(f"{name}: expected a confidence level in (0, 1) (e.g. 0.95), received {value!r}")
    return f
