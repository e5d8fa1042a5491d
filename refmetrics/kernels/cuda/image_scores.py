"""numba-cuda twins of ``kernels/cpu/image_scores.py``: max, top-k mean and pooled max per image.

The per-window and per-image arithmetic is the CPU kernels' own Python source, compiled as device
functions with their helpers rebound to the device twins (:func:`twin`), so it is written once and
gives the same bits: the sums use only additions (no product a compiler could fuse into an FMA)
and one division. The parallel parts are exact by construction: a maximum (any order gives the
same value) and a radix sort of the pixels by (image, value) for the top-k mean, whose sum then
runs sequentially, in increasing order, one thread per image, as on the CPU.
"""

import types

import numpy as np
from numba import cuda

from ..cpu import _sum as C_sum
from ..cpu import image_scores as C
from ._jit import device, kernel
from ._sum import neumaier

MAX_THREADS = 1024  # the shared buffers of row_max: one entry per thread of a block


def twin(cpu_function, **helpers):
    """A device function from ``cpu_function``'s Python source, with the named globals rebound
    (the CPU helpers it calls replaced by their device twins)."""
    py = cpu_function.py_func
    scope = dict(py.__globals__)
    scope.update(helpers)
    return device(types.FunctionType(py.__code__, scope, py.__name__, py.__defaults__, py.__closure__))


_two_sum = device(C_sum.two_sum.py_func)
_add_dd = twin(C_sum.add_dd, two_sum=_two_sum)
_ascending_mean = twin(C.ascending_mean, neumaier=neumaier)
_window_row_sum = twin(C.window_row_sum, neumaier=neumaier, two_sum=_two_sum)
_window_mean = twin(C.window_mean, add_dd=_add_dd)


@kernel
def row_max(values, out, nan):
    """One block per row of the ``(rows, m)`` matrix: ``out[row]`` = its largest value as float64
    (-0.0 read as 0.0), or NaN when the row holds a NaN (each NaN counted into ``nan[0]``).
    The block's threads take strided elements, then a tree reduction in shared memory;
    a maximum is exact, so the order does not matter."""
    hi_buf = cuda.shared.array(MAX_THREADS, np.float64)
    bad_buf = cuda.shared.array(MAX_THREADS, np.int32)
    t = cuda.threadIdx.x
    nt = cuda.blockDim.x
    row = cuda.blockIdx.x
    hi = -np.inf
    bad = 0
    for i in range(t, values.shape[1], nt):
        v = np.float64(values[row, i])
        if v != v:
            bad += 1
        elif v > hi:
            hi = v
    if bad:
        cuda.atomic.add(nan, 0, bad)
    hi_buf[t] = hi
    bad_buf[t] = bad
    cuda.syncthreads()
    step = 1
    while step < nt:
        if t % (2 * step) == 0 and t + step < nt:
            hi_buf[t] = max(hi_buf[t], hi_buf[t + step])
            bad_buf[t] += bad_buf[t + step]
        cuda.syncthreads()
        step *= 2
    if t == 0:
        out[row] = np.nan if bad_buf[0] else hi_buf[0] + 0.0


@kernel
def row_index(row_size, out):
    """``out[i] = i // row_size``: the image of each pixel (the sort key of the top-k mean)."""
    i = cuda.grid(1)
    if i < out.size:
        out[i] = i // row_size


@kernel
def top_k_means(sorted_rows, k, out):
    """One thread per row of ``sorted_rows`` (each row ascending): the CPU's ``ascending_mean``
    of its last ``k`` values."""
    b = cuda.grid(1)
    if b < sorted_rows.shape[0]:
        n = sorted_rows.shape[1]
        out[b] = _ascending_mean(sorted_rows[b], n - k, n)


@kernel
def window_rows(maps, kernel_size, row_hi, row_lo, row_plain):
    """One thread per ``(b, y, x)`` of the ``(B, H, W-kernel+1)`` row sums: the CPU's
    ``window_row_sum``."""
    i = cuda.grid(1)
    ow = row_hi.shape[2]
    h = row_hi.shape[1]
    if i < row_hi.size:
        b = i // (h * ow)
        y = (i // ow) % h
        x = i % ow
        hi, lo, plain = _window_row_sum(maps, b, y, x, kernel_size)
        row_hi[b, y, x] = hi
        row_lo[b, y, x] = lo
        row_plain[b, y, x] = plain


@kernel
def window_means(row_hi, row_lo, row_plain, kernel_size, means):
    """One thread per window: ``means[b, y * ow + x]`` = the CPU's ``window_mean``."""
    i = cuda.grid(1)
    ow = row_hi.shape[2]
    oh = row_hi.shape[1] - kernel_size + 1
    if i < means.size:
        b = i // (oh * ow)
        y = (i // ow) % oh
        x = i % ow
        means[b, y * ow + x] = _window_mean(row_hi, row_lo, row_plain, b, y, x, kernel_size)


# ---------------------------------------------------------------------------
# launcher
# ---------------------------------------------------------------------------

def _row_max(d_rows):
    """``(host maxima, NaN count)`` of a ``(rows, m)`` device matrix: one block per row."""
    from . import _driver as D
    from . import ranking as K

    rows = d_rows.shape[0]
    out = cuda.device_array(rows, np.float64)
    nan = D.zeros(1, np.int64)
    row_max[rows, min(K.THREADS, MAX_THREADS)](d_rows, out, nan)
    return out.copy_to_host(), int(nan.copy_to_host()[0])


def _top_k(d_flat, b, n, count):
    """The top-k means: pixels sorted by (image, value) with the device radix sort (keys: the image;
    payload: the value's order-preserving key), decoded, then one thread per image."""
    from . import _driver as D
    from . import ranking as K

    kd = D.KEY_OF[d_flat.dtype]
    keys = cuda.device_array(d_flat.size, kd)
    K.encode_plain[D.grid(d_flat.size)](d_flat.view(kd), D.consts(kd), keys)
    rows = cuda.device_array(d_flat.size, np.uint32)
    row_index[D.grid(d_flat.size)](np.uint32(n), rows)
    _, keys = D.radix_sort(rows, keys, payload_bits=8 * kd.itemsize)
    bits = cuda.device_array(d_flat.size, kd)
    K.decode_bits[D.grid(d_flat.size)](keys, D.consts(kd), bits)
    out = cuda.device_array(b, np.float64)
    top_k_means[D.grid(b)](bits.view(d_flat.dtype).reshape(b, n), np.int64(count), out)
    return out.copy_to_host()


def _pooled(d_flat, b, h, w, kernel_size):
    """``(host pooled maxima, number of NaN window means)``."""
    from . import _driver as D

    ow, oh = w - kernel_size + 1, h - kernel_size + 1
    maps = d_flat.reshape(b, h, w)
    row_hi = cuda.device_array((b, h, ow), np.float64)
    row_lo = cuda.device_array((b, h, ow), np.float64)
    row_plain = cuda.device_array((b, h, ow), np.float64)
    window_rows[D.grid(row_hi.size)](maps, np.int64(kernel_size), row_hi, row_lo, row_plain)
    means = cuda.device_array((b, oh * ow), np.float64)
    window_means[D.grid(means.size)](row_hi, row_lo, row_plain, np.int64(kernel_size), means)
    return _row_max(means)


def image_scores(d_flat, b, h, w, reduce, count, kernel_size):
    """``(host float64 scores, n_nan of the input, n_undefined)`` of flat float32/float64 device maps."""
    from . import _driver as D

    @D._quiet
    def run():
        maxima, n_nan = _row_max(d_flat.reshape(b, h * w))
        if n_nan or reduce == "max":
            return maxima, n_nan, 0
        if reduce == "top_k_mean":
            return _top_k(d_flat, b, h * w, count), 0, 0
        means, n_undefined = _pooled(d_flat, b, h, w, kernel_size)
        return means, 0, n_undefined

    return run()
