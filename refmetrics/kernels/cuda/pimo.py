"""numba-cuda twins of ``kernels/cpu/pimo.py``: the device side of AUPIMO.

The device does the O(pixels) work and returns integers: the defect pixels of
each image (``image_positives``), the keys of every pixel with a code that says
which buffer it belongs to (``encode_images``; the driver then compacts each
code's keys in order, so an anomalous image's defect keys stay one slice as on
the CPU), and, once the host has found the window of normal scores (from the
device histogram of ``regions.top_histogram`` and the keys ``regions.select_flags``
keeps), where each defect pixel falls among the window thresholds
(``defect_bins``). The host turns those counts into areas with
``cpu.pimo.aupimo_areas``, so the results are bit-identical to the CPU's.

Kernels never validate and never raise: NaN scores and bad labels are counted
for the driver to report.
"""

import numpy as np
from numba import cuda

from ..cpu import pimo as C
from ._jit import device, kernel
from .keys import is_nan as _is_nan
from .keys import score_key as _key

NORMAL, DEFECT, OTHER, NAN = 0, 1, 2, 3  # codes written by encode_images

# the binary searches, compiled from the CPU kernels' own Python source (one definition)
_count_le = device(C._count_le.py_func)
_count_lt = device(C._count_lt.py_func)


@kernel
def image_positives(target, n_per, counts, bad):
    """One block per image: ``counts[b]`` += its defect pixels (label 1); ``bad[0]`` += labels outside
    {0, 1}. Each thread counts a strided share of the image, then adds its count with one atomic
    (integer atomics: the total does not depend on their order)."""
    b = cuda.blockIdx.x
    base = np.int64(b) * n_per
    pos = np.int64(0)
    nbad = np.int64(0)
    j = np.int64(cuda.threadIdx.x)
    while j < n_per:
        t = target[base + j]
        if t == 1:
            pos += 1
        elif t != 0:
            nbad += 1
        j += cuda.blockDim.x
    if pos:
        cuda.atomic.add(counts, b, pos)
    if nbad:
        cuda.atomic.add(bad, 0, nbad)


@kernel
def encode_images(bits, target, n_per, positives, consts, keys, codes, counts):
    """Keys of float bits and codes: 0 pixel of a normal image, 1 defect pixel of an anomalous
    image, 2 other pixel of an anomalous image, 3 NaN score (counted into ``counts[0]``: one
    atomic per NaN, an error the driver reports)."""
    i = cuda.grid(1)
    if i >= bits.size:
        return
    x = bits[i]
    if _is_nan(x, consts[1], consts[2]):
        codes[i] = NAN
        keys[i] = consts[3]
        cuda.atomic.add(counts, 0, 1)
        return
    keys[i] = _key(x, consts[0], consts[3])
    if positives[i // n_per] == 0:
        codes[i] = NORMAL
    elif target[i] == 1:
        codes[i] = DEFECT
    else:
        codes[i] = OTHER


@kernel
def defect_bins(defect, offsets, window, at_le, at_lt):
    """One thread per defect key: its image ``r`` (the slice of ``offsets`` it falls in) and the
    number of window thresholds (ascending) ``<=`` and ``<`` it, counted into ``at_le[r, .]`` and
    ``at_lt[r, .]`` (as ``cpu.pimo.defect_bins``; integer atomics, order-free)."""
    i = cuda.grid(1)
    if i >= defect.size:
        return
    r = _count_le(offsets, np.int64(i)) - 1  # offsets[0] = 0 <= i: the last image starting at or before i
    k = defect[i]
    cuda.atomic.add(at_le, (r, _count_le(window, k)), np.int64(1))
    cuda.atomic.add(at_lt, (r, _count_lt(window, k)), np.int64(1))
