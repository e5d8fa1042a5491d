"""Array intake: NumPy, ``__array__``, DLPack and ``__cuda_array_interface__``.

Everything a public function receives passes through :func:`host_array` (after
:func:`resolve_backend` has chosen where to compute). torch is never imported:
a CPU tensor is read through DLPack (zero copy) or ``__array__``.
"""

import numpy as np

from . import _validation as V

BACKENDS = ("auto", "cpu", "cuda")


def is_device_array(obj):
    """True for objects that live on a CUDA device (CuPy, torch CUDA, numba)."""
    return hasattr(obj, "__cuda_array_interface__")


def cuda_available():
    """Whether a CUDA device can be used through numba-cuda (no device is initialised otherwise).

    True under ``NUMBA_ENABLE_CUDASIM=1`` (the simulator). The CUDA kernels
    themselves are not part of this version: see :func:`resolve_backend`.
    """
    try:
        from numba import cuda
    except Exception:  # noqa: BLE001 - numba-cuda missing or broken: no CUDA
        return False
    try:
        return bool(cuda.is_available())
    except Exception:  # noqa: BLE001 - driver errors mean no usable device
        return False


def resolve_backend(backend, *arrays):
    """The backend that will run: ``"cpu"`` (the CUDA kernels are not built yet).

    ``auto`` follows the data: device arrays would select CUDA. Explicit
    ``cuda`` and device inputs raise a clear error until the CUDA kernels exist.
    """
    V.check_choice("backend", backend, BACKENDS)
    on_device = [a for a in arrays if a is not None and is_device_array(a)]
    if backend == "cuda" or (backend == "auto" and on_device):
        reason = ("this version of refmetrics has no CUDA kernels yet" if cuda_available() else
                  "no CUDA device is usable here (it needs a GPU and numba-cuda: pip install 'refmetrics[cuda]'), "
                  "and this version of refmetrics has no CUDA kernels yet")
        raise V.BackendUnavailableError(
            "backend='cuda' was requested"
            + (" (an input exposes __cuda_array_interface__)" if backend == "auto" else "")
            + f", but {reason}; copy the data to the host (e.g. tensor.cpu()) and use backend='cpu'"
        )
    if on_device:
        raise V.BackendUnavailableError(
            "backend='cpu' was requested but an input lives on a CUDA device "
            "(it exposes __cuda_array_interface__); copy it to the host first, e.g. tensor.cpu()"
        )
    return "cpu"


def host_array(obj, name):
    """``obj`` as a NumPy array without copying where possible.

    Accepts NumPy arrays, objects implementing DLPack or ``__array__`` (a CPU
    torch tensor), Python scalars and sequences.
    """
    if isinstance(obj, np.ndarray):
        arr = obj
    elif obj is None:
        raise TypeError(f"{name}: expected an array of numbers, received None")
    elif hasattr(obj, "__dlpack__") and not isinstance(obj, (list, tuple)):
        try:
            arr = np.from_dlpack(obj)
        except (BufferError, TypeError, RuntimeError, ValueError) as exc:
            if hasattr(obj, "__array__"):
                try:
                    arr = np.asarray(obj)
                except Exception as exc2:  # noqa: BLE001 - re-raised with the argument name
                    raise TypeError(f"{name}: could not read the {type(obj).__name__} as an array "
                                    f"({exc2}); for a torch tensor pass tensor.detach().cpu(), and convert "
                                    f"dtypes NumPy lacks (bfloat16) with .float()") from exc2
            else:
                raise TypeError(f"{name}: could not read the {type(obj).__name__} through DLPack "
                                f"({exc}); for a torch tensor pass tensor.detach().cpu(), and convert "
                                f"dtypes NumPy lacks (bfloat16) with .float()") from exc
    else:
        try:
            arr = np.asarray(obj)
        except Exception as exc:  # noqa: BLE001 - re-raised with the argument name
            raise TypeError(f"{name}: expected an array of numbers, received {type(obj).__name__} "
                            f"({exc})") from exc
    V.check_numeric_dtype(name, arr)
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


# Scores are computed on their exact values. Every accepted dtype maps to the
# narrowest float that holds all its values exactly.
_EXACT_IN_FLOAT32 = {np.dtype(t) for t in (np.bool_, np.int8, np.uint8, np.int16, np.uint16,
                                         np.float16, np.float32)}
_EXACT_IN_FLOAT64 = {np.dtype(t) for t in (np.int32, np.uint32, np.float64)}


def exact_scores(arr, name):
    """Scores as a flat contiguous float32 or float64 array with the same values.

    int64/uint64 scores are accepted while every value is within +-2**53 (and so
    exactly representable); beyond that a ValueError says so.
    """
    dt = arr.dtype
    if dt in _EXACT_IN_FLOAT32:
        out = arr if dt == np.float32 else arr.astype(np.float32)
    elif dt in _EXACT_IN_FLOAT64:
        out = arr if dt == np.float64 else arr.astype(np.float64)
    elif dt.kind in "iu":
        V.check_integer_scores_exact(name, arr)
        out = arr.astype(np.float64)
    else:
        raise TypeError(f"{name}: expected float16/32/64, integer or bool scores, received dtype {dt}")
    return np.ascontiguousarray(out).reshape(-1)


def labels(arr):
    """Labels as a flat contiguous array the kernels read (bool viewed as uint8)."""
    if arr.dtype == np.bool_:
        arr = arr.view(np.uint8)
    elif arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    return np.ascontiguousarray(arr).reshape(-1)


def ignore_value(labels_, ignore_index):
    """``(has_ignore, value)``: ``ignore_index`` as a scalar of the labels' dtype.

    Kernels and error messages then compare labels with it exactly, in the
    labels' own type. An integer ``ignore_index`` that the integer labels cannot
    hold (255 for int8 labels, 0.5 for any) matches nothing.
    """
    dt = labels_.dtype
    if ignore_index is None:
        return False, dt.type(0)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        value = ignore_index
        if isinstance(value, float) or isinstance(value, np.floating):
            if not float(value).is_integer():
                return False, dt.type(0)
            value = int(value)
        value = int(value)
        if value < info.min or value > info.max:
            return False, dt.type(0)
        return True, dt.type(value)
    with np.errstate(over="ignore"):
        return True, dt.type(ignore_index)
