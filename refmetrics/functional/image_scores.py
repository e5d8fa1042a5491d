"""Image scores derived from anomaly maps: ``max``, ``top_k_mean``, ``pooled_max``."""

import math
import numbers

import numpy as np

from .. import _arrays as A
from .. import _validation as V
from ..kernels.cpu import image_scores as KI

REDUCERS = ("max", "top_k_mean", "pooled_max")


def _check_k(k):
    return V.check_unit("k", k, "a fraction of the pixels")


def _check_kernel(kernel, h, w):
    if isinstance(kernel, (bool, np.bool_)) or not isinstance(kernel, numbers.Integral):
        raise TypeError(f"kernel: expected a positive int (the pooling window's side), received {kernel!r}")
    kernel = int(kernel)
    if not 1 <= kernel <= min(h, w):
        raise ValueError(f"kernel: expected an int in [1, {min(h, w)}] (at most the maps' height {h} and "
                         f"width {w}), received {kernel}")
    return kernel


def top_k_count(k, n_pixels):
    """``max(1, floor(k * n_pixels))`` with the product rounded to float64 first (as Dinomaly's
    ``int(n * ratio)``)."""
    return max(1, math.floor(k * n_pixels))


def _maps_shape(shape):
    """``(B, H, W)`` of maps given as ``(B, H, W)`` or ``(B, 1, H, W)``."""
    if len(shape) == 4 and shape[1] == 1:
        return shape[0], shape[2], shape[3]
    if len(shape) != 3:
        raise ValueError(f"maps: expected a batch of maps (B, H, W) or (B, 1, H, W), received shape {shape}")
    return shape


def image_scores(maps, *, reduce="max", k=0.01, kernel=16, backend="auto"):
    """One score per image, reduced from its anomaly map.

    Defined in ``docs/definitions.md``, section "Image scores from maps" (the page a paper cites).

    Parameters
    ----------
    maps : array_like
        Anomaly maps ``(B, H, W)`` (or ``(B, 1, H, W)``) of any real dtype; NaN rejected, +-inf allowed.
    reduce : {"max", "top_k_mean", "pooled_max"}
        ``"max"`` (default; MVTec AD, anomalib): the largest pixel. ``"top_k_mean"``: the mean of
        the ``max(1, floor(k * H * W))`` largest pixels (Dinomaly, ``k=0.01``). ``"pooled_max"``:
        the largest mean of a ``kernel x kernel`` window, stride 1, no padding (ADer, ``kernel=16``).
    k : float
        For ``top_k_mean``: the fraction of pixels, in (0, 1]. ``k * H * W`` is rounded to
        float64 before the floor, as Dinomaly's ``int(n * ratio)``.
    kernel : int
        For ``pooled_max``: the window side, ``1 <= kernel <= min(H, W)``.
    backend : {"auto", "cpu", "cuda"}

    Returns
    -------
    ndarray of float64, shape (B,)

    Notes
    -----
    Every value is read exactly (float64). ``max`` is exact. ``top_k_mean`` adds the selected
    pixels in increasing order with Neumaier's compensated sum and divides by their count.
    ``pooled_max`` sums each window row left to right (compensated, kept as a double-double),
    adds the ``kernel`` row sums top to bottom as double-doubles, rounds the total to float64 and
    divides it by ``kernel**2`` (exact for a power-of-two area such as ADer's 16 x 16); the window
    with the largest mean gives the score. Both are within an ulp or two of the exact mean,
    deterministic, and
    bit-identical on the CPU and CUDA backends. A mean over both +inf and -inf is NaN (with an
    UndefinedMetricWarning); a single sign of infinity gives that infinity.

    See Also
    --------
    refmetrics.functional.auroc : image AUROC from these scores.

    References
    ----------
    Guo et al., "Dinomaly: The Less Is More Philosophy in Multi-Class Unsupervised Anomaly
    Detection", CVPR 2025 (top-k mean). Zhang et al., "ADer: A Comprehensive Benchmark for
    Multi-class Visual Anomaly Detection", 2024 (16 x 16 average pooling).

    Examples
    --------
    >>> import numpy as np
    >>> from refmetrics.functional import image_scores
    >>> maps = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    >>> image_scores(maps).tolist()
    [15.0]
    >>> image_scores(maps, reduce="top_k_mean", k=0.25).tolist()
    [13.5]
    >>> image_scores(maps, reduce="pooled_max", kernel=2).tolist()
    [12.5]
    """
    V.check_choice("reduce", reduce, REDUCERS)
    k = _check_k(k)
    where = A.resolve_backend(backend, maps)
    arr = A.array_on(where, maps, "maps")
    V.check_nonempty("maps", arr)
    b, h, w = _maps_shape(arr.shape)
    kernel = _check_kernel(kernel, h, w) if reduce == "pooled_max" else kernel
    if where == "cuda":
        from ..kernels.cuda import image_scores as DI

        out, n_nan, n_undefined = DI.image_scores(A.device_scores(arr, "maps"), b, h, w, reduce,
                                                  top_k_count(k, h * w), kernel)
    else:
        if arr.dtype.kind in "iu" and arr.dtype.itemsize == 8:
            V.check_integer_scores_exact("maps", arr)
        flat = A.exact_scores(arr, "maps").reshape(b, h * w)
        out = np.empty(b, np.float64)
        n_nan = KI.row_max(flat, out)
        n_undefined = 0
        if not n_nan and reduce == "top_k_mean":
            count = top_k_count(k, h * w)
            top = np.sort(np.partition(flat, h * w - count, axis=1)[:, h * w - count:], axis=1)
            KI.top_k_means(np.ascontiguousarray(top), count, out)
        elif not n_nan and reduce == "pooled_max":
            n_undefined = KI.pooled_max(flat.reshape(b, h, w), kernel, out)
    V.raise_if_nan("maps", n_nan)
    n_undefined += int(np.isnan(out).sum()) if reduce == "top_k_mean" else 0
    if n_undefined:
        V.warn_undefined(f"image_scores: {n_undefined:,} mean{'s' if n_undefined != 1 else ''} over both +inf "
                         f"and -inf pixels {'are' if n_undefined != 1 else 'is'} undefined; the image's score "
                         "is nan", stacklevel=3)
    return out
