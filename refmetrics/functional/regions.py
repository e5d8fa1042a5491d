"""Region (localisation) metrics: PRO curve, AUPRO and PRO.

Bergmann et al., "The MVTec Anomaly Detection Dataset: A Comprehensive
Real-World Dataset for Unsupervised Anomaly Detection", IJCV 129 (2021), and
"Uninformed Students", CVPR 2020: the per-region overlap (PRO) weighs every
ground-truth region equally, whatever its size.

On the CUDA backend the masks are labelled on the host (scikit-image; a device
mask is copied there, one byte per pixel for bool masks) and one uint32 per
pixel goes to the device (the pixel's region size, or its region id for PRO);
the scores stay on the device, which sorts them and counts per threshold. The
host sums those counts exactly as the CPU path does: the results are the same
bit for bit.
"""

import numbers

import numpy as np

from .. import _arrays as A
from .. import _labels as L
from .. import _validation as V
from ..kernels.cpu import stats as KS
from . import _regions as G


def check_fpr_limit(fpr_limit):
    return V.check_unit("fpr_limit", fpr_limit)


def check_num_thresholds(num_thresholds):
    if num_thresholds is None:
        return None
    if isinstance(num_thresholds, (bool, np.bool_)) or not isinstance(num_thresholds, numbers.Integral) \
            or not 2 <= num_thresholds <= V.MAX_THRESHOLDS:
        raise ValueError(f"num_thresholds: expected None or an int in [2, {V.MAX_THRESHOLDS:,}], "
                         f"received {num_thresholds!r}")
    return int(num_thresholds)


def label_regions(masks, *, connectivity=None, spatial_dims=2, return_num=False, backend="auto"):
    """Connected regions of binary masks, labelled per sample, ids unique across the batch.

    Defined in ``docs/definitions.md``, section "regions (label_regions)" (the page a paper cites).

    Parameters
    ----------
    masks : array_like
        {0, 1} masks: ``(H,W)``, ``(B,H,W)`` or ``(B,1,H,W)``; with
        ``spatial_dims=3``, ``(D,H,W)``, ``(B,D,H,W)`` or ``(B,1,D,H,W)``.
    connectivity : int in 1..spatial_dims, optional
        scikit-image's connectivity: the most axes along which two neighbours
        may differ (each by one pixel). None (default): full connectivity,
        ``spatial_dims`` (8 neighbours in 2D, 26 in 3D), the MVTec AD and
        anomalib convention. In 2D, 1 gives 4 neighbours; in 3D, 1 gives 6 and
        2 gives 18. The neighbours of the centre pixel ``x``, each marked with
        the smallest connectivity that joins it to ``x``::

            2D, connectivity=1     2D, connectivity=2 (None)

                  1                     2 1 2
                1 x 1                   1 x 1
                  1                     2 1 2

        In 3D the 26 neighbours differ from ``x`` along 1 axis (the 6 faces),
        2 axes (the 12 edges) or 3 axes (the 8 corners); ``connectivity=k``
        keeps those that differ along at most ``k`` axes.
    spatial_dims : {2, 3}
    return_num : bool
        Also return the number of regions.
    backend : {"auto", "cpu", "cuda"}

    Returns
    -------
    labels : ndarray of int64
        Same shape as ``masks``; 0 is background, regions are numbered 1..K
        sample after sample (``skimage.measure.label`` on each sample).
    num : int
        K, when ``return_num`` is true.

    Examples
    --------
    Two pixels touching at a corner are one region under full connectivity:

    >>> from refmetrics.functional import label_regions
    >>> masks = [[[1, 0], [0, 1]], [[0, 0], [1, 1]]]
    >>> label_regions(masks).tolist()
    [[[1, 0], [0, 1]], [[0, 0], [2, 2]]]
    >>> label_regions(masks, connectivity=1, return_num=True)[1]
    3

    In 3D, two voxels that share only an edge are one region from
    ``connectivity=2`` on, two voxels that share only a corner only under
    full connectivity:

    >>> import numpy as np
    >>> volume = np.zeros((1, 2, 2, 2), bool)
    >>> volume[0, 0, 0, 0] = volume[0, 1, 1, 0] = volume[0, 1, 1, 1] = True
    >>> [label_regions(volume, connectivity=c, spatial_dims=3, return_num=True)[1] for c in (1, 2, 3)]
    [2, 1, 1]
    >>> volume[0, 1, 1, 0] = False  # (0,0,0) and (1,1,1) share a corner only
    >>> [label_regions(volume, connectivity=c, spatial_dims=3, return_num=True)[1] for c in (1, 2, 3)]
    [2, 2, 1]
    """
    connectivity = L.check_connectivity(connectivity, spatial_dims)
    A.resolve_backend(backend, masks)
    t = A.to_host(masks, "masks")  # labelling runs on the host (scikit-image) on every backend
    V.check_nonempty("masks", t)
    n_samples, spatial = L.sample_layout(t.shape, spatial_dims, "masks")
    labels = A.labels(t)
    flat = np.empty(labels.size, np.bool_)
    from ..kernels.cpu import regions as K

    _, n_bad = K.binary_mask(labels, False, labels.dtype.type(0), flat)
    V.raise_bad_labels("masks", labels, False, None, None, n_bad)
    out = np.zeros((n_samples, int(np.prod(spatial))), np.int64)
    total = 0
    for b in range(n_samples):
        regions, n = L.label_sample(flat.reshape(n_samples, -1)[b].reshape(spatial), connectivity)
        regions = regions.reshape(-1)
        out[b] = np.where(regions > 0, regions + total, 0)
        total += n
    out = out.reshape(t.shape)
    return (out, total) if return_num else out


def add_region_batch(state, preds, target, connectivity, spatial_dims, backend, fpr_limit=1.0,
                     finite=False):
    """Validate a batch and add it; ``finite`` rejects +-inf (sampled thresholds need a finite range)."""
    batch = G.intake_regions(preds, target, spatial_dims, backend)
    if finite:
        if batch.device:
            from ..kernels.cuda import _driver as D

            lo, hi, _ = D.min_max(batch.scores)
        else:
            lo, hi, _ = KS.min_max_nan(batch.scores.reshape(-1))
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ValueError(f"preds: num_thresholds spaces thresholds from the smallest to the largest score "
                             f"and needs finite scores, received scores from {lo} to {hi}")
    state.add(G.partition_regions(batch, connectivity, fpr_limit))


def _undefined(state, what):
    k, n_bg = state.n_regions, state.n_bg
    if k and n_bg:
        return False
    why = "no samples" if not (k or n_bg) else ("no defect region" if not k else "no background pixel")
    V.warn_undefined(f"{what} is undefined with {why}; returning nan", stacklevel=5)
    return True


def _groups(state, num_thresholds, fpr_limit=None):
    """Group stream of the curve; for an area (``fpr_limit`` given) only what it reads."""
    area = fpr_limit is not None
    if state.on_device:
        if num_thresholds is None and area and fpr_limit < 1.0:
            return G.device_region_groups(*state.device_sorted_top(fpr_limit), collapse=True)
        bg, rkeys, rsizes = state.device_sorted()
        if num_thresholds is None:
            return G.device_region_groups(bg, rkeys, rsizes, collapse=area)
        return G.device_sampled_region_groups(bg, rkeys, rsizes, num_thresholds)
    if num_thresholds is None and area and fpr_limit < 1.0:
        return G.exact_region_groups(*state.sorted_top(fpr_limit), collapse=True)
    bg, rkeys, rsizes = state.sorted()
    if num_thresholds is None:
        return G.exact_region_groups(bg, rkeys, rsizes, collapse=area)
    return G.sampled_region_groups(bg, rkeys, rsizes, num_thresholds)


def aupro_from_state(state, fpr_limit, num_thresholds):
    if _undefined(state, "AUPRO"):
        return float("nan")
    return G.aupro_from_groups(_groups(state, num_thresholds, fpr_limit), state.n_bg, state.n_regions,
                               fpr_limit)


def pro_curve_from_state(state, num_thresholds):
    if not (state.n_regions and state.n_bg):
        _undefined(state, "the PRO curve")
        if not (state.n_bg or state.n_region_pixels):
            return np.zeros(1), np.zeros(1)
    return G.curve_from_groups(_groups(state, num_thresholds), state.n_bg, state.n_regions)


def pro_curve(preds, target, *, num_thresholds=None, connectivity=None, spatial_dims=2, backend="auto"):
    """Per-region overlap (PRO) against false positive rate, one point per threshold.

    Defined in ``docs/definitions.md``, section "pro_curve" (the page a paper cites).

    Parameters
    ----------
    preds : array_like
        Anomaly maps, as many elements as ``target`` (``(B,1,H,W)`` maps with
        ``(B,H,W)`` masks are fine). Any real dtype; NaN rejected.
    target : array_like
        {0, 1} masks in a layout :func:`label_regions` accepts.
    num_thresholds : int, optional
        None (default): the exact curve. ``T``: the curve at ``T`` thresholds
        evenly spaced from the smallest to the largest score (anomalib 1.x).
    connectivity, spatial_dims, backend
        As in :func:`label_regions`.

    Returns
    -------
    fpr, pro : ndarray of float64
        Starting at (0, 0), then one point per distinct score, decreasing:
        ``fpr = FP(t) / #background``, ``pro = (1/K) sum_k |R_k and score >= t| / |R_k|``.

    Notes
    -----
    Pixels with equal scores are crossed together (the MVTec AD evaluation).
    Regions are the connected components of each sample's mask. With no region
    (no background pixel) every ``pro`` (``fpr``) after the (0, 0) start is
    NaN, with an UndefinedMetricWarning.

    Examples
    --------
    >>> import numpy as np
    >>> from refmetrics.functional import pro_curve
    >>> maps = np.array([[0.9, 0.5, 0.1, 0.3]])
    >>> masks = np.array([[1, 0, 0, 1]])  # a 1x4 image: two regions of one pixel
    >>> fpr, pro = pro_curve(maps, masks)
    >>> fpr.tolist(), pro.tolist()
    ([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0])
    """
    num_thresholds = check_num_thresholds(num_thresholds)
    connectivity = L.check_connectivity(connectivity, spatial_dims)
    state = G.RegionScores()
    add_region_batch(state, preds, target, connectivity, spatial_dims, backend, finite=num_thresholds is not None)
    return pro_curve_from_state(state, num_thresholds)


def aupro(preds, target, *, fpr_limit=0.3, num_thresholds=None, connectivity=None, spatial_dims=2, backend="auto"):
    """Normalised area under the PRO curve up to a false positive rate.

    Defined in ``docs/definitions.md``, section "AUPRO (exact and sampled)" (the page a paper cites).

    Parameters
    ----------
    preds, target, num_thresholds, connectivity, spatial_dims, backend
        As in :func:`pro_curve`.
    fpr_limit : float
        Upper integration limit in (0, 1]; 0.3 by default (MVTec AD).

    Returns
    -------
    float
        The trapezoid under :func:`pro_curve` from fpr 0 to ``fpr_limit``, the
        curve linearly interpolated at ``fpr_limit``, divided by ``fpr_limit``.
        NaN with an UndefinedMetricWarning when there is no region or no
        background pixel.

    Notes
    -----
    The exact curve is the default. ``num_thresholds=T`` is the sampled curve
    of anomalib 1.x (a compatibility option: it under-resolves steep parts of
    the curve); the area is then taken the same way. anomalib <= 2.2's own
    normalisation by an averaged end point is not reproduced.

    Examples
    --------
    >>> import numpy as np
    >>> from refmetrics.functional import aupro
    >>> maps = np.array([[0.9, 0.5, 0.1, 0.3]])
    >>> masks = np.array([[1, 0, 0, 1]])
    >>> aupro(maps, masks, fpr_limit=1.0)  # 0.5 * 0.5 + 0.5 * 1
    0.75
    >>> aupro(maps, masks)  # 0.3 * 0.5 / 0.3
    0.5
    """
    fpr_limit = check_fpr_limit(fpr_limit)
    num_thresholds = check_num_thresholds(num_thresholds)
    connectivity = L.check_connectivity(connectivity, spatial_dims)
    state = G.RegionScores()
    if num_thresholds is None:  # keep only what the area up to fpr_limit reads
        add_region_batch(state, preds, target, connectivity, spatial_dims, backend, fpr_limit)
    else:  # sampled thresholds need every score
        add_region_batch(state, preds, target, connectivity, spatial_dims, backend, finite=True)
    return aupro_from_state(state, fpr_limit, num_thresholds)


def pro_state_add(state, preds, target, threshold, connectivity, spatial_dims, backend):
    connectivity = L.check_connectivity(connectivity, spatial_dims)
    batch = G.intake_regions(preds, target, spatial_dims, backend)
    state.add(batch, threshold, connectivity)


def pro_from_state(state):
    if not state.n_regions:
        V.warn_undefined("PRO is undefined with no defect region; returning nan", stacklevel=4)
        return float("nan")
    return state.pro()


def pro_score(preds, target, *, threshold=0.5, connectivity=None, spatial_dims=2, backend="auto"):
    """Per-region overlap at one threshold.

    Defined in ``docs/definitions.md``, section "PRO" (the page a paper cites).

    Parameters
    ----------
    preds, target, connectivity, spatial_dims, backend
        As in :func:`pro_curve`.
    threshold : float
        A pixel is predicted anomalous when ``score > threshold`` (strict, as anomalib).

    Returns
    -------
    float
        ``(1/K) sum_k |R_k and score > threshold| / |R_k|``; NaN with an
        UndefinedMetricWarning when there is no region.

    Examples
    --------
    >>> from refmetrics.functional import pro_score
    >>> pro_score([[0.9, 0.6, 0.4, 0.5, 0.1]], [[1, 1, 0, 1, 1]])
    0.5
    """
    threshold = V.check_real("threshold", threshold)
    state = G.RegionOverlaps()
    pro_state_add(state, preds, target, threshold, connectivity, spatial_dims, backend)
    return pro_from_state(state)
