"""Samples: one test image of a dataset (its map, its ground truth, its labels), and the header check.

Every reader (:mod:`refmetrics.evaluate.readers`) turns a dataset into a list of
:class:`Sample`, in a fixed order; the header check then reads every file's
header (no pixels) so that a malformed dataset fails before anything is
computed, naming the file, what was expected and what was found.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import _files as fileio

InputError = fileio.InputError
RESIZE = {"nearest": 0, "bilinear": 1}  # --resize: scikit-image's interpolation order


@dataclass
class Sample:
    """One test image.

    ``defective`` is True, False, or None (decided once the mask is read: defective when it has a defect
    pixel). ``defect`` names its defect type (``"good"`` for a defect-free image), used by the per-defect
    breakdown. ``group`` is the multi-view sample it belongs to (Real-IAD). A ground truth other than one
    mask file is ``truth_dir`` (MVTec LOCO's directory of channel PNGs), read by ``truth_reader``, which the
    reader supplies: an object with ``shape(sample)`` (the 2-D size, from headers) and ``read(sample)``
    (``(mask, truth)``: the defect pixels, and whatever else the protocol's accumulators take).
    ``mask_above``: a mask pixel is a defect pixel where its value exceeds this (0: any non-zero value).
    """

    category: str
    map: Path
    mask: Path | None
    defective: bool | None
    score: float | None = None
    defect: str | None = None
    group: str | None = None
    truth_dir: Path | None = None
    truth_reader: object = None
    mask_above: int = 0
    shape: tuple = ()
    dtype: np.dtype = None
    mask_shape: tuple = ()
    target: tuple = ()  # the map's size once read (resized to the mask's with --resize)
    empty_mask: bool = False  # a good image's mask (MVTec ground_truth/good/): must hold no defect pixel

    @property
    def truth(self):
        """The file or directory holding the ground truth (a mask, or LOCO's channel directory), or None."""
        return self.truth_dir if self.truth_dir is not None else self.mask


@dataclass
class Result:
    """The numbers of one category (or of one defect type of it: ``defects`` is then empty)."""

    category: str
    values: dict
    counts: dict
    curves: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    defects: dict = field(default_factory=dict)  # defect type -> Result (its images and every good image)
    extra: dict = field(default_factory=dict)  # protocol-specific numbers for its own files (LOCO's JSON)
    # --ci: column key -> (low, high) percentile interval, or None (no interval: undefined, official, or no
    # replicate for the column); the replicates themselves (column key -> (B,) float64), kept for the mean
    # row's interval; the intervals' level (None without --ci)
    intervals: dict = field(default_factory=dict)
    replicates: dict = field(default_factory=dict)
    level: float | None = None
    resamples: int | None = None


def size_text(shape):
    return f"{shape[0]}x{shape[1]}"


def _truth_shape(s):
    """The ground truth's 2-D size, from headers: the mask's, or what the sample's truth reader says."""
    if s.truth_reader is not None:
        return s.truth_reader.shape(s)
    return fileio.mask_shape(s.mask, fileio.header(s.mask)[0])


def check_headers(samples, resize):
    """Read every header and set each sample's target size.

    Every map of a category must have its category's size, so that every pixel
    weighs the same: a map with a mask must have its mask's size; a map without
    one (a good image) the size of one of its category's masks; and in a category
    without any mask, all maps must have one size. With ``resize``, a map is
    resized to its mask's size and a good image's map to its category's mask size
    (when the masks have one size).
    """
    for s in samples:
        shape, s.dtype = fileio.header(s.map)
        s.shape = fileio.map_shape(s.map, shape)
        if s.dtype.kind not in "biuf":
            raise InputError(f"{s.map}: expected real anomaly scores, received dtype {s.dtype}")
        if s.truth is not None:
            s.mask_shape = _truth_shape(s)
            if s.mask_shape != s.shape and resize is None:
                raise InputError(f"{s.map}: map of size {size_text(s.shape)} but its ground truth {s.truth} is "
                                 f"{size_text(s.mask_shape)}; pass --resize nearest|bilinear to "
                                 "resize maps to their masks")
        s.target = s.mask_shape if s.truth is not None else s.shape
    for category in dict.fromkeys(s.category for s in samples):
        group = [s for s in samples if s.category == category]
        with_mask = {}
        for s in group:
            if s.truth is not None:
                with_mask.setdefault(s.mask_shape, s.truth)
        sizes = sorted(with_mask)
        if not sizes:  # no mask at all: the maps must agree with each other
            first = group[0]
            other = next((s for s in group if s.shape != first.shape), None)
            if other is not None:
                raise InputError(f"{other.map}: map of size {size_text(other.shape)} but {first.map} (same "
                                 f"category {category!r}, which has no mask) is {size_text(first.shape)}; every "
                                 "map of a category must have one size")
            continue
        for s in group:
            if s.truth is not None or s.shape in sizes:
                continue
            shown = " or ".join(f"{size_text(z)} (as {with_mask[z]})" for z in sizes)
            if resize is None:
                raise InputError(f"{s.map}: map of size {size_text(s.shape)} but the masks of its category "
                                 f"{category!r} are {shown}; pass --resize nearest|bilinear to resize maps to "
                                 "their category's mask size")
            if len(sizes) > 1:
                raise InputError(f"{s.map}: map of size {size_text(s.shape)} has no mask, and the masks of its "
                                 f"category {category!r} have several sizes ({shown}): --resize cannot tell which "
                                 "size it should have")
            s.target = sizes[0]


def by_category(samples):
    """``{category: [samples]}`` in first-seen order."""
    groups = {}
    for s in samples:
        groups.setdefault(s.category, []).append(s)
    return groups
