"""numba-cuda twin of ``kernels/cpu/threshold.py``: F1Score's confusion counts."""

import numpy as np
from numba import cuda

from ._jit import kernel


@kernel
def confusion_counts(preds, target, has_ignore, ignore, cut, row_size, out, bad):
    """``out[row] += [tp, fp, fn]`` of ``pred >= cut`` (integer atomics).

    The driver turns the CPU's rule (``pred > threshold``, after a float64 sigmoid
    when asked) into the single float64 ``cut`` with the same outcome for every
    pred, found on the host with the CPU's own sigmoid, so no device ``exp``
    (which may differ from the host's in the last bit) decides a count.
    ``row = i // row_size``; ``bad[0]`` counts labels not in {0, 1}.
    """
    i = cuda.grid(1)
    if i >= preds.size:
        return
    t = target[i]
    if has_ignore and t == ignore:
        return
    r = i // row_size
    positive = np.float64(preds[i]) >= cut
    if t == 1:
        if positive:
            cuda.atomic.add(out, (r, 0), 1)
        else:
            cuda.atomic.add(out, (r, 2), 1)
    elif t == 0:
        if positive:
            cuda.atomic.add(out, (r, 1), 1)
    else:
        cuda.atomic.add(bad, 0, 1)
