"""The key-range engine (issue 16, section 1): every exact pixel metric as a ratio to one ``np.sort``.

Builds ``bench_ranking``'s pixels (``--images`` maps of 512x512: 49.8M float32
scores for 190, about 3% defect pixels in blobs) and times, **interleaved
round-robin over ``--rounds`` rounds, the minimum of each** (other processes
share the machine: a minimum taken inside one interleaved run is the fairest
ratio), as ratios to one single-threaded ``np.sort`` of the same float32
scores:

- exact AUROC, average precision and F1-max (``refmetrics.functional``), with the
  default thread count and with one thread;
- AUPRO up to FPR 0.3 (``functional.aupro`` on the maps and masks);
- the seven metrics ``refmetrics evaluate`` reports for MVTec AD from one
  :class:`refmetrics.PixelState`: ``finish()`` then pixel AUROC, AP, F1-max,
  AUPRO@0.3, and image AUROC, AP, F1-max of the per-image maxima (building the
  state, ``add`` per image with its region labelling, is timed apart);
- scikit-learn's ``roc_auc_score`` at the full size (once: it is slow);
- cold and warm calls: fresh processes (``--cold-runs``) that load the Numba
  cache with a tiny call, then time 4 full-size ``auroc`` calls (call 1 is cold);
  interleaved with control processes that first touch and free 256 MB (outside
  the timing): where call 1 is slow only in the plain processes, the cold cost is
  the first touch of memory the process never used (system time; large on VMs
  whose host backs guest memory lazily), not the engine; and with control
  processes where NumPy does not ask for transparent huge pages
  (``_set_madvise_hugepage(False)``): where the kernel's THP ``defrag`` setting
  is ``madvise``, a first fault on huge-page memory may compact memory
  synchronously, and this control shows whether that is the cost;
- NumPy without its SIMD sort: a child process with
  ``NPY_DISABLE_CPU_FEATURES`` set (``--no-simd``, default ``X86_V3``) times
  ``np.sort`` and the exact AUROC (sort "auto", and "numpy" per range) there.

Peak memory of AUROC above its inputs (tracemalloc) is printed in bytes per
element. The machine line (``_machine.py``) is printed first and next to every
ratio, and everything goes to a JSON file under ``benchmarks/results/``.

Usage: ``python benchmarks/bench_engine.py [--images 190] [--rounds 5] [--cold-runs 3] [--no-sklearn]``
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _machine import machine_info, machine_line  # noqa: E402
from bench_ranking import make_pixels  # noqa: E402

CHILD_COLD = r"""
import sys, time, resource, warnings
import numpy as np
warnings.simplefilter("ignore")
scores, target = np.load(sys.argv[1]), np.load(sys.argv[2])
from refmetrics import functional as F
F.auroc(scores[:200_000], target[:200_000])  # loads the Numba cache: not what "cold" measures
if sys.argv[3] == "nothp":  # the second control: NumPy asks for no transparent huge pages (4 KiB faults)
    (getattr(np, "_core", None) or np.core).multiarray._set_madvise_hugepage(False)  # NumPy 2.x or 1.x
if sys.argv[3] == "prefault":  # the control: memory touched and freed first
    x = np.ones(64 << 20, np.uint32)
    del x
out = []
for _ in range(4):
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t = time.perf_counter(); F.auroc(scores, target); dt = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    out.append((dt, r1.ru_stime - r0.ru_stime))
print(repr(out))
"""

CHILD_NOSIMD = r"""
import sys, time, warnings
import numpy as np
warnings.simplefilter("ignore")
sys.path.insert(0, sys.argv[3])
from _machine import machine_line
scores, target = np.load(sys.argv[1]), np.load(sys.argv[2])
import refmetrics as rm
from refmetrics import functional as F
F.auroc(scores[:200_000], target[:200_000])
def numpy_sort():
    with_sort = rm.get_sort(); rm.set_sort("numpy")
    try:
        return F.auroc(scores, target)
    finally:
        rm.set_sort(with_sort)
fns = {"np.sort": lambda: np.sort(scores), "auroc (sort auto)": lambda: F.auroc(scores, target),
       "auroc (np.sort per range)": numpy_sort}
res = {k: [] for k in fns}
for _ in range(int(sys.argv[4])):
    for k, fn in fns.items():
        t = time.perf_counter(); fn(); res[k].append(time.perf_counter() - t)
print(repr({"machine": machine_line(), "min": {k: min(v) for k, v in res.items()}}))
"""


def peak_bytes(fn):
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    fn()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=190, help="512x512 maps (190 -> 49.8M pixels)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (minimum reported)")
    ap.add_argument("--cold-runs", type=int, default=3, help="fresh processes for the cold/warm calls")
    ap.add_argument("--no-simd", default="X86_V3", help="NPY_DISABLE_CPU_FEATURES of the no-SIMD child ('' skips)")
    ap.add_argument("--no-sklearn", action="store_true")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/engine-<date>.json)")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")

    import refmetrics as rm
    from refmetrics import functional as F

    machine = machine_line()
    print(f"machine: {machine}")
    threads = rm.get_num_threads()
    from refmetrics import _threads as TH

    print(f"refmetrics threads: {threads} (default), sort: {rm.get_sort()} -> "
          f"{'np.sort' if TH.use_numpy_sort() else 'radix'} per range")
    scores, target = make_pixels(args.images)
    n = scores.size
    maps = scores.reshape(args.images, 512, 512)
    masks = target.reshape(args.images, 512, 512)
    print(f"pixels: {n:,} float32 scores, {target.mean():.2%} positive; {args.rounds} interleaved rounds, "
          "minimum of each")

    def one_thread(fn):
        def run():
            with rm.threads(1):
                return fn()
        return run

    def seven():
        state = rm.PixelState(n)
        for m, g in zip(maps, masks):
            state.add(m, g)
        t0 = time.perf_counter()
        state.finish()
        img_scores = maps.reshape(args.images, -1).max(axis=1)
        img_labels = masks.reshape(args.images, -1).any(axis=1).astype(np.uint8)
        values = (F.auroc(img_scores, img_labels), F.average_precision(img_scores, img_labels),
                  F.f1_max(img_scores, img_labels), state.auroc(), state.average_precision(), state.f1_max(),
                  state.aupro(0.3))
        seven.last = time.perf_counter() - t0
        return values

    variants = {
        "np.sort (float32, baseline)": lambda: np.sort(scores),
        "auroc": lambda: F.auroc(scores, target),
        "average_precision": lambda: F.average_precision(scores, target),
        "f1_max": lambda: F.f1_max(scores, target),
        "auroc, 1 thread": one_thread(lambda: F.auroc(scores, target)),
        "average_precision, 1 thread": one_thread(lambda: F.average_precision(scores, target)),
        "f1_max, 1 thread": one_thread(lambda: F.f1_max(scores, target)),
        "aupro@0.3": lambda: F.aupro(maps, masks, fpr_limit=0.3),
        "aupro@0.3, 1 thread": one_thread(lambda: F.aupro(maps, masks, fpr_limit=0.3)),
        "PixelState add (190 images, labelling)": None,  # from the seven-metric run
        "PixelState finish + 7 metrics": seven,
    }
    # warm-up: compile or load every kernel at a small size, then one full call each
    small = slice(0, 300_000)
    F.auroc(scores[small], target[small])
    values = {}
    for name, fn in variants.items():
        if fn is not None:
            v = fn()
            if not isinstance(v, np.ndarray):
                values[name] = v
    times = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, fn in variants.items():
            if fn is None:
                continue
            t = time.perf_counter()
            fn()
            dt = time.perf_counter() - t
            if fn is seven:
                times["PixelState add (190 images, labelling)"].append(dt - seven.last)
                dt = seven.last
            times[name].append(dt)
    best = {k: min(v) for k, v in times.items()}
    base = best["np.sort (float32, baseline)"]

    sk = None
    if not args.no_sklearn:
        try:
            from sklearn.metrics import roc_auc_score
        except ImportError:
            print("scikit-learn not installed: skipped")
        else:
            t = time.perf_counter()
            v = roc_auc_score(target, scores)
            sk = {"time": time.perf_counter() - t, "value": float(v)}

    mem = peak_bytes(lambda: F.auroc(scores, target)) / n

    tmp = Path(tempfile.mkdtemp(prefix="refmetrics-bench-engine-"))
    np.save(tmp / "s.npy", scores)
    np.save(tmp / "t.npy", target)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE.parent)] + sys.path))
    cold, cold_prefault, cold_nothp = [], [], []
    for _ in range(args.cold_runs):
        for mode, into in (("plain", cold), ("prefault", cold_prefault), ("nothp", cold_nothp)):
            out = subprocess.run([sys.executable, "-c", CHILD_COLD, str(tmp / "s.npy"), str(tmp / "t.npy"), mode],
                                 capture_output=True, text=True, env=env, check=True).stdout
            into.append(eval(out.strip().splitlines()[-1]))  # noqa: S307 (our own child's repr)
    nosimd = None
    if args.no_simd:
        out = subprocess.run([sys.executable, "-c", CHILD_NOSIMD, str(tmp / "s.npy"), str(tmp / "t.npy"), str(HERE),
                              str(max(3, args.rounds // 2))], capture_output=True, text=True, check=True,
                             env=dict(env, NPY_DISABLE_CPU_FEATURES=args.no_simd)).stdout
        nosimd = eval(out.strip().splitlines()[-1])  # noqa: S307
    for f in tmp.iterdir():
        f.unlink()
    tmp.rmdir()

    print(f"\nmachine: {machine}")
    print(f"{'':40s} {'min s':>8s} {'x np.sort':>10s}  value")
    for name in variants:
        v = values.get(name)
        vs = "" if v is None or isinstance(v, np.ndarray) else (
            f"{v:.15f}" if isinstance(v, float) else ", ".join(f"{x:.6f}" for x in v))
        print(f"{name:40s} {best[name]:8.3f} {best[name] / base:10.2f}  {vs}")
    print(f"{'PixelState add + finish + 7 metrics':40s} "
          f"{best['PixelState add (190 images, labelling)'] + best['PixelState finish + 7 metrics']:8.3f} "
          f"{(best['PixelState add (190 images, labelling)'] + best['PixelState finish + 7 metrics']) / base:10.2f}")
    print(f"\nthreads {threads} vs 1: auroc {best['auroc, 1 thread'] / best['auroc']:.2f}x faster, "
          f"AP {best['average_precision, 1 thread'] / best['average_precision']:.2f}x, "
          f"F1 {best['f1_max, 1 thread'] / best['f1_max']:.2f}x, "
          f"AUPRO {best['aupro@0.3, 1 thread'] / best['aupro@0.3']:.2f}x")
    print(f"auroc peak memory above the inputs: {mem:.2f} B/element")
    if sk:
        print(f"sklearn roc_auc_score (1 run): {sk['time']:.2f} s = {sk['time'] / best['auroc']:.1f}x refmetrics "
              f"auroc; |difference| {abs(sk['value'] - values['auroc']):.3g}  [{machine}]")
    def cold_line(runs):
        warm = [min(d for d, _ in c[1:]) for c in runs]
        return ", ".join(f"{c[0][0]:.3f}/{w:.3f} s = {c[0][0] / w:.2f}x (sys {c[0][1]:.2f} s)"
                         for c, w in zip(runs, warm))

    print("cold vs warm auroc (fresh processes, Numba cache loaded by a tiny call; call 1 / min of calls 2-4): "
          + cold_line(cold))
    print("  control, 256 MB touched and freed before call 1: " + cold_line(cold_prefault))
    print("  control, NumPy's madvise(MADV_HUGEPAGE) off (4 KiB pages, no huge-page compaction): "
          + cold_line(cold_nothp))
    if nosimd:
        m = nosimd["min"]
        print(f"\nNPY_DISABLE_CPU_FEATURES={args.no_simd}: {nosimd['machine']}")
        for k, v in m.items():
            print(f"  {k:28s} {v:8.3f} s  {v / m['np.sort']:6.2f}x np.sort")
    print(f"\nratios to one np.sort [{machine}]: auroc {best['auroc'] / base:.2f}x, AP "
          f"{best['average_precision'] / base:.2f}x, F1 {best['f1_max'] / base:.2f}x (targets <= 1.0 on AVX-512), "
          f"AUPRO@0.3 {best['aupro@0.3'] / base:.2f}x (<= 1.5), 7 metrics from the state "
          f"{best['PixelState finish + 7 metrics'] / base:.2f}x (<= 2)")

    result = {"machine": machine_info(), "machine_line": machine, "pixels": n, "rounds": args.rounds,
              "threads": threads, "sort": rm.get_sort(), "numpy_sort_in_ranges": TH.use_numpy_sort(),
              "min_seconds": best, "ratio_to_np_sort": {k: v / base for k, v in best.items()},
              "values": {k: (list(v) if isinstance(v, tuple) else v) for k, v in values.items()
                         if not isinstance(v, np.ndarray)},
              "auroc_peak_bytes_per_element": mem, "sklearn": sk, "cold": cold, "cold_prefault": cold_prefault,
              "cold_nothp": cold_nothp,
              "no_simd": nosimd,
              "no_simd_features": args.no_simd}
    out = Path(args.out) if args.out else HERE / "results" / f"engine-{time.strftime('%Y-%m-%d')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=float) + "\n", encoding="utf-8")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
