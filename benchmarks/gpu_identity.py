"""Bit-identity of the CUDA backend with the CPU backend, for every metric of ``refmetrics.registry.METRICS``.

One deterministic data set (``--images`` maps of ``--size`` x ``--size`` float32
scores with ties, defects of several sizes, a third of the maps defect-free) goes
through every metric twice: ``backend="cpu"`` and ``backend="cuda"``, through its
function and, where it has one, through its class with several ``update``
batches. Results are compared bit for bit (floats by their bits: NaN equals NaN,
-0.0 differs from 0.0; arrays by dtype, shape and every element the same way).

AnomalyScoreDistribution is the one metric whose CUDA result may differ in the
last bit (its logarithms come from the device's ``log``, SPEC allows 1 ulp); its
rows are printed and stored with ``required: false``, and ``all_identical`` reads
only the required rows.

Usage::

    python benchmarks/gpu_identity.py [--images 50 --size 256] [--json PATH]   # on a GPU (~3.3 M pixels)
    NUMBA_ENABLE_CUDASIM=1 python benchmarks/gpu_identity.py --small           # rehearsal, simulator

``benchmarks/gpu_check.sh`` runs it as its step 4. Exit status: 0 when every
required row is identical, 1 otherwise, 2 when CUDA is unusable. The JSON is rewritten after every row
(``complete: false`` until the last), so a run stopped by a timeout still leaves the rows it finished.
"""

import argparse
import itertools
import json
import math
import os
import sys
import time
import traceback
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SIM = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
if SIM:  # the tests' small launch shapes, so that the multi-block paths run on tiny inputs
    sys.path.insert(0, str(ROOT))
    import tests.cudasim  # noqa: F401

import refmetrics as rm
from refmetrics import functional as F
from refmetrics.registry import METRICS

NOT_REQUIRED = {"anomaly_score_distribution"}  # the device's log: within 1 ulp of NumPy's


def make_data(images, size, seed=20261128):
    """Maps (B, H, W) float32 with ties, uint8 masks with defects of several sizes, per-image sPRO defects."""
    rng = np.random.default_rng(seed)
    maps = (np.round(rng.standard_normal((images, size, size)) * 16) / 16).astype(np.float32)  # ties
    masks = np.zeros((images, size, size), np.uint8)
    defects = []
    for i in range(images):
        found = []
        if i % 3 != 0:  # a third of the maps are defect-free
            for _ in range(int(rng.integers(1, 4))):
                h, w = (int(x) for x in rng.choice([1, 2, max(2, size // 8), max(3, size // 3)], 2))
                y, x = int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
                region = np.zeros((size, size), bool)
                region[y:y + h, x:x + w] = True
                masks[i][region] = 1
                found.append(region)
        if found:  # sPRO: a relative and an absolute saturation
            union = np.logical_or.reduce(found)
            defects.append([(found[0], 0.5, True), (union, max(1, int(union.sum()) // 3), False)])
        else:
            defects.append([])
    maps[masks == 1] += np.float32(1.25)
    maps[0, 0, 0] = np.inf  # one infinite score
    return maps, masks, defects


def bits_equal(a, b):
    """Bit-identical results: floats, ints, strings, tuples/lists, dicts, arrays (device arrays are copied)."""
    if hasattr(a, "copy_to_host"):
        a = a.copy_to_host()
    if hasattr(b, "copy_to_host"):
        b = b.copy_to_host()
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(bits_equal(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)):
        return isinstance(b, (tuple, list)) and len(a) == len(b) and all(bits_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        if a.dtype != b.dtype or a.shape != b.shape:
            return False
        if a.dtype.kind == "f":
            return bool(np.array_equal(a, b, equal_nan=True) and np.array_equal(np.signbit(a), np.signbit(b)))
        return bool(np.array_equal(a, b))
    if isinstance(a, (float, np.floating)) or isinstance(b, (float, np.floating)):
        a, b = float(a), float(b)
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    return a == b and type(a) is type(b)


def max_rel_diff(a, b):
    """The largest relative difference between two results (for the rows that need not be identical)."""
    try:
        fa = np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in (a if isinstance(a, (tuple, list)) else [a])])
        fb = np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in (b if isinstance(b, (tuple, list)) else [b])])
        ok = np.isfinite(fa) & np.isfinite(fb)
        return float(np.max(np.abs(fa[ok] - fb[ok]) / np.maximum(np.abs(fa[ok]), 1e-300))) if ok.any() else 0.0
    except Exception:  # noqa: BLE001 - a summary only
        return None


def summary(value):
    """A short printable form of a result."""
    if hasattr(value, "copy_to_host"):
        value = value.copy_to_host()
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {summary(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(summary(v) for v in value) + ")"
    if isinstance(value, np.ndarray):
        if value.size <= 4:
            return f"{value.dtype}{list(value.shape)} {value.tolist()}"
        flat = value.ravel()
        with np.errstate(all="ignore"):
            total = float(np.nansum(flat.astype(np.float64))) if flat.dtype.kind in "fiub" else None
        return f"{value.dtype}{list(value.shape)} first {flat[:2].tolist()} sum {total!r}"
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return repr(value)


def batches(n, parts):
    """``parts`` slices of range(n), unequal sizes."""
    cuts = sorted({0, n, *[max(1, min(n - 1, (n * k) // (parts + 1) + k)) for k in range(1, parts)]})
    return [slice(a, b) for a, b in itertools.pairwise(cuts) if b > a]


def cases(maps, masks, defects, small):
    """(metric, call, fn(backend) -> result) for every metric of the registry: function and class."""
    p, t = maps.ravel(), masks.ravel()
    finite = np.where(np.isinf(maps), np.float32(4.0), maps)  # for the calls that need finite scores
    pos_maps = np.abs(maps) + np.float32(0.5)
    pos_maps[np.isinf(pos_maps)] = 7.0
    image_scores = pos_maps.reshape(len(maps), -1).max(axis=1)
    n_normal = int((masks.reshape(len(maps), -1).sum(axis=1) == 0).sum() * maps[0].size)
    bounds = (min(0.05, 4.0 / max(n_normal, 1)), 0.5)
    kernel = 3 if small else 16
    parts = 3
    imgs = batches(len(maps), parts)
    pix = batches(p.size, parts)

    def fn(name, **kw):
        return lambda b, *args: getattr(F, name)(*args, backend=b, **kw)

    def cls(name, update_args, *init, **kw):
        def run(b):
            metric = getattr(rm, name)(*init, backend=b, **kw)
            for args in update_args:
                metric.update(*args)
            out = metric.compute()
            extra = []
            for attr in ("curve", "per_image"):
                if attr in ("curve",) and callable(getattr(metric, attr, None)):
                    extra.append(metric.curve())
                elif attr == "per_image" and getattr(metric, "per_image", None) is not None:
                    extra.append(metric.per_image)
            return (out, *extra) if extra else out
        return run

    pairs = [(p[s], t[s]) for s in pix]
    map_pairs = [(maps[s], masks[s]) for s in imgs]
    rows = {
        "roc_curve": [("fn", lambda b: fn("roc_curve")(b, p, t)),
                      ("fn thresholds=64", lambda b: fn("roc_curve", thresholds=64)(b, p, t))],
        "auroc": [("fn", lambda b: fn("auroc")(b, p, t)),
                  ("fn thresholds=100", lambda b: fn("auroc", thresholds=100)(b, p, t)),
                  ("class x3", cls("AUROC", pairs))],
        "precision_recall_curve": [("fn", lambda b: fn("precision_recall_curve")(b, p, t)),
                                   ("class x3", cls("BinaryPrecisionRecallCurve", pairs))],
        "average_precision": [("fn", lambda b: fn("average_precision")(b, p, t))],
        "aupr": [("fn step", lambda b: fn("aupr")(b, p, t)),
                 ("fn trapezoid", lambda b: fn("aupr", curve="trapezoid")(b, p, t)),
                 ("class x3 trapezoid", cls("AUPR", pairs, curve="trapezoid"))],
        "f1_max": [("fn", lambda b: fn("f1_max")(b, p, t)), ("class x3", cls("F1Max", pairs))],
        "f1_adaptive_threshold": [("fn", lambda b: fn("f1_adaptive_threshold")(b, p, t)),
                                  ("class x3", cls("F1AdaptiveThreshold", pairs))],
        "f1_score": [("fn", lambda b: fn("f1_score", threshold=0.5)(b, p, t)),
                     ("class x3", cls("F1Score", pairs, 0.5))],
        "min_max": [("fn", lambda b: fn("min_max")(b, p)), ("class x3", cls("MinMax", [(a,) for a, _ in pairs]))],
        "anomaly_score_distribution": [
            ("fn", lambda b: F.anomaly_score_distribution(image_scores, pos_maps, backend=b)),
            ("class x3", cls("AnomalyScoreDistribution", [(image_scores[s], pos_maps[s]) for s in imgs]))],
        "pro_curve": [("fn", lambda b: fn("pro_curve")(b, maps, masks))],
        "aupro": [("fn fpr 0.3", lambda b: fn("aupro", fpr_limit=0.3)(b, maps, masks)),
                  ("fn fpr 1.0", lambda b: fn("aupro", fpr_limit=1.0)(b, maps, masks)),
                  ("fn num_thresholds=50", lambda b: fn("aupro", num_thresholds=50)(b, finite, masks)),
                  ("class x3", cls("AUPRO", map_pairs))],
        "pro_score": [("fn", lambda b: fn("pro_score", threshold=0.5)(b, maps, masks)),
                      ("class x3", cls("PRO", map_pairs, 0.5))],
        "pimo_curve": [("fn", lambda b: fn("pimo_curve")(b, maps, masks))],
        "aupimo": [("fn", lambda b: fn("aupimo", fpr_bounds=bounds, return_per_image=True)(b, maps, masks)),
                   ("class x3", cls("AUPIMO", map_pairs, fpr_bounds=bounds))],
        "spro_curve": [("fn", lambda b: fn("spro_curve")(b, maps, defects))],
        "au_spro": [("fn", lambda b: fn("au_spro", fpr_limit=[0.05, 0.3])(b, maps, defects)),
                    ("class x3", cls("AUsPRO", [(maps[s], defects[s]) for s in imgs], fpr_limit=[0.05, 0.3]))],
        "pbn": [("fn", lambda b: fn("pbn", fpr=0.05)(b, p, t)), ("class x3", cls("PBn", pairs, 0.05))],
        "pgn": [("fn", lambda b: fn("pgn", fnr=0.05)(b, p, t)), ("class x3", cls("PGn", pairs, 0.05))],
        "segmentation_scores": [
            ("fn global", lambda b: fn("segmentation_scores")(b, p, t, 0.5)),
            ("fn samplewise", lambda b: fn("segmentation_scores", average="samplewise")(b, maps, masks, 0.5))],
        "validation_threshold": [("fn", lambda b: fn("validation_threshold")(b, finite)),
                                 ("class x3", cls("ValidationThreshold", [(finite[s],) for s in imgs]))],
        "ader_segmentation": [("fn", lambda b: fn("ader_segmentation")(b, finite, masks))],
        "image_scores": [("fn max", lambda b: fn("image_scores", reduce="max")(b, maps)),
                         ("fn top_k_mean", lambda b: fn("image_scores", reduce="top_k_mean", k=0.01)(b, maps)),
                         ("fn pooled_max", lambda b: fn("image_scores", reduce="pooled_max", kernel=kernel)(b, maps))],
    }
    missing = [m.name for m in METRICS if m.name not in rows]
    extra = [name for name in rows if name not in {m.name for m in METRICS}]
    if missing or extra:
        raise SystemExit(f"gpu_identity: the registry and this script disagree: missing {missing}, unknown {extra}")
    for m in METRICS:
        for label, run in rows[m.name]:
            yield m.name, label, run


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=50)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--small", action="store_true", help="3 maps of 8x8 (a simulator rehearsal)")
    ap.add_argument("--json", type=Path, help="write the rows and the verdict here")
    ap.add_argument("--only", help="comma-separated metric names (default: every metric of the registry)")
    args = ap.parse_args(argv)
    images, size = (3, 8) if args.small else (args.images, args.size)
    if not rm.cuda_available():
        from refmetrics._arrays import cuda_unavailable_reason

        print(f"gpu_identity: CUDA is not usable: {cuda_unavailable_reason()}")
        if args.json:
            args.json.write_text(json.dumps({"error": f"CUDA unusable: {cuda_unavailable_reason()}",
                                             "rows": [], "all_identical": False}, indent=1))
        return 2
    maps, masks, defects = make_data(images, size)
    only = set(args.only.split(",")) if args.only else None
    print(f"gpu_identity: {images} maps of {size}x{size} ({maps.size:,} pixels, {int(masks.sum()):,} anomalous)"
          f"{' under the simulator' if SIM else ''}", flush=True)
    rows = []
    start = time.perf_counter()

    def save(verdict, bad, done):
        if args.json:
            args.json.write_text(json.dumps({"images": images, "size": size, "pixels": int(maps.size),
                                             "simulator": SIM, "complete": done, "rows": rows,
                                             "all_identical": verdict, "not_identical": bad,
                                             "metrics": sorted({r["metric"] for r in rows})}, indent=1))
    for metric, label, run in cases(maps, masks, defects, args.small):
        if only and metric not in only:
            continue
        row = {"metric": metric, "call": label, "required": metric not in NOT_REQUIRED}
        results = {}
        for backend in ("cpu", "cuda"):
            t0 = time.perf_counter()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    results[backend] = run(backend)
                row[backend] = summary(results[backend])
            except Exception as exc:  # noqa: BLE001 - a failing backend is a row, not the end of the check
                row[backend] = f"ERROR {type(exc).__name__}: {exc}"[:500]
                row[f"{backend}_traceback"] = traceback.format_exc()[-2000:]
            row[f"{backend}_seconds"] = round(time.perf_counter() - t0, 4)
        row["seconds"] = round(row["cpu_seconds"] + row["cuda_seconds"], 4)
        row["identical"] = len(results) == 2 and bits_equal(results["cpu"], results["cuda"])
        if len(results) == 2 and not row["identical"]:
            row["max_rel_diff"] = max_rel_diff(results["cpu"], results["cuda"])
        rows.append(row)
        mark = "ok" if row["identical"] else ("DIFF" if row["required"] else "diff (allowed: 1 ulp)")
        print(f"  {metric:<28} {label:<22} {mark:<6} cpu {row['cpu_seconds']:8.3f} s  cuda {row['cuda_seconds']:8.3f} s"
              f"  {row['cuda'][:90]}", flush=True)
        if not row["identical"]:
            print(f"      cpu:  {row['cpu'][:300]}\n      cuda: {row['cuda'][:300]}", flush=True)
        save(False, [f"{r['metric']} ({r['call']})" for r in rows if r["required"] and not r["identical"]], False)
    required = [r for r in rows if r["required"]]
    verdict = bool(required) and all(r["identical"] for r in required)
    bad = [f"{r['metric']} ({r['call']})" for r in required if not r["identical"]]
    print(f"gpu_identity: {sum(r['identical'] for r in rows)}/{len(rows)} rows identical; all required identical: "
          f"{verdict}{'; not identical: ' + ', '.join(bad) if bad else ''} ({time.perf_counter() - start:.1f} s)")
    save(verdict, bad, True)
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
