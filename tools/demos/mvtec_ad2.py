"""The demo tree of ``refmetrics evaluate --protocol mvtec-ad-2 --demo`` (``refmetrics/data/demo/mvtec-ad-2/``).

A small tree in the MVTec AD 2 layout, deterministic (seed below)::

    maps/<object>/validation/good/NNN_regular.tiff          float32 maps of defect-free validation images
    maps/<object>/test_public/{good,bad}/NNN_regular.tiff   float32 maps of the public test set
    maps/<object>/test_private/NNN_regular.tiff              float16 maps (the submission format) without
    maps/<object>/test_private_mixed/NNN_mixed.tiff          public ground truth (noted, left out)
    gt/<object>/test_public/ground_truth/bad/NNN_regular_mask.png   0/255 masks

Two objects ("can", "walnuts") of 48x48 maps: 3 validation, 3 good and 3 bad test_public, 1 + 1
private maps each. Scores are multiples of 1/64 (ties, as float16 maps have), stored zlib-compressed
(Python's own zlib reads them) to keep the tree small. Run: ``python tools/make_demo_data.py mvtec-ad-2``.
"""

import shutil

import numpy as np
import tifffile
from PIL import Image
from scipy import ndimage

SEED = 20261128
SIZE = 48


def defect_mask(rng):
    yy, xx = np.mgrid[:SIZE, :SIZE]
    mask = np.zeros((SIZE, SIZE), bool)
    for _ in range(rng.integers(1, 3)):
        r = rng.choice([2.0, 3.0, 4.5])
        cy, cx = rng.integers(5, SIZE - 5, 2)
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    return mask


def anomaly_map(rng, mask, strength):
    noise = ndimage.gaussian_filter(rng.standard_normal((SIZE, SIZE)), 1.5) * 2.5
    bump = ndimage.gaussian_filter(mask.astype(float), 1.0) * strength
    return (np.round((noise + bump + 1.0) * 64) / 64).astype(np.float32)


def main(root):
    rng = np.random.default_rng(SEED)
    if root.exists():
        shutil.rmtree(root)
    empty = np.zeros((SIZE, SIZE), bool)
    for category, strength in (("can", 4.0), ("walnuts", 2.0)):
        maps = root / "maps" / category
        for split, count in (("validation/good", 3), ("test_public/good", 3), ("test_public/bad", 3),
                             ("test_private", 1), ("test_private_mixed", 1)):
            (maps / split).mkdir(parents=True)
            for i in range(count):
                name = f"{i:03d}_{'mixed' if split.endswith('mixed') else 'regular'}"
                mask = defect_mask(rng) if split == "test_public/bad" else empty
                values = anomaly_map(rng, mask, strength)
                if split.startswith("test_private"):
                    values = values.astype(np.float16)
                tifffile.imwrite(maps / split / f"{name}.tiff", values, compression="zlib")
                if split == "test_public/bad":
                    masks = root / "gt" / category / "test_public" / "ground_truth" / "bad"
                    masks.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(mask.astype(np.uint8) * 255).save(masks / f"{name}_mask.png")
    print(f"wrote {sum(1 for p in root.rglob('*') if p.is_file())} files under {root}")
