"""The demo tree of ``refmetrics evaluate --protocol mvtec-loco --demo`` (``refmetrics/data/demo/mvtec-loco/``).

A small tree in the MVTec LOCO AD layout, deterministic (seed below):

    maps/<object>/test/{good,logical_anomalies,structural_anomalies}/NNN.tiff   float32 maps
    gt/<object>/ground_truth/<subset>/NNN/000.png, 001.png, ...   one channel PNG per defect, its pixels
                                                                  holding the defect type's pixel_value
    gt/<object>/defects_config.json   defect types with absolute (pixels) and relative saturation

Two objects ("box" 32x32, "connector" 28x40), each with 3 good, 2 logical and 3 structural images;
some images have two defects, and some defects two separate components (one channel, one defect).
Run: ``python tools/make_demo_data.py mvtec-loco``.
"""

import json
import shutil

import numpy as np
import tifffile
from PIL import Image
from scipy import ndimage

SEED = 20261128
OBJECTS = {"box": (32, 32), "connector": (28, 40)}
CONFIG = [  # pixel value -> defect type; both saturation conventions
    {"defect_name": "missing_part", "pixel_value": 255, "saturation_threshold": 1.0, "relative_saturation": True},
    {"defect_name": "extra_part", "pixel_value": 254, "saturation_threshold": 40, "relative_saturation": False},
    {"defect_name": "scratch", "pixel_value": 253, "saturation_threshold": 0.5, "relative_saturation": True},
    {"defect_name": "contamination", "pixel_value": 252, "saturation_threshold": 12, "relative_saturation": False},
]
SUBSETS = {"good": 3, "logical_anomalies": 2, "structural_anomalies": 3}
KINDS = {"logical_anomalies": (255, 254), "structural_anomalies": (253, 252)}


def blob(rng, shape, parts):
    """A mask of ``parts`` discs (separate components when they do not touch)."""
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    mask = np.zeros(shape, bool)
    for _ in range(parts):
        r = rng.choice([2.5, 3.5, 5.0])
        cy, cx = rng.integers(5, shape[0] - 5), rng.integers(5, shape[1] - 5)
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    return mask


def main(root):
    rng = np.random.default_rng(SEED)
    if root.exists():
        shutil.rmtree(root)
    for obj, shape in OBJECTS.items():
        gt = root / "gt" / obj
        gt.mkdir(parents=True)
        (gt / "defects_config.json").write_text(json.dumps(CONFIG, indent=4) + "\n", encoding="utf-8")
        for subset, count in SUBSETS.items():
            maps = root / "maps" / obj / "test" / subset
            maps.mkdir(parents=True)
            for i in range(count):
                name = f"{i:03d}"
                channels = []
                if subset != "good":
                    values = KINDS[subset]
                    n = 1 + (i % 2)  # one or two defects
                    for j in range(n):
                        channels.append((values[j % 2], blob(rng, shape, 1 + ((i + j) % 2))))
                union = np.zeros(shape, bool)
                for _, mask in channels:
                    union |= mask
                noise = ndimage.gaussian_filter(rng.standard_normal(shape), 1.5) * 0.6
                bump = ndimage.gaussian_filter(union.astype(float), 1.2) * 0.3
                tifffile.imwrite(maps / f"{name}.tiff", (0.3 + noise + bump).astype(np.float32))
                if channels:
                    d = gt / "ground_truth" / subset / name
                    d.mkdir(parents=True)
                    for j, (value, mask) in enumerate(channels):
                        Image.fromarray(mask.astype(np.uint8) * value).save(d / f"{j:03d}.png")
    print(f"wrote {sum(1 for p in root.rglob('*') if p.is_file())} files under {root}")
