"""The MVTec AD layout (also MVTec 3D-AD's anomaly maps, and any tree laid out the same way)::

    <maps>/<category>/test/<defect>/<name>.tiff|.tif|.npy|.png
    <gt>/<category>/ground_truth/<defect>/<name>_mask.png   (optional for "good": all zero)
"""

from pathlib import Path

from ... import _files as fileio
from ..samples import InputError, Sample

OTHER_IMAGES = {".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".exr", ".hdr", ".pfm"}


def map_files(directory):
    """``{stem: path}`` of the anomaly maps in ``directory``, sorted; a lossy image format or two maps of one
    image are errors naming the file."""
    by_stem = {}
    for path in sorted(directory.iterdir()):
        suffix = path.suffix.lower()
        if suffix in OTHER_IMAGES:
            raise InputError(f"{path}: unsupported map file type {suffix!r}; save maps as "
                             f"{', '.join(fileio.MAP_SUFFIXES)} (lossless, exact scores)")
        if suffix not in fileio.MAP_SUFFIXES or not path.is_file():
            continue
        if path.stem in by_stem:
            raise InputError(f"{path}: two maps for image {path.stem!r} ({by_stem[path.stem].name} too)")
        by_stem[path.stem] = path
    return by_stem


def discover(maps_dir, gt_dir, categories=None):
    """Samples of an MVTec-layout tree, in a fixed order (category, defect, name).

    Masks under ``ground_truth/good/`` (all zero; several public datasets ship
    them) are matched to the good images' maps and checked to be empty when read.
    """
    maps_dir, gt_dir = Path(maps_dir), Path(gt_dir)
    for name, d in (("--maps", maps_dir), ("--gt", gt_dir)):
        if not d.is_dir():
            raise InputError(f"{name}: {d} is not a directory")
    if categories:
        missing = [c for c in categories if not (maps_dir / c / "test").is_dir()]
        if missing:
            known = sorted(p.name for p in maps_dir.iterdir() if (p / "test").is_dir())
            raise InputError(f"--categories: no {maps_dir}/<category>/test directory for "
                             f"{', '.join(missing)}; expected one of {', '.join(known) or '(none found)'}")
    else:
        categories = sorted(p.name for p in maps_dir.iterdir() if (p / "test").is_dir())
        if not categories:
            raise InputError(f"--maps: no <category>/test/<defect>/ directories under {maps_dir} "
                             "(expected the MVTec AD layout)")
    samples = []
    for category in categories:
        test = maps_dir / category / "test"
        truth = gt_dir / category / "ground_truth"
        found = []
        for defect_dir in sorted(p for p in test.iterdir() if p.is_dir()):
            by_stem = map_files(defect_dir)
            defect = defect_dir.name
            for stem, path in by_stem.items():
                mask = truth / defect / f"{stem}_mask.png"
                if defect == "good":
                    # an all-zero mask shipped for a good image is used (and checked); none is fine
                    sample = Sample(category, path, mask if mask.is_file() else None, defective=False,
                                    defect=defect, empty_mask=True)
                elif not mask.is_file():
                    raise InputError(f"{path}: missing mask, expected {mask}")
                else:
                    sample = Sample(category, path, mask, defective=True, defect=defect)
                found.append(sample)
        if not found:
            raise InputError(f"{test}: no anomaly maps ({', '.join(fileio.MAP_SUFFIXES)}) in its defect directories")
        # every ground-truth mask needs its map
        masks = {s.mask for s in found if s.mask is not None}
        if truth.is_dir():
            for mask in sorted(truth.glob("*/*_mask.png")):
                if mask not in masks:
                    stem = mask.name[:-len("_mask.png")]
                    raise InputError(f"{mask}: missing map, expected {test / mask.parent.name / stem}"
                                     f"{{{','.join(fileio.MAP_SUFFIXES)}}}")
        samples += found
    return samples


discover_mvtec = discover
