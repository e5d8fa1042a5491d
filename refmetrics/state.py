"""The pooled exact pixel state of a set of images, image by image, with per-image offsets.

:class:`PixelState` is what ``refmetrics evaluate`` builds for one category, and
what a user builds to compute every pixel metric of a test set from one pass
over its maps, in bounded memory: one key buffer holds every pixel (4 bytes per
float32 pixel, 8 per float64), background keys filled from the front and defect
pixels' keys from the back, with each defect pixel's region size (4 bytes) kept
beside it. Per-image offsets into that buffer give each image's own pixels
(per-image metrics such as AUPIMO need them) until :meth:`PixelState.finish`
sorts the pooled keys.

Example
-------
>>> import numpy as np
>>> from refmetrics.state import PixelState
>>> maps = np.array([[[0.1, 0.2], [0.3, 0.4]], [[0.9, 0.2], [0.8, 0.1]]], np.float32)
>>> masks = np.array([[[0, 0], [0, 0]], [[1, 0], [1, 0]]], np.uint8)
>>> state = PixelState(n_pixels=maps.size)
>>> for m, t in zip(maps, masks):
...     state.add(m, t)
>>> state.pixels_per_image.tolist()  # (background, defect) pixels of each image
[[4, 0], [2, 2]]
>>> state.finish()
>>> state.auroc(), round(state.aupro(fpr_limit=0.3), 12)
(1.0, 1.0)
"""

import numpy as np

from . import _labels as L
from . import _validation as V
from .functional import _engine as E
from .functional import _ranked as R
from .functional import _regions as G
from .functional import ranking as FR
from .functional import regions as FG
from .kernels.cpu import keys as KEYS
from .kernels.cpu import regions as KG

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class PixelState:
    """Every pixel of a set of images as exact keys, split into background and defect pixels.

    Parameters
    ----------
    n_pixels : int
        Room for this many pixels in all (the buffer is allocated once).
    dtype : {numpy.float32, numpy.float64}
        The float type the maps are converted to (float64 for float64 or wide
        integer maps: keys must hold every score exactly).
    connectivity : int, optional
        Region connectivity of the masks (``None``: full, 8-connected in 2-D), as
        :func:`refmetrics.functional.aupro`.
    memory_limit : int, optional
        Bytes of keys to hold at a time: the keys are then spilled to a temporary
        directory and the state is a :class:`refmetrics._spill.SpilledPixelState`
        (the same numbers, bit for bit; per-image keys not kept). None: in memory.
    tmp_dir : str or path-like, optional
        Where a spilled state's temporary directory goes (None: the system's).

    Notes
    -----
    Images are added with :meth:`add`; :meth:`finish` sorts the pooled keys
    once, after which the metrics are read (:meth:`auroc`, :meth:`average_precision`,
    :meth:`f1_max`, :meth:`aupro`, :meth:`roc_pr_points`, :meth:`pro_points`) and
    no image can be added. Results equal the functional API's on the same
    pixels, bit for bit, whatever the order the images were added in.
    """

    def __new__(cls, n_pixels=None, dtype=np.float32, connectivity=None, memory_limit=None, tmp_dir=None):
        if cls is PixelState and memory_limit is not None:  # bounded memory: keys spilled to tmp_dir
            from ._spill import SpilledPixelState

            return super().__new__(SpilledPixelState)
        return super().__new__(cls)

    def __init__(self, n_pixels, dtype=np.float32, connectivity=None, memory_limit=None, tmp_dir=None):
        n_pixels = V.check_count("n_pixels", n_pixels)
        dtype = np.dtype(dtype)
        if dtype not in _DTYPES:
            raise ValueError(f"dtype: expected float32 or float64, received {dtype}")
        self.float = dtype
        self.kd = KEYS.KEY_OF[dtype]
        self._consts = KEYS.CONSTS[self.kd]
        self.connectivity = connectivity
        self._keys = np.empty(n_pixels, self.kd)
        self._rsizes = []
        self.n_bg = self.n_defect = self.n_regions = 0
        self._offsets = [(0, 0)]  # (background, defect) pixels before each image
        self._regions_per_image = []
        self._sorted = None

    # -- filling --------------------------------------------------------------

    @property
    def n_images(self):
        return len(self._offsets) - 1

    @property
    def offsets(self):
        """``(n_images + 1, 2)`` int64: background and defect pixels before each image (and in all)."""
        return np.array(self._offsets, np.int64)

    @property
    def pixels_per_image(self):
        """``(n_images, 2)`` int64: each image's background and defect pixel counts."""
        return np.diff(self.offsets, axis=0)

    @property
    def regions_per_image(self):
        """``(n_images,)`` int64: each image's number of defect regions."""
        return np.array(self._regions_per_image, np.int64)

    def image_region_sizes(self, i):
        """Region sizes (uint32) of image ``i``'s defect pixels, in the order of
        :meth:`image_keys`' defect keys; available until :meth:`finish`."""
        bg, defect = self.image_keys(i)
        if not defect.size:
            return np.empty(0, np.uint32)
        return self._rsizes[int(np.count_nonzero(self.pixels_per_image[:i, 1]))]

    def add(self, scores, mask=None, name="scores"):
        """Add one image: its map (any shape) and its mask (same shape, nonzero = defect; None = none).

        ``name`` names the map in errors (a file name, say). A map holding NaN
        raises ValueError, and the state is then unusable (its counts are not
        rolled back): start again.
        """
        if self._sorted is not None:
            raise RuntimeError("PixelState.add: the state is finished (sorted); add every image before finish()")
        flat = np.ascontiguousarray(scores, dtype=self.float).reshape(-1)
        if self.n_bg + self.n_defect + flat.size > self._keys.size:
            raise ValueError(f"{name}: the state holds {self._keys.size:,} pixels, "
                             f"{self._keys.size - self.n_bg - self.n_defect:,} of them free; received "
                             f"{flat.size:,} more")
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape != np.shape(scores):
                raise ValueError(f"mask: expected the shape of {name} {np.shape(scores)}, received {mask.shape}")
        bits = flat.view(self.kd)
        zero = self.kd.type(0)
        n = 0  # regions of this image
        if mask is None or not mask.any():
            self.n_bg, n_nan = KG.partition_background(bits, self._consts, zero, self._keys, self.n_bg)
        else:
            regions, n = L.label_sample(mask != 0, self.connectivity)
            regions = regions.reshape(-1)
            sizes = np.bincount(regions, minlength=n + 1).astype(np.int64)
            n_defect = int(flat.size - sizes[0])
            end = self._keys.size - self.n_defect
            rsizes = np.empty(n_defect, np.uint32)  # a region of one image: fewer than 2**32 pixels
            self.n_bg, _, n_nan = KG.partition_regions(bits, regions, sizes, self._consts, zero, self._keys,
                                                       self.n_bg, self._keys[end - n_defect:end], rsizes, 0)
            self._rsizes.append(rsizes)
            self.n_defect += n_defect
            self.n_regions += n
        if n_nan:
            raise ValueError(f"{name}: expected scores without NaN, received {int(n_nan):,} NaN values")
        self._offsets.append((self.n_bg, self.n_defect))
        self._regions_per_image.append(n)

    def image_keys(self, i):
        """``(background, defect)`` keys of image ``i`` (views, in the image's pixel order less
        NaNs), available until :meth:`finish`. Decode with ``kernels.cpu.keys.decode_keys``."""
        if self._sorted is not None:
            raise RuntimeError("PixelState.image_keys: the state is finished (sorted): per-image keys are "
                               "gone; read them before finish()")
        if not -self.n_images <= i < self.n_images:
            raise IndexError(f"i: expected an image index below {self.n_images}, received {i}")
        i %= self.n_images
        (b0, d0), (b1, d1) = self._offsets[i], self._offsets[i + 1]
        end = self._keys.size
        return self._keys[b0:b1], self._keys[end - d1:end - d0]

    # -- sorting --------------------------------------------------------------

    def finish(self):
        """Sort the pooled keys in place: background keys, then defect keys by (key, region size)."""
        if self._sorted is not None:
            return
        bg = self._keys[:self.n_bg]
        E.sort_keys_in_place(bg)  # in place, no second buffer: partitioned, the slices sorted in threads
        rkeys = self._keys[self._keys.size - self.n_defect:]  # the images' defect keys, last image first
        rsizes = np.concatenate(self._rsizes[::-1]) if self._rsizes else np.empty(0, np.uint32)
        self._rsizes = []
        if not E.sort_pairs_in_place(rkeys, rsizes):  # (key << 32 | size) as one uint64 sort, or:
            tk, tp = np.empty_like(rkeys), np.empty_like(rsizes)
            if KG.radix_sort_pairs(rkeys, rsizes, tk, tp, R._SHIFTS[self.kd], R._SHIFTS[np.dtype(np.uint32)]):
                rkeys[...], rsizes[...] = tk, tp
            del tk, tp
        self._sorted = (bg, rkeys, rsizes)
        pixels = R.ExactScores()
        pixels.walk_once = True  # AUROC, AP and F1-max from one walk of the sorted keys
        pixels.add(R._Part(rkeys, bg, None, is_sorted=True))
        regions = G.RegionScores()
        regions.add(G._Part(bg, rkeys, rsizes, self.n_regions, is_sorted=True))
        self._pixels, self._regions = pixels, regions

    def sorted_keys(self):
        """``(background, defect)`` keys, each sorted increasing (views into the state, read-only by
        convention), after :meth:`finish`; decode with ``kernels.cpu.keys.decode_keys``. What a
        convention computed from order statistics reads (a threshold at a rank of the background scores)."""
        bg, rkeys, _ = self._need_sorted("sorted_keys")
        return bg, rkeys

    def _need_sorted(self, what):
        if self._sorted is None:
            raise RuntimeError(f"PixelState.{what}: call finish() first (it sorts the pooled keys)")
        return self._sorted

    # -- metrics --------------------------------------------------------------

    def auroc(self):
        """Pixel AUROC (as :func:`refmetrics.functional.auroc`)."""
        self._need_sorted("auroc")
        return FR.auroc_from_state(self._pixels)

    def average_precision(self):
        """Pixel average precision (as :func:`refmetrics.functional.average_precision`)."""
        self._need_sorted("average_precision")
        return FR.average_precision_from_state(self._pixels)

    def f1_max(self):
        """Pixel F1-max (as :func:`refmetrics.functional.f1_max`); NaN without a defect pixel."""
        self._need_sorted("f1_max")
        best = FR.f1_from_state(self._pixels)  # None, with the undefined-metric warning
        return best[1] if best is not None else float("nan")

    def aupro(self, fpr_limit=0.3):
        """AUPRO up to ``fpr_limit`` (as :func:`refmetrics.functional.aupro`)."""
        self._need_sorted("aupro")
        return FG.aupro_from_state(self._regions, FG.check_fpr_limit(fpr_limit), None)

    def score_range(self):
        """``(min, max)`` of every pixel, as float64 (-0.0 read as +0.0); ``(nan, nan)`` without a pixel."""
        bg, rkeys, _ = self._need_sorted("score_range")
        ends = [k[[0, -1]] for k in (bg, rkeys) if k.size]
        if not ends:
            return float("nan"), float("nan")
        values = KEYS.decode_keys(np.concatenate(ends))
        return float(values.min()), float(values.max())

    def counts_at_least(self, thresholds):
        """``(T, 2)`` int64: the background and defect pixels whose score is ``>= t`` for each float64
        threshold ``t`` (exact: a binary search of the sorted keys, no pixel read again)."""
        bg, rkeys, _ = self._need_sorted("counts_at_least")
        t = np.asarray(thresholds, np.float64).reshape(-1)
        return np.stack([k.size - self._first_at(k, t, False) for k in (bg, rkeys)], axis=1).astype(np.int64)

    def counts_above(self, thresholds):
        """``(T, 2)`` int64: the background and defect pixels whose score is ``> t`` (strictly) for each
        float64 threshold ``t``; exact, as :meth:`counts_at_least`."""
        bg, rkeys, _ = self._need_sorted("counts_above")
        t = np.asarray(thresholds, np.float64).reshape(-1)
        return np.stack([k.size - self._first_at(k, t, True) for k in (bg, rkeys)], axis=1).astype(np.int64)

    def _first_at(self, keys, t, strict):
        """Index of the first sorted key whose score is ``>= t`` (``> t`` when ``strict``), for each ``t``."""
        bounds, none = threshold_bounds(t, self.kd, strict)
        first = np.searchsorted(keys, bounds, side="left")
        first[none] = keys.size
        return first

    def region_overlap_at_least(self, thresholds, weight=None, strict=False):
        """``(T,)`` float64: for each float64 threshold ``t``, the sum over the defect pixels scoring
        ``>= t`` (``> t`` when ``strict``) of the weight of their region's size, by default ``1 / size``.

        With the default weight, ``sum / n_regions`` is the mean over regions of the share of each region's
        pixels at or above ``t``: the PRO at ``t`` (each region's pixels at or above ``t``, divided by its
        size, summed over regions).

        Parameters
        ----------
        thresholds : array_like of float
            The thresholds (float64; any order).
        weight : callable, optional
            Maps an int64 array of region sizes to their float64 weights (finite, >= 0); None:
            ``1.0 / size`` in float64. ADEval's weights, say, are ``float32(1 / size)``.
        strict : bool
            Count the pixels scoring strictly above ``t``.

        Notes
        -----
        Each sum is exact and rounded once: the weights (float64 numbers) are added as integers over one
        power-of-two denominator, grouped by region size, walking the sorted keys once from the highest
        score down, so the result is the same whatever order the images were added in. With the default
        weight the only error is each ``1 / size`` rounded to float64, a relative error below ``2**-53``
        of the sum (then one rounding). Temporary memory: one chunk of defect pixels at a time.
        """
        _, rkeys, rsizes = self._need_sorted("region_overlap_at_least")
        t = np.asarray(thresholds, np.float64).reshape(-1)
        out = np.zeros(t.size, np.float64)
        if not rkeys.size:
            return out
        chunk = 1 << 20
        sizes = np.unique(np.concatenate([np.unique(rsizes[a:a + chunk]) for a in range(0, rsizes.size, chunk)]))
        ints, shift = overlap_weights(sizes, weight)
        first = self._first_at(rkeys, t, strict)
        total, end = 0, rkeys.size
        for i in np.argsort(first, kind="stable")[::-1]:  # from the fewest pixels counted to the most
            start = int(first[i])
            for a in range(start, end, chunk):  # the pixels between this threshold and the previous one
                u, c = np.unique(rsizes[a:min(a + chunk, end)], return_counts=True)
                total += int(np.dot(ints[np.searchsorted(sizes, u)], c.astype(object)))
            end = min(end, start)
            out[i] = total / (1 << shift)  # Python's int division: correctly rounded
        return out

    def roc_pr_points(self):
        """Yield ``(fpr, tpr, precision)`` chunks, one point per distinct score, decreasing
        threshold (exact ratios of integer counts; the curves ``evaluate`` draws)."""
        bg, rkeys, _ = self._need_sorted("roc_pr_points")
        p, n = rkeys.size, bg.size
        tp = fp = 0
        for _keys, dtp, dfp in R.exact_groups(rkeys, bg):
            ctp, cfp = np.cumsum(dtp) + tp, np.cumsum(dfp) + fp
            tp, fp = int(ctp[-1]), int(cfp[-1])
            yield cfp / n, ctp / p, ctp / (ctp + cfp)

    def pro_points(self):
        """Yield ``(fpr, pro)`` chunks of the PRO curve, one point per distinct score, decreasing threshold."""
        bg, rkeys, rsizes = self._need_sorted("pro_points")
        return pro_points_from_groups(G.exact_region_groups(bg, rkeys, rsizes), bg.size, self.n_regions)


def threshold_bounds(thresholds, key_dtype, strict=False):
    """``(bounds, none)`` for float64 thresholds ``t``: a score is ``>= t`` (``> t`` when ``strict``) iff its
    key is ``>= bounds[i]``, except where ``none[i]`` (``> +inf``: no score is)."""
    t = np.asarray(thresholds, np.float64).reshape(-1)
    if not strict:
        return KEYS.threshold_keys(t, key_dtype), np.zeros(t.size, bool)
    # score > t  iff  score >= the next float64 above t (rounded up to float32 for float32 keys)
    with np.errstate(over="ignore"):  # -inf's next float64 is below float32's range: -inf, then rounded up
        bounds = KEYS.threshold_keys(np.nextafter(t, np.inf), key_dtype)
    return bounds, t == np.inf  # nothing is above +inf (nextafter leaves it at +inf)


def overlap_weights(sizes, weight):
    """``(ints, shift)``: the float64 weight of each region size in ``sizes`` (sorted, distinct) as an exact
    integer over ``2**shift`` (Python ints in an object array), :meth:`PixelState.region_overlap_at_least`'s
    ``weight`` (None: ``1 / size``) checked to give one finite weight >= 0 per size."""
    w = np.asarray(weight(sizes.astype(np.int64)) if weight is not None else 1.0 / sizes, np.float64)
    if w.shape != sizes.shape or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"weight: expected one finite weight >= 0 per region size ({sizes.size}), received "
                         f"{w.shape} values" + ("" if w.shape != sizes.shape else " with some negative or "
                                                "non-finite"))
    ratios = [float(x).as_integer_ratio() for x in w]  # denominators: powers of two
    shift = max(d.bit_length() - 1 for _, d in ratios)
    return np.array([n << (shift - d.bit_length() + 1) for n, d in ratios], dtype=object), shift


def pro_points_from_groups(groups, n_bg, n_regions):
    """Yield ``(fpr, pro)`` chunks of the PRO curve from ``(dfp, dS_h, dS_l)`` group chunks (distinct scores
    decreasing): the running sums :meth:`PixelState.pro_points` draws (the same chunks give the same bits)."""
    fp, s = 0, 0.0
    for dfp, dsh, dsl in groups:
        cfp = np.cumsum(dfp) + fp
        cs = np.cumsum(dsh + dsl) + s
        fp, s = int(cfp[-1]), float(cs[-1])
        yield cfp / n_bg, cs / n_regions

