"""Array intake: NumPy, ``__array__``, DLPack and ``__cuda_array_interface__``.

A public function first asks :func:`resolve_backend` where to compute
(``"cpu"`` or ``"cuda"``: ``auto`` follows the data), then reads each input
with :func:`array_on` for that backend:

- ``"cpu"``: :func:`host_array`, a NumPy array without a copy where possible
  (NumPy, DLPack, ``__array__``, Python sequences), then :func:`exact_scores`
  (the narrowest float that holds every score exactly) and :func:`labels`;
- ``"cuda"``: :func:`device_array`, a numba device array read in place from
  ``__cuda_array_interface__`` (CuPy, torch CUDA, numba) or copied to the
  device once from host data, then the device twins :func:`device_scores` and
  :func:`device_labels`.

Masks that are labelled into regions go to the host with :func:`to_host`, and
:func:`ignore_value` casts ``ignore_index`` to the labels' own dtype. torch is
never imported: a CPU tensor is read through DLPack (zero copy) or
``__array__``.
"""

import sys

import numpy as np

from . import _validation as V

BACKENDS = ("auto", "cpu", "cuda")


def _is_numba_device_array(obj):
    """A numba device array (its simulator twin has no ``__cuda_array_interface__``)."""
    module = type(obj).__module__
    return module.startswith(("numba.cuda", "numba_cuda")) and hasattr(obj, "copy_to_host")


def _detached(obj):
    """``obj.detach()`` for a tensor that requires grad (torch refuses to export those through
    DLPack, ``__array__`` or ``__cuda_array_interface__``); the detached tensor shares the
    memory. Anything else is returned as it is."""
    if getattr(obj, "requires_grad", False) is True and callable(getattr(obj, "detach", None)):
        return obj.detach()
    return obj


def is_device_array(obj):
    """True for objects that live on a CUDA device (CuPy, torch CUDA, numba)."""
    obj = _detached(obj)
    return hasattr(obj, "__cuda_array_interface__") or _is_numba_device_array(obj)


def cuda_available():
    """Whether a CUDA device can be used through numba-cuda (nothing is initialised otherwise).

    True under ``NUMBA_ENABLE_CUDASIM=1`` (the numba-cuda simulator).
    """
    return cuda_unavailable_reason() is None


def cuda_unavailable_reason():
    """``None`` when a CUDA device is usable, else why not, in words (for error messages and the tests:
    a broken numba-cuda must say so, not pass for a machine without a GPU)."""
    import importlib.metadata

    try:
        importlib.metadata.version("numba-cuda")
    except importlib.metadata.PackageNotFoundError:  # numba's own, deprecated CUDA target is not used
        return "numba-cuda is not installed"
    try:
        from numba import cuda
    except Exception as exc:  # noqa: BLE001 - numba-cuda broken
        return f"numba-cuda is not installed or failed to import ({_one_line(exc)})"
    try:
        if cuda.is_available():
            return _nvvm_missing()
    except Exception as exc:  # noqa: BLE001 - driver errors mean no usable device
        return f"the CUDA driver could not be initialised ({_one_line(exc)})"
    try:
        from numba.cuda.cudadrv.driver import driver

        error = getattr(driver, "initialization_error", None)
    except Exception as exc:  # noqa: BLE001 - only for the message
        error = exc
    return "numba-cuda found no usable CUDA device" + (f" ({_one_line(error)})" if error else "")


def _nvvm_missing():
    """``None`` when numba-cuda can load NVVM, the compiler of every kernel, else why not. A driver
    without NVVM passes ``cuda.is_available()`` and would fail at the first kernel instead."""
    import numba

    if numba.config.ENABLE_CUDASIM:  # the simulator compiles nothing
        return None
    try:
        from numba.cuda.cudadrv import nvvm

        nvvm.NVVM()
    except Exception as exc:  # noqa: BLE001 - a missing or broken libNVVM
        return (f"a GPU is present but numba-cuda cannot load NVVM, its compiler ({_one_line(exc)}): install "
                f"numba-cuda with the extra of the driver's CUDA version, e.g. pip install 'numba-cuda[cu12]'")
    return None


def _one_line(error):
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if isinstance(error, BaseException) else text


def resolve_backend(backend, *arrays):
    """The backend that will run, ``"cpu"`` or ``"cuda"``.

    ``auto`` follows the data: any input exposing ``__cuda_array_interface__``
    selects CUDA. ``cuda`` moves host inputs to the device. A clear
    :class:`BackendUnavailableError` is raised when CUDA is needed but no device
    (or no numba-cuda) is usable, and when ``cpu`` is asked for device data.
    """
    V.check_choice("backend", backend, BACKENDS)
    on_device = any(a is not None and is_device_array(a) for a in arrays)
    if backend == "cpu":
        if on_device:
            raise V.BackendUnavailableError(
                "backend='cpu' was requested but an input lives on a CUDA device "
                "(it exposes __cuda_array_interface__); use backend='cuda' or 'auto', or copy it to the host "
                "first, e.g. tensor.cpu()")
        return "cpu"
    if backend == "cuda" or on_device:
        reason = cuda_unavailable_reason()
        if reason is not None:
            raise V.BackendUnavailableError(
                "backend='cuda' was requested"
                + (" (an input exposes __cuda_array_interface__)" if backend == "auto" else "")
                + ", but no CUDA device is usable here: it needs an NVIDIA GPU with its driver and numba-cuda "
                  f"(pip install 'refmetrics[cuda]'); here {reason}. Use backend='cpu' with host data "
                  "(e.g. tensor.cpu())")
        return "cuda"
    return "cpu"


def device_array(obj, name):
    """``obj`` as a numba device array, without a copy when it already lives on the device.

    Host inputs (NumPy, ``__array__``, DLPack) are validated as by
    :func:`host_array` and copied to the device once.
    """
    from numba import cuda

    obj = _detached(obj)
    if _is_numba_device_array(obj):
        arr = obj
    elif hasattr(obj, "__cuda_array_interface__"):
        _check_same_device(obj, name, cuda)
        try:
            arr = cuda.as_cuda_array(obj)
        except Exception as exc:  # noqa: BLE001 - re-raised with the argument name
            raise TypeError(f"{name}: could not read the {type(obj).__name__} through "
                            f"__cuda_array_interface__ ({exc}); for a torch tensor pass tensor.detach()") from exc
        _wait_for_torch(obj)
    else:
        arr = cuda.to_device(np.ascontiguousarray(host_array(obj, name)))
    V.check_numeric_dtype(name, arr)
    if arr.size and not arr.is_c_contiguous():
        from .kernels.cuda import _driver as D

        arr = D.contiguous(arr)  # a strided view (x[::2], a transpose): one copy on the device
    return arr


def _wait_for_torch(obj):
    """Wait until torch's work on a CUDA tensor is done before the kernels read it.

    torch exports ``__cuda_array_interface__`` version 2, which names no stream, so numba cannot
    synchronise by itself (it does for CuPy, whose interface names one). The kernels run on
    numba's default stream; a tensor written on a torch side stream (``torch.cuda.stream(s)``,
    created non-blocking) could be read before it is ready. So the current torch stream of the
    tensor's device is synchronised first. torch is never imported here: a torch tensor means
    torch is already loaded.
    """
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(obj, torch.Tensor):
        return
    if "stream" in obj.__cuda_array_interface__:  # a torch that names its stream: numba synchronises
        return
    torch.cuda.current_stream(obj.device).synchronize()


def _check_same_device(obj, name, cuda):
    """Device inputs must live on numba's current device, where the kernels run."""
    device = getattr(obj, "device", None)
    index = getattr(device, "index", None)  # torch
    if index is None:
        index = getattr(device, "id", None)  # CuPy
    if isinstance(index, int):
        current = getattr(cuda.get_current_device(), "id", 0)
        if index != current:
            raise V.BackendUnavailableError(
                f"{name}: the array is on CUDA device {index} but refmetrics runs on numba's current device "
                f"{current}; call numba.cuda.select_device({index}) first, or move the data")


def array_on(where, obj, name):
    """``obj`` read for the backend that runs: :func:`device_array` or :func:`host_array`."""
    return device_array(obj, name) if where == "cuda" else host_array(obj, name)


def to_host(obj, name):
    """``obj`` as a host NumPy array: device arrays are copied to the host (masks, which
    are labelled on the host); anything else goes through :func:`host_array`."""
    if is_device_array(obj):
        return host_array(device_array(obj, name).copy_to_host(), name)
    return host_array(obj, name)


def device_scores(arr, name):
    """Device scores as a flat float32 or float64 device array with the same values
    (the device twin of :func:`exact_scores`)."""
    from .kernels.cuda import _driver as D

    flat = arr.reshape(arr.size)
    dt = arr.dtype
    if dt in (np.float32, np.float64):
        return flat
    if dt in _EXACT_IN_FLOAT32:
        return D.to_float(flat, np.float32)[0]
    if dt in _EXACT_IN_FLOAT64 or dt.kind in "iu":
        out, n_inexact = D.to_float(flat, np.float64)
        if n_inexact:  # the error path only: the values go to the host for the CPU's message
            V.check_integer_scores_exact(name, flat.copy_to_host())
        return out
    raise TypeError(f"{name}: expected float16/32/64, integer or bool scores, received dtype {dt}")


def device_labels(arr):
    """Device labels as a flat array the kernels read (bool viewed as uint8, float16 as float32)."""
    from .kernels.cuda import _driver as D

    flat = arr.reshape(arr.size)
    if arr.dtype == np.bool_:
        return flat.view(np.uint8)
    if arr.dtype == np.float16:
        return D.to_float(flat, np.float32)[0]
    return flat


def host_array(obj, name):
    """``obj`` as a NumPy array without copying where possible.

    Accepts NumPy arrays, objects implementing DLPack or ``__array__`` (a CPU
    torch tensor, also one that requires grad), Python scalars and sequences.
    ``numpy.ma`` masked arrays are a TypeError.
    """
    obj = _detached(obj)
    _refuse_masked(obj, name)
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


def _refuse_masked(obj, name):
    if isinstance(obj, np.ma.MaskedArray):
        raise TypeError(f"{name}: expected an array, received a numpy.ma masked array; refmetrics cannot know "
                        f"what its mask means: pass ignore_index (set the masked elements of target to it) or "
                        f"drop the masked elements (e.g. keep = ~np.ma.getmaskarray(x); preds[keep], "
                        f"target[keep])")


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
