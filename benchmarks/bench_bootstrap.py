"""The image-level bootstrap at MVTec-category scale against a naive loop of full re-evaluations.

The case (issue 15): ``--images`` (120) float32 anomaly maps of 512x512 (31 million pixels), 40% of the images
defect-free, the others with 1-4 disc defects (radius 3 to 80 pixels) whose pixels score 1.5 higher on a
standard-normal background; ``--resamples`` (1000) stratified resamples; pixel AUROC and AUPRO@0.3.

- refmetrics: ``PixelResampler.from_maps`` (labels the regions, sorts the pooled keys once, each tagged with
  its image), then the replicates of both metrics. Timed end to end from the maps, ``--repeat`` times (the
  minimum and the median are printed), after one small warm-up run that loads the compiled kernels.
- the naive loop: for a resample, ``np.repeat`` the maps and masks by the resample's multiplicities and call
  ``refmetrics.functional.auroc`` and ``aupro`` on them: a full re-evaluation. ``--naive`` (3) resamples are
  timed (their median is multiplied by the number of resamples) and their values compared with the fast
  replicates, which must be identical.

The machine line (NumPy, its SIMD extensions, the CPU, the cores) is printed first and with every ratio. On a
machine shared with other work the times are upper bounds.

Usage: ``python benchmarks/bench_bootstrap.py [--images 120] [--size 512] [--resamples 1000] [--repeat 3]
[--naive 3] [--all]`` (``--all`` also times pixel AP and F1-max, which walk every pixel per resample).
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _machine import machine_line  # noqa: E402
from bench_pimo import make_maps  # noqa: E402


def fast(maps, masks, resamples, metrics):
    from refmetrics.functional.bootstrap import PixelResampler, resample_counts

    t0 = time.perf_counter()
    resampler = PixelResampler.from_maps(maps, masks)
    t1 = time.perf_counter()
    weights = resample_counts(resampler.anomalous, resamples, seed=0)
    out, times = {}, {"build": t1 - t0}
    for metric, kw in metrics:
        t = time.perf_counter()
        out[metric] = resampler.replicates(weights, metric, **kw)
        times[metric] = time.perf_counter() - t
    times["total"] = time.perf_counter() - t0
    return out, weights, times


def naive(maps, masks, row, metrics):
    import refmetrics.functional as F

    t = time.perf_counter()
    p, m = np.repeat(maps, row, axis=0), np.repeat(masks, row, axis=0)
    values = {metric: getattr(F, metric)(p, m, **kw) for metric, kw in metrics}
    return values, time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=120)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--naive", type=int, default=3)
    ap.add_argument("--all", action="store_true")
    args = ap.parse_args()
    line = machine_line()
    print(line)
    metrics = [("auroc", {}), ("aupro", {"fpr_limit": 0.3})]
    if args.all:
        metrics += [("average_precision", {}), ("f1_max", {})]
    small, small_masks = make_maps(10, 32)
    fast(small, small_masks, 4, metrics)  # load the compiled kernels
    maps, masks = make_maps(args.images, args.size)
    print(f"data: {args.images} maps of {args.size}x{args.size} ({maps.size / 1e6:.1f}M pixels), "
          f"{int(masks.reshape(args.images, -1).any(1).sum())} with defects; {args.resamples} resamples")
    runs = []
    for _ in range(args.repeat):
        out, weights, times = fast(maps, masks, args.resamples, metrics)
        runs.append(times)
        print("  refmetrics: " + ", ".join(f"{k} {v:.2f} s" for k, v in times.items()))
    totals = [r["total"] for r in runs]
    best, median = min(totals), statistics.median(totals)
    per, identical = [], True
    for b in range(args.naive):
        values, seconds = naive(maps, masks, weights[b], metrics)
        per.append(seconds)
        identical &= all(values[m] == out[m][b] for m, _ in metrics)
        print(f"  naive re-evaluation of resample {b}: {seconds:.2f} s")
    projected = statistics.median(per) * args.resamples
    names = " + ".join(m for m, _ in metrics)
    print(f"\n{names}, {args.resamples} resamples: refmetrics {best:.1f} s (minimum of {args.repeat}; median "
          f"{median:.1f} s); naive loop {projected:.0f} s projected ({args.resamples} x the median of "
          f"{args.naive} re-evaluations, {statistics.median(per):.2f} s)")
    print(f"ratio (naive / refmetrics, minimum): {projected / best:.0f}x  [{line}]")
    print(f"replicates identical to the naive re-evaluations: {identical}")
    print(f"target (under 60 s for pixel AUROC and AUPRO@0.3): {'met' if best < 60 else 'NOT met'}")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
