"""The demo tree of ``refmetrics evaluate --protocol mvtec-3d-ad --demo`` (``refmetrics/data/demo/mvtec-3d-ad/``).

A small tree in the MVTec 3D-AD layout, deterministic (seed below)::

    gt/<object>/test/<defect>/gt/NNN.png      0/255 masks, all zero for "good" (the dataset's rgb/ and xyz/
                                              are not needed and not shipped)
    maps/<object>/test/<defect>/NNN.tiff      float32 maps (TIFF, zlib), scores in steps of 1/64

Two objects ("bagel", "rope") of 4 good and 5 defective images of 48x48 each, two defect types each.
Run: ``python tools/make_demo_data.py mvtec-3d-ad``.
"""

import shutil

import numpy as np
import tifffile
from PIL import Image
from scipy import ndimage

SEED = 20261129
SIZE = 48


def defect_mask(rng, kind):
    yy, xx = np.mgrid[:SIZE, :SIZE]
    mask = np.zeros((SIZE, SIZE), bool)
    if kind in ("crack", "cut"):
        y0, x0 = rng.integers(10, SIZE - 10, 2)
        angle = rng.uniform(0, np.pi)
        dist = np.abs((yy - y0) * np.cos(angle) - (xx - x0) * np.sin(angle))
        along = np.abs((yy - y0) * np.sin(angle) + (xx - x0) * np.cos(angle))
        return (dist <= 1.0) & (along <= rng.integers(5, 12))
    for _ in range(rng.integers(1, 3)):
        r = rng.choice([2.0, 3.0, 4.5])
        cy, cx = rng.integers(5, SIZE - 5, 2)
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    return mask


def anomaly_map(rng, mask, strength):
    noise = ndimage.gaussian_filter(rng.standard_normal((SIZE, SIZE)), 1.5) * 3
    bump = ndimage.gaussian_filter(mask.astype(float), 1.2) * strength
    return (np.round((noise + bump + 10) * 64) / 64).astype(np.float32)  # ties, as real maps have


def main(root):
    rng = np.random.default_rng(SEED)
    if root.exists():
        shutil.rmtree(root)
    spec = {"bagel": (4.0, (("good", 4), ("crack", 3), ("hole", 2))),
            "rope": (2.0, (("good", 4), ("contamination", 3), ("cut", 2)))}
    for obj, (strength, defects) in spec.items():
        for defect, count in defects:
            maps = root / "maps" / obj / "test" / defect
            truth = root / "gt" / obj / "test" / defect / "gt"
            maps.mkdir(parents=True)
            truth.mkdir(parents=True)
            for i in range(count):
                name = f"{i:03d}"
                mask = np.zeros((SIZE, SIZE), bool) if defect == "good" else defect_mask(rng, defect)
                tifffile.imwrite(maps / f"{name}.tiff", anomaly_map(rng, mask, strength), compression="zlib")
                Image.fromarray(mask.astype(np.uint8) * 255).save(truth / f"{name}.png")
    print(f"wrote {sum(1 for p in root.rglob('*') if p.is_file())} files under {root}")
