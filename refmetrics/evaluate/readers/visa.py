"""The VisA release (Zou et al., 2022): its split CSV, its class-id masks, and one map per test image::

    <root>/split_csv/1cls.csv                        object,split,label,image,mask (paths relative to <root>)
    <root>/<object>/Data/Masks/Anomaly/<name>.png    the ground truth: class ids, 0 the background
    <maps>/<object>/Data/Images/{Normal,Anomaly}/<name>.tiff|.tif|.npy|.png
                                                     a map mirrors its image's path, with a map suffix

Only the rows with ``split == test`` are evaluated (the 1-class split; ``train``
rows are skipped), as the release's ``prepare_data.py`` builds the test set.
``label`` is ``normal`` or ``anomaly``; an anomaly's mask is binarised
``!= 0`` as ``prepare_data.py`` does (the masks are unsigned 8-bit PNGs, where
``value > 0``, the rule of :func:`refmetrics._files.read_mask`, is the same).
The dataset root is ``--gt`` when given, else the CSV's grandparent (the
release keeps the CSV in ``<root>/split_csv/``).
"""

import csv
from pathlib import Path, PurePosixPath

from ... import _files as fileio
from ..samples import InputError, Sample
from .mvtec_ad import OTHER_IMAGES

COLUMNS = ("object", "split", "label", "image", "mask")
LABELS = {"normal": False, "anomaly": True}
SPLITS = ("train", "test")


def _relative(text, where, column):
    """A CSV path (``/``-separated, relative to a root) as its parts."""
    path = PurePosixPath(text.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise InputError(f"{where}: expected the {column} path relative to the dataset root, received {text!r}")
    return path


def _map_of(maps, image, where):
    """The map mirroring ``image`` (a relative path) under ``maps``: exactly one of the map suffixes."""
    directory = maps.joinpath(*image.parent.parts)
    found = [directory / (image.stem + s) for s in fileio.MAP_SUFFIXES if (directory / (image.stem + s)).is_file()]
    if len(found) > 1:
        raise InputError(f"{where}: two maps for image {image}: {found[0]} and {found[1].name}")
    if not found:
        lossy = [directory / (image.stem + s) for s in sorted(OTHER_IMAGES | {x.upper() for x in OTHER_IMAGES})
                 if (directory / (image.stem + s)).is_file()]
        if lossy:
            raise InputError(f"{lossy[0]}: unsupported map file type {lossy[0].suffix!r}; save maps as "
                             f"{', '.join(fileio.MAP_SUFFIXES)} (lossless, exact scores)")
        raise InputError(f"{where}: missing map for image {image}, expected {directory / image.stem}"
                         f"{{{','.join(fileio.MAP_SUFFIXES)}}}")
    return found[0]


def read(split_csv, maps, root=None, categories=None, notes=None):
    """Samples of the ``split == test`` rows of a VisA split CSV (see the module docstring).

    Parameters
    ----------
    split_csv : path
        The release's ``split_csv/1cls.csv`` (or a CSV with the same columns).
    maps : path
        The maps' tree, mirroring the images' paths.
    root : path, optional
        The dataset root the CSV's paths are relative to (default: the CSV's grandparent).
    categories : sequence of str, optional
        Only these objects.
    notes : list, optional
        Receives a line naming the columns ignored, if any.
    """
    split_csv, maps = Path(split_csv), Path(maps)
    if not split_csv.is_file():
        raise InputError(f"--split-csv: {split_csv} is not a file (expected the release's split_csv/1cls.csv)")
    where_root = "--gt" if root is not None else f"the dataset root (the grandparent of {split_csv}; or give --gt)"
    root = Path(root) if root is not None else split_csv.resolve().parent.parent
    for option, d in (("--maps", maps), (where_root, root)):
        if not d.is_dir():
            raise InputError(f"{option}: {d} is not a directory")
    try:
        with open(split_csv, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = [h.strip().lower() for h in next(reader, [])]
            rows = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{split_csv}: could not read the split CSV ({type(exc).__name__}: {exc}); "
                         "expected a UTF-8 CSV file") from exc
    if any(header.count(c) != 1 for c in COLUMNS):
        raise InputError(f"{split_csv}: expected a CSV whose header names the columns {', '.join(COLUMNS)} "
                         f"(each once; VisA's split_csv/1cls.csv), received {', '.join(header) or 'no header'}")
    unknown = [h or "(unnamed)" for h in header if h not in COLUMNS]
    if unknown and notes is not None:
        notes.append(f"{split_csv}: column{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} ignored")
    samples, seen, objects = [], {}, set()
    for line, cells in rows:
        where = f"{split_csv}, line {line}"
        if len(cells) != len(header):
            raise InputError(f"{where}: expected {len(header)} fields ({', '.join(header)}), received {len(cells)}")
        row = {h: c.strip() for h, c in zip(header, cells) if h in COLUMNS}
        split, label = row["split"].lower(), row["label"].lower()
        if split not in SPLITS:
            raise InputError(f"{where}: split must be {' or '.join(SPLITS)}, received {row['split']!r}")
        if label not in LABELS:
            raise InputError(f"{where}: label must be normal or anomaly, received {row['label']!r}")
        if not row["object"]:
            raise InputError(f"{where}: the object is empty")
        objects.add(row["object"])
        if split != "test" or (categories and row["object"] not in categories):
            continue
        if not row["image"]:
            raise InputError(f"{where}: the image path is empty")
        image = _relative(row["image"], where, "image")
        mask = None
        if row["mask"]:
            mask = root.joinpath(*_relative(row["mask"], where, "mask").parts)
            if not mask.is_file():
                raise InputError(f"{where}: missing mask, expected the file {mask} (the mask column, relative to the "
                                 f"dataset root {root})")
        elif LABELS[label]:
            raise InputError(f"{where}: an anomaly needs its mask, received an empty mask field")
        if image in seen:
            raise InputError(f"{where}: image {image} is listed twice (also on line {seen[image]})")
        seen[image] = line
        # a normal image's mask, when one is listed, must be all zero (checked when read)
        samples.append(Sample(row["object"], _map_of(maps, image, where), mask, defective=LABELS[label],
                              defect=None if LABELS[label] else "good", empty_mask=not LABELS[label]))
    if categories:
        missing = [c for c in categories if c not in {s.category for s in samples}]
        if missing:
            raise InputError(f"--categories: no test rows of {', '.join(missing)} in {split_csv} "
                             f"(objects: {', '.join(sorted(objects)) or 'none'})")
    if not samples:
        raise InputError(f"{split_csv}: no rows with split 'test'")
    return sorted(samples, key=lambda s: s.category)  # stable: the CSV's order within an object
