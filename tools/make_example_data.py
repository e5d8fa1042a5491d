"""Regenerate ``refmetrics/data/example.npz``, the small dataset of ``refmetrics example``.

Deterministic (seed below): 24 float32 anomaly maps of 48x48 (8 defect-free),
their 0/255 uint8 masks (as MVTec stores them) and per-image labels.
Run: ``python tools/make_example_data.py``.
"""

from pathlib import Path

import numpy as np
from scipy import ndimage

SEED = 20261125


def main():
    rng = np.random.default_rng(SEED)
    n, size = 24, 48
    yy, xx = np.mgrid[:size, :size]
    masks = np.zeros((n, size, size), np.uint8)
    maps = np.empty((n, size, size), np.float32)
    for i in range(n):
        if i >= 8:
            for _ in range(rng.integers(1, 4)):
                r = rng.choice([1.5, 3, 6])
                cy, cx = rng.integers(0, size, 2)
                masks[i][(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 255
        noise = ndimage.gaussian_filter(rng.standard_normal((size, size)), 2) * 4
        bump = ndimage.gaussian_filter((masks[i] > 0).astype(float), 1.5) * 2.5
        maps[i] = (noise + bump + 10).astype(np.float32)  # raw scores around 10, as many models give
    labels = (masks.reshape(n, -1).max(axis=1) > 0).astype(np.uint8)
    out = Path(__file__).resolve().parents[1] / "refmetrics" / "data" / "example.npz"
    np.savez_compressed(out, maps=maps, masks=masks, labels=labels)
    print(f"wrote {out} ({out.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
