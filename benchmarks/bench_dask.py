"""Throughput of refmetrics.dask against the number of workers, and its shuffle volume.

Usage: python benchmarks/bench_dask.py [--pixels 50000000] [--chunks 25] [--bucket-size 4194304]
                                       [--workers 1 2] [--repeats 2] [--memory 2GiB] [--out PATH]
                                       [--threads-per-task 1 2] [--no-aupimo]

Float32 scores on a 1/1024 grid (ties), 1% exact 0.0, 10% positives, generated chunk by
chunk from seeds on the workers (the generation is part of every timing: the graph
reads its input twice, once for the histograms and once for the shuffle; the
``generate`` line times one read alone). One ``LocalCluster`` per worker count (one
thread per worker, separate processes) is started up front; runs are interleaved
across worker counts and the minimum of ``--repeats`` runs is kept, since other
processes share the machine. Printed and stored (JSON under benchmarks/results/):

- seconds and pixels per second per worker for ``refmetrics.dask.auroc`` and
  ``average_precision`` at each worker count, and the same metric in one process
  (``refmetrics.functional``) and one single-threaded ``np.sort`` of the scores;
- ``refmetrics.dask.aupimo`` (default bounds) on the same scores as 128x128 maps, every
  second image defect-free (``--no-aupimo`` skips it);
- with ``--threads-per-task 1 2``, every run once per value of ``refmetrics.threads_per_task``
  (interleaved), the kernels' thread count inside each task (1 by default);
- shuffle volume: 4 bytes per float32 pixel enter the shuffle (its key; the label
  is which of two arrays it is in), and the bytes per pixel that actually crossed
  between worker processes (the worker's transfer log; 0 with one worker).

The machine line (NumPy, SIMD extensions, CPU) comes first, as in every benchmark.
"""

import argparse
import datetime
import json
import logging
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _machine import machine_info, machine_line  # noqa: E402


def chunk(i, n):
    rng = np.random.default_rng([2016, i])
    y = (rng.random(n) < 0.1).astype(np.uint8)
    s = (np.round((rng.normal(size=n).astype(np.float32) + y) * 1024) / 1024).astype(np.float32)
    s[rng.random(n) < 0.01] = 0.0
    return s, y


def arrays(n_chunks, n):
    import dask
    import dask.array as da

    parts = [dask.delayed(chunk, pure=True)(i, n) for i in range(n_chunks)]
    s = da.concatenate([da.from_delayed(p[0], (n,), np.float32) for p in parts])
    y = da.concatenate([da.from_delayed(p[1], (n,), np.uint8) for p in parts])
    return s, y


SIDE = 128


def maps_chunk(i, n):
    """The chunk's scores as maps of SIDE x SIDE, every second image defect-free."""
    s, y = chunk(i, n)
    k = n // (SIDE * SIDE)
    s, y = s[:k * SIDE * SIDE].reshape(k, SIDE, SIDE), y[:k * SIDE * SIDE].reshape(k, SIDE, SIDE).copy()
    y[::2] = 0
    return s, y


def map_arrays(n_chunks, n):
    import dask
    import dask.array as da

    k = n // (SIDE * SIDE)
    parts = [dask.delayed(maps_chunk, pure=True)(i, n) for i in range(n_chunks)]
    s = da.concatenate([da.from_delayed(p[0], (k, SIDE, SIDE), np.float32) for p in parts])
    y = da.concatenate([da.from_delayed(p[1], (k, SIDE, SIDE), np.uint8) for p in parts])
    return s, y


def same(a, b):
    return a == b or (a != a and b != b)


def transferred(dask_worker):
    return sum(d.get("total", 0) for d in getattr(dask_worker, "transfer_incoming_log", []))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pixels", type=int, default=50_000_000)
    ap.add_argument("--chunks", type=int, default=25)
    ap.add_argument("--bucket-size", type=int, default=1 << 22)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--memory", default="2GiB", help="memory limit per worker")
    ap.add_argument("--out", default=None)
    ap.add_argument("--threads-per-task", type=int, nargs="+", default=[1])
    ap.add_argument("--no-aupimo", action="store_true")
    args = ap.parse_args()

    import dask
    from distributed import Client, LocalCluster

    import refmetrics.dask as RD
    from refmetrics import functional as F

    info = machine_info()
    print(machine_line(info), flush=True)
    n = args.pixels // args.chunks
    pixels = n * args.chunks

    # one process: the same data, the same metrics, and one np.sort
    ref = [chunk(i, n) for i in range(args.chunks)]
    s_all = np.concatenate([r[0] for r in ref])
    y_all = np.concatenate([r[1] for r in ref])
    del ref
    F.auroc(s_all[:1000], y_all[:1000])
    names = ["auroc", "average_precision"] + ([] if args.no_aupimo else ["aupimo"])
    ref_maps = [maps_chunk(i, n) for i in range(args.chunks)] if "aupimo" in names else None
    m_all = np.concatenate([r[0] for r in ref_maps]) if ref_maps else None
    k_all = np.concatenate([r[1] for r in ref_maps]) if ref_maps else None
    del ref_maps

    def one_run(name):
        if name == "aupimo":
            return F.aupimo(m_all, k_all)
        return getattr(F, name)(s_all, y_all)

    one = {name: [] for name in names + ["np.sort"]}
    ref_values = {name: one_run(name) for name in names}
    for _ in range(args.repeats):
        for name in names:
            t = time.perf_counter()
            one_run(name)
            one[name].append(time.perf_counter() - t)
        t = time.perf_counter()
        np.sort(s_all)
        one["np.sort"].append(time.perf_counter() - t)
    del s_all, y_all, m_all, k_all
    one = {k: min(v) for k, v in one.items()}
    print(f"{pixels:,} pixels in {args.chunks} chunks, bucket size {args.bucket_size:,} keys", flush=True)
    print("one process: " + ", ".join(f"{k} {v:.2f} s" for k, v in one.items()), flush=True)

    clusters = {}
    for w in args.workers:
        cluster = LocalCluster(n_workers=w, threads_per_worker=1, processes=True, memory_limit=args.memory,
                               dashboard_address=None, silence_logs=logging.ERROR)
        clusters[w] = (cluster, Client(cluster, set_as_default=False))
    s, y = arrays(args.chunks, n)
    maps, masks = map_arrays(args.chunks, n)
    variants = [(w, tpt) for w in args.workers for tpt in args.threads_per_task]
    label = {v: str(v[0]) if len(args.threads_per_task) == 1 else f"{v[0]}x{v[1]}" for v in variants}
    times = {v: {**{name: [] for name in names}, "generate": []} for v in variants}
    volume = {}
    try:
        for w, (_, client) in clusters.items():  # warm: the kernels loaded in every worker
            with dask.config.set(scheduler=client):
                RD.auroc(*arrays(2, 1000))
        for rep in range(args.repeats):
            for v in variants:
                w, client = v[0], clusters[v[0]][1]
                with dask.config.set({"scheduler": client, "refmetrics.threads_per_task": v[1]}):
                    t = time.perf_counter()
                    dask.compute(s.sum(), y.sum())
                    times[v]["generate"].append(time.perf_counter() - t)
                    for name in names:
                        before = sum(client.run(transferred).values())
                        t = time.perf_counter()
                        if name == "aupimo":
                            got = RD.aupimo(maps, masks)
                        else:
                            got = getattr(RD, name)(s, y, bucket_size=args.bucket_size)
                        times[v][name].append(time.perf_counter() - t)
                        assert same(got, ref_values[name]), (name, got, ref_values[name])
                        if rep == 0 and name == "auroc":
                            volume[v] = {"transferred_bytes_per_pixel":
                                         (sum(client.run(transferred).values()) - before) / pixels}
                print(f"{label[v]} worker(s), run {rep + 1}: " + ", ".join(f"{k} {t[-1]:.2f} s"
                                                                         for k, t in times[v].items()), flush=True)
    finally:
        for cluster, client in clusters.values():
            client.close()
            cluster.close()

    result = {"machine": info, "machine_line": machine_line(info), "pixels": pixels, "chunks": args.chunks,
              "bucket_size": args.bucket_size, "worker_memory": args.memory, "repeats": args.repeats,
              "one_process_s": one, "values_identical": True, "threads_per_task": args.threads_per_task,
              "workers": {}}
    print(machine_line(info))
    for v in variants:
        w = v[0]
        best = {k: min(t) for k, t in times[v].items()}
        row = {"seconds": best, "threads_per_task": v[1],
               "pixels_per_s_per_worker": {k: pixels / t / w for k, t in best.items()},
               "vs_one_process": {k: best[k] / one[k] for k in names},
               "vs_np_sort": {k: best[k] / one["np.sort"] for k in names},
               "shuffle": {"key_bytes_per_pixel": 4.0, **volume.get(v, {})}}
        result["workers"][label[v]] = row
        extra = f", aupimo {best['aupimo']:.2f} s" if "aupimo" in best else ""
        print(f"{label[v]} worker(s){extra}: auroc {best['auroc']:.2f} s ({row['pixels_per_s_per_worker']['auroc'] / 1e6:.2f}M "
              f"px/s/worker, {row['vs_np_sort']['auroc']:.1f}x np.sort), average_precision "
              f"{best['average_precision']:.2f} s, generation alone {best['generate']:.2f} s; crossed between "
              f"workers {volume.get(v, {}).get('transferred_bytes_per_pixel', 0):.2f} B/px")
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                   f"dask-{datetime.date.today().isoformat()}.json")
    with open(out, "w") as fh:
        json.dump(result, fh, indent=1)
    print("wrote", out)


if __name__ == "__main__":
    main()
