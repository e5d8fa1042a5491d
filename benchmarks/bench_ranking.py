"""Exact ranking metrics on an MVTec-sized pixel set: time and peak memory as ratios.

Builds ~50 million float32 pixel scores (``--images`` maps of 512x512, about 3%
defect pixels in blob-shaped regions) and prints, in one run:

- refmetrics' exact AUROC, average precision and F1-max,
- scikit-learn's ``roc_auc_score`` on the same arrays (if installed),
- a plain ``np.sort`` of the same float32 scores (the baseline),

each as the median of ``--repeat`` runs, and peak memory above the inputs
(measured with tracemalloc, which sees every NumPy allocation) in bytes per
element. The first refmetrics call of the process is timed separately: by
default the Numba cache goes to a fresh temporary folder, so that figure is the
real compilation time.

The machine (NumPy's version and SIMD extensions, the CPU, the cores: see
``_machine.py``) is printed first and with every ratio: NumPy 2.x sorts float32
with AVX-512 where the CPU has it, which moves the ``np.sort`` baseline a lot.

Usage: ``python benchmarks/bench_ranking.py [--images 190] [--repeat 5] [--no-sklearn]``
"""

import argparse
import os
import sys
import tempfile
import time
import tracemalloc

if "--keep-cache" not in sys.argv:
    os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="refmetrics-bench-cache-")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _machine import machine_line  # noqa: E402


def make_pixels(images, size=512, seed=20261125):
    """Float32 anomaly maps and bool masks flattened: normal background, defect blobs."""
    rng = np.random.default_rng(seed)
    n = images * size * size
    scores = rng.standard_normal(n, dtype=np.float32)
    masks = np.zeros((images, size, size), bool)
    yy, xx = np.mgrid[:size, :size]
    for i in range(images):
        if i % 3 == 0:  # a third of the images are defect-free
            continue
        for _ in range(rng.integers(1, 5)):
            r = rng.choice([3, 10, 30, 80])
            cy, cx = rng.integers(0, size, 2)
            masks[i] |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    target = masks.reshape(-1)
    scores[target] += np.float32(1.5)
    return scores, target


def timed(fn, repeat):
    times = []
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), out


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
    ap.add_argument("--repeat", type=int, default=5, help="runs per measurement (median reported)")
    ap.add_argument("--sklearn-repeat", type=int, default=1, help="runs of scikit-learn (slow)")
    ap.add_argument("--no-sklearn", action="store_true")
    ap.add_argument("--keep-cache", action="store_true", help="use the normal Numba cache")
    args = ap.parse_args(argv)

    machine = machine_line()
    print(f"machine: {machine}")
    scores, target = make_pixels(args.images)
    n = scores.size
    print(f"pixels: {n:,} float32 scores, {target.mean():.2%} positive; repeat={args.repeat}")

    from refmetrics import functional as F

    t = time.perf_counter()
    F.auroc(scores, target)
    first = time.perf_counter() - t
    for fn in (F.average_precision, F.f1_max):
        fn(scores, target)

    rows = []
    t_sort, _ = timed(lambda: np.sort(scores), args.repeat)
    m_sort = peak_bytes(lambda: np.sort(scores))
    rows.append(("np.sort (float32, baseline)", t_sort, m_sort, None))
    results = {}
    for name, fn in (("refmetrics auroc", F.auroc), ("refmetrics average_precision", F.average_precision),
                     ("refmetrics f1_max", F.f1_max)):
        t_fn, results[name] = timed(lambda fn=fn: fn(scores, target), args.repeat)
        rows.append((name, t_fn, peak_bytes(lambda fn=fn: fn(scores, target)), results[name]))
    if not args.no_sklearn:
        try:
            from sklearn.metrics import roc_auc_score
        except ImportError:
            print("scikit-learn not installed: skipped (pip install scikit-learn)")
        else:
            t_sk, v = timed(lambda: roc_auc_score(target, scores), args.sklearn_repeat)
            rows.append(("sklearn roc_auc_score", t_sk, peak_bytes(lambda: roc_auc_score(target, scores)), v))

    print(f"\nfirst refmetrics call (Numba compilation, excluded below): {first:.2f} s\n")
    print(f"machine: {machine}")
    print(f"{'':32s} {'median s':>9s} {'x np.sort':>10s} {'peak MB':>9s} {'B/elem':>7s}  value")
    for name, t_fn, mem, value in rows:
        v = "" if value is None else f"{value:.15f}"
        print(f"{name:32s} {t_fn:9.3f} {t_fn / t_sort:10.2f} {mem / 2**20:9.1f} {mem / n:7.2f}  {v}")
    t_auc = rows[1][1]
    print(f"\nrefmetrics auroc / np.sort time: {t_auc / t_sort:.2f}x  (target <= 2)  [{machine}]")
    if len(rows) > 4:
        print(f"sklearn roc_auc_score / refmetrics auroc time: {rows[4][1] / t_auc:.1f}x  (target >= 20)  "
              f"[{machine}]")
        print(f"|refmetrics - sklearn| AUROC: {abs(rows[4][3] - rows[1][3]):.3g}")
    print(f"refmetrics auroc peak memory above the inputs: {rows[1][2] / n:.2f} B/element  (target <= 12)")


if __name__ == "__main__":
    main()
