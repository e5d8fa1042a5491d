"""The score-to-key map: the one definition every metric, backend and driver uses.

Every exact metric orders scores through *order-preserving unsigned keys*:
float32 scores map to uint32 keys and float64 scores to uint64 keys, so that
unsigned key order is the score order (IEEE 754's usual sign-flip trick), with
-0.0 folded onto +0.0 so that equal scores get equal keys. Integer sorts,
counting and comparisons on keys are exact and deterministic.

This module holds the map and its inverse once:

- :func:`score_key` and :func:`key_bits` (Numba, for kernels; the CUDA kernels
  compile their twins from these functions' Python source, see
  ``kernels/cuda/keys.py``), :func:`is_nan_bits`;
- :func:`keys_of`, :func:`decode_keys`, :func:`widen_keys` and
  :func:`threshold_keys` (NumPy, for drivers, on host arrays);
- :func:`key_of` and :func:`value_of` (Python ints, for bisections over the
  float64 order).
"""

import numpy as np
from numba import njit

#: float dtype -> key dtype, and back
KEY_OF = {np.dtype(np.float32): np.dtype(np.uint32), np.dtype(np.float64): np.dtype(np.uint64)}
FLOAT_OF = {v: k for k, v in KEY_OF.items()}


def key_constants(dtype):
    """``[sign bit, magnitude mask, bits of +inf, all ones]`` of the key dtype.

    Typed as the key (uint32 or uint64), so one kernel serves float32 and
    float64 scores and no operation is promoted to a wider or signed type
    (numba types ``~uint32`` as int64).
    """
    if np.dtype(dtype) == np.uint32:
        return np.array([0x80000000, 0x7FFFFFFF, 0x7F800000, 0xFFFFFFFF], dtype=np.uint32)
    return np.array([1 << 63, (1 << 63) - 1, 0x7FF0000000000000, (1 << 64) - 1], dtype=np.uint64)


#: key dtype -> its constants (host arrays, read-only by convention)
CONSTS = {k: key_constants(k) for k in FLOAT_OF}


@njit(cache=True, nogil=True, inline="always")
def is_nan_bits(b, magnitude, inf):
    """Whether float bits ``b`` are a NaN (``magnitude``, ``inf`` from :func:`key_constants`)."""
    return (b & magnitude) > inf


@njit(cache=True, nogil=True, inline="always")
def score_key(b, sign, ones):
    """Order-preserving key of non-NaN float bits ``b``: -0.0 folded onto +0.0,
    negative floats get every bit flipped, positive ones the sign bit set.

    Kernels pass the constants as scalars loaded once, not the array: loads
    inside the loop would not be hoisted past the stores to the outputs.
    """
    if b == sign:
        b = sign ^ sign
    if b & sign:
        k = b ^ ones
    else:
        k = b | sign
    return k


@njit(cache=True, nogil=True, inline="always")
def key_bits(k, sign, ones):
    """Float bits of key ``k``: the inverse of :func:`score_key` (-0.0 comes back as +0.0)."""
    if k & sign:
        b = k ^ sign
    else:
        b = k ^ ones
    return b


def keys_of(values):
    """Keys of a float32 or float64 NumPy array holding no NaN (vectorised :func:`score_key`)."""
    values = np.asarray(values)
    kd = KEY_OF[values.dtype]
    sign, ones = CONSTS[kd][0], CONSTS[kd][3]
    bits = (values + values.dtype.type(0.0)).view(kd)  # -0.0 + 0.0 = +0.0
    return np.where(bits & sign, bits ^ ones, bits | sign).astype(kd, copy=False)


def decode_keys(keys):
    """Scores (float64) of order-preserving keys (vectorised :func:`key_bits`)."""
    keys = np.asarray(keys)
    kd = keys.dtype
    sign, ones = CONSTS[kd][0], CONSTS[kd][3]
    bits = np.where(keys & sign, keys ^ sign, keys ^ ones).astype(kd, copy=False)
    return bits.view(FLOAT_OF[kd]).astype(np.float64)


def widen_keys(keys32):
    """float32 keys re-keyed as float64 keys (exact: float64 holds every float32)."""
    return keys_of(decode_keys(keys32))


def threshold_keys(thresholds, key_dtype):
    """Keys ``k`` such that ``score >= t`` iff ``key(score) >= k``, for float64 thresholds ``t``.

    For float32 scores ``t`` is rounded up to the next float32 when inexact.
    """
    ft = FLOAT_OF[np.dtype(key_dtype)]
    t = np.asarray(thresholds, np.float64).astype(ft)
    if ft == np.float32:
        low = t.astype(np.float64) < thresholds
        t[low] = np.nextafter(t[low], np.float32(np.inf))
    return keys_of(t)


def key_of(x):
    """The float64 key of ``x`` as a Python int (bisections over the float64 order)."""
    return int(keys_of(np.array([x], np.float64))[0])


def value_of(key):
    """The float64 value of a float64 key given as a Python int (the inverse of :func:`key_of`)."""
    return float(decode_keys(np.array([key], np.uint64))[0])
