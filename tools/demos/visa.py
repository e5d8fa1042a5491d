"""The demo tree of ``refmetrics evaluate --protocol visa --demo`` (``refmetrics/data/demo/visa/``).

A small tree in the VisA release's layout, deterministic (seed below)::

    VisA/split_csv/1cls.csv                         object,split,label,image,mask (train rows too: skipped)
    VisA/<object>/Data/Masks/Anomaly/NNN.png        8-bit class-id masks (0 background, 1 and 2 defects)
    maps/<object>/Data/Images/{Normal,Anomaly}/NNN.tiff   float32 maps (TIFF, zlib), scores in steps of 1/64

Two objects ("candle", "pcb1") of 5 normal and 4 anomalous test images of 48x56 each; the images
themselves are not needed and not shipped.
Run: ``python tools/make_demo_data.py visa``.
"""

import csv
import shutil

import numpy as np
import tifffile
from PIL import Image
from scipy import ndimage

SEED = 20261128
SHAPE = (48, 56)


def defect_mask(rng):
    """Class ids: one or two blobs, each of a defect class 1 or 2."""
    yy, xx = np.mgrid[:SHAPE[0], :SHAPE[1]]
    mask = np.zeros(SHAPE, np.uint8)
    for _ in range(rng.integers(1, 3)):
        r = rng.choice([2.0, 3.0, 4.5])
        cy, cx = rng.integers(5, SHAPE[0] - 5), rng.integers(5, SHAPE[1] - 5)
        mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = rng.integers(1, 3)
    return mask


def anomaly_map(rng, mask, strength):
    noise = ndimage.gaussian_filter(rng.standard_normal(SHAPE), 1.5) * 3
    bump = ndimage.gaussian_filter((mask != 0).astype(float), 1.2) * strength
    return (np.round((noise + bump + 10) * 64) / 64).astype(np.float32)  # ties, as real maps have


def main(root):
    rng = np.random.default_rng(SEED)
    if root.exists():
        shutil.rmtree(root)
    data = root / "VisA"
    (data / "split_csv").mkdir(parents=True)
    rows = []
    for obj, strength in (("candle", 4.0), ("pcb1", 2.0)):
        for i in range(3):  # train rows: in the CSV, never evaluated
            rows.append([obj, "train", "normal", f"{obj}/Data/Images/Normal/{i:04d}.JPG", ""])
        for label, count in (("normal", 5), ("anomaly", 4)):
            kind = label.capitalize()
            maps = root / "maps" / obj / "Data" / "Images" / kind
            maps.mkdir(parents=True)
            if label == "anomaly":
                (data / obj / "Data" / "Masks" / kind).mkdir(parents=True)
            for i in range(count):
                name = f"{100 + i:04d}"
                mask = defect_mask(rng) if label == "anomaly" else np.zeros(SHAPE, np.uint8)
                tifffile.imwrite(maps / f"{name}.tiff", anomaly_map(rng, mask, strength), compression="zlib")
                mask_path = ""
                if label == "anomaly":
                    mask_path = f"{obj}/Data/Masks/{kind}/{name}.png"
                    Image.fromarray(mask).save(data / mask_path)
                rows.append([obj, "test", label, f"{obj}/Data/Images/{kind}/{name}.JPG", mask_path])
    with open(data / "split_csv" / "1cls.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["object", "split", "label", "image", "mask"])
        writer.writerows(rows)
    print(f"wrote {sum(1 for p in root.rglob('*') if p.is_file())} files under {root}")
