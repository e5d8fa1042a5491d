"""Compile recorded CUDA kernel signatures to PTX for a real GPU architecture, without a GPU.

usage: python -m tests.cuda_compile --cc 9.0 [--ptxas PATH] [--report FILE] RECORDS.jsonl...

``RECORDS`` are launch records written under the simulator (``REFMETRICS_RECORD_LAUNCHES``, see
``tests/cudasim.py``). Each distinct ``(kernel, argument types)`` is compiled with numba-cuda's
own compiler (NVVM from PyPI's ``nvidia-nvvm``) for the compute capability ``--cc``; with
``--ptxas``, the PTX is also assembled for that architecture and its registers, spills and static
shared memory are checked against the limits below. The run fails (exit 1, one ``FAIL`` line
each) on any typing or lowering error, any ptxas error or limit exceeded, any kernel that was
launched with a host array (an implicit copy on every launch), and any kernel of
``refmetrics.kernels.cuda`` that no record launches (it would go unchecked).

numba-cuda compiles ``cuda.jit(device=True)`` helpers for the *current device's* compute
capability; without a GPU there is none, so this module presents a device of capability
``--cc`` to numba-cuda's dispatcher. Nothing is launched. Run without NUMBA_ENABLE_CUDASIM.
"""

import argparse
import contextlib
import importlib
import json
import os
import pkgutil
import re
import subprocess
import sys
import tempfile

# limits for ptxas -v at 256 threads per block (the launch shape); sm_80/sm_90 allow 255 registers per
# thread and 48 KiB of static shared memory per block
MAX_REGISTERS = 64  # 256 threads x 64 = 16 K registers: four blocks fit on one SM
MAX_SPILL_BYTES = 0
MAX_STATIC_SHARED = 40 * 1024


def _arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records", nargs="+", help="launch records (JSON lines) written under the simulator")
    parser.add_argument("--cc", required=True, help="compute capability, e.g. 9.0")
    parser.add_argument("--ptxas", help="ptxas to assemble the PTX with (registers, spills, shared memory)")
    parser.add_argument("--report", help="write a JSON summary here")
    return parser.parse_args()


class _Device:
    """The device numba-cuda's dispatcher asks for when it compiles device functions."""

    def __init__(self, cc):
        self.compute_capability = cc
        self.id = 0


def kernels_of_the_library():
    """``{(module, name): dispatcher}`` of every kernel (not device function) in refmetrics.kernels.cuda."""
    from numba.cuda.dispatcher import CUDADispatcher

    import refmetrics.kernels.cuda as package

    found = {}
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for name, obj in vars(module).items():
            if (isinstance(obj, CUDADispatcher) and not obj.targetoptions.get("device")
                    and obj.py_func.__module__ == module.__name__):
                found[(module.__name__, name)] = obj
    return found


def _numba_type(arg):
    import numpy as np
    from numba.core import types
    from numba.np.numpy_support import from_dtype

    if arg[0] in ("device", "host"):
        return types.Array(from_dtype(np.dtype(arg[1])), arg[2], arg[3])
    return types.boolean if arg[1] == "bool" else getattr(types, arg[1])


def read_records(paths):
    """Distinct signatures of the library's kernels: ``{(module, kernel, args as JSON): launches}``
    (kernels a test defines for itself are not shipped, and not compiled here)."""
    signatures = {}
    for path in paths:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                record = json.loads(line)
                if not record["module"].startswith("refmetrics."):
                    continue
                key = (record["module"], record["kernel"], json.dumps(record["args"]))
                signatures[key] = signatures.get(key, 0) + record["launches"]
    return signatures


_PTXAS_USED = re.compile(r"Used (\d+) registers")
_PTXAS_SMEM = re.compile(r"(\d+) bytes smem")
_PTXAS_SPILL = re.compile(r"(\d+) bytes spill stores, (\d+) bytes spill loads")


def assemble(ptxas, ptx, cc):
    """``(registers, spill bytes, static shared bytes, error or None)`` from ``ptxas -v``."""
    with tempfile.NamedTemporaryFile("w", suffix=".ptx", delete=False) as fh:
        fh.write(ptx)
    try:
        proc = subprocess.run([ptxas, f"-arch=sm_{cc[0]}{cc[1]}", "-v", "-O3", "-warn-spills", "-o", os.devnull,
                               fh.name], capture_output=True, text=True)
    finally:
        os.unlink(fh.name)
    if proc.returncode:
        return 0, 0, 0, proc.stderr.strip()[-600:]
    registers = max((int(m) for m in _PTXAS_USED.findall(proc.stderr)), default=0)
    shared = max((int(m) for m in _PTXAS_SMEM.findall(proc.stderr)), default=0)
    spills = max((int(a) + int(b) for a, b in _PTXAS_SPILL.findall(proc.stderr)), default=0)
    return registers, spills, shared, None


@contextlib.contextmanager
def presenting(cc):
    """numba-cuda's dispatcher sees a device of compute capability ``cc`` (device functions compile for it)."""
    import numba.cuda.dispatcher as dispatcher

    original = dispatcher.get_current_device
    dispatcher.get_current_device = lambda: _Device(cc)
    try:
        yield
    finally:
        dispatcher.get_current_device = original


def compile_all(signatures, cc, ptxas=None, kernels=None):
    """Compile every signature; return ``(failures, rows)``: failure lines and one row per signature.
    ``kernels`` (default: every kernel of the library) are the kernels that must all be launched."""
    kernels = kernels_of_the_library() if kernels is None else kernels
    with presenting(cc):
        return _compile_all(signatures, cc, ptxas, kernels)


def _compile_all(signatures, cc, ptxas, kernels):
    from numba import cuda

    failures, rows = [], []
    for (module, name, args_json), launches in sorted(signatures.items()):
        args = json.loads(args_json)
        label = f"{module.rsplit('.', 1)[-1]}.{name}({', '.join(':'.join(map(str, a[1:])) for a in args)})"
        if any(a[0] == "host" for a in args):
            failures.append(f"{label}: launched with a host NumPy array (copied to the device on every launch)")
        kernel = kernels.get((module, name))
        if kernel is None:
            kernel = getattr(importlib.import_module(module), name)
        try:
            signature = tuple(_numba_type(a) for a in args)
            ptx, _ = cuda.compile_ptx(kernel.py_func, signature, cc=cc)
        except Exception as exc:  # noqa: BLE001 - every failure is reported, the run goes on
            first = str(exc).strip().splitlines()
            failures.append(f"{label}: {type(exc).__name__}: {' | '.join(first[:6])}")
            continue
        row = {"kernel": f"{module}.{name}", "args": args, "launches": launches, "ptx_bytes": len(ptx)}
        if ptxas:
            registers, spills, shared, error = assemble(ptxas, ptx, cc)
            row.update(registers=registers, spill_bytes=spills, static_shared_bytes=shared)
            if error:
                failures.append(f"{label}: ptxas: {error}")
            if registers > MAX_REGISTERS:
                failures.append(f"{label}: {registers} registers per thread, the limit is {MAX_REGISTERS}")
            if spills > MAX_SPILL_BYTES:
                failures.append(f"{label}: {spills} bytes of register spills, the limit is {MAX_SPILL_BYTES}")
            if shared > MAX_STATIC_SHARED:
                failures.append(f"{label}: {shared} bytes of static shared memory, the limit is "
                                f"{MAX_STATIC_SHARED}")
        rows.append(row)
    launched = {(module, name) for module, name, _ in signatures}
    for module, name in sorted(set(kernels) - launched):
        failures.append(f"{module}.{name}: never launched under the simulator, so never compiled here: "
                        f"add a case to tests/test_backends.py or tests/cuda_signatures.py")
    return failures, rows


def main():
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        sys.exit("tests/cuda_compile.py compiles for real GPUs: run it without NUMBA_ENABLE_CUDASIM=1")
    options = _arguments()
    cc = tuple(int(part) for part in options.cc.split("."))
    signatures = read_records(options.records)
    failures, rows = compile_all(signatures, cc, options.ptxas)
    summary = {"cc": options.cc, "signatures": len(signatures), "compiled": len(rows), "failures": failures,
               "ptxas": bool(options.ptxas)}
    if options.ptxas and rows:
        summary.update(max_registers=max(r["registers"] for r in rows),
                       max_spill_bytes=max(r["spill_bytes"] for r in rows),
                       max_static_shared_bytes=max(r["static_shared_bytes"] for r in rows))
    if options.report:
        with open(options.report, "w", encoding="utf-8") as fh:
            json.dump({**summary, "rows": rows}, fh, indent=1)
    for line in failures:
        print("FAIL", line)
    print(json.dumps(summary if not failures else {k: v for k, v in summary.items() if k != "failures"}))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
