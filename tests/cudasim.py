"""Set-up for running the CUDA kernels under the numba-cuda simulator (NUMBA_ENABLE_CUDASIM=1).

Imported first by the simulator runs (``tests/test_backends.py`` in a subprocess,
``tox -e cudasim``):

- threads per block, keys per thread and radix digit bits are patched small
  (the simulator reads these module globals when a kernel runs, the GPU when
  it compiles), so that the multi-block scans, the multi-tile radix passes and
  the atomics all run on inputs of a few dozen elements; with
  ``REFMETRICS_SIM_SHAPES=gpu`` they keep the GPU's values (256 threads, 16
  keys per thread, 8-bit digits), so that the same tests also run at the
  shapes the hardware runs;
- the simulator's shared-array allocation is made thread-safe: it looks an
  allocation up and creates it without a lock, so under a short thread switch
  interval two threads of a block can get two different "shared" arrays (a
  simulator bug, seen as a wrong scan about once in ten runs; not a kernel bug);
- the thread switch interval is shortened: the simulator runs every CUDA thread
  as a Python thread synchronising through events, and the default 5 ms switch
  interval makes that about ten times slower;
- with ``REFMETRICS_RECORD_LAUNCHES=<file>``, every kernel launch (kernel and
  argument types) is appended to that file at exit, for the compile check of
  ``tests/test_cuda_sim.py`` (``tests/cuda_compile.py``).
"""

import os
import sys
import threading

assert os.environ.get("NUMBA_ENABLE_CUDASIM") == "1", "tests/cudasim.py is for simulator runs only"

import numpy as np  # noqa: E402
from numba.core import types  # noqa: E402
from numba.cuda.simulator import kernelapi  # noqa: E402
from numba.np import numpy_support  # noqa: E402

from refmetrics.kernels.cuda import ranking as _ranking  # noqa: E402

if os.environ.get("REFMETRICS_SIM_SHAPES") == "gpu":  # the GPU's own launch shapes (the module's defaults)
    THREADS, ITEMS, RADIX_BITS = _ranking.THREADS, _ranking.ITEMS, _ranking.RADIX_BITS
else:
    THREADS = 16
    ITEMS = 2
    RADIX_BITS = 4  # 16 buckets: the histograms to scan stay small (the 8-bit sort is tested on its own)

_ranking.THREADS = THREADS
_ranking.ITEMS = ITEMS
_ranking.RADIX_BITS = RADIX_BITS
_ranking.RADIX_SIZE = 1 << RADIX_BITS

_lock = threading.Lock()
_unlocked_array = kernelapi.FakeCUDAShared.array


def _locked_array(self, shape, dtype):
    """The simulator's ``cuda.shared.array``: one array per block and source line, created
    under a lock."""
    if shape == 0:  # dynamic shared memory: one buffer, no lookup
        return _unlocked_array(self, shape, dtype)
    if isinstance(dtype, types.Type):
        dtype = numpy_support.as_dtype(dtype)
    frame = sys._getframe(1)  # the kernel line that asked for the array
    caller = (frame.f_code.co_filename, frame.f_lineno)
    with _lock:
        res = self._allocations.get(caller)
        if res is None:
            res = np.empty(shape, dtype)
            self._allocations[caller] = res
    return res


kernelapi.FakeCUDAShared.array = _locked_array
sys.setswitchinterval(1e-5)


# ---------------------------------------------------------------------------
# REFMETRICS_RECORD_LAUNCHES=<file>: record every kernel launch (kernel, argument types) for the
# compile check (tests/cuda_compile.py compiles each recorded signature for real GPUs).
# ---------------------------------------------------------------------------

if os.environ.get("REFMETRICS_RECORD_LAUNCHES"):
    import atexit
    import json

    import numba
    from numba.cuda.simulator import kernel as _kernel
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

    _launches = {}
    _launch = _kernel.FakeCUDAKernel.__call__

    def _describe(arg):
        """An argument as the GPU's dispatcher types it: arrays by dtype, dimensions and layout."""
        if isinstance(arg, (FakeCUDAArray, np.ndarray)):
            arr = arg._ary if isinstance(arg, FakeCUDAArray) else arg
            layout = "C" if arr.flags.c_contiguous else "F" if arr.flags.f_contiguous else "A"
            return ["device" if isinstance(arg, FakeCUDAArray) else "host", arr.dtype.str, arr.ndim, layout]
        return ["scalar", str(numba.typeof(arg))]

    def _recording_launch(self, *args):
        if not (self._device or _kernel._get_kernel_context()):  # a launch, not a device call in a kernel
            key = json.dumps([self.fn.__module__, self.fn.__qualname__, [_describe(a) for a in args]])
            _launches[key] = _launches.get(key, 0) + 1
        return _launch(self, *args)

    _kernel.FakeCUDAKernel.__call__ = _recording_launch

    @atexit.register
    def _write_launches():
        with open(os.environ["REFMETRICS_RECORD_LAUNCHES"], "a", encoding="utf-8") as fh:
            for key, count in _launches.items():
                module, name, args = json.loads(key)
                fh.write(json.dumps({"module": module, "kernel": name, "args": args, "launches": count}) + "\n")
