"""A CSV manifest: the columns ``map``, ``mask`` (a path, or empty / ``none`` for a defect-free image), and
optionally ``score`` (the image score; default: reduced from the map), ``label`` (0 good, 1 defective),
``category`` (default ``all``) and ``defect`` (the defect type, for the per-defect breakdown); other columns
are ignored (and named in the notes); relative paths are relative to the manifest.
"""

import csv
import math
from pathlib import Path

from ..samples import InputError, Sample

COLUMNS = ("map", "mask", "score", "label", "category", "defect")


def read(path, categories=None, notes=None):
    """Samples of a CSV manifest (see the module docstring); only ``categories`` when given.

    Columns other than map, mask, score, label, category and defect are ignored; ``notes``
    (a list), when given, receives a line naming them.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:  # utf-8-sig: Excel's "CSV UTF-8" BOM
            reader = csv.reader(fh)
            header = [h.strip().lower() for h in next(reader, [])]
            rows = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: could not read the manifest ({type(exc).__name__}: {exc}); "
                         "expected a UTF-8 CSV file") from exc
    known = [h for h in header if h in COLUMNS]
    if "map" not in header or "mask" not in header or len(set(known)) != len(known):
        raise InputError(f"{path}: expected a CSV whose header names the columns map, mask and optionally "
                         f"score, label, category, defect (each once), received {', '.join(header) or 'no header'}")
    unknown = [h or "(unnamed)" for h in header if h not in COLUMNS]
    if unknown and notes is not None:
        notes.append(f"{path}: column{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} ignored "
                     f"(used: {', '.join(known)})")
    base = path.parent
    samples, seen = [], {}
    for line, cells in rows:
        where = f"{path}, line {line}"
        if len(cells) != len(header):
            raise InputError(f"{where}: expected {len(header)} fields ({', '.join(header)}), received {len(cells)}")
        row = {h: c.strip() for h, c in zip(header, cells) if h in COLUMNS}
        category = row.get("category") or "all"
        if categories and category not in categories:
            continue
        if not row["map"]:
            raise InputError(f"{where}: the map path is empty")
        map_path = base / row["map"]
        mask = None if row["mask"].lower() in ("", "none") else base / row["mask"]
        score = label = None
        if row.get("score"):
            try:
                score = float(row["score"])
            except ValueError as exc:
                raise InputError(f"{where}: score {row['score']!r} is not a number") from exc
            if math.isnan(score):
                raise InputError(f"{where}: score is NaN")
        if row.get("label"):
            if row["label"] not in ("0", "1"):
                raise InputError(f"{where}: label must be 0 (good) or 1 (defective), received {row['label']!r}")
            label = row["label"] == "1"
        if not map_path.is_file():
            raise InputError(f"{where}: missing map {map_path}")
        if mask is not None and not mask.is_file():
            raise InputError(f"{where}: missing mask {mask}")
        if map_path.resolve() in seen:
            raise InputError(f"{where}: map {map_path} is listed twice (also on line {seen[map_path.resolve()]})")
        seen[map_path.resolve()] = line
        # without a label: no mask is a good image; with a mask, defective when it has a defect pixel (decided
        # once read)
        if label is None and mask is None:
            label = False
        samples.append(Sample(category, map_path, mask, defective=label, score=score, defect=row.get("defect") or None))
    if not samples:
        raise InputError(f"{path}: no rows" + (f" of the categories {', '.join(categories)}" if categories else ""))
    return samples


read_manifest = read
