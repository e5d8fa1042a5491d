"""``refmetrics evaluate --memory-limit`` against the unbounded run: peak memory, wall time, identical values.

The issue's demo: ``--maps`` float32 anomaly maps of ``--size`` x ``--size`` (default 4,000 of 512x512:
1.05G pixels, 4.2 GB of ``.npy`` maps; a third defect-free, the others with 1-4 disc defects of radius 3 to
80 pixels, 0/255 PNG masks, as ``bench_evaluate.py`` writes them) in a temporary directory on disk (or
``--data``), then ``refmetrics evaluate --no-figures --no-per-defect`` (one pooled pixel state of every
pixel; ``--figures`` / ``--per-defect`` add them) twice, each in a fresh child process:

- unbounded: every key in memory (about 4 bytes per pixel);
- ``--memory-limit LIMIT`` (default ``1GB``): the keys spilled to ``--tmp-dir`` and sorted range by range.

It prints and stores (``benchmarks/results/memory_limit_<maps>x<size>.json``) each run's peak resident memory
(the child's own ``ru_maxrss``: the kernel's high-water mark, nothing missed between samples), its wall time,
their ratios, and whether ``results.json`` is identical (every value ``==``). Targets at the full size: peak
RSS <= 1.3 GB with ``--memory-limit 1GB``, identical values, wall time <= 3x the unbounded run's.
``--repeat N`` runs the pair N times, interleaved, and keeps each one's minimum time (the machine is shared).

Usage: ``python benchmarks/bench_memory_limit.py [--maps 4000] [--size 512] [--limit 1GB] [--data DIR]
[--tmp-dir DIR] [--repeat 1] [--figures] [--per-defect]``
"""

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_info, machine_line
from bench_evaluate import EVALUATE, child, write_dataset


def run_pair(args, data, tmp_dir):
    """One unbounded and one limited run: ``{name: (seconds, peak bytes, results dict)}``."""
    base = [sys.executable, "-c", EVALUATE, "evaluate", "--quiet", "--maps", str(data / "maps"), "--gt",
            str(data / "gt")]
    if not args.figures:
        base.append("--no-figures")
    if not args.per_defect:
        base.append("--no-per-defect")
    out = {}
    for name, extra in (("unbounded", []), ("limited", ["--memory-limit", args.limit, "--tmp-dir", str(tmp_dir)])):
        target = data / f"out-{name}"
        shutil.rmtree(target, ignore_errors=True)
        seconds, peak, _ = child(base + ["--out", str(target)] + extra)
        results = json.loads((target / "results.json").read_text())
        out[name] = (seconds, peak, results)
        print(f"  {name:9s}: {seconds:8.1f} s, peak RSS {peak / 1e9:.3f} GB", flush=True)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--maps", type=int, default=4000, help="number of maps (default 4000)")
    ap.add_argument("--size", type=int, default=512, help="maps of SIZE x SIZE (default 512)")
    ap.add_argument("--limit", default="1GB", help="--memory-limit of the bounded run (default 1GB)")
    ap.add_argument("--data", type=Path, help="dataset directory (kept; reused when it holds maps)")
    ap.add_argument("--tmp-dir", type=Path, help="--tmp-dir of the bounded run (default: under the data)")
    ap.add_argument("--repeat", type=int, default=1, help="run the pair N times, interleaved (minimum times)")
    ap.add_argument("--figures", action="store_true", help="also write the figures (both runs)")
    ap.add_argument("--per-defect", action="store_true", help="also the per-defect-type passes (both runs)")
    ap.add_argument("--json", type=Path, help="where to write the results (default benchmarks/results/...)")
    args = ap.parse_args(argv)
    machine = machine_line()
    print(f"machine: {machine}")
    tmp = None
    data = args.data
    if data is None:
        tmp = tempfile.TemporaryDirectory(prefix="refmetrics-bench-memory-", dir="/var/tmp")
        data = Path(tmp.name)
    try:
        if not (data / "maps").is_dir():
            t = time.perf_counter()
            write_dataset(data, args.maps, args.size)
            print(f"wrote {args.maps} maps of {args.size}x{args.size} to {data} in {time.perf_counter() - t:.1f} s",
                  flush=True)
        tmp_dir = args.tmp_dir or data / "spill"
        tmp_dir.mkdir(exist_ok=True)
        pixels = args.maps * args.size * args.size
        print(f"{pixels:,} pixels, {pixels * 4 / 1e9:.2f} GB of float32 maps; --memory-limit {args.limit}")
        runs = []
        for r in range(args.repeat):
            print(f"pair {r + 1}/{args.repeat}:", flush=True)
            runs.append(run_pair(args, data, tmp_dir))
        identical = all(p["unbounded"][2] == p["limited"][2] for p in runs)
        left = sorted(str(p) for p in tmp_dir.iterdir())
        best = {name: min(p[name][0] for p in runs) for name in ("unbounded", "limited")}
        peak = {name: max(p[name][1] for p in runs) for name in ("unbounded", "limited")}
        values = runs[0]["unbounded"][2]["categories"]
        report = {
            "benchmark": "bench_memory_limit", "machine": machine_info(), "machine_line": machine,
            "maps": args.maps, "size": args.size, "pixels": pixels, "maps_bytes": pixels * 4,
            "memory_limit": args.limit, "options": {"figures": args.figures, "per_defect": args.per_defect},
            "repeat": args.repeat,
            "seconds_min": best, "seconds_all": {n: [p[n][0] for p in runs] for n in best},
            "peak_rss_bytes": peak,
            "wall_ratio": best["limited"] / best["unbounded"],
            "peak_ratio": peak["limited"] / peak["unbounded"],
            "identical_results_json": identical, "temporary_files_left": left,
            "values": values,
            "targets": {"peak_rss_bytes_at_most": 1.3e9, "wall_ratio_at_most": 3.0, "identical": True},
        }
        print(f"unbounded: {best['unbounded']:.1f} s, peak RSS {peak['unbounded'] / 1e9:.3f} GB")
        print(f"limited:   {best['limited']:.1f} s, peak RSS {peak['limited'] / 1e9:.3f} GB  "
              f"[target <= 1.3 GB at --memory-limit 1GB]")
        print(f"wall ratio {report['wall_ratio']:.2f}x [target <= 3x]; identical results.json: {identical}; "
              f"temporary files left: {len(left)}  [{machine}]")
        path = args.json or Path(__file__).resolve().parent / "results" / f"memory_limit_{args.maps}x{args.size}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {path}")
        return 0 if identical and not left else 1
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
