"""The MVTec 3D-AD layout (Bergmann et al., 2022): the dataset's ground truth and one map per test image::

    <gt>/<object>/test/<defect>/gt/<name>.png          a mask for every test image (good ones all zero);
                                                       rgb/ and xyz/ beside it are not read
    <maps>/<object>/test/<defect>/<name>.tiff|.tif|.npy|.png

As the official evaluation script (``evaluate_experiment.py``) does, the samples
are the ground-truth PNGs: each needs its map, and a map without a ground truth is
an error (a misplaced file, not something to skip). An image is anomalous when its
mask holds a defect pixel (``value > 0``, the official rule); a ``good`` image's
mask must be all zero.
"""

from pathlib import Path

from ... import _files as fileio
from ..samples import InputError, Sample
from .mvtec_ad import map_files


def _objects(maps_dir, gt_dir, categories):
    if categories:
        for option, d in (("--maps", maps_dir), ("--gt", gt_dir)):
            missing = [c for c in categories if not (d / c / "test").is_dir()]
            if missing:
                raise InputError(f"--categories: no {d}/<object>/test directory for {', '.join(missing)} "
                                 f"({option})")
        return list(categories)
    found = sorted(p.name for p in maps_dir.iterdir() if (p / "test").is_dir())
    if not found:
        raise InputError(f"--maps: no <object>/test/<defect>/ directories under {maps_dir} "
                         "(expected the MVTec 3D-AD layout)")
    for c in found:
        if not (gt_dir / c / "test").is_dir():
            raise InputError(f"--gt: no {gt_dir / c / 'test'} directory for the maps of {c!r} "
                             f"({maps_dir / c}); expected the MVTec 3D-AD dataset's <object>/test/<defect>/gt/")
    return found


def discover(maps_dir, gt_dir, categories=None):
    """Samples of an MVTec 3D-AD tree, in a fixed order (object, defect, name); see the module docstring."""
    maps_dir, gt_dir = Path(maps_dir), Path(gt_dir)
    for option, d in (("--maps", maps_dir), ("--gt", gt_dir)):
        if not d.is_dir():
            raise InputError(f"{option}: {d} is not a directory")
    samples = []
    for category in _objects(maps_dir, gt_dir, categories):
        test, maps_test = gt_dir / category / "test", maps_dir / category / "test"
        defects = sorted(p.name for p in test.iterdir() if p.is_dir())
        for extra in sorted(p for p in maps_test.iterdir() if p.is_dir() and p.name not in defects):
            raise InputError(f"{extra}: no ground truth for these maps, expected the directory {test / extra.name}/gt")
        found = []
        for defect in defects:
            truth = test / defect / "gt"
            if not truth.is_dir():
                raise InputError(f"{test / defect}: expected a gt/ directory of masks (MVTec 3D-AD: "
                                 "<object>/test/<defect>/{rgb,xyz,gt}/), found none")
            masks = {p.stem: p for p in sorted(truth.glob("*.png"))}
            by_stem = map_files(maps_test / defect) if (maps_test / defect).is_dir() else {}
            for stem, mask in masks.items():
                if stem not in by_stem:
                    raise InputError(f"{mask}: missing map, expected {maps_test / defect / stem}"
                                     f"{{{','.join(fileio.MAP_SUFFIXES)}}}")
                good = defect == "good"
                # anomalous when the mask holds a defect pixel (decided once read), as the official script
                found.append(Sample(category, by_stem[stem], mask, defective=False if good else None,
                                    defect=defect, empty_mask=good))
            for stem in sorted(set(by_stem) - set(masks)):
                raise InputError(f"{by_stem[stem]}: no ground truth for this map, expected {truth / stem}.png")
        if not found:
            raise InputError(f"{test}: no ground-truth masks (<defect>/gt/<name>.png) in its defect directories")
        samples += found
    return samples
