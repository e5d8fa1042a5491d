"""Exact AUROC, AP, F1-max and AUPRO on the GPU: refmetrics against torchmetrics, anomalib, torch/cupy sorts
and refmetrics on the host CPU, same data, same device, one run.

The data are ``bench_ranking.make_pixels``' ~50 million float32 pixel scores and
masks (190 maps of 512x512), moved once to the GPU as torch CUDA tensors.
refmetrics reads them through ``__cuda_array_interface__`` (no host copy of the
scores). Measured, as medians of ``--repeat`` warm runs (the first call, which
compiles the kernels, is reported apart):

- ``torch.sort`` and ``cupy.sort`` of the scores on the device (the baselines a
  sort-based exact metric cannot beat by much),
- refmetrics ``auroc``, ``average_precision``, ``f1_max`` on the device, and
  torchmetrics' exact ``binary_auroc`` (thresholds=None) on the same tensors,
- refmetrics ``aupro`` (fpr_limit 0.3) and anomalib 2.7's ``_AUPRO`` on CUDA
  tensors (``--anomalib-repeat`` runs: it is slow), with the absolute value
  difference (target 1e-7: anomalib computes in float32),
- refmetrics ``auroc``, ``average_precision``, ``f1_max`` and ``aupro`` on the
  host CPU from NumPy arrays (``--cpu-repeat`` runs; ``--no-cpu`` skips them),

with the ratios refmetrics / baseline, the values, and each GPU row's device
memory: the peak of the device's used memory over the call (NVML polled from a
thread, falling back to numba's free-memory figure before and after) minus the
used memory before it, and torch's own peak for the torch rows, each also as a
multiple of the input scores' bytes (the goal: within 2.5x). torchmetrics
applies a float32 sigmoid to scores outside [0, 1]: its value differs (see the
conformance report).

anomalib's package ``__init__`` imports most of anomalib's requirements; where
that import fails (the GPU image lacks jsonargparse, omegaconf, ...), the
``_AUPRO`` module is loaded on its own (with kornia, kornia_rs and OpenCV):
``load_anomalib_aupro``. ``benchmarks/gpu_check.sh`` installs the carried
wheels (``.whl/``) first.

The host machine (NumPy's version and SIMD extensions, the CPU, the cores:
see ``_machine.py``) is printed first and with the ratios, and stored in the JSON.

Usage: ``python benchmarks/bench_cuda.py [--images 190] [--repeat 5] [--json PATH]``;
it needs a CUDA GPU and numba-cuda; torch with CUDA, torchmetrics, anomalib and
cupy for their rows (a missing one is reported and skipped). Under
``NUMBA_ENABLE_CUDASIM=1`` with ``--images 2 --size 16`` (the first map is
defect-free, so one map gives NaN) it runs refmetrics alone on numba device
arrays (a smoke test of this script); ``benchmarks/gpu_check.sh`` runs it so in
its rehearsal.
"""

import argparse
import importlib.util
import json
import os
import sys
import threading
import time
import types
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":  # the tests' small launch shapes: a quick smoke test
    sys.path.insert(0, str(HERE.parent))
    import tests.cudasim  # noqa: F401

from _machine import machine_info, machine_line
from bench_ranking import make_pixels


def median_time(fn, repeat, sync):
    times, value = [], None
    for _ in range(repeat):
        sync()
        t = time.perf_counter()
        value = fn()
        sync()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), value


def load_anomalib_aupro():
    """anomalib's ``_AUPRO`` class and how it was imported: the package, or the module file alone.

    anomalib's package ``__init__`` files import its data modules, models and CLI
    (jsonargparse, omegaconf, lightning, imagecodecs, ...). ``_AUPRO`` itself needs
    torch, torchmetrics, matplotlib, OpenCV and kornia only: where the package import
    fails, ``anomalib``, ``anomalib.metrics`` and ``anomalib.utils`` are registered as bare
    packages (their folders, no ``__init__`` run) and ``anomalib.metrics.base`` as a stub
    holding ``AnomalibMetric`` (the Lightning batch wrapper, which ``_AUPRO`` does not use).
    """
    try:
        from anomalib.metrics.aupro import _AUPRO

        return _AUPRO, "package"
    except ImportError as exc:
        first = exc
    for name in [m for m in sys.modules if m == "anomalib" or m.startswith("anomalib.")]:
        del sys.modules[name]
    spec = importlib.util.find_spec("anomalib")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"anomalib is not installed ({first})")
    root = Path(next(iter(spec.submodule_search_locations)))
    for name, sub in (("anomalib", root), ("anomalib.metrics", root / "metrics"), ("anomalib.utils", root / "utils")):
        module = types.ModuleType(name)
        module.__path__ = [str(sub)]
        sys.modules[name] = module
    base = types.ModuleType("anomalib.metrics.base")

    class AnomalibMetric:
        """Stand-in for anomalib's batch-field wrapper (unused by ``_AUPRO``)."""

    base.AnomalibMetric = AnomalibMetric
    sys.modules["anomalib.metrics.base"] = base
    try:
        from anomalib.metrics.aupro import _AUPRO
    except ImportError as exc:
        raise ImportError(f"anomalib's package import failed ({first}); its aupro module alone too ({exc})") from exc
    return _AUPRO, f"module alone (the package import failed: {first})"


class DeviceMemory:
    """The peak of the device's used memory during a block, minus the used memory before it (bytes).

    NVML (nvidia-ml-py) is polled from a thread about every 0.5 ms; without it, numba's
    ``get_memory_info`` before and after gives only what stays allocated (``method`` says which).
    """

    def __init__(self, simulator):
        self.handle, self.method = None, "none"
        if simulator:
            return
        try:
            import pynvml

            pynvml.nvmlInit()
            index = int((os.environ.get("CUDA_VISIBLE_DEVICES") or "0").split(",")[0] or 0)
            self.handle, self.nvml, self.method = pynvml.nvmlDeviceGetHandleByIndex(index), pynvml, "nvml-poll"
        except Exception:  # noqa: BLE001 - no NVML: numba's figure
            self.method = "numba-before-after"

    def used(self):
        if self.handle is not None:
            return int(self.nvml.nvmlDeviceGetMemoryInfo(self.handle).used)
        if self.method == "numba-before-after":
            from numba import cuda

            free, total = cuda.current_context().get_memory_info()
            return int(total - free)
        return 0

    def measure(self, fn):
        """``(result, peak extra bytes)``; None for the bytes where nothing measures them (the simulator)."""
        if self.method == "none":
            return fn(), None
        try:  # numba frees device memory lazily: flush what earlier rows left pending
            from numba import cuda

            cuda.current_context().deallocations.clear()
        except Exception:  # noqa: BLE001, S110 - a figure, not a failure
            pass
        before = self.used()
        peak = [before]
        stop = threading.Event()

        def poll():
            while not stop.is_set():
                peak[0] = max(peak[0], self.used())
                time.sleep(0.0005)

        thread = threading.Thread(target=poll, daemon=True) if self.handle is not None else None
        if thread:
            thread.start()
        try:
            result = fn()
        finally:
            stop.set()
            if thread:
                thread.join()
        peak[0] = max(peak[0], self.used())
        return result, peak[0] - before


def versions():
    out = {}
    for name in ("numpy", "numba", "numba_cuda", "torch", "torchmetrics", "anomalib", "cupy", "kornia"):
        try:
            module = __import__(name)
            out[name] = getattr(module, "__version__", "?")
        except Exception as exc:  # noqa: BLE001 - a version line only
            out[name] = f"not importable ({type(exc).__name__})"
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=190, help="maps (190 of 512x512 -> 49.8M pixels)")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=5, help="warm runs of each GPU row (the median is reported)")
    ap.add_argument("--anomalib-repeat", type=int, default=2, help="warm runs of anomalib's AUPRO")
    ap.add_argument("--cpu-repeat", type=int, default=1, help="runs of each host-CPU row (no warm-up)")
    ap.add_argument("--no-cpu", action="store_true", help="skip the host-CPU rows")
    ap.add_argument("--json", type=Path, help="write the rows, ratios and memory figures here (after every row)")
    args = ap.parse_args(argv)
    machine = machine_line()
    print(f"machine: {machine}")

    from numba import cuda

    import refmetrics
    from refmetrics.functional import aupro, auroc, average_precision, f1_max

    record = {"machine": machine_info(), "machine_line": machine, "versions": versions(), "rows": [],
              "ratios": {}, "notes": []}

    def save():
        if args.json:
            args.json.write_text(json.dumps(record, indent=1, default=str))

    if not refmetrics.cuda_available():
        from refmetrics._arrays import cuda_unavailable_reason

        record["error"] = f"no CUDA device is usable: {cuda_unavailable_reason()}"
        save()
        sys.exit(f"bench_cuda: {record['error']}")
    simulator = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
    scores, target = make_pixels(args.images, args.size)
    shape = (args.images, args.size, args.size)
    input_bytes = scores.nbytes

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
        record["notes"].append("no torch CUDA: refmetrics read numba device arrays; torch rows not measured")
    memory = DeviceMemory(simulator)
    record.update(device=device_name, simulator=simulator, images=args.images, size=args.size,
                  pixels=int(scores.size), anomalous=int(target.sum()), input_score_bytes=int(input_bytes),
                  repeat=args.repeat, memory_method=memory.method)
    print(f"device: {device_name}; {scores.size:,} float32 pixels ({input_bytes / 2**20:.0f} MiB), "
          f"{int(target.sum()):,} anomalous; device memory by {memory.method}")
    save()
    times = {}

    def measure(name, fn, repeat=None, where="gpu"):
        repeat = args.repeat if repeat is None else repeat
        if use_torch:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            torch_before = torch.cuda.memory_allocated()
        row = {"name": name, "where": where}
        try:
            t0 = time.perf_counter()
            if where == "gpu":
                (value, extra) = memory.measure(lambda: (fn(), sync())[0])
            else:
                value, extra = fn(), None
            first = time.perf_counter() - t0
            if repeat > 0 and where == "gpu":
                seconds, value = median_time(fn, repeat, sync)
            elif repeat > 1:
                seconds, value = median_time(fn, repeat, lambda: None)
            else:
                seconds = first
            row.update(median_s=seconds, first_s=first, runs=max(repeat, 1), value=float(value))
            if where == "gpu":
                row["device_peak_extra_bytes"] = extra
                row["device_peak_extra_x_input"] = round(extra / input_bytes, 3) if extra is not None else None
                if use_torch:
                    torch_peak = torch.cuda.max_memory_allocated() - torch_before
                    row["torch_peak_extra_bytes"] = int(torch_peak)
                    row["torch_peak_extra_x_input"] = round(torch_peak / input_bytes, 3)
            times[name] = seconds
            mem = f"  device +{extra / 2**20:.0f} MiB ({extra / input_bytes:.2f}x input)" if extra else ""
            print(f"  {name:<36} {seconds * 1e3:10.2f} ms  (first call {first:.2f} s)  value {value!r}{mem}",
                  flush=True)
        except Exception as exc:  # noqa: BLE001 - a failing row is recorded, the others still run
            row["error"] = f"{type(exc).__name__}: {exc}"[:1000]
            print(f"  {name:<36} FAILED: {row['error']}", flush=True)
        record["rows"].append(row)
        save()
        return row.get("value")

    if use_torch:
        measure("torch.sort (baseline)", lambda: torch.sort(s_dev)[0][:1].item())
    if not simulator:
        try:
            import cupy

            c_dev = cupy.asarray(s_dev)
            measure("cupy.sort (baseline)", lambda: float(cupy.sort(c_dev)[:1].get()[0]))
            del c_dev
        except ImportError as exc:
            print(f"  cupy: not measured ({exc})")
            record["notes"].append(f"cupy not measured: {exc}")
    ours_auroc = measure("refmetrics auroc", lambda: auroc(s_dev, t_dev))
    ref_auroc = None
    if use_torch:
        try:
            from torchmetrics.functional.classification import binary_auroc

            t_int = t_dev.int()
            ref_auroc = measure("torchmetrics binary_auroc (exact)", lambda: float(binary_auroc(s_dev, t_int)))
            del t_int
        except ImportError as exc:
            print(f"  torchmetrics: not measured ({exc})")
            record["notes"].append(f"torchmetrics not measured: {exc}")
    measure("refmetrics average_precision", lambda: average_precision(s_dev, t_dev))
    measure("refmetrics f1_max", lambda: f1_max(s_dev, t_dev))
    ours_pro = measure("refmetrics aupro (fpr 0.3)", lambda: aupro(s_dev.reshape(shape), m_dev))
    ref_pro = None
    if use_torch:
        try:
            _AUPRO, how = load_anomalib_aupro()
            record["anomalib_import"] = how
            print(f"  anomalib _AUPRO imported: {how}")

            def anomalib_aupro():
                metric = _AUPRO(fpr_limit=0.3).to(dev)
                metric.update(s_dev.view(shape), m_dev)
                return float(metric.compute())

            ref_pro = measure("anomalib AUPRO (fpr 0.3)", anomalib_aupro, repeat=args.anomalib_repeat)
        except ImportError as exc:
            print(f"  anomalib: not measured ({exc})")
            record["notes"].append(f"anomalib not measured: {exc}")
    if not args.no_cpu:
        maps, masks = scores.reshape(shape), target.reshape(shape)
        for name, fn in (("auroc", lambda: auroc(scores, target, backend="cpu")),
                         ("average_precision", lambda: average_precision(scores, target, backend="cpu")),
                         ("f1_max", lambda: f1_max(scores, target, backend="cpu")),
                         ("aupro (fpr 0.3)", lambda: aupro(maps, masks, backend="cpu"))):
            measure(f"host CPU refmetrics {name}", fn, repeat=args.cpu_repeat, where="cpu")

    ratios = record["ratios"]

    def ratio(key, num, den):
        if times.get(num) and times.get(den):
            ratios[key] = round(times[num] / times[den], 4)

    ratio("refmetrics auroc / torch.sort", "refmetrics auroc", "torch.sort (baseline)")
    ratio("refmetrics auroc / cupy.sort", "refmetrics auroc", "cupy.sort (baseline)")
    ratio("refmetrics auroc / torchmetrics binary_auroc", "refmetrics auroc", "torchmetrics binary_auroc (exact)")
    ratio("refmetrics aupro / anomalib AUPRO", "refmetrics aupro (fpr 0.3)", "anomalib AUPRO (fpr 0.3)")
    for name in ("auroc", "average_precision", "f1_max"):
        ratio(f"refmetrics {name} GPU / host CPU", f"refmetrics {name}", f"host CPU refmetrics {name}")
    ratio("refmetrics aupro GPU / host CPU", "refmetrics aupro (fpr 0.3)", "host CPU refmetrics aupro (fpr 0.3)")
    if ours_auroc is not None and ref_auroc is not None:  # torchmetrics' sigmoid on scores outside [0, 1]
        record["auroc_abs_diff_vs_torchmetrics"] = abs(ours_auroc - ref_auroc)
    if ours_pro is not None and ref_pro is not None:
        record["aupro_abs_diff_vs_anomalib"] = abs(ours_pro - ref_pro)
    gpu_rows = [r for r in record["rows"] if r["where"] == "gpu" and r["name"].startswith("refmetrics")
                and r.get("device_peak_extra_x_input") is not None]
    if gpu_rows:
        worst = max(gpu_rows, key=lambda r: r["device_peak_extra_x_input"])
        record["refmetrics_max_device_x_input"] = worst["device_peak_extra_x_input"]
        record["refmetrics_max_device_row"] = worst["name"]
    if not simulator:
        _free, total = cuda.current_context().get_memory_info()
        record["device_memory_total_bytes"] = int(total)
        if record.get("refmetrics_max_device_x_input"):
            # the scores (4 B/pixel) and labels (1 B/pixel) stay on the device, plus the worst row's extra
            per_pixel = 5 + 4 * record["refmetrics_max_device_x_input"]
            record["largest_map_set_estimate_512x512"] = int(total * 0.95 / per_pixel / (512 * 512))
    print(f"ratios (time / time; below 1 means refmetrics is faster) on {device_name}; host: {machine}")
    for key, value in ratios.items():
        print(f"  {key:<46} {value:.3f}")
    if "aupro_abs_diff_vs_anomalib" in record:
        print(f"  |refmetrics aupro - anomalib AUPRO|            {record['aupro_abs_diff_vs_anomalib']:.3g} "
              f"(target 1e-7)")
    if "refmetrics_max_device_x_input" in record:
        print(f"  refmetrics peak device memory / input scores   {record['refmetrics_max_device_x_input']:.2f}x "
              f"({record['refmetrics_max_device_row']}; goal 2.5x; {memory.method})")
    if "largest_map_set_estimate_512x512" in record:
        print(f"  largest 512x512 map set estimated to fit       {record['largest_map_set_estimate_512x512']:,} maps")
    if not use_torch:
        print("  (no torch CUDA here: the torch, torchmetrics and anomalib rows were not measured)")
    save()
    failed = [r["name"] for r in record["rows"] if "error" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
