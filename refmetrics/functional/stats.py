"""Score statistics: MinMax and AnomalyScoreDistribution (anomalib's)."""

import numpy as np

from .. import _arrays as A
from .. import _validation as V
from ..kernels.cpu import stats as KS


def score_range(preds, backend):
    """``(min, max)`` of one batch as float64 (``(inf, -inf)`` is never returned: empty raises)."""
    if A.resolve_backend(backend, preds) == "cuda":
        from ..kernels.cuda import _driver as D

        p = A.device_array(preds, "preds")
        V.check_nonempty("preds", p)
        lo, hi, n_nan = D.min_max(A.device_scores(p, "preds"))
        V.raise_if_nan("preds", n_nan)
        return lo, hi
    p = A.host_array(preds, "preds")
    V.check_nonempty("preds", p)
    if p.dtype.kind in "iu" and p.dtype.itemsize == 8:
        V.check_integer_scores_exact("preds", p)
    flat = np.ascontiguousarray(p).reshape(-1)
    if flat.dtype == np.float16 or flat.dtype == np.bool_:
        flat = flat.astype(np.float32)
    lo, hi, n_nan = KS.min_max_nan(flat)
    V.raise_if_nan("preds", n_nan)
    return lo, hi


def min_max(preds, *, backend="auto"):
    """Minimum and maximum of the scores.

    Defined in ``docs/definitions.md``, section "MinMax" (the page a paper cites).

    Parameters
    ----------
    preds : array_like
        Scores of any shape and numeric dtype; NaN rejected.
    backend : {"auto", "cpu", "cuda"}

    Returns
    -------
    min, max : float
        Exact values (float64), -0.0 reported as 0.0.

    Examples
    --------
    anomalib's documented example:

    >>> from refmetrics.functional import min_max
    >>> min_max([0.0807, 0.6329, 0.0559, 0.9860, 0.3595])
    (0.0559, 0.986)
    """
    return score_range(preds, backend)


def log_values(values, name, backend):
    """``log`` of the values (float64), warning when some are <= 0."""
    if A.resolve_backend(backend, values) == "cuda":
        from ..kernels.cuda import _driver as D

        arr = A.device_array(values, name)
        V.check_nonempty(name, arr)
        logs, n_nan, n_nonpos = D.log_values(A.device_scores(arr, name))
        V.raise_if_nan(name, n_nan)
        _warn_nonpositive(name, n_nonpos)
        return logs.reshape(arr.shape)
    arr = A.host_array(values, name)
    V.check_nonempty(name, arr)
    if arr.dtype.kind in "iu" and arr.dtype.itemsize == 8:
        V.check_integer_scores_exact(name, arr)
    arr = arr.astype(np.float64)
    n_nan = int(np.isnan(arr).sum())
    V.raise_if_nan(name, n_nan)
    _warn_nonpositive(name, int((arr <= 0).sum()))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(arr)


def _warn_nonpositive(name, n_nonpos):
    if n_nonpos:
        V.warn_undefined(f"{name}: {n_nonpos:,} value{'s are' if n_nonpos != 1 else ' is'} <= 0; "
                         "their log is -inf (0) or nan (< 0), as in anomalib", stacklevel=5)


def mean_std_columns(rows):
    """Column mean and std (ddof=1) of a ``(n, m)`` float64 array, order-free."""
    ordered = np.sort(rows, axis=0)
    mean = np.empty(rows.shape[1])
    std = np.empty(rows.shape[1])
    KS.column_mean_std(np.ascontiguousarray(ordered), mean, std)
    return mean, std


def _device_columns(arrays, n_columns):
    """Column mean and std of row-major matrices stacked on the device (host ones copied there)."""
    from ..kernels.cuda import _driver as D

    flat = [D.to_device(a.reshape(-1)) if isinstance(a, np.ndarray) else a.reshape(a.size) for a in arrays]
    stacked = D.concatenate(flat, np.float64)
    return D.column_mean_std(stacked, stacked.size // n_columns, n_columns)


def distribution(log_scores, log_maps):
    """``(image_mean, image_std, pixel_mean, pixel_std)`` from lists of log arrays.

    With any array on the device, the statistics are computed there (each
    column sorted by a device radix sort, then the same compensated sums).
    """
    image_mean = image_std = pixel_mean = pixel_std = float("nan")
    if any(not isinstance(a, np.ndarray) for a in list(log_scores) + list(log_maps)):
        if log_scores:
            m, s = _device_columns(log_scores, 1)
            image_mean, image_std = float(m[0]), float(s[0])
        if log_maps:
            shape = log_maps[0].shape[1:]
            m, s = _device_columns(log_maps, int(np.prod(shape)))
            squeezed = tuple(d for d in shape if d != 1)
            pixel_mean, pixel_std = m.reshape(squeezed), s.reshape(squeezed)
        return image_mean, image_std, pixel_mean, pixel_std
    if log_scores:
        flat = np.concatenate([s.reshape(-1) for s in log_scores])
        m, s = mean_std_columns(flat.reshape(-1, 1))
        image_mean, image_std = float(m[0]), float(s[0])
    if log_maps:
        shape = log_maps[0].shape[1:]
        stacked = np.concatenate([m.reshape(m.shape[0], -1) for m in log_maps])
        m, s = mean_std_columns(stacked)
        squeezed = tuple(d for d in shape if d != 1)
        pixel_mean, pixel_std = m.reshape(squeezed), s.reshape(squeezed)
    return image_mean, image_std, pixel_mean, pixel_std


def maps_batch(anomaly_maps, backend):
    """Log of a batch of maps ``(B, ...)``: axis 0 indexes the maps."""
    logs = log_values(anomaly_maps, "anomaly_maps", backend)
    if logs.ndim < 2:
        raise ValueError(f"anomaly_maps: expected a batch of maps (B, ...) with at least 2 dimensions, "
                         f"received shape {logs.shape}")
    return logs


def check_map_shapes(reference, batch):
    if reference is not None and reference.shape[1:] != batch.shape[1:]:
        raise ValueError(f"anomaly_maps: expected maps of shape {reference.shape[1:]} like the earlier "
                         f"batches, received {batch.shape[1:]}")


def anomaly_score_distribution(anomaly_scores=None, anomaly_maps=None, *, backend="auto"):
    """Mean and standard deviation of the log scores (anomalib's AnomalyScoreDistribution).

    Defined in ``docs/definitions.md``, section "AnomalyScoreDistribution" (the page a paper cites).

    Parameters
    ----------
    anomaly_scores : array_like, optional
        Image scores, any shape (flattened).
    anomaly_maps : array_like, optional
        Maps ``(B, ...)``; statistics per pixel position over the B maps.
    backend : {"auto", "cpu", "cuda"}

    Returns
    -------
    image_mean, image_std : float
        Of ``log(anomaly_scores)``; NaN when no scores are given.
    pixel_mean, pixel_std : ndarray or float
        Per position of ``log(anomaly_maps)``, size-1 axes squeezed; NaN when no maps.

    Notes
    -----
    Standard deviations are unbiased (ddof=1), as torch's ``std``. Scores <= 0
    give -inf / NaN exactly as ``log`` does, with an UndefinedMetricWarning.
    Sums are compensated and taken over the values in sorted order, so the
    result does not depend on the order or batching of the data.

    Examples
    --------
    >>> import numpy as np
    >>> from refmetrics.functional import anomaly_score_distribution
    >>> im, istd, pm, pstd = anomaly_score_distribution(np.exp([1.0, 2.0, 3.0]))
    >>> round(im, 12), round(istd, 12)
    (2.0, 1.0)
    """
    logs = [] if anomaly_scores is None else [log_values(anomaly_scores, "anomaly_scores", backend)]
    maps = [] if anomaly_maps is None else [maps_batch(anomaly_maps, backend)]
    return distribution(logs, maps)
