"""numba-cuda kernels, the twins of :mod:`refmetrics.kernels.cpu` (same file names).

``backend="cuda"`` (or device inputs with ``backend="auto"``) runs them when
numba-cuda is installed and a device is usable (``refmetrics.cuda_available()``);
otherwise the public functions raise ``BackendUnavailableError`` saying what to
install or do. ``_driver.py`` launches them (allocation, launch shapes, scans,
radix sorts, groups). The kernels compile on first launch and are cached; under
``NUMBA_ENABLE_CUDASIM=1`` they run in the numba-cuda simulator, which is how
the test suite runs them without a GPU (``tests/test_cuda_sim.py``).
"""
