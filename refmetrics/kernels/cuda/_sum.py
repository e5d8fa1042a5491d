"""Device twins of ``kernels/cpu/_sum.py``: error-free transformations and compensated sums.

The CPU versions are ``@njit`` functions; these are the same algorithms as
``cuda.jit(device=True)`` functions built from the CPU functions' Python source,
so the arithmetic is written once. Only ``neumaier`` is used on the device
today (AnomalyScoreDistribution); the region and ranking areas are summed on
the host from the device's integer counts.
"""

from ..cpu import _sum as C
from ._jit import device

neumaier = device(C.neumaier.py_func)
