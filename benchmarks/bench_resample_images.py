"""Bootstrap replicates of AUPIMO and AU-sPRO: the resample engines against the naive loop, same run.

For ``--resamples`` (200) stratified resamples (``resample_counts``), the naive loop calls refmetrics' ordinary function on the repeated images
(``np.repeat(maps, W[b], axis=0)``); the engines (``functional/_resample_images.py``) are built once
from the maps (their build time is counted) and give all replicates at once. Every replicate is
checked equal, bit for bit (NaN where NaN), and the ratio naive / engine is printed next to the
machine line (NumPy, its SIMD extensions, the CPU, the cores: ``_machine.py``).

Cases (seeded):

- AUPIMO: ``--images`` (80) float32 maps ``--size`` x ``--size`` (256), 40% defect-free, 1-3 disc
  defects scoring 1.5 higher on a standard-normal background, default bounds (1e-5, 1e-4).
- AU-sPRO: the same kind of maps, ``--spro-images`` (60) of ``--spro-size`` (128), each anomalous
  image with 1-3 defects (relative and absolute saturation), the five official limits at once, then
  the default limit 0.05 alone.

Usage: ``python benchmarks/bench_resample_images.py [--resamples 200] [--images 80] [--size 256]
[--spro-images 60] [--spro-size 128] [--seed 0]``
"""

import argparse
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _machine import machine_line

import refmetrics as rm
from refmetrics import functional as F
from refmetrics.functional.bootstrap import resample_counts as counts
from refmetrics.functional.bootstrap import AupimoResampler, SproResampler


def discs(rng, size, count):
    yy, xx = np.mgrid[:size, :size]
    mask = np.zeros((size, size), bool)
    for _ in range(count):
        r = rng.choice([3, 8, 20, size // 6])
        cy, cx = rng.integers(0, size, 2)
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    return mask


def make_maps(images, size, seed):
    rng = np.random.default_rng(seed)
    maps = rng.standard_normal((images, size, size), dtype=np.float32)
    masks = np.zeros((images, size, size), bool)
    for i in range(images):
        if i % 5 in (0, 2):
            continue
        masks[i] = discs(rng, size, int(rng.integers(1, 4)))
        maps[i][masks[i]] += np.float32(1.5)
    return maps, masks


def make_defects(images, size, seed):
    rng = np.random.default_rng(seed + 1)
    maps = rng.standard_normal((images, size, size), dtype=np.float32)
    defects = []
    for i in range(images):
        items = []
        if i % 5 not in (0, 2):
            for _ in range(int(rng.integers(1, 4))):
                mask = discs(rng, size, 1)
                if rng.random() < 0.5:
                    items.append((mask, float(rng.choice([0.5, 1.0])), True))
                else:
                    items.append((mask, int(rng.integers(10, 200)), False))
                maps[i][mask] += np.float32(1.5)
        defects.append(items)
    return maps, defects


def same(a, b):
    return (math.isnan(a) and math.isnan(b)) or a == b


def run(name, build, naive, replicates, W):
    t0 = time.perf_counter()
    engine = build()
    got = replicates(engine, W)
    t_engine = time.perf_counter() - t0
    t0 = time.perf_counter()
    want = [naive(W[b]) for b in range(W.shape[0])]
    t_naive = time.perf_counter() - t0
    flat_got = np.asarray(got).reshape(W.shape[0], -1)
    flat_want = np.asarray(want, dtype=float).reshape(W.shape[0], -1)
    mismatches = sum(not same(a, b) for a, b in zip(flat_got.ravel().tolist(), flat_want.ravel().tolist()))
    print(f"{name}: {W.shape[0]} resamples, naive loop {t_naive:.2f} s, engine {t_engine:.3f} s "
          f"(build + replicates), ratio {t_naive / t_engine:.1f}x; mismatches {mismatches}, "
          f"NaN {int(np.isnan(flat_got).sum())}  [{machine_line()}]")
    return mismatches


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resamples", type=int, default=200)
    parser.add_argument("--images", type=int, default=80)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--spro-images", type=int, default=60)
    parser.add_argument("--spro-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(machine_line())
    warnings.simplefilter("ignore", rm.UndefinedMetricWarning)

    # compile the kernels outside the measurement
    small_maps, small_masks = make_maps(5, 16, 1)
    AupimoResampler.from_maps(small_maps, small_masks).replicates(np.ones((1, 5), np.int64), (0.01, 0.1))
    F.aupimo(small_maps, small_masks, fpr_bounds=(0.01, 0.1))
    small_maps, small_defects = make_defects(5, 16, 1)
    SproResampler.from_maps(small_maps, small_defects).replicates(np.ones((1, 5), np.int64), [0.05, 1.0])
    F.au_spro(small_maps, small_defects, fpr_limit=[0.05, 1.0])

    maps, masks = make_maps(args.images, args.size, args.seed)
    W = counts(masks.reshape(len(masks), -1).any(1), args.resamples, args.seed)
    bad = run(f"AUPIMO ({args.images} images of {args.size}x{args.size})",
              lambda: AupimoResampler.from_maps(maps, masks),
              lambda w: F.aupimo(np.repeat(maps, w, axis=0), np.repeat(masks, w, axis=0)),
              lambda engine, W: engine.replicates(W), W)

    maps, defects = make_defects(args.spro_images, args.spro_size, args.seed)
    W = counts([bool(d) for d in defects], args.resamples, args.seed)
    limits = list(F.spro.OFFICIAL_FPR_LIMITS)

    def naive_spro(w):
        idx = np.repeat(np.arange(len(maps)), w)
        return F.au_spro(maps[idx], [defects[i] for i in idx], fpr_limit=limits)

    bad += run(f"AU-sPRO at {limits} ({args.spro_images} images of {args.spro_size}x{args.spro_size})",
               lambda: SproResampler.from_maps(maps, defects), naive_spro,
               lambda engine, W: engine.replicates(W, fpr_limit=limits), W)
    limits = 0.05  # au_spro's default alone: only the top of the keys is merged
    bad += run(f"AU-sPRO at {limits} ({args.spro_images} images of {args.spro_size}x{args.spro_size})",
               lambda: SproResampler.from_maps(maps, defects), naive_spro,
               lambda engine, W: engine.replicates(W, fpr_limit=limits), W)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
