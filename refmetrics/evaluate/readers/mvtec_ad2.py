"""The MVTec AD 2 layout (Heckler-Kram et al., 2025).

The dataset (``--gt``)::

    <gt>/<object>/train/good/, validation/good/, test_public/{good,bad}/<name>.png,
    <gt>/<object>/test_public/ground_truth/bad/<name>_mask.png, test_private/, test_private_mixed/

The anomaly maps (``--maps``) mirror it, one map per image, named after the image (``000_regular.png``
-> ``000_regular.tiff``, as the official ``mvtec_ad_2_public_offline.py`` names its outputs)::

    <maps>/<object>/test_public/{good,bad}/<name>.tiff|.tif|.npy|.png   (evaluated)
    <maps>/<object>/validation/good/<name>.tiff|...                     (the SegF1 threshold; required)
    <maps>/<object>/test_private/, test_private_mixed/                  (no public ground truth: noted)

Only ``test_public`` has public ground truth; maps of ``test_private`` and ``test_private_mixed`` are
counted and named in a note, and left out (the evaluation server scores them).
"""

from pathlib import Path

from ... import _files as fileio
from ..samples import InputError, Sample
from .mvtec_ad import map_files

PRIVATE = ("test_private", "test_private_mixed")
LABELS = ("good", "bad")


def _images(directory):
    """Stems of the dataset's images in ``directory`` (``[0-9][0-9][0-9]*.png``), or None without it."""
    if not directory.is_dir():
        return None
    return {p.stem for p in directory.glob("*.png") if p.is_file()}


def _check_every_image_mapped(images_dir, by_stem, maps_dir):
    """Where the dataset's images are there, each needs its map (a missing good map would change the
    numbers silently)."""
    stems = _images(images_dir)
    for stem in sorted((stems or set()) - set(by_stem)):
        raise InputError(f"{images_dir / (stem + '.png')}: missing map, expected {maps_dir / stem}"
                         f"{{{','.join(fileio.MAP_SUFFIXES)}}}")


def discover(maps_dir, gt_dir, categories=None):
    """``(samples, validation, notes)`` of an MVTec AD 2 tree (see the module docstring).

    ``samples``: the ``test_public`` maps, in a fixed order (object, good then bad, name);
    ``validation``: ``{object: [validation/good samples]}``; ``notes``: what was found and left out
    (``test_private`` maps, which have no public ground truth).
    """
    maps_dir, gt_dir = Path(maps_dir), Path(gt_dir)
    for name, d in (("--maps", maps_dir), ("--gt", gt_dir)):
        if not d.is_dir():
            raise InputError(f"{name}: {d} is not a directory")
    chosen = bool(categories)
    if categories:
        missing = [c for c in categories if not (maps_dir / c / "test_public").is_dir()]
        if missing:
            raise InputError(f"--categories: expected {maps_dir}/<object>/test_public/ for "
                             f"{', '.join(missing)}, found none")
    else:
        categories = sorted(p.name for p in maps_dir.iterdir() if (p / "test_public").is_dir())
        if not categories:
            raise InputError(f"--maps: expected <object>/test_public/{{good,bad}}/ directories under {maps_dir} "
                             "(the MVTec AD 2 layout), found none")
    samples, validation, notes = [], {}, []
    for category in categories:
        test = maps_dir / category / "test_public"
        truth = gt_dir / category / "test_public" / "ground_truth" / "bad"
        unknown = sorted(p.name for p in test.iterdir() if p.is_dir() and p.name not in LABELS)
        if unknown:
            raise InputError(f"{test / unknown[0]}: unexpected directory; expected only test_public/good/ and "
                             "test_public/bad/ (MVTec AD 2 has no defect types in its public test set)")
        found = []
        for label in LABELS:
            directory = test / label
            by_stem = map_files(directory) if directory.is_dir() else {}
            _check_every_image_mapped(gt_dir / category / "test_public" / label, by_stem, directory)
            for stem, path in by_stem.items():
                if label == "good":
                    found.append(Sample(category, path, None, defective=False, defect="good"))
                    continue
                mask = truth / f"{stem}_mask.png"
                if not mask.is_file():
                    raise InputError(f"{path}: missing mask, expected {mask}")
                found.append(Sample(category, path, mask, defective=True, defect="bad"))
        if not found:
            raise InputError(f"{test}: expected anomaly maps ({', '.join(fileio.MAP_SUFFIXES)}) in good/ and bad/, "
                             "found none")
        masks = {s.mask for s in found}
        if truth.is_dir():
            for mask in sorted(truth.glob("*_mask.png")):
                if mask not in masks:
                    stem = mask.name[:-len("_mask.png")]
                    raise InputError(f"{mask}: missing map, expected {test / 'bad' / stem}"
                                     f"{{{','.join(fileio.MAP_SUFFIXES)}}}")
        valid_dir = maps_dir / category / "validation" / "good"
        if not valid_dir.is_dir():
            raise InputError(f"{valid_dir}: missing directory; expected the maps of the object's validation/good "
                             "images (SegF1's threshold is mean + 3 std of their pixels)")
        valid = map_files(valid_dir)
        if not valid:
            raise InputError(f"{valid_dir}: expected the validation/good anomaly maps "
                             f"({', '.join(fileio.MAP_SUFFIXES)}), found none")
        _check_every_image_mapped(gt_dir / category / "validation" / "good", valid, valid_dir)
        validation[category] = [Sample(category, p, None, defective=False, defect="good") for p in valid.values()]
        private = {split: len(map_files(maps_dir / category / split)) for split in PRIVATE
                   if (maps_dir / category / split).is_dir()}
        if any(private.values()):
            found_text = " and ".join(f"{n} in {split}/" for split, n in private.items() if n)
            notes.append(f"{category}: {found_text} not evaluated: MVTec AD 2 publishes no ground truth for "
                         "test_private and test_private_mixed (the evaluation server scores them); the table "
                         "is test_public")
        samples += found
    for p in [] if chosen else sorted(maps_dir.iterdir()):
        if p.is_dir() and p.name not in categories and any((p / s).is_dir() for s in PRIVATE) \
                and not (p / "test_public").is_dir():
            notes.append(f"{p.name}: maps for test_private/test_private_mixed only, no test_public/: not "
                         "evaluated (no public ground truth)")
    return samples, validation, notes
