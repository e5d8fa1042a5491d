"""The warp intrinsics the kernels use, for the numba-cuda simulator (``NUMBA_ENABLE_CUDASIM=1``).

The simulator runs every CUDA thread as a Python thread and has no warp-level primitives:
``cuda.match_any_sync`` is missing. This module adds it to the simulator's ``cuda`` module,
implemented as a block-wide exchange: every thread posts its value, the block synchronises,
each thread reads its warp's values (lanes are ``thread_id % 32``, as ``cuda.laneid`` is
there), and the block synchronises again. A real GPU needs only the lanes named in ``mask``
to reach the call; this model needs every live thread of the block to reach it, so the
kernels call it in block-uniform control flow (no thread skips it), which also keeps them
correct on the hardware. Nothing here runs outside the simulator.
"""

import threading

import numpy as np

_lock = threading.Lock()
_MISSING = object()


def _match_any_sync(self, mask, value):
    """``cuda.match_any_sync``: the lanes of ``mask`` in the caller's warp whose ``value`` equals
    the caller's, as a uint32 bit mask."""
    thread = threading.current_thread()
    manager = thread._manager
    with _lock:
        posted = manager.__dict__.setdefault("_refmetrics_match_any", {})
        posted[thread.thread_id] = value
    thread.syncthreads()
    first = thread.thread_id - thread.thread_id % 32
    mask = int(mask)
    peers = 0
    for lane in range(32):
        if mask >> lane & 1 and posted.get(first + lane, _MISSING) == value:
            peers |= 1 << lane
    thread.syncthreads()
    with _lock:
        del posted[thread.thread_id]  # threads that exit never leave a stale value behind
    return np.uint32(peers)


def install():
    """Add the missing intrinsics to the simulator's ``cuda`` module (idempotent)."""
    from numba.cuda.simulator import kernelapi

    if not hasattr(kernelapi.FakeCUDAModule, "match_any_sync"):
        kernelapi.FakeCUDAModule.match_any_sync = _match_any_sync
