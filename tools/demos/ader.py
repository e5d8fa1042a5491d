"""The demo tree of ``refmetrics evaluate --protocol ader --demo`` (``refmetrics/data/demo/ader/``).

A small tree in the MVTec AD layout, deterministic (seed below), with maps of
64x64 so that ADer's 16x16 pooled image score has a 49x49 pooled map to take
the maximum of:

    maps/tile/test/{good,crack,hole}/NNN.tiff     float32 maps (zlib TIFF, scores in steps of 1/256)
    maps/screw/test/{good,scratch,thread}/NNN.png 8-bit PNG maps (integer scores)
    gt/<category>/ground_truth/<defect>/NNN_mask.png   0/255 masks

Two categories of 6 images each (2 good, 2 of each defect type).
Run: ``python tools/make_demo_data.py ader``.
"""

import shutil

import numpy as np
import tifffile
from PIL import Image
from scipy import ndimage

SEED = 20261128
SIZE = 64
CATEGORIES = {"tile": ("crack", "hole"), "screw": ("scratch", "thread")}


def defect_mask(rng, kind):
    yy, xx = np.mgrid[:SIZE, :SIZE]
    if kind in ("crack", "scratch"):  # a thin line
        y0, x0 = rng.integers(12, SIZE - 12, 2)
        angle = rng.uniform(0, np.pi)
        dist = np.abs((yy - y0) * np.cos(angle) - (xx - x0) * np.sin(angle))
        along = np.abs((yy - y0) * np.sin(angle) + (xx - x0) * np.cos(angle))
        return (dist <= 1.0) & (along <= rng.integers(8, 18))
    mask = np.zeros((SIZE, SIZE), bool)
    for _ in range(rng.integers(1, 3)):  # one or two blobs
        r = rng.choice([3.0, 4.5, 6.0])
        cy, cx = rng.integers(8, SIZE - 8, 2)
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    return mask


def anomaly_map(rng, mask, strength):
    """A smooth non-negative map: background noise around 0.3 plus a bump over the defect."""
    noise = ndimage.gaussian_filter(rng.standard_normal((SIZE, SIZE)), 2.0) * 0.6
    bump = ndimage.gaussian_filter(mask.astype(float), 2.0) * strength
    return np.clip(0.3 + 0.15 * noise + bump, 0.0, None)


def main(root):
    rng = np.random.default_rng(SEED)
    if root.exists():
        shutil.rmtree(root)
    for category, defects in CATEGORIES.items():
        strength = 1.5 if category == "tile" else 0.8
        for defect in ("good",) + defects:
            maps = root / "maps" / category / "test" / defect
            maps.mkdir(parents=True)
            masks = root / "gt" / category / "ground_truth" / defect
            if defect != "good":
                masks.mkdir(parents=True)
            for i in range(2):
                name = f"{i:03d}"
                mask = np.zeros((SIZE, SIZE), bool) if defect == "good" else defect_mask(rng, defect)
                values = anomaly_map(rng, mask, strength)
                if defect == "good":  # a false alarm: a defect-like bump on a good image
                    values += anomaly_map(rng, defect_mask(rng, defects[i]), 0.5 * strength) - 0.3
                if category == "tile":  # float32 scores on a 1/256 grid: zlib compresses them
                    tifffile.imwrite(maps / f"{name}.tiff", (np.round(values * 256) / 256).astype(np.float32),
                                     compression="zlib")
                else:  # integer scores, as an 8-bit PNG
                    Image.fromarray(np.clip(np.round(values * 200), 0, 255).astype(np.uint8)).save(
                        maps / f"{name}.png")
                if defect != "good":
                    Image.fromarray(mask.astype(np.uint8) * 255).save(masks / f"{name}_mask.png")
    files = [p for p in root.rglob("*") if p.is_file()]
    print(f"wrote {len(files)} files ({sum(p.stat().st_size for p in files) / 1024:.0f} KiB) under {root}")
