"""The demo of ``refmetrics compare --demo`` (``refmetrics/data/demo/compare/``): two synthetic methods.

One small test set in the MVTec AD layout and two methods' maps of it, deterministic (seed below)::

    gt/<category>/ground_truth/{scratch,blob}/NNN_mask.png   0/255 masks (shared by both methods)
    maps_a/<category>/test/{good,scratch,blob}/NNN.tiff      method A's float32 maps
    maps_b/<category>/test/{good,scratch,blob}/NNN.tiff      method B's float32 maps

Two categories ("disc", "stripe") of 8 images of 48x48 each (4 good, 2 scratches, 2 blobs). Both methods
share most of their noise (as two methods built on one backbone do). On "disc", method B's response to
the defects is stronger than A's on every defective image: B is better, clearly on the pixel metrics. On
"stripe", the two differ by small independent noise only: about equal. Scores are rounded to 1/16 and the
TIFFs zlib-compressed (readable by tifffile alone), which keeps the tree small.
Run: ``python tools/make_demo_data.py compare``.
"""

import shutil

import numpy as np
import tifffile
from PIL import Image
from scipy import ndimage

SEED = 3  # chosen among the first few for a clear demo: B ahead on disc, A slightly ahead on stripe
SIZE = 48
DEFECTS = (("good", 4), ("scratch", 2), ("blob", 2))
STRENGTH = {"disc": (2.0, 3.2), "stripe": (2.5, 2.5)}  # the defect response of A and of B


def defect_mask(rng, kind):
    yy, xx = np.mgrid[:SIZE, :SIZE]
    mask = np.zeros((SIZE, SIZE), bool)
    if kind == "scratch":
        y0, x0 = rng.integers(10, SIZE - 10, 2)
        angle = rng.uniform(0, np.pi)
        dist = np.abs((yy - y0) * np.cos(angle) - (xx - x0) * np.sin(angle))
        along = np.abs((yy - y0) * np.sin(angle) + (xx - x0) * np.cos(angle))
        mask = (dist <= 1.0) & (along <= rng.integers(6, 12))
    else:
        r = rng.choice([3.0, 4.5])
        cy, cx = rng.integers(6, SIZE - 6, 2)
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    return mask


def smooth_noise(rng, scale):
    return ndimage.gaussian_filter(rng.standard_normal((SIZE, SIZE)), 2.0) * scale


def save_map(path, values):
    stored = (np.round(values * 16) / 16 + 10).astype(np.float32)  # exact in float32: 1/16 steps
    tifffile.imwrite(path, stored, compression="zlib")


def main(root):
    rng = np.random.default_rng(SEED)
    if root.exists():
        shutil.rmtree(root)
    for category, (strength_a, strength_b) in STRENGTH.items():
        for defect, count in DEFECTS:
            dirs = {m: root / m / category / "test" / defect for m in ("maps_a", "maps_b")}
            for d in dirs.values():
                d.mkdir(parents=True)
            masks = root / "gt" / category / "ground_truth" / defect
            if defect != "good":
                masks.mkdir(parents=True)
            for i in range(count):
                name = f"{i:03d}"
                mask = np.zeros((SIZE, SIZE), bool) if defect == "good" else defect_mask(rng, defect)
                bump = ndimage.gaussian_filter(mask.astype(float), 1.5)
                bump /= max(bump.max(), 1e-12)
                shared = smooth_noise(rng, 2.5)
                save_map(dirs["maps_a"] / f"{name}.tiff", shared + smooth_noise(rng, 0.6) + strength_a * bump)
                save_map(dirs["maps_b"] / f"{name}.tiff", shared + smooth_noise(rng, 0.6) + strength_b * bump)
                if defect != "good":
                    Image.fromarray(mask.astype(np.uint8) * 255).save(masks / f"{name}_mask.png")
    files = [p for p in root.rglob("*") if p.is_file()]
    print(f"wrote {len(files)} files ({sum(p.stat().st_size for p in files):,} bytes) under {root}")
