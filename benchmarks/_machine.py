"""One line that says what a benchmark ran on: NumPy, its SIMD extensions, the CPU.

Speed ratios against ``np.sort`` depend on the machine more than on anything
else: NumPy 2.x sorts float32 with x86-simd-sort's AVX-512 kernels where the
CPU has AVX-512 (``X86_V4`` / ``AVX512_*`` among the extensions found), and is
several times slower without them. Every benchmark prints this line at the top
and next to every ratio, and stores it in any JSON it writes, so that a ratio
is never read without it.

The SIMD lists are the ones ``np.show_runtime()`` prints under
``simd_extensions``: ``baseline`` (compiled in), ``found`` (dispatch targets
this CPU has) and ``not found`` (dispatch targets it lacks). They are read from
the same module attributes ``np.show_runtime()`` reads, since it prints and
returns nothing.
"""

import os
import platform

import numpy as np


def _simd():
    """``(baseline, found, not_found)`` lists as ``np.show_runtime()`` reports them, or ``None``."""
    try:  # NumPy 2.x
        from numpy._core._multiarray_umath import __cpu_baseline__, __cpu_dispatch__, __cpu_features__
    except ImportError:
        try:  # NumPy 1.x
            from numpy.core._multiarray_umath import __cpu_baseline__, __cpu_dispatch__, __cpu_features__
        except ImportError:
            return None
    found = [name for name in __cpu_dispatch__ if __cpu_features__.get(name)]
    not_found = [name for name in __cpu_dispatch__ if not __cpu_features__.get(name)]
    return list(__cpu_baseline__), found, not_found


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _thp():
    """The kernel's transparent huge page settings, ``{"enabled": ..., "defrag": ...}`` (the bracketed choice),
    or None off Linux: with ``defrag`` ``madvise``, NumPy's large arrays (which it madvises) may wait for
    memory compaction on their first touch."""
    out = {}
    for name in ("enabled", "defrag"):
        try:
            with open(f"/sys/kernel/mm/transparent_hugepage/{name}") as fh:
                text = fh.read()
        except OSError:
            return None
        out[name] = text[text.index("[") + 1:text.index("]")] if "[" in text else text.strip()
    return out


def machine_info():
    """The facts behind :func:`machine_line`, as a dict (for JSON)."""
    simd = _simd()
    return {
        "transparent_hugepage": _thp(),
        "numpy": np.__version__,
        "simd_baseline": simd[0] if simd else None,
        "simd_found": simd[1] if simd else None,
        "simd_not_found": simd[2] if simd else None,
        "cpu": _cpu_model(),
        "cores": _cores(),
    }


def machine_line(info=None):
    """E.g. ``NumPy 2.4.6, SIMD baseline X86_V2, found X86_V3, not found X86_V4 AVX512_ICL AVX512_SPR; AMD EPYC, 2 cores``."""
    info = machine_info() if info is None else info
    if info["simd_baseline"] is None:
        simd = "SIMD unknown"
    else:
        simd = (f"SIMD baseline {' '.join(info['simd_baseline']) or '-'}, "
                f"found {' '.join(info['simd_found']) or '-'}, "
                f"not found {' '.join(info['simd_not_found']) or '-'}")
    cores = f"{info['cores']} core" + ("" if info["cores"] == 1 else "s")
    return f"NumPy {info['numpy']}, {simd}; {info['cpu']}, {cores}"


if __name__ == "__main__":
    print(machine_line())


def vm(field):
    """A memory figure of this process from /proc/self/status (``VmRSS``, ``VmHWM``: the peak), in bytes."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} is not in /proc/self/status")


def reset_peak():
    """Reset this process's peak resident memory (VmHWM) to its current size (Linux)."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
