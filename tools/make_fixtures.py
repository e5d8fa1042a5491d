"""Regenerate the conformance suite's golden fixtures (deterministic).

Writes ``refmetrics/conformance/fixtures/<case>.npz`` (maps, masks, batch
boundaries) and ``manifest.json``: per case its seed, a sentence on what it
probes, the sha256 of its npz, and the exact expected value of every metric,
as a fraction and as float64, computed by the brute-force oracles of
``tests/naive.py`` (exact fractions; they share no code with refmetrics). AUPIMO's
area is irrational (logarithms): its entry is the fraction of the oracle's float64.

Run from the repository root: ``python tools/make_fixtures.py``.
"""

import hashlib
import io
import json
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests import naive  # noqa: E402

OUT = ROOT / "refmetrics" / "conformance" / "fixtures"
SEED = 20261125


def blobs(rng, b, h, w, per_image=(1, 3), radii=(1, 2, 3), defect_free=0):
    masks = np.zeros((b, h, w), np.uint8)
    yy, xx = np.mgrid[:h, :w]
    for i in range(defect_free, b):
        for _ in range(rng.integers(per_image[0], per_image[1] + 1)):
            r = rng.choice(radii)
            cy, cx = rng.integers(0, h), rng.integers(0, w)
            masks[i][(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1
    return masks


def scores_for(rng, masks, dtype=np.float32, shift=1.5, loc=0.0, scale=1.0):
    s = rng.normal(loc, scale, masks.shape) + shift * masks
    return s.astype(dtype)


def cases():
    """``name -> (what it probes, maps, masks, batches)``; batches = split points along axis 0."""
    out = {}
    rng = np.random.default_rng(SEED)
    m = blobs(rng, 6, 12, 12, defect_free=2)
    out["continuous"] = ("continuous float32 scores", scores_for(rng, m), m, [2, 4])
    m = blobs(rng, 6, 12, 12, defect_free=2)
    out["heavy_ties"] = ("scores rounded to steps of 0.5: many ties across classes",
                         np.round(scores_for(rng, m, np.float64) * 2) / 2, m, [3])
    m = blobs(rng, 6, 12, 12, defect_free=2)
    q = np.clip(np.round((scores_for(rng, m, np.float64) + 2) / 5 * 15), 0, 15) / 15
    out["quantised_16"] = ("maps quantised to 16 levels in [0, 1]", q.astype(np.float32), m, [3])
    m = blobs(rng, 6, 12, 12, defect_free=2)
    out["binary_maps"] = ("binary {0, 1} maps", (scores_for(rng, m, np.float64) > 0.8).astype(np.float32),
                          m, [3])
    m = blobs(rng, 6, 12, 12, defect_free=2)
    out["raw_scores_20"] = ("raw float32 scores around 20 (std 3): a float32 sigmoid ties them all",
                            scores_for(rng, m, np.float32, shift=4.0, loc=20.0, scale=3.0), m, [2, 4])
    m = blobs(rng, 6, 12, 12, defect_free=2)
    s = scores_for(rng, m, np.float32)
    s[:3] = 1 / (1 + np.exp(-s[:3]))  # first batch inside [0, 1], second not
    out["mixed_range_batches"] = ("one batch of probabilities in [0, 1], one of raw scores", s, m, [3])
    m = blobs(rng, 6, 12, 12, defect_free=2)
    s = rng.standard_cauchy(m.shape) + 2.0 * m
    out["heavy_tailed"] = ("Cauchy-distributed scores with huge outliers", s.astype(np.float64), m, [3])
    m = blobs(rng, 6, 12, 12, defect_free=2)
    base = 0.3 + rng.integers(0, 4, m.shape) * 1e-12 + 2e-12 * m
    out["float64_close"] = ("float64 scores 1e-12 apart: all equal in float32", base, m, [3])
    m = np.zeros((2, 10, 10), np.uint8)
    for k in range(0, 10, 3):
        m[0, k, k] = 1
        m[0, k + 1 if k + 1 < 10 else k, k + 1 if k + 1 < 10 else k] = 1
    m[1, 2:4, 2:4] = 1
    m[1, 4, 4] = 1  # touches the square at a corner only
    m[1, 7, 1:4] = 1
    m[1, 8, 4] = 1
    out["diagonal_regions"] = ("regions touching only at corners (one region under 8-connectivity)",
                               scores_for(rng, m), m, [1])
    m = np.zeros((1, 24, 24), np.uint8)
    m[0, 1::4, 1:23] = 1
    m[0, 3::4, 1:23] = 1
    m[0, 2::8, 22] = 1
    m[0, 6::8, 1] = 1
    m[0, 4::8, 22] = 0
    out["snake_region"] = ("one long one-pixel-wide snake region", scores_for(rng, m, shift=1.0), m, [])
    m = blobs(rng, 8, 10, 10, defect_free=5)
    out["defect_free_images"] = ("most images without defects", scores_for(rng, m), m, [4])
    m = np.zeros((4, 8, 8), np.uint8)
    out["one_class"] = ("no defect anywhere: AUROC, AP, AUPRO are undefined", scores_for(rng, m), m, [2])
    m = np.zeros((3, 16, 16), np.uint8)
    m[0, 3, 3] = 1
    m[0, 10, 12] = 1
    m[1, 1:15, 1:15] = 1
    m[2, 5:7, 5:9] = 1
    out["tiny_and_huge_regions"] = ("one-pixel regions beside a region covering most of an image",
                                    scores_for(rng, m, shift=0.8), m, [1])
    m = np.zeros((2, 4, 6, 6), np.uint8)
    m[0, 1:3, 1:3, 1:3] = 1
    m[1, 0, 0, 0] = 1
    m[1, 3, 4:6, 4:6] = 1
    out["volume_3d"] = ("3-D volumes (B, D, H, W)", scores_for(rng, m), m, [1])
    pred = np.array([0.13, 0.26, 0.08, 0.92, 0.03], np.float32)
    out["anomalib_auroc_example"] = ("anomalib's documented AUROC example (one pixel per image)",
                                     pred.reshape(5, 1, 1), np.array([0, 0, 1, 1, 0], np.uint8).reshape(5, 1, 1),
                                     [2])
    pred = np.array([0.59, 0.35, 0.72, 0.33, 0.73, 0.81, 0.30, 0.05, 0.04, 0.48], np.float32)
    true = np.array([0, 1, 1, 1, 0, 0, 0, 0, 1, 1], np.uint8)
    out["anomalib_aupr_example"] = ("anomalib's documented AUPR example (one pixel per image)",
                                    pred.reshape(10, 1, 1), true.reshape(10, 1, 1), [])
    return out


def f1_score_by_batches(maps, masks, bounds, threshold=0.5):
    """F1Score's definition (SPEC): torchmetrics' sigmoid rule per update, counts summed."""
    tp = fp = fn = 0
    for a, b in zip(bounds, bounds[1:]):
        scores = [float(x) for x in maps[a:b].reshape(-1)]
        labels = [int(x) for x in masks[a:b].reshape(-1)]
        use_sigmoid = any(x < 0 or x > 1 for x in scores)
        for x, y in zip(scores, labels):
            positive = naive.sigmoid_gt(x, threshold) if use_sigmoid else x > threshold
            tp += positive and y == 1
            fp += positive and y == 0
            fn += (not positive) and y == 1
    return Fraction(2 * tp, 2 * tp + fp + fn) if tp + fp + fn else Fraction(0)


def exact_values(maps, masks, batches):
    """Exact expected values: ``metric -> Fraction or None`` (None = undefined)."""
    spatial = masks.ndim - 1
    image_scores = maps.reshape(maps.shape[0], -1).max(axis=1)
    image_labels = masks.reshape(masks.shape[0], -1).max(axis=1)
    f1 = naive.f1_adaptive(maps, masks)[1]  # None (undefined) without a positive
    return {
        "image_auroc": naive.auroc(image_scores, image_labels),
        "image_ap": naive.average_precision(image_scores, image_labels),
        "image_pbn": naive.pbn(image_scores, image_labels, 0.05),  # anomalib's defaults
        "image_pgn": naive.pgn(image_scores, image_labels, 0.05),
        "pixel_auroc": naive.auroc(maps, masks),
        "pixel_ap": naive.average_precision(maps, masks),
        "pixel_f1max": f1,
        "aupro": naive.aupro(maps, masks, 0.3, None, spatial_dims=spatial),  # full connectivity
        "pro": naive.pro_score(maps, masks, 0.5, None, spatial_dims=spatial),
        "pixel_f1_threshold": Fraction(float(naive.f1_adaptive(maps, masks)[0])),
        "pixel_f1_score": f1_score_by_batches(maps, masks, [0] + list(batches) + [maps.shape[0]]),
        "min_score": Fraction(float(maps.min())),
        "max_score": Fraction(float(maps.max())),
        "aupimo": aupimo_expected(maps, masks),
        "au_spro": naive.au_spro(*spro_defects(maps, masks), 0.05),
    }


def aupimo_expected(maps, masks):
    """The oracle's mean AUPIMO (None when undefined). Its counts and rates are exact fractions, but
    the area is taken in ln shFPR and is irrational: the manifest holds the fraction of its float64
    value (the oracle's logarithms are ``ln p - ln q`` of the exact rates), which refmetrics must
    match within the suite's 1e-9."""
    from refmetrics.conformance.cases import AUPIMO_BOUNDS  # (1e-2, 1e-1): the cases are small

    mean, _ = naive.aupimo(maps, masks, AUPIMO_BOUNDS)
    return None if mean is None else Fraction(mean)


def spro_defects(maps, masks):
    """The cases' sPRO ground truth: per image with a defect pixel one defect, its whole mask
    (flattened), relative saturation 1.0 (as ``refmetrics.conformance.cases.spro_data``)."""
    n = maps.shape[0]
    return maps.reshape(n, 1, -1), [[(m.reshape(1, -1), 1.0, True)] if m.any() else [] for m in masks]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    manifest = {"generator": "tools/make_fixtures.py", "seed": SEED, "cases": {}}
    for name, (what, maps, masks, batches) in cases().items():
        buf = io.BytesIO()
        np.savez_compressed(buf, maps=maps, masks=masks, batches=np.array(batches, np.int64))
        data = buf.getvalue()
        (OUT / f"{name}.npz").write_bytes(data)
        values = {}
        for metric, exact in exact_values(maps, masks, batches).items():
            values[metric] = (None if exact is None else
                              {"fraction": f"{exact.numerator}/{exact.denominator}", "float64": float(exact)})
        manifest["cases"][name] = {"probes": what, "seed": SEED, "file": f"{name}.npz",
                                   "sha256": hashlib.sha256(data).hexdigest(),
                                   "dtype": str(maps.dtype), "shape": list(maps.shape),
                                   "expected": values}
        print(f"{name}: {maps.shape} {maps.dtype}")
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    main()
