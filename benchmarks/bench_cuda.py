"""Exact AUROC and AUPRO on the GPU: refmetrics against torchmetrics and anomalib, same device, one run.

The data are ``bench_ranking.make_pixels``' ~50 million float32 pixel scores and
masks (190 maps of 512x512), moved once to the GPU as torch CUDA tensors.
refmetrics reads them through ``__cuda_array_interface__`` (no host copy of the
scores). Printed, as medians of ``--repeat`` warm runs (the first call, which
compiles the kernels, is reported apart):

- ``torch.sort`` of the scores on the device (the baseline a sort-based exact
  metric cannot beat by much),
- refmetrics ``auroc`` and torchmetrics' exact ``binary_auroc`` (thresholds=None),
- refmetrics ``aupro`` (fpr_limit 0.3) and anomalib's ``AUPRO`` on CUDA tensors,

with the ratios refmetrics / baseline, and the values (torchmetrics applies a
float32 sigmoid to scores outside [0, 1]: its value differs; see the
conformance report).

The host machine (NumPy's version and SIMD extensions, the CPU, the cores:
see ``_machine.py``) is printed first and with the ratios.

Usage: ``python benchmarks/bench_cuda.py [--images 190] [--repeat 5]``; it
needs a CUDA GPU, numba-cuda and torch with CUDA (torchmetrics and anomalib for
their rows). Under ``NUMBA_ENABLE_CUDASIM=1`` with ``--images 2 --size 16`` (the first map is
defect-free, so one map gives NaN) it
runs refmetrics alone on numba device arrays (a smoke test of this script).
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _machine import machine_line  # noqa: E402
from bench_ranking import make_pixels  # noqa: E402


def median_time(fn, repeat, sync):
    times, value = [], None
    for _ in range(repeat):
        sync()
        t = time.perf_counter()
        value = fn()
        sync()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), value


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=190, help="maps (190 of 512x512 -> 49.8M pixels)")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    machine = machine_line()
    print(f"machine: {machine}")

    import refmetrics
    from numba import cuda
    from refmetrics.functional import aupro, auroc

    if not refmetrics.cuda_available():
        sys.exit("bench_cuda: no CUDA device is usable (refmetrics.cuda_available() is False)")
    simulator = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
    scores, target = make_pixels(args.images, args.size)
    shape = (args.images, args.size, args.size)
    rows = []

    try:
        import torch
        use_torch = torch.cuda.is_available() and not simulator
    except ImportError:
        torch, use_torch = None, False
    if use_torch:
        dev = torch.device("cuda")
        s_dev, t_dev = torch.from_numpy(scores).to(dev), torch.from_numpy(target).to(dev)
        m_dev = t_dev.view(shape)
        device_name = torch.cuda.get_device_name(dev)
        sync = torch.cuda.synchronize
    else:
        s_dev, t_dev = cuda.to_device(scores), cuda.to_device(target)
        m_dev = t_dev.reshape(shape)
        device_name = "numba-cuda simulator" if simulator else cuda.get_current_device().name.decode()
        sync = cuda.synchronize
    print(f"device: {device_name}; {scores.size:,} float32 pixels, {int(target.sum()):,} anomalous")

    def measure(name, fn):
        t0 = time.perf_counter()
        fn()
        sync()
        first = time.perf_counter() - t0
        seconds, value = median_time(fn, args.repeat, sync)
        rows.append((name, seconds, first, value))
        print(f"  {name:<34} {seconds * 1e3:10.2f} ms  (first call {first:.2f} s)  value {value}", flush=True)
        return seconds

    base = None
    if use_torch:
        base = measure("torch.sort (baseline)", lambda: torch.sort(s_dev)[0][:1].item())
    ours = measure("refmetrics auroc", lambda: auroc(s_dev, t_dev))
    ref_auroc = None
    if use_torch:
        try:
            from torchmetrics.functional.classification import binary_auroc

            ref_auroc = measure("torchmetrics binary_auroc (exact)", lambda: float(binary_auroc(s_dev, t_dev.int())))
        except ImportError as exc:
            print(f"  torchmetrics: not measured ({exc})")
    ours_pro = measure("refmetrics aupro (fpr 0.3)", lambda: aupro(s_dev.reshape(shape), m_dev))
    ref_pro = None
    if use_torch:
        try:
            from anomalib.metrics.aupro import _AUPRO

            def anomalib_aupro():
                metric = _AUPRO(fpr_limit=0.3).to(dev)
                metric.update(s_dev.view(shape), m_dev)
                return float(metric.compute())

            ref_pro = measure("anomalib AUPRO", anomalib_aupro)
        except ImportError as exc:
            print(f"  anomalib: not measured ({exc})")
    print(f"ratios (time / time; below 1 means refmetrics is faster) on {device_name}; host: {machine}")
    if base:
        print(f"  refmetrics auroc / torch.sort         {ours / base:.2f}")
    if ref_auroc:
        print(f"  refmetrics auroc / torchmetrics       {ours / ref_auroc:.2f}")
    if ref_pro:
        print(f"  refmetrics aupro / anomalib AUPRO     {ours_pro / ref_pro:.3f}")
    if not use_torch:
        print("  (no torch CUDA here: the baselines were not measured)")


if __name__ == "__main__":
    main()
