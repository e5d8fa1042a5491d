"""How many threads the exact kernels use, and which sort they run inside each key range.

The ranking and region metrics sort their keys in *key ranges* (see
``kernels/cpu/buckets.py``): one pass counts 16-bit key prefixes, the ranges
are cut from that histogram, a second pass scatters the keys into them, and
each range is then sorted in cache. Input slices and ranges are dealt to a
pool of threads running Numba kernels that release the GIL (``nogil``); with
one thread everything runs in the calling thread. Results never depend on the
thread count or on the sort: the ranges are planned from the total histogram
alone, sorted keys are unique, and every sum is exact or kept in one order.

- :func:`set_num_threads`, :func:`get_num_threads`, :func:`threads`: the
  thread count; by default the cores this process may run on
  (``os.sched_getaffinity``), or the environment variable
  ``REFMETRICS_NUM_THREADS``.
- :func:`set_sort`, :func:`get_sort`: ``"radix"`` (Numba LSD radix sort in each
  range), ``"numpy"`` (``np.sort`` in each range) or ``"auto"`` (the default, or
  the environment variable ``REFMETRICS_SORT``): ``np.sort`` where NumPy
  dispatches its AVX-512 sort on this CPU, the radix sort elsewhere (NumPy's
  other sorts are slower than the radix sort).

The pool is one module-level ``ThreadPoolExecutor``, created on first use,
rebuilt when the count changes and dropped in a forked child. Numba's own
threading layer (``parallel=True``) is not used: its settings are global to
the user's process, and some of its layers abort when called from several
Python threads at once.
"""

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

_SORTS = ("auto", "radix", "numpy")
_lock = threading.Lock()
_pool = None
_pool_size = 0
_num_threads = None  # None: not read yet (environment, then the cores)
_sort = None


def _cores():
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def _check_threads(n, what):
    import numbers

    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"{what}: expected a positive integer number of threads, received {n!r}")
    return int(n)


def _from_env_threads():
    value = os.environ.get("REFMETRICS_NUM_THREADS", "").strip()
    if not value:
        return _cores()
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"REFMETRICS_NUM_THREADS: expected a positive integer, received {value!r}") from None
    return _check_threads(n, "REFMETRICS_NUM_THREADS")


def set_num_threads(n):
    """Use ``n`` threads (a positive int) in the exact kernels from now on.

    Parameters
    ----------
    n : int
        The number of threads; 1 runs every kernel in the calling thread.

    Notes
    -----
    Results are bit-identical whatever ``n``. The default is the number of
    cores this process may run on, or ``REFMETRICS_NUM_THREADS``.
    """
    global _num_threads
    _num_threads = _check_threads(n, "n")


def get_num_threads():
    """The number of threads the exact kernels use (an int >= 1)."""
    global _num_threads
    if _num_threads is None:
        _num_threads = _from_env_threads()
    return _num_threads


@contextlib.contextmanager
def threads(n):
    """Context manager: use ``n`` threads inside the ``with`` block, then the previous count again."""
    n = _check_threads(n, "n")
    previous = get_num_threads()
    set_num_threads(n)
    try:
        yield n
    finally:
        set_num_threads(previous)


def _check_sort(name, what):
    if not isinstance(name, str) or name not in _SORTS:
        raise ValueError(f"{what}: expected one of {', '.join(repr(s) for s in _SORTS)}, received {name!r}")
    return name


def set_sort(name):
    """Which sort runs inside each key range: ``"auto"``, ``"radix"`` or ``"numpy"``.

    Parameters
    ----------
    name : {"auto", "radix", "numpy"}
        ``"radix"``: a Numba LSD radix sort; ``"numpy"``: ``np.sort``; ``"auto"``:
        ``np.sort`` where NumPy dispatches its AVX-512 sort on this CPU
        (``X86_V4`` / ``AVX512_SKX`` among the CPU features it found), else the
        radix sort. Results are bit-identical whatever the sort.
    """
    global _sort
    _sort = _check_sort(name, "name")


def get_sort():
    """The sort setting: ``"auto"``, ``"radix"`` or ``"numpy"`` (see :func:`set_sort`)."""
    global _sort
    if _sort is None:
        value = os.environ.get("REFMETRICS_SORT", "").strip()
        _sort = _check_sort(value, "REFMETRICS_SORT") if value else "auto"
    return _sort


def numpy_has_avx512_sort():
    """Whether NumPy dispatches its AVX-512 sort (x86-simd-sort) on this CPU, as ``np.show_runtime()``
    reports it (``NPY_DISABLE_CPU_FEATURES`` is taken into account)."""
    try:  # NumPy 2.x
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:
        try:  # NumPy 1.x
            from numpy.core._multiarray_umath import __cpu_features__
        except ImportError:
            return False
    import numpy as np

    major, minor = (int(x) for x in np.__version__.split(".")[:2])
    if (major, minor) < (1, 25):  # x86-simd-sort for 32 and 64-bit keys came with NumPy 1.25
        return False
    return bool(__cpu_features__.get("AVX512_SKX") or __cpu_features__.get("X86_V4"))


def use_numpy_sort():
    """Whether the key ranges are sorted with ``np.sort`` (else the radix sort), per :func:`get_sort`."""
    s = get_sort()
    if s == "auto":
        return numpy_has_avx512_sort()
    return s == "numpy"


def pool():
    """The module's thread pool sized :func:`get_num_threads` (created or rebuilt on demand)."""
    global _pool, _pool_size
    n = get_num_threads()
    with _lock:
        if _pool is None or _pool_size != n:
            # the old pool is dropped, not shut down: a thread that took it before the change may still
            # be mapping on it; its idle workers exit when it is garbage-collected
            _pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="refmetrics")
            _pool_size = n
        return _pool


def run(fn, tasks):
    """``[fn(t) for t in tasks]``, in the pool when more than one thread is set (results in task order)."""
    tasks = list(tasks)
    if get_num_threads() == 1 or len(tasks) <= 1:
        return [fn(t) for t in tasks]
    return list(pool().map(fn, tasks))


def _after_fork_in_child():
    # the parent's worker threads do not exist in the child: forget the pool, make a new one on demand
    # (and a new lock: another thread of the parent may have held it at the fork)
    global _pool, _pool_size, _lock
    _pool, _pool_size = None, 0
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
