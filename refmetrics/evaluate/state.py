"""One streaming state for a group of samples: each map is read once and handed to the accumulators.

A protocol says which accumulators it needs (:meth:`Protocol.accumulators`):
the image scores and labels (:class:`Images`, always), the pooled exact pixel
state (:class:`Pixels`: pixel AUROC, AP, F1-max, AUPRO at any limit, all from
one key buffer of 4 bytes per float32 pixel), or its own (AU-sPRO's state,
segmentation counts at a threshold, MVTec LOCO's official arrays). The official
conventions of the other protocols are read from the finished pixel state.
:class:`GroupState` reads each sample's map and ground truth once, checks them,
reduces the image score, resizes the map when asked, and gives each accumulator
an :class:`Image`. Adding a protocol adds accumulators, never a change here.
"""

from dataclasses import dataclass

import numpy as np

from .. import _files as fileio
from .. import functional
from ..state import PixelState
from .options import ImageScore
from .samples import RESIZE, InputError

_WIDE = {np.dtype(t) for t in (np.float64, np.int32, np.uint32, np.int64, np.uint64)}


def score_of(image_score, values, path):
    """The score of one map (float) under ``image_score``, or an :class:`InputError` naming the file."""
    if image_score.reduce == "max":
        return float(values.max())
    try:
        return float(functional.image_scores(values[np.newaxis], reduce=image_score.reduce, k=image_score.k,
                                    kernel=image_score.kernel, backend="cpu")[0])
    except ValueError as exc:
        raise InputError(f"{path}: --image-score {image_score.reduce}: {exc}") from exc


@dataclass
class Image:
    """One sample as read: ``values`` (the map at its target size: float32, or float64 for wide types),
    ``mask`` (bool, None for a defect-free image without a mask), ``truth`` (what the sample's own reader
    returned beside the mask: LOCO's defects), the image ``score``, whether it is ``defective``, and the
    map's ``dtype`` as read (``values``' dtype; given where ``values`` is None: ``--dask`` reads the maps on
    the workers)."""

    sample: object
    values: np.ndarray
    mask: np.ndarray | None
    truth: object
    score: float
    defective: bool
    dtype: np.dtype | None = None

    def __post_init__(self):
        if self.dtype is None and self.values is not None:
            self.dtype = self.values.dtype


def is_wide(samples, float16=False):
    """Whether the maps need float64 keys: resized maps (float64 values), or float64 or wide integer maps
    unless ``float16`` rounds them first (a float16 score is exact in float32)."""
    if any(s.target != s.shape for s in samples):
        return True
    return not float16 and any(s.dtype.newbyteorder("=") in _WIDE for s in samples)


class Images:
    """Image scores, labels, defect types and multi-view groups, in sample order."""

    def __init__(self, samples, options):
        self.scores, self.labels, self.defects, self.groups = [], [], [], []

    def add(self, image):
        self.scores.append(image.score)
        self.labels.append(int(image.defective))
        self.defects.append(image.sample.defect)
        self.groups.append(image.sample.group)

    def arrays(self):
        return np.array(self.scores, np.float64), np.array(self.labels, np.uint8)


class Pixels:
    """The pooled exact pixel state (:class:`refmetrics.state.PixelState`) of the group; with
    ``options.dask``, its cluster counterpart (:class:`refmetrics.evaluate.dask_state.DaskPixelState`),
    which records the samples (the workers read their pixels)."""

    def __init__(self, samples, options):
        dtype = np.float64 if is_wide(samples, options.float16) else np.float32
        if options.dask is not None:
            from .dask_state import DaskPixelState

            self.state = DaskPixelState(dtype, options.connectivity, options)
            return
        total = sum(s.target[0] * s.target[1] for s in samples)
        self.state = PixelState(total, dtype, options.connectivity, memory_limit=options.memory_limit,
                                tmp_dir=options.tmp_dir)

    def add(self, image):
        if image.values is None:  # --dask: the pixels stay on the workers
            self.state.add_sample(image.sample)
        else:
            self.state.add(image.values, image.mask, name=str(image.sample.map))


class GroupState:
    """The state of one group of samples (a category, or one defect type of it with every good image).

    ``accumulators``: ``{name: factory(samples, options)}``; each built object is reachable as
    ``state[name]`` and receives every :class:`Image` through its ``add``.
    """

    def __init__(self, samples, options, accumulators, image_score=ImageScore()):
        self.samples = samples
        self.options = options
        self.image_score = image_score
        self.parts = {"images": Images(samples, options)}
        for name, factory in accumulators.items():
            self.parts[name] = factory(samples, options)
        self.contradicted = []  # maps labelled good whose mask has defect pixels
        self.stream = None  # --ci: the name the group's resamples are drawn under (run.stream_name)

    def __getitem__(self, name):
        return self.parts[name]

    def read(self, sample):
        """The :class:`Image` of one sample (map, ground truth and score read and checked)."""
        values = fileio.read_map(sample.map)
        if self.options.float16:  # as the MVTec AD 2 server receives them: every score rounded to float16
            values = values.astype(np.float16).astype(np.float32)
        # the image score is reduced from the map as stored (before any resizing), unless the manifest gives it
        score = sample.score if sample.score is not None else score_of(self.image_score, values, sample.map)
        truth = None
        if sample.truth_reader is not None:
            mask, truth = sample.truth_reader.read(sample)
        elif sample.mask is not None:
            mask = fileio.read_mask(sample.mask, sample.mask_above)
        else:
            mask = None
        n_defect_pixels = int(np.count_nonzero(mask)) if mask is not None else 0
        if sample.empty_mask and n_defect_pixels:
            raise InputError(f"{sample.mask}: the mask of a good image holds {n_defect_pixels:,} defect "
                             f"pixel{'s' if n_defect_pixels != 1 else ''}; masks of good images must be "
                             "all zero")
        if sample.defective is False and n_defect_pixels:
            self.contradicted.append(sample.map)  # labelled good, with defect pixels: they count as defect pixels
        if values.shape != sample.target:
            from skimage.transform import resize

            values = resize(values.astype(np.float64), sample.target, order=RESIZE[self.options.resize],
                            preserve_range=True, anti_aliasing=False,
                            mode=self.options.resize_mode)
        defective = sample.defective if sample.defective is not None else bool(mask is not None and mask.any())
        return Image(sample, values, mask, truth, score, defective)

    def add(self, sample):
        image = self.read(sample)
        for part in self.parts.values():
            part.add(image)
