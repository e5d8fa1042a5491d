"""The demo tree of ``refmetrics evaluate --protocol real-iad --demo`` (``refmetrics/data/demo/real-iad/``).

A small tree in the Real-IAD layout, deterministic (seed below): two categories of
four samples (two OK, two NG of different defect types) of five camera views each,
named as Real-IAD names them (``<category>_<id>_<OK|NG>_C<k>_<time>``)::

    gt/<category>/NG/<defect>/S000N/<name>_C<k>_<time>.png   0/255 masks of 24x24; two views of each
                                                              NG sample show no defect (an all-zero
                                                              mask, or no mask and the view's .jpg)
    maps/plug/<same paths>.tiff                               float32 maps of 24x24 (TIFF)
    maps/nut/<same paths>.npy                                 float32 maps of 16x16 (NumPy): resized to
                                                              the masks' 24x24, as ADEval does

Run: ``python tools/make_demo_data.py real-iad``.
"""

import shutil

import numpy as np
import tifffile
from PIL import Image
from scipy import ndimage

SEED = 20261128
SIZE = 24  # the masks' size (small, to keep the tree under 100 KB)
TIME = "20261128120000"
SAMPLES = (("OK", None), ("OK", None), ("NG", "AK"), ("NG", "HS"))  # (state, defect type)
CLEAN_VIEWS = {3: "zero mask", 5: "no mask"}  # views of each NG sample that show no defect


def blob(rng):
    yy, xx = np.mgrid[:SIZE, :SIZE]
    cy, cx = rng.integers(5, SIZE - 5, 2)
    r = rng.choice([2.0, 2.5, 3.5])
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def anomaly_map(rng, mask, strength, size):
    noise = ndimage.gaussian_filter(rng.standard_normal((SIZE, SIZE)), 1.2) * 2
    values = noise + ndimage.gaussian_filter(mask.astype(float), 1.0) * strength + 10
    if size != SIZE:
        values = ndimage.zoom(values, size / SIZE, order=1)
    return values.astype(np.float32)


def main(root):
    rng = np.random.default_rng(SEED)
    if root.exists():
        shutil.rmtree(root)
    for category, strength, size, suffix in (("plug", 5.0, SIZE, ".tiff"), ("nut", 2.5, 16, ".npy")):
        for i, (state, defect) in enumerate(SAMPLES, start=1):
            where = f"OK/S{i:04d}" if state == "OK" else f"NG/{defect}/S{i:04d}"
            tag = "OK" if state == "OK" else f"NG_{defect}"
            (root / "maps" / category / where).mkdir(parents=True)
            (root / "gt" / category / where).mkdir(parents=True)
            for view in range(1, 6):
                name = f"{category}_{i:04d}_{tag}_C{view}_{TIME}"
                clean = state == "OK" or view in CLEAN_VIEWS
                mask = np.zeros((SIZE, SIZE), bool) if clean else blob(rng)
                values = anomaly_map(rng, mask, strength, size)
                target = root / "maps" / category / where / (name + suffix)
                if suffix == ".npy":
                    np.save(target, values)
                else:
                    tifffile.imwrite(target, values)
                gt = root / "gt" / category / where / name
                if state == "NG" and CLEAN_VIEWS.get(view) == "no mask":  # the image alone, as the dataset has
                    Image.fromarray(np.full((SIZE, SIZE), 128, np.uint8)).save(gt.with_suffix(".jpg"), quality=50)
                elif state == "NG":
                    Image.fromarray(mask.astype(np.uint8) * 255).save(gt.with_suffix(".png"))
    print(f"wrote {sum(1 for p in root.rglob('*') if p.is_file())} files under {root}")
