"""Exact AUPIMO against anomalib's sampled AUPIMO at MVTec scale: time, peak memory, ratio.

The case: ``--images`` (190) float32 anomaly maps of 512x512 (~50 million pixels),
40% of the images defect-free, the others with 1-4 disc defects (radius 3 to 80
pixels) whose pixels score 1.5 higher on a standard-normal background. Each
implementation runs in a fresh child process; the child builds the data (refmetrics
then runs once outside the measurement, to load its compiled kernels), then ``--repeat`` times,
and reports the minimum time and the peak resident memory above what it held
once the data was built (/proc's VmHWM):

- refmetrics' exact ``aupimo`` (default bounds 1e-5 to 1e-4, CPU backend),
- anomalib's ``AUPIMO`` (2.7: 300,000 thresholds), the metric logic class
  ``_AUPIMO``, fed the whole set as torch tensors (``--anomalib-repeat`` runs;
  it is slow and holds several GB at full size).

The machine line (NumPy, its SIMD extensions, the CPU, the cores: ``_machine.py``)
is printed first and with every ratio. On a machine shared with other work the
times are upper bounds: the minimum of the runs is the least disturbed one.

Usage: ``python benchmarks/bench_pimo.py [--images 190] [--repeat 5] [--anomalib-repeat 2]
[--anomalib-images N] [--no-anomalib]``
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _machine import machine_info, machine_line, reset_peak, vm  # noqa: E402


def make_maps(images, size=512, seed=20261128):
    """``(maps (B, H, W) float32, masks (B, H, W) bool)``: 40% defect-free images, disc defects."""
    rng = np.random.default_rng(seed)
    maps = rng.standard_normal((images, size, size), dtype=np.float32)
    masks = np.zeros((images, size, size), bool)
    yy, xx = np.mgrid[:size, :size]
    for i in range(images):
        if i % 5 in (0, 2):  # 40% defect-free
            continue
        for _ in range(rng.integers(1, 5)):
            r = rng.choice([3, 10, 30, 80])
            cy, cx = rng.integers(0, size, 2)
            masks[i] |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    maps[masks] += np.float32(1.5)
    return maps, masks


def child(impl, images, repeat):
    maps, masks = make_maps(images)
    if impl == "refmetrics":
        from refmetrics.functional import aupimo

        def run():
            return aupimo(maps, masks, backend="cpu")
    elif impl == "anomalib":
        import logging

        import anomalib
        import torch
        from anomalib.metrics.pimo.pimo import _AUPIMO

        logging.disable(logging.WARNING)  # its per-call warnings about memory and point counts
        torch.set_num_threads(os.cpu_count() or 1)
        maps_t, masks_t = torch.from_numpy(maps), torch.from_numpy(masks)

        def run():
            metric = _AUPIMO()
            metric.update(maps_t, masks_t)
            return float(metric.compute())
        impl = f"anomalib {anomalib.__version__}"
    else:
        raise ValueError(impl)
    base = vm("VmRSS")
    reset_peak()
    if impl == "refmetrics":
        value = run()  # warm-up: loads the compiled kernels (numba's cache); torch compiles nothing
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        value = run()
        times.append(time.perf_counter() - t)
    peak = vm("VmHWM") - base
    print(json.dumps({"impl": impl, "seconds": min(times), "all": times, "peak": peak, "n": int(maps.size),
                      "images": images, "value": value, "machine": machine_info()}))


def run_child(impl, images, repeat):
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", impl, "--images", str(images),
           "--repeat", str(repeat)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()
        return None, tail[-1] if tail else f"exit {proc.returncode} (killed? out of memory?)"
    return json.loads(proc.stdout.strip().splitlines()[-1]), None


def _row(res):
    return (f"  {res['impl']:18s} {res['n']:>12,} {res['seconds']:9.3f} {res['peak'] / 2**20:9.1f} "
            f"{res['value']:.12f}   runs {', '.join(f'{t:.3f}' for t in res['all'])}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=190)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--anomalib-repeat", type=int, default=2)
    ap.add_argument("--anomalib-images", type=int, default=None,
                    help="also compare at this smaller number of images")
    ap.add_argument("--no-anomalib", action="store_true")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.images, args.repeat)
        return
    machine = machine_line()
    print(f"machine: {machine}")
    sizes = [args.images] + ([args.anomalib_images] if args.anomalib_images else [])
    for images in sizes:
        print(f"\ncase: {images} maps of 512x512 float32 ({images * 512 * 512:,} pixels), 40% defect-free; "
              f"times = min of the runs")
        print(f"  {'':18s} {'pixels':>12s} {'min s':>9s} {'peak MB':>9s} AUPIMO (mean over anomalous images)")
        ours, err = run_child("refmetrics", images, args.repeat)
        if ours is None:
            print(f"  refmetrics: not measured ({err})")
            continue
        print(_row(ours))
        if args.no_anomalib:
            continue
        other, err = run_child("anomalib", images, args.anomalib_repeat)
        if other is None:
            print(f"  anomalib: not measured ({err})")
            continue
        print(_row(other))
        print(f"  anomalib / refmetrics time: {other['seconds'] / ours['seconds']:.1f}x  (target >= 20)  [{machine}]")
        print(f"  refmetrics / anomalib peak memory: {ours['peak'] / max(other['peak'], 1):.3f}  [{machine}]")
        print(f"  |refmetrics - anomalib| AUPIMO: {abs(ours['value'] - other['value']):.3g} (anomalib samples "
              f"300,000 thresholds and cuts at the nearest ones)")


if __name__ == "__main__":
    main()
