"""The decorators of the CUDA kernels: ``cuda.jit`` with a disk cache keyed on everything the code reads.

numba-cuda's own ``cache=True`` reuses a compiled kernel while the kernel's *own file* keeps its
modification time and size. That is not enough here:

- kernels inline device helpers from other files (the key map and the compensated sum are built
  from the CPU kernels' Python source, ``kernels/cpu/*.py``), and editing those files would leave
  stale machine code in ``__pycache__``;
- numba freezes module globals into the compiled code (``RADIX_SIZE`` sizes a shared array), so a
  kernel compiled while a test patched one would be loaded later with the wrong size.

:func:`kernel` therefore adds to numba-cuda's cache index key a hash of the source of every file
under ``refmetrics/kernels/`` and the current values of the module-level numbers the kernel
refers to. A change to any of them is a cache miss, never
a stale hit. Within one process numba keeps what it compiled: a global patched after a kernel's
first launch on a GPU is not seen by that kernel (the simulator reads globals as it runs).

If numba-cuda's cache class is not where this module expects it (another numba-cuda version),
the kernels are compiled without a disk cache: slower to start, never stale.
"""

import hashlib
import numbers
from pathlib import Path

import numba
import numpy as np
from numba import cuda

try:  # numba-cuda >= 0.30; the simulator has no disk cache
    from numba.cuda.dispatcher import CUDACache as _NumbaCache
    from numba.cuda.dispatcher import CUDADispatcher as _Dispatcher
except ImportError:  # pragma: no cover - other numba-cuda layouts: no disk cache
    _NumbaCache = _Dispatcher = None

if numba.config.ENABLE_CUDASIM:  # the simulator lacks the warp intrinsics the kernels use
    from . import _simulator

    _simulator.install()

_KERNELS = Path(__file__).resolve().parents[1]  # refmetrics/kernels: the CUDA kernels and the CPU helpers


def source_hash():
    """SHA-256 of every ``.py`` file under ``refmetrics/kernels/`` (path and content)."""
    digest = hashlib.sha256()
    for path in sorted(_KERNELS.rglob("*.py")):
        digest.update(path.relative_to(_KERNELS).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


_SOURCE_HASH = source_hash()


def frozen_globals(py_func):
    """The module-level numbers a kernel names, with their current values: what numba freezes
    into the compiled code (``RADIX_SIZE``, label codes)."""
    names = set(py_func.__code__.co_names)
    for const in py_func.__code__.co_consts:  # nested code objects (comprehensions) name globals too
        if hasattr(const, "co_names"):
            names.update(const.co_names)
    found = []
    for name in sorted(names):
        value = py_func.__globals__.get(name)
        if isinstance(value, (numbers.Number, np.generic)) and not isinstance(value, type):
            found.append((name, repr(value)))
    return tuple(found)


if _NumbaCache is not None:

    class _Cache(_NumbaCache):
        """numba-cuda's kernel cache, its index key extended (see the module docstring)."""

        def _index_key(self, sig, codegen):
            return super()._index_key(sig, codegen) + (("refmetrics", _SOURCE_HASH,
                                                        frozen_globals(self._py_func)),)


def _enable_cache(dispatcher):
    if _NumbaCache is not None and isinstance(dispatcher, _Dispatcher):
        try:
            dispatcher._cache = _Cache(dispatcher.py_func)
        except Exception:  # noqa: BLE001 - no writable cache directory: compile every time
            pass
    return dispatcher


def kernel(fn):
    """``cuda.jit`` for a kernel, with the disk cache described above."""
    return _enable_cache(cuda.jit(fn))


def device(fn):
    """``cuda.jit(device=True)``: a device function, compiled into each kernel that calls it."""
    return cuda.jit(device=True)(fn)
