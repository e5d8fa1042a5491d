"""The demo tree of ``refmetrics evaluate --protocol mvtec-ad --demo`` (``refmetrics/data/demo/mvtec-ad/``).

A small tree in the MVTec AD layout, deterministic (seed below), using every
supported map format:

    maps/disc/test/good/NNN.npy               float32 maps (NumPy) of defect-free images
    maps/disc/test/{scratch,blob}/NNN.tiff    float32 maps (TIFF)
    maps/stripe/test/<defect>/NNN.png         16-bit PNG maps (integer scores)
    gt/<category>/ground_truth/<defect>/NNN_mask.png   0/255 masks

Two categories ("disc", "stripe") of 12 images of 48x48 each.
Run: ``python tools/make_demo_data.py mvtec-ad``.
"""

import shutil

import numpy as np
import tifffile
from PIL import Image
from scipy import ndimage

SEED = 20261125
SIZE = 48


def defect_mask(rng, kind):
    yy, xx = np.mgrid[:SIZE, :SIZE]
    mask = np.zeros((SIZE, SIZE), bool)
    if kind == "scratch":
        y0, x0 = rng.integers(8, SIZE - 8, 2)
        angle = rng.uniform(0, np.pi)
        dist = np.abs((yy - y0) * np.cos(angle) - (xx - x0) * np.sin(angle))
        along = np.abs((yy - y0) * np.sin(angle) + (xx - x0) * np.cos(angle))
        mask = (dist <= 1.0) & (along <= rng.integers(6, 14))
    else:
        for _ in range(rng.integers(1, 3)):
            r = rng.choice([2.0, 3.5, 5.0])
            cy, cx = rng.integers(4, SIZE - 4, 2)
            mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    return mask


def anomaly_map(rng, mask, strength):
    noise = ndimage.gaussian_filter(rng.standard_normal((SIZE, SIZE)), 1.5) * 3
    bump = ndimage.gaussian_filter(mask.astype(float), 1.2) * strength
    return noise + bump


def main(root):
    rng = np.random.default_rng(SEED)
    if root.exists():
        shutil.rmtree(root)
    for category, strength in (("disc", 4.0), ("stripe", 2.0)):
        for defect, count in (("good", 5), ("scratch", 4), ("blob", 3)):
            maps = root / "maps" / category / "test" / defect
            maps.mkdir(parents=True)
            masks = root / "gt" / category / "ground_truth" / defect
            if defect != "good":
                masks.mkdir(parents=True)
            for i in range(count):
                name = f"{i:03d}"
                mask = np.zeros((SIZE, SIZE), bool) if defect == "good" else defect_mask(rng, defect)
                values = anomaly_map(rng, mask, strength)
                if category == "disc" and defect == "good":
                    np.save(maps / f"{name}.npy", (values + 10).astype(np.float32))
                elif category == "disc":
                    tifffile.imwrite(maps / f"{name}.tiff", (values + 10).astype(np.float32))
                else:  # integer scores, as a 16-bit PNG
                    Image.fromarray(np.clip(values * 1000 + 20000, 0, 65535).astype(np.uint16)).save(
                        maps / f"{name}.png")
                if defect != "good":
                    Image.fromarray(mask.astype(np.uint8) * 255).save(masks / f"{name}_mask.png")
    print(f"wrote {sum(1 for p in root.rglob('*') if p.is_file())} files under {root}")

