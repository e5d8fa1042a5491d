"""Device twins of ``kernels/cpu/_sum.py``: error-free transformations and double-double sums.

The CPU versions are ``@njit`` functions; these are the same algorithms as
``cuda.jit(device=True)`` functions, built from the CPU functions' Python
source so the arithmetic is written once.
"""

from numba import cuda

from ..cpu import _sum as C

two_sum = cuda.jit(device=True)(C.two_sum.py_func)
two_prod = cuda.jit(device=True)(C.two_prod.py_func)


@cuda.jit(device=True)
def div_dd(a, b):
    """``a / b`` as a double-double ``(q, r)`` (as ``cpu._sum.div_dd``)."""
    q = a / b
    p, e = two_prod(q, b)
    r = ((a - p) - e) / b
    return q, r


@cuda.jit(device=True)
def add_dd(xh, xl, yh, yl):
    """Double-double sum (as ``cpu._sum.add_dd``)."""
    s, e = two_sum(xh, yh)
    e += xl + yl
    h = s + e
    return h, e - (h - s)
