"""Device twins of ``kernels/cpu/keys.py``: the score-to-key map and its inverse.

Compiled from the CPU functions' own Python source (as ``kernels/cuda/_sum.py``),
so the map is written once for both backends.
"""

from ..cpu import keys as C
from ._jit import device

score_key = device(C.score_key.py_func)
key_bits = device(C.key_bits.py_func)
is_nan = device(C.is_nan_bits.py_func)
