"""numba-cuda kernels, the twins of :mod:`refmetrics.kernels.cpu` (same file names).

``backend="cuda"`` (or device inputs with ``backend="auto"``) runs them when
numba-cuda is installed and a device is usable (``refmetrics.cuda_available()``);
otherwise the public functions raise ``BackendUnavailableError`` saying what to
install or do. ``_driver.py`` launches them (allocation, launch shapes, scans,
radix sorts, groups). The kernels compile on first launch and are cached; under
``NUMBA_ENABLE_CUDASIM=1`` they run in the numba-cuda simulator, which is how
the test suite runs them without a GPU (``tests/test_cuda_sim.py``).
"""

import numpy as np

# numba-cuda (0.30.4 and earlier) registers its CUDA overload of ``np.vstack`` for ``np.row_stack`` too, by
# attribute, when its array support loads at the first compile; NumPy 2.5 removed ``row_stack`` (an alias
# of ``vstack``, deprecated since 2.0), so that first compile fails with "module 'numpy' has no attribute
# 'row_stack'" and no kernel runs. Seen on the first real-GPU run (NumPy 2.5.2, numba-cuda 0.30.4).
# Restoring the alias, as NumPy itself defined it, lets numba-cuda load; nothing in refmetrics uses it.
if not hasattr(np, "row_stack"):  # pragma: no cover - NumPy >= 2.5
    np.row_stack = np.vstack
