"""The MVTec LOCO AD layout (Bergmann et al., IJCV 2022)::

    <maps>/<object>/test/{good,logical_anomalies,structural_anomalies}/<name>.tiff|.tif|.npy|.png
    <gt>/<object>/ground_truth/{logical_anomalies,structural_anomalies}/<name>/000.png, 001.png, ...
    <gt>/<object>/defects_config.json

A defective image's ground truth is a directory of channel PNGs (one defect each, its pixels holding the
defect type's ``pixel_value``); a good image has none. ``defects_config.json`` gives each defect type's
saturation threshold; it is read once per object
(:func:`refmetrics.functional.read_defects_config`).
"""

from pathlib import Path

import numpy as np

from ... import _files as fileio
from ... import functional
from ..samples import InputError, Sample
from .mvtec_ad import map_files

GOOD = "good"
SUBSETS = ("logical_anomalies", "structural_anomalies")  # the official evaluation's two subsets, in its order


def read_config(path):
    """``defects_config.json`` read with :func:`refmetrics.functional.read_defects_config`; an error names
    the file, what was expected and what was found."""
    if not path.is_file():
        raise InputError(f"{path}: missing defects config, expected the object's defects_config.json (a JSON "
                         "list of defect_name, pixel_value, saturation_threshold, relative_saturation entries)")
    try:
        return functional.read_defects_config(path)
    except (ValueError, TypeError, OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: {str(exc).removeprefix('path: ')}") from exc


class ChannelTruth:
    """The ground truth of one LOCO image: its directory of channel PNGs, read with its object's defects
    config (the sample's ``truth_reader``)."""

    def __init__(self, config):
        self.config = config

    def shape(self, sample):
        """The 2-D size of the first channel PNG (every channel must match it, checked when read)."""
        pngs = sorted(sample.truth_dir.glob("*.png"))
        if not pngs:
            raise InputError(f"{sample.truth_dir}: expected one or more channel PNGs (000.png, ...), found none")
        return fileio.mask_shape(pngs[0], fileio.header(pngs[0])[0])

    def read(self, sample):
        """``(mask, defects)``: the union of the channels, and
        :func:`refmetrics.functional.defects_from_channels`'s list."""
        pngs = sorted(sample.truth_dir.glob("*.png"))
        shape = sample.mask_shape
        for png in pngs:
            got = fileio.mask_shape(png, fileio.header(png)[0])
            if got != shape:
                raise InputError(f"{png}: channel of size {got[0]}x{got[1]}, but {pngs[0].name} of the same image "
                                 f"is {shape[0]}x{shape[1]}; every channel of an image must have one size")
        defects = []
        for png in pngs:  # one at a time, so that an error names the channel's file
            try:
                defects += functional.defects_from_channels([str(png)], config=self.config)
            except ValueError as exc:
                raise InputError(f"{png}: {str(exc).removeprefix('channels[0]: ')}") from exc
            if defects[-1][0].shape != shape:  # a colour or grey+alpha PNG: LOCO's channels are single grey PNGs
                raise InputError(f"{png}: expected a single-channel PNG of 0 and the defect's pixel value, "
                                 f"received an image of shape {defects[-1][0].shape}")
        mask = np.zeros(shape, bool)
        for m, _, _ in defects:
            mask |= m
        return mask, defects


def discover(maps_dir, gt_dir, categories=None):
    """Samples of an MVTec LOCO AD tree, in a fixed order (object, subset, name).

    Every map under ``logical_anomalies`` or ``structural_anomalies`` needs its channel directory
    under ``ground_truth``, and every channel directory its map; a good image has no ground truth.
    """
    maps_dir, gt_dir = Path(maps_dir), Path(gt_dir)
    for name, d in (("--maps", maps_dir), ("--gt", gt_dir)):
        if not d.is_dir():
            raise InputError(f"{name}: {d} is not a directory")
    if categories:
        missing = [c for c in categories if not (maps_dir / c / "test").is_dir()]
        if missing:
            raise InputError(f"--categories: no {maps_dir}/<object>/test directory for {', '.join(missing)}")
    else:
        categories = sorted(p.name for p in maps_dir.iterdir() if (p / "test").is_dir())
        if not categories:
            raise InputError(f"--maps: no <object>/test/<subset>/ directories under {maps_dir} (expected the "
                             "MVTec LOCO AD layout: <object>/test/{good,logical_anomalies,structural_anomalies})")
    samples = []
    for category in categories:
        test = maps_dir / category / "test"
        truth = gt_dir / category / "ground_truth"
        reader = ChannelTruth(read_config(gt_dir / category / "defects_config.json"))
        found = []
        for subset_dir in sorted(p for p in test.iterdir() if p.is_dir()):
            subset = subset_dir.name
            if subset != GOOD and subset not in SUBSETS:
                raise InputError(f"{subset_dir}: unexpected subset directory; expected {GOOD}, "
                                 f"{', '.join(SUBSETS)}")
            for stem, path in map_files(subset_dir).items():
                if subset == GOOD:
                    found.append(Sample(category, path, None, defective=False, defect=subset))
                    continue
                channels = truth / subset / stem
                if not channels.is_dir():
                    raise InputError(f"{path}: missing ground truth, expected the directory {channels} of channel "
                                     "PNGs (000.png, ...)")
                found.append(Sample(category, path, None, defective=True, defect=subset, truth_dir=channels,
                                    truth_reader=reader))
        if not found:
            raise InputError(f"{test}: no anomaly maps ({', '.join(fileio.MAP_SUFFIXES)}) in its subset directories")
        # every channel directory needs its map; the ground truth holds the two subsets only
        have = {s.truth_dir for s in found if s.truth_dir is not None}
        if truth.is_dir():
            for subset_dir in sorted(p for p in truth.iterdir() if p.is_dir()):
                if subset_dir.name not in SUBSETS:
                    raise InputError(f"{subset_dir}: unexpected ground-truth directory; expected "
                                     f"{', '.join(SUBSETS)} (good images have no ground truth)")
                for channels in sorted(p for p in subset_dir.iterdir() if p.is_dir()):
                    if channels not in have:
                        raise InputError(f"{channels}: ground truth without a map, expected "
                                         f"{test / subset_dir.name / channels.name}"
                                         f"{{{','.join(fileio.MAP_SUFFIXES)}}}")
        samples += found
    return samples
