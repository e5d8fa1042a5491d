"""``refmetrics check-submission DIR``: is a directory a well-formed MVTec AD 2 submission?

The MVTec AD 2 evaluation server (https://benchmark.mvtec.com) scores the private test sets from a
submission directory laid out as its official checker, ``check_and_prepare_data_for_upload.py`` of
``MVTecAD2_public_code_utils`` (MVTec Software GmbH, 2025), defines it::

    DIR/anomaly_images/<object>/test_private/NNN_regular.tiff        one 2-D float16 TIFF per image
    DIR/anomaly_images/<object>/test_private_mixed/NNN_mixed.tiff
    DIR/anomaly_images_thresholded/<object>/test_private/NNN_regular.png   optional: binary maps,
    DIR/anomaly_images_thresholded/<object>/test_private_mixed/NNN_mixed.png   values 0 and 255

with the eight objects and, per object, the number of images of each private test set in
:data:`OBJECT_FILE_COUNTS` (the same for ``test_private`` and ``test_private_mixed``), files named
``000_regular`` ... (``NNN`` from 000) after the dataset's images. Nothing else may be in the tree. A
missing ``anomaly_images_thresholded`` is allowed (the threshold-dependent metrics are then not
evaluated: a note says so). Beyond the official checker, each thresholded PNG must have its TIFF's
size, and every problem is listed, not only the first.

With ``dataset`` (a local copy of MVTec AD 2), the objects, names and counts are taken from its
``<object>/test_private/*.png`` and ``<object>/test_private_mixed/*.png`` image lists instead.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

OBJECT_FILE_COUNTS = {  # images per private test set (test_private and test_private_mixed alike)
    "can": 321,
    "fabric": 314,
    "fruit_jelly": 255,
    "rice": 277,
    "sheet_metal": 142,
    "vial": 276,
    "wallplugs": 232,
    "walnuts": 228,
}
"""The per-object file counts of the official checker (``OBJECT_FILE_COUNTER`` in
``MVTecAD2_public_code_utils/utils.py``, MVTec Software GmbH, 2025)."""

SPLITS = {"test_private": "regular", "test_private_mixed": "mixed"}  # split -> the name suffix of its images
ROOTS = {"anomaly_images": ".tiff", "anomaly_images_thresholded": ".png"}
SHOWN = 6  # distinct values shown of a PNG that is not binary


@dataclass
class Problem:
    """One fault of a submission: the file (or directory), what was expected, what was found."""

    path: Path
    expected: str
    found: str

    def __str__(self):
        return f"{self.path}: expected {self.expected}, found {self.found}"


@dataclass
class Report:
    """What :func:`check` found: every problem, notes (allowed omissions), and the files checked."""

    problems: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    checked: dict = field(default_factory=dict)  # root name -> number of files checked

    @property
    def valid(self):
        return not self.problems


def official_names():
    """``{object: {split: [image names]}}`` of the official tables (``000_regular``, ...)."""
    return {obj: {split: [f"{i:03d}_{suffix}" for i in range(n)] for split, suffix in SPLITS.items()}
            for obj, n in OBJECT_FILE_COUNTS.items()}


def dataset_names(root):
    """``{object: {split: [image names]}}`` from a local copy of MVTec AD 2: every object directory with
    ``test_private/`` or ``test_private_mixed/``, the stems of their ``*.png`` images. A ValueError
    (a usage error) when there is none."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"--dataset: expected the MVTec AD 2 dataset's root directory, found {root} is not a "
                         "directory")
    names = {}
    for obj in sorted(p for p in root.iterdir() if p.is_dir()):
        if any((obj / split).is_dir() for split in SPLITS):
            names[obj.name] = {split: sorted(p.stem for p in (obj / split).glob("*.png")) if (obj / split).is_dir()
                               else [] for split in SPLITS}
    if not names:
        raise ValueError(f"--dataset: expected <object>/test_private/ and <object>/test_private_mixed/ under "
                         f"{root}, found none")
    return names


def _entries(directory):
    return sorted(directory.iterdir(), key=lambda p: p.name)


def _kind(path):
    return "a directory" if path.is_dir() else "a file"


def _only(report, directory, allowed, what):
    """A problem for every entry of ``directory`` not in ``allowed``."""
    for p in _entries(directory):
        if p.name not in allowed:
            report.problems.append(Problem(p, f"only {what} in {directory}", f"{_kind(p)} {p.name!r}"))


def _tiff_shape(path, report):
    """The TIFF's 2-D shape when it is a 2-D float16 TIFF, else None (with the problem recorded)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tf:
            series = tf.series[0]
            shape, dtype = tuple(series.shape), np.dtype(series.dtype)
    except Exception as exc:  # noqa: BLE001 - any reader failure is reported with the file's name
        report.problems.append(Problem(path, "a TIFF image", f"a file TIFF readers cannot read "
                                                             f"({type(exc).__name__}: {exc})"))
        return None
    ok = True
    if len(shape) != 2:
        report.problems.append(Problem(path, "a single-channel 2-D image (height x width)",
                                       f"shape {'x'.join(map(str, shape))}"))
        ok = False
    if dtype != np.float16:
        report.problems.append(Problem(path, "float16 pixels", f"{dtype}"))
        ok = False
    return shape if ok else None


def _check_png(path, shape, report):
    from PIL import Image

    try:
        with Image.open(path) as im:
            values = np.asarray(im)
    except Exception as exc:  # noqa: BLE001 - any reader failure is reported with the file's name
        report.problems.append(Problem(path, "a PNG image", f"a file PNG readers cannot read "
                                                            f"({type(exc).__name__}: {exc})"))
        return
    if values.ndim != 2:
        report.problems.append(Problem(path, "a single-channel 2-D image", f"shape "
                                                                          f"{'x'.join(map(str, values.shape))}"))
        return
    distinct = np.unique(values)
    if values.dtype == bool or not np.isin(distinct, [0, 255]).all():
        shown = ", ".join(str(v) for v in distinct[:SHOWN].tolist()) + (", ..." if distinct.size > SHOWN else "")
        report.problems.append(Problem(path, "pixel values 0 (good) and 255 (anomalous) only",
                                       f"{distinct.size} distinct value{'s' if distinct.size != 1 else ''} "
                                       f"({shown}; dtype {values.dtype})"))
    if shape is not None and values.shape != shape:
        report.problems.append(Problem(path, f"the size of its anomaly image, {shape[0]}x{shape[1]} "
                                             "(height x width)", f"{values.shape[0]}x{values.shape[1]}"))


def _check_split(report, directory, names, suffix, tiff_shapes, split, obj):
    """The files of one private test set directory; returns ``{name: shape or None}`` of its TIFFs."""
    expected = {name + suffix: name for name in names}
    present = {p.name: p for p in _entries(directory)}
    shapes = {}
    files = [p for p in present.values() if p.is_file()]
    if len(files) != len(expected):
        report.problems.append(Problem(directory, f"{len(expected)} files ({obj}, {split})",
                                       f"{len(files)}"))
    stems_missing = {expected[n] for n in expected if n not in present}
    renamed = set()
    for name, p in present.items():
        if name in expected and p.is_file():
            continue
        stem = p.stem if p.is_file() else None
        if stem in stems_missing and stem not in renamed:  # the right name, the wrong suffix
            renamed.add(stem)
            report.problems.append(Problem(p, f"the suffix {suffix} ({stem}{suffix})", f"{p.suffix or 'none'}"))
            continue
        report.problems.append(Problem(p, f"only the files {names[0]}{suffix} ... {names[-1]}{suffix}" if names
                                       else "no file", f"{_kind(p)} {name!r} that names no image of {split}"))
    kind = "anomaly image" if suffix == ".tiff" else "thresholded image"
    missing = []
    for name, stem in expected.items():
        if name in present and present[name].is_file():
            path = present[name]
            if suffix == ".tiff":
                shapes[stem] = _tiff_shape(path, report)
            else:
                _check_png(path, tiff_shapes.get(stem), report)
            report.checked[directory.parts[-3]] = report.checked.get(directory.parts[-3], 0) + 1
        elif stem not in renamed:
            missing.append(name)
    if len(missing) <= SHOWN:  # one line per missing file
        for name in missing:
            report.problems.append(Problem(directory / name, f"the {kind} of {obj}/{split}/{expected[name]}.png",
                                           "no such file"))
    elif missing:  # many: one line naming them
        shown = ", ".join(missing[:SHOWN - 1]) + f", ..., {missing[-1]}"
        report.problems.append(Problem(directory, f"the {kind}s of {len(expected)} images of {obj}/{split}",
                                       f"no file for {len(missing)} of them ({shown})"))
    return shapes


def check(directory, names=None):
    """Check a submission tree; a :class:`Report` listing every problem.

    Parameters
    ----------
    directory : path
        The submission directory (holding ``anomaly_images/``).
    names : dict, optional
        ``{object: {split: [image names]}}`` (:func:`dataset_names`); default: the official table
        (:func:`official_names`).
    """
    directory = Path(directory)
    if not directory.is_dir():
        what = "a file" if directory.exists() else "nothing"
        raise ValueError(f"DIR: expected a submission directory, found {what} at {directory}")
    names = names if names is not None else official_names()
    report = Report()
    _only(report, directory, ROOTS, "anomaly_images/ and anomaly_images_thresholded/")
    shapes = {}
    for root_name, suffix in ROOTS.items():
        root = directory / root_name
        if not root.is_dir():
            if root_name == "anomaly_images":
                report.problems.append(Problem(root, "the directory of the anomaly images (float16 TIFFs)",
                                               "none" if not root.exists() else _kind(root)))
            elif root.exists():
                report.problems.append(Problem(root, "a directory", _kind(root)))
            else:
                report.notes.append(f"{root}: not found; the threshold-dependent metrics (SegF1) are then not "
                                    "evaluated. Write binary maps (0 good, 255 anomalous) there to have them")
            continue
        report.checked[root_name] = 0
        _only(report, root, names, f"the object directories ({', '.join(names)})")
        for obj, splits in names.items():
            obj_dir = root / obj
            if not obj_dir.is_dir():
                report.problems.append(Problem(obj_dir, f"the directory of object {obj!r}",
                                               "none" if not obj_dir.exists() else _kind(obj_dir)))
                continue
            _only(report, obj_dir, splits, "test_private/ and test_private_mixed/")
            for split, stems in splits.items():
                split_dir = obj_dir / split
                if not split_dir.is_dir():
                    report.problems.append(Problem(split_dir, f"the directory of {obj}'s {split} "
                                                              f"({len(stems)} files)",
                                                   "none" if not split_dir.exists() else _kind(split_dir)))
                    continue
                got = _check_split(report, split_dir, stems, suffix, shapes.get((obj, split), {}), split, obj)
                if suffix == ".tiff":
                    shapes[(obj, split)] = got
    return report
