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
        config = read_config(gt_dir / category / "defects_config.json")
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
                found.append(Sample(category, path, None, defective=True, defect=subset, channels=channels,
                                    config=config))
        if not found:
            raise InputError(f"{test}: no anomaly maps ({', '.join(fileio.MAP_SUFFIXES)}) in its subset directories")
        # every channel directory needs its map; the ground truth holds the two subsets only
        have = {s.channels for s in found if s.channels is not None}
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
