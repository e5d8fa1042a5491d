"""``refmetrics evaluate`` on a large synthetic MVTec-layout dataset: time and peak memory.

Writes ``--images`` float32 anomaly maps of ``--size`` x ``--size`` (``.npy``; a
third defect-free, the others with 1-4 blob defects under two defect types, "blob"
and "spot", so that the per-defect passes are measured too, with their 0/255 PNG
masks) into ``--data`` (a temporary directory by default), then runs, each in a fresh
child process whose peak resident memory (``ru_maxrss``) is measured:

- ``hold``: loading every map into one float32 array, the memory of holding
  the maps once (the reference of the target);
- ``evaluate``: ``refmetrics evaluate --maps ... --gt ... --no-figures`` (the
  figures' memory is small and fixed; ``--figures`` includes them), under
  ``--protocol NAME`` (default: evaluate's own, mvtec-ad; the MVTec-layout data
  serve ``mvtec-ad`` and ``ader``, whose 16x16 pooled image score needs
  ``--size`` >= 16), with the official columns unless ``--no-official``.

and prints the peak of each, their ratio, and the ratio to the maps' raw bytes.

The machine (NumPy's version and SIMD extensions, the CPU, the cores: see
``_machine.py``) is printed first and with every ratio.

Usage: ``python benchmarks/bench_evaluate.py [--images 1000] [--size 512] [--data DIR] [--figures]
[--protocol NAME] [--no-official]``
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_line  # noqa: E402

HOLD = """
import resource, sys, numpy as np
from pathlib import Path
files = sorted(Path(sys.argv[1]).rglob("*.npy"))
first = np.load(files[0])
maps = np.empty((len(files),) + first.shape, first.dtype)
for i, f in enumerate(files):
    maps[i] = np.load(f)
print(maps.nbytes)
print("PEAK", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""

# runs ``python -m refmetrics ARGS`` and reports the process's own peak resident memory
EVALUATE = """
import resource, runpy, sys
sys.argv = ["refmetrics"] + sys.argv[1:]
try:
    runpy.run_module("refmetrics", run_name="__main__")
finally:
    print("PEAK", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


LAYOUT_PROTOCOLS = ("mvtec-ad", "ader")  # the protocols that read the MVTec AD layout written here


def write_dataset(root, images, size, seed=20261125):
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    for i in range(images):
        defect = ("good", "blob", "spot")[i % 3]  # two defect types: the per-defect passes are measured too
        d = root / "maps" / "synthetic" / "test" / defect
        d.mkdir(parents=True, exist_ok=True)
        mask = np.zeros((size, size), bool)
        if defect != "good":
            for _ in range(rng.integers(1, 5)):
                r = rng.choice([3, 10, 30, 80])
                cy, cx = rng.integers(0, size, 2)
                mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
            g = root / "gt" / "synthetic" / "ground_truth" / defect
            g.mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask.astype(np.uint8) * 255).save(g / f"{i:04d}_mask.png")
        values = rng.standard_normal((size, size), dtype=np.float32)
        values[mask] += np.float32(1.5)
        np.save(d / f"{i:04d}.npy", values)


def child(cmd):
    """``(seconds, peak bytes, stdout)`` of a child that prints ``PEAK <ru_maxrss KiB>`` on stderr."""
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    peaks = [line.split()[1] for line in proc.stderr.splitlines() if line.startswith("PEAK ")]
    if proc.returncode != 0 or not peaks:
        sys.exit(f"failed: {' '.join(map(str, cmd))}\n{proc.stderr}")
    return seconds, int(peaks[-1]) * 1024, proc.stdout


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--data", type=Path, help="dataset directory (kept; reused when it exists)")
    ap.add_argument("--figures", action="store_true", help="also write the figures")
    ap.add_argument("--protocol", choices=LAYOUT_PROTOCOLS,
                    help="evaluate under this protocol (default: evaluate's default, mvtec-ad)")
    ap.add_argument("--no-official", action="store_true", help="pass --no-official: leave out the official columns")
    args = ap.parse_args(argv)
    if args.protocol == "ader" and args.size < 16:
        ap.error(f"--size: ader's 16x16 pooled image score needs maps of at least 16x16, received {args.size}")
    machine = machine_line()
    print(f"machine: {machine}")
    tmp = None
    data = args.data
    if data is None:
        tmp = tempfile.TemporaryDirectory(prefix="refmetrics-bench-")
        data = Path(tmp.name)
    if not (data / "maps").is_dir():
        t = time.perf_counter()
        write_dataset(data, args.images, args.size)
        print(f"wrote {args.images} maps of {args.size}x{args.size} to {data} in {time.perf_counter() - t:.1f} s")
    maps_bytes = args.images * args.size * args.size * 4
    hold_s, hold_peak, out = child([sys.executable, "-c", HOLD, str(data / "maps")])
    assert int(out.strip()) == maps_bytes
    cmd = [sys.executable, "-c", EVALUATE, "evaluate", "--quiet", "--maps", str(data / "maps"), "--gt",
           str(data / "gt"), "--out", str(data / "out")]
    if not args.figures:
        cmd.append("--no-figures")
    if args.protocol:
        cmd += ["--protocol", args.protocol]
    if args.no_official:
        cmd.append("--no-official")
    run = f"--protocol {args.protocol or 'mvtec-ad'}{', --no-official' if args.no_official else ''}"
    eval_s, eval_peak, table = child(cmd)
    print(table.strip())
    print(f"maps: {args.images} x {args.size}x{args.size} float32 = {maps_bytes / 2**30:.3f} GiB")
    print(f"holding the maps once:  peak {hold_peak / 2**30:.3f} GiB ({hold_s:.1f} s)")
    print(f"refmetrics evaluate:    peak {eval_peak / 2**30:.3f} GiB ({eval_s:.1f} s; {run})")
    print(f"ratio to holding the maps once: {eval_peak / hold_peak:.3f}  [target < 1.3]  [{machine}]")
    print(f"ratio to the maps' bytes:       {eval_peak / maps_bytes:.3f}  [{machine}]")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
