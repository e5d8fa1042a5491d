"""The Real-IAD layout (Wang et al., 2024): multi-view samples, one directory each.

The dataset (``--gt``: a resolution's root such as ``realiad_1024/``, or the raw one)::

    <gt>/<category>/OK/<sample>/<name>_C<k>_<time>.jpg                 k = 1..5, the camera views
    <gt>/<category>/NG/<defect>/<sample>/<name>_C<k>_<time>.jpg
    <gt>/<category>/NG/<defect>/<sample>/<name>_C<k>_<time>.png         the view's mask, 0/255: a defect
                                                                        pixel is > 127 (ADEval's rule)

The anomaly maps (``--maps``) mirror the images' paths, one map per view::

    <maps>/<category>/OK/<sample>/<name>_C<k>_<time>.tiff|.tif|.npy|.png
    <maps>/<category>/NG/<defect>/<sample>/<name>_C<k>_<time>.tiff|.tif|.npy|.png

A view's label comes from its mask, as in ADEval (the official evaluator): a
view of a defective (NG) sample whose mask is missing or holds no pixel above
127 is a defect-free view; the sample is defective when any of its views is.
The views of a sample are grouped by removing the view part of the file name
(``--sample-key``, a regular expression; default :data:`VIEW`: the camera
token ``_C1`` .. ``_C5`` at the end of the name, with the capture time that
follows it in Real-IAD's names). The sample key is the map's directory,
relative to its category, and its name without that part.

With the release's split files (``--split-json DIR``: ``realiad_jsons/``,
``realiad_jsons_sv/``, ``realiad_jsons_fuiad_0.1/``, ... holding
``<category>.json``), the test images are those of its ``"test"`` list (each
entry's ``image_path`` and ``mask_path`` relative to ``<gt>/<category>/``, as
anomalib reads them), and every one of them needs its map; maps of other images
are left out (with a note). Without it, every map under ``--maps`` is a test view.
"""

import json
import re
from collections import Counter
from pathlib import Path

from ... import _files as fileio
from ..samples import InputError, Sample
from .mvtec_ad import map_files

VIEW = r"_C[1-5](?:_[0-9]+)?$"  # the default --sample-key: "_C3" or "_C3_20231021130235" at the end of a name
MASK_ABOVE = 127  # ADEval: a mask pixel is a defect pixel where its value is above 127
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def view_pattern(text):
    """The compiled ``--sample-key`` (None: :data:`VIEW`), or an InputError naming the option."""
    text = VIEW if text is None else text
    try:
        pattern = re.compile(text)
    except re.error as exc:
        raise InputError(f"--sample-key: expected a regular expression matching the view part of a file name "
                         f"(default {VIEW!r}), received {text!r}, which does not compile ({exc})") from None
    return pattern


def sample_key(pattern, relative, path=None):
    """The sample key of the map at ``relative`` (its path under the category's directory): its directory
    and its name without suffix, with the first match of ``pattern`` removed; an InputError naming the
    file (``path``, default ``relative``) when the pattern does not match or leaves nothing."""
    path = relative if path is None else path
    stem = relative.stem
    match = pattern.search(stem)
    if match is None or match.end() == match.start():
        raise InputError(f"{path}: --sample-key {pattern.pattern!r} does not match the file name {stem!r}; "
                         "expected the part naming the camera view (such as '_C1'), which is removed to group "
                         "the views of a sample")
    key = stem[:match.start()] + stem[match.end():]
    if not key:
        raise InputError(f"{path}: --sample-key {pattern.pattern!r} matches the whole file name {stem!r}, "
                         "which leaves no sample name")
    return (relative.parent / key).as_posix()


def _view_dirs(category_dir):
    """``(defect, directory)`` of every sample directory of a category, sorted: ``OK/<sample>`` (defect
    ``"OK"``) and ``NG/<defect>/<sample>``."""
    found = []
    ok, ng = category_dir / "OK", category_dir / "NG"
    if ok.is_dir():
        found += [("OK", d) for d in sorted(ok.iterdir()) if d.is_dir()]
    if ng.is_dir():
        for defect in sorted(d for d in ng.iterdir() if d.is_dir()):
            found += [(defect.name, d) for d in sorted(defect.iterdir()) if d.is_dir()]
    return found


def _sample(category, defect, path, relative, gt_category, pattern):
    """The :class:`Sample` of the map ``path`` (``relative`` to its category's directory)."""
    mask = gt_category / relative.with_suffix(".png")
    key = sample_key(pattern, relative, path)
    if defect == "OK":
        # Real-IAD ships no masks for OK views; one that is there is used, and must be empty
        return Sample(category, path, mask if mask.is_file() else None, defective=False, defect=defect,
                      group=key, mask_above=MASK_ABOVE, empty_mask=True)
    if mask.is_file():  # defective when the mask has a pixel above 127 (decided when read)
        return Sample(category, path, mask, defective=None, defect=defect, group=key, mask_above=MASK_ABOVE)
    images = [gt_category / relative.with_suffix(s) for s in IMAGE_SUFFIXES if s != ".png"]
    if not any(i.is_file() for i in images):
        raise InputError(f"{path}: no ground truth for this view: expected its mask {mask}, or, for a view "
                         f"without a defect, its image {images[0]} beside where the mask would be; found "
                         "neither (is --gt the dataset's root, the directory holding the categories?)")
    # a defect-free view of a defective sample: label 0, but kept with its sample's defect type (defective
    # None, not False, so that the per-defect breakdown does not count it among the OK views)
    return Sample(category, path, None, defective=None, defect=defect, group=key, mask_above=MASK_ABOVE)


def discover(maps_dir, gt_dir, categories=None, key=None, notes=None):
    """Samples of a Real-IAD tree of maps, in a fixed order (category, OK then NG/<defect>, sample, view).

    ``key``: the ``--sample-key`` regular expression (None: :data:`VIEW`). ``notes``: a list that receives
    dataset-level notes (samples with another number of views than their category's most common one).
    """
    maps_dir, gt_dir = Path(maps_dir), Path(gt_dir)
    pattern = view_pattern(key)
    for name, d in (("--maps", maps_dir), ("--gt", gt_dir)):
        if not d.is_dir():
            raise InputError(f"{name}: {d} is not a directory")

    def has_layout(d):
        return (d / "OK").is_dir() or (d / "NG").is_dir()

    if categories:
        missing = [c for c in categories if not has_layout(maps_dir / c)]
        if missing:
            raise InputError(f"--categories: no {maps_dir}/<category>/OK or NG directory for {', '.join(missing)}")
    else:
        categories = sorted(p.name for p in maps_dir.iterdir() if p.is_dir() and has_layout(p))
        if not categories:
            raise InputError(f"--maps: no <category>/OK/<sample>/ or <category>/NG/<defect>/<sample>/ directories "
                             f"under {maps_dir} (expected the Real-IAD layout)")
    samples = []
    for category in categories:
        gt_category = gt_dir / category
        if not gt_category.is_dir():
            raise InputError(f"--gt: no directory {gt_category} for category {category!r} of --maps (expected "
                             "the Real-IAD dataset's root, holding <category>/OK and <category>/NG)")
        found = []
        for defect, directory in _view_dirs(maps_dir / category):
            for path in map_files(directory).values():
                relative = path.relative_to(maps_dir / category)
                found.append(_sample(category, defect, path, relative, gt_category, pattern))
        if not found:
            raise InputError(f"{maps_dir / category}: no anomaly maps ({', '.join(fileio.MAP_SUFFIXES)}) in its "
                             "OK/<sample>/ or NG/<defect>/<sample>/ directories")
        if notes is not None:
            _note_views(category, found, notes)
        samples += found
    return samples


def _note_views(category, samples, notes):
    views = Counter(s.group for s in samples)
    usual = Counter(views.values()).most_common(1)[0][0]
    odd = [k for k, n in views.items() if n != usual]
    if odd:
        shown = ", ".join(f"{k} ({views[k]})" for k in odd[:3])
        notes.append(f"{category}: {len(odd)} of {len(views)} samples have another number of views than the "
                     f"usual {usual}: {shown}{', ...' if len(odd) > 3 else ''}")


def _split_entries(path, category):
    """The ``"test"`` list of a split file, checked: ``[(image_path, mask_path or None, anomaly_class)]``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{path}: could not read the split file ({type(exc).__name__}: {exc}); expected the "
                         "Real-IAD release's JSON with a \"test\" list") from None
    test = data.get("test") if isinstance(data, dict) else None
    if not isinstance(test, list) or not test:
        raise InputError(f"{path}: expected a JSON object with a non-empty \"test\" list of images (the "
                         f"Real-IAD split of category {category!r}), found none")
    entries = []
    for i, entry in enumerate(test):
        image = entry.get("image_path") if isinstance(entry, dict) else None
        mask = entry.get("mask_path") if isinstance(entry, dict) else None
        if not isinstance(image, str) or not image or not (mask is None or isinstance(mask, str)):
            raise InputError(f"{path}: test entry {i}: expected an object with \"image_path\" (a path) and "
                             f"\"mask_path\" (a path or null), received {json.dumps(entry)[:200]}")
        relative = Path(image)
        if relative.is_absolute() or ".." in relative.parts:
            raise InputError(f"{path}: test entry {i}: image_path {image!r} must be relative to the category's "
                             "directory")
        entries.append((relative, Path(mask) if mask else None, str(entry.get("anomaly_class", ""))))
    return entries


def from_split(maps_dir, gt_dir, split_dir, categories=None, key=None, notes=None):
    """Samples of the test list of a Real-IAD split (``split_dir/<category>.json``), in its order.

    A view's map is ``<maps>/<category>/<image_path>`` with a map suffix instead of the image's; its mask
    ``<gt>/<category>/<mask_path>``, or none (a defect-free view). The categories are those of ``--maps``
    (or ``categories``); each needs its split file.
    """
    maps_dir, gt_dir, split_dir = Path(maps_dir), Path(gt_dir), Path(split_dir)
    pattern = view_pattern(key)
    for name, d in (("--maps", maps_dir), ("--gt", gt_dir), ("--split-json", split_dir)):
        if not d.is_dir():
            raise InputError(f"{name}: {d} is not a directory")
    if not categories:
        categories = sorted(p.name for p in maps_dir.iterdir() if p.is_dir())
        if not categories:
            raise InputError(f"--maps: no category directories under {maps_dir}")
    samples = []
    for category in categories:
        split = split_dir / f"{category}.json"
        if not split.is_file():
            raise InputError(f"--split-json: no split file {split} for category {category!r}")
        found = []
        for relative, mask_rel, anomaly_class in _split_entries(split, category):
            stem = maps_dir / category / relative.with_suffix("")
            paths = [stem.with_name(stem.name + s) for s in fileio.MAP_SUFFIXES if stem.with_name(stem.name + s).is_file()]
            if not paths:
                raise InputError(f"{split}: test image {relative.as_posix()}: missing map, expected {stem}"
                                 f"{{{','.join(fileio.MAP_SUFFIXES)}}}")
            if len(paths) > 1:
                raise InputError(f"{paths[1]}: two maps for test image {relative.as_posix()} ({paths[0].name} too)")
            path = paths[0]
            defect = relative.parts[1] if relative.parts[0] == "NG" and len(relative.parts) > 2 else \
                ("OK" if anomaly_class in ("", "OK") else anomaly_class)
            group = sample_key(pattern, path.relative_to(maps_dir / category), path)
            if mask_rel is not None:
                mask = gt_dir / category / mask_rel
                if not mask.is_file():
                    raise InputError(f"{split}: test image {relative.as_posix()}: missing mask, expected {mask}")
                found.append(Sample(category, path, mask, defective=False if defect == "OK" else None,
                                    defect=defect, group=group, mask_above=MASK_ABOVE, empty_mask=defect == "OK"))
            else:
                found.append(Sample(category, path, None, defective=False if defect == "OK" else None,
                                    defect=defect, group=group, mask_above=MASK_ABOVE))
        listed = {s.map for s in found}
        left_out = [p for p in (maps_dir / category).rglob("*") if p.suffix.lower() in fileio.MAP_SUFFIXES
                    and p.is_file() and p not in listed]
        if notes is not None:
            if left_out:
                notes.append(f"{category}: {len(left_out)} map{'s' if len(left_out) != 1 else ''} under "
                             f"{maps_dir / category} not in the test list of {split} left out "
                             f"(such as {sorted(left_out)[0]})")
            _note_views(category, found, notes)
        samples += found
    return samples
