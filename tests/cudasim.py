"""Set-up for running the CUDA kernels under the numba-cuda simulator (NUMBA_ENABLE_CUDASIM=1).

Imported first by the simulator runs (``tests/test_backends.py`` in a subprocess,
``tox -e cudasim``):

- threads per block, keys per thread and radix digit bits are patched small
  (the simulator reads these module globals when a kernel runs, the GPU when
  it compiles), so that the multi-block scans, the multi-tile radix passes and
  the atomics all run on inputs of a few dozen elements;
- the simulator's shared-array allocation is made thread-safe: it looks an
  allocation up and creates it without a lock, so under a short thread switch
  interval two threads of a block can get two different "shared" arrays (a
  simulator bug, seen as a wrong scan about once in ten runs; not a kernel bug);
- the thread switch interval is shortened: the simulator runs every CUDA thread
  as a Python thread synchronising through events, and the default 5 ms switch
  interval makes that about ten times slower.
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
