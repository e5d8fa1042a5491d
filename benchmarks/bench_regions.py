"""Exact AUPRO on an MVTec-sized pixel set: time and peak memory as ratios.

The same ~50 million float32 pixel scores as ``bench_ranking.py``, with their
masks (a third of the images defect-free, 1-4 blob regions of radius 3 to 80
pixels per defective image). In one run it prints, each measured in a fresh
child process (median of ``--repeat`` runs; peak = the process's peak resident
memory above what it held once the data was built, via /proc's VmHWM):

- a plain ``np.sort`` of the float32 scores (the baseline),
- refmetrics' exact ``aupro`` (fpr_limit 0.3),
- anomalib's ``AUPRO`` (torchmetrics-based, exact in anomalib 2.x) when it can
  be imported, by this interpreter or the one given with ``--anomalib-python``,

and refmetrics alone on two stress shapes: 100,000 small regions, and one
region of millions of pixels.

The machine (NumPy's version and SIMD extensions, the CPU, the cores: see
``_machine.py``) is printed first and with every ratio, and each child's JSON
carries it (``--anomalib-python`` may run another NumPy).

Usage: ``python benchmarks/bench_regions.py [--images 190] [--repeat 3] [--anomalib-python PATH | --no-anomalib]``
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
from bench_ranking import make_pixels  # noqa: E402


def make_case(case, images, size=512):
    """``(scores (B,H,W) float32, masks (B,H,W) bool)`` of a named case."""
    if case == "mvtec":
        scores, target = make_pixels(images, size)
        return scores.reshape(images, size, size), target.reshape(images, size, size)
    rng = np.random.default_rng(20261125)
    if case == "many-regions":  # 3x3 squares on a grid: 1,600 per image, 64 images -> 102,400 regions
        masks = np.zeros((64, size, size), bool)
        for dy in range(3):
            for dx in range(3):
                masks[:, 4 + dy::12, 4 + dx::12][:, :40, :40] = True
    elif case == "one-huge-region":  # a disc of ~3.3 million pixels in a 2048x2048 image
        yy, xx = np.mgrid[:2048, :2048]
        masks = ((yy - 1024) ** 2 + (xx - 1024) ** 2 <= 1024 ** 2)[None]
    else:
        raise ValueError(case)
    scores = rng.standard_normal(masks.shape, dtype=np.float32)
    scores[masks] += np.float32(1.0)
    return scores, masks


def child(impl, case, images, repeat):
    scores, masks = make_case(case, images)
    if impl == "np.sort":
        def run():
            return np.sort(scores.reshape(-1))
    elif impl == "refmetrics":
        from refmetrics.functional import aupro

        aupro(scores[:2], masks[:2])  # compile (cached) outside the measurement

        def run():
            return aupro(scores, masks, fpr_limit=0.3)
    elif impl == "anomalib":
        import anomalib
        import torch
        from anomalib.metrics.aupro import _AUPRO

        torch.set_num_threads(os.cpu_count() or 1)
        preds_t, masks_t = torch.from_numpy(scores), torch.from_numpy(masks)

        def run():
            metric = _AUPRO(fpr_limit=0.3)
            metric.update(preds_t, masks_t)
            return float(metric.compute())
        impl = f"anomalib {anomalib.__version__}"
    else:
        raise ValueError(impl)
    times = []
    value = None
    base = vm("VmRSS")
    reset_peak()
    for _ in range(repeat):
        t = time.perf_counter()
        value = run()
        times.append(time.perf_counter() - t)
    peak = vm("VmHWM") - base
    out = {"impl": impl, "seconds": float(np.median(times)), "peak": peak, "n": int(scores.size),
           "machine": machine_info()}
    if not isinstance(value, np.ndarray):
        out["value"] = value
    print(json.dumps(out))


def run_child(python, impl, case, images, repeat):
    cmd = [python, str(Path(__file__).resolve()), "--child", impl, "--case", case, "--images", str(images),
           "--repeat", str(repeat)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return None, proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
    return json.loads(proc.stdout.strip().splitlines()[-1]), None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=190)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--anomalib-python", default=sys.executable,
                    help="interpreter that can import anomalib (default: this one)")
    ap.add_argument("--no-anomalib", action="store_true", help="skip the anomalib comparison")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--case", default="mvtec", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.case, args.images, args.repeat)
        return

    machine = machine_line()
    print(f"machine: {machine}")
    print(f"case mvtec: {args.images} maps of 512x512 float32, repeat={args.repeat}")
    rows = {}
    impls = [("np.sort", sys.executable), ("refmetrics", sys.executable)]
    if not args.no_anomalib:
        impls.append(("anomalib", args.anomalib_python))
    for impl, python in impls:
        res, err = run_child(python, impl, "mvtec", args.images, args.repeat if impl != "anomalib" else 1)
        if res is None:
            print(f"  {impl}: not measured ({err})")
            continue
        rows[impl] = res
    base = rows["np.sort"]
    n = base["n"]
    print(f"  pixels: {n:,}")
    print(f"  machine: {machine}")
    print(f"  {'':22s} {'median s':>9s} {'x np.sort':>10s} {'peak MB':>9s} {'B/pixel':>8s}  AUPRO")
    for res in rows.values():
        v = f"{res['value']:.15f}" if "value" in res else ""
        print(f"  {res['impl']:22s} {res['seconds']:9.3f} {res['seconds'] / base['seconds']:10.2f} "
              f"{res['peak'] / 2**20:9.1f} {res['peak'] / n:8.2f}  {v}")
    ours = rows["refmetrics"]
    print(f"\n  refmetrics aupro / np.sort time: {ours['seconds'] / base['seconds']:.2f}x  (target <= 2.5)  "
          f"[{machine}]")
    if "anomalib" in rows:
        other = rows["anomalib"]
        if other["machine"] != ours["machine"]:  # another interpreter: possibly another NumPy
            print(f"  anomalib's interpreter: {machine_line(other['machine'])}")
        print(f"  anomalib / refmetrics time: {other['seconds'] / ours['seconds']:.1f}x  (target >= 20)  [{machine}]")
        print(f"  refmetrics / anomalib peak memory: {ours['peak'] / other['peak']:.3f}  (target <= 0.333)  "
              f"[{machine}]")
        print(f"  |refmetrics - anomalib| AUPRO: {abs(ours['value'] - other['value']):.3g}")

    for case in ("many-regions", "one-huge-region"):
        got = {}
        for impl in ("np.sort", "refmetrics"):
            got[impl], err = run_child(sys.executable, impl, case, args.images, args.repeat)
            if err:
                print(f"  {case} {impl}: {err}")
        if got["np.sort"] and got["refmetrics"]:
            r, b = got["refmetrics"], got["np.sort"]
            print(f"\ncase {case}: {r['n']:,} pixels; refmetrics aupro {r['seconds']:.3f} s = "
                  f"{r['seconds'] / b['seconds']:.2f}x np.sort ({b['seconds']:.3f} s), "
                  f"peak {r['peak'] / r['n']:.2f} B/pixel, AUPRO {r['value']:.6f}  [{machine}]")


if __name__ == "__main__":
    main()
