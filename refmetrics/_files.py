"""Reading anomaly maps and masks from files, for ``refmetrics evaluate``.

Maps: ``.npy`` (any real dtype), ``.tif``/``.tiff`` (tifffile) and ``.png``
(8/16-bit grey, read as integers); size-1 axes are dropped and a map must then
be 2-D. Masks: ``.png`` (or any of those formats), binarised as ``value > 0``
(MVTec masks are 0/255). Every error names the file. Headers are read without
the pixels (shape and dtype), so a dataset is checked before anything is
computed. pillow and tifffile come with scikit-image.
"""

from pathlib import Path

import numpy as np

MAP_SUFFIXES = (".tiff", ".tif", ".npy", ".png")


class InputError(ValueError):
    """A problem with an input file or the dataset layout; the message names the file."""


def _squeezed(shape):
    """Drop size-1 axes at either end while more than two axes are left: (1,H,W), (H,W,1) -> (H,W)."""
    shape = tuple(shape)
    while len(shape) > 2 and shape[0] == 1:
        shape = shape[1:]
    while len(shape) > 2 and shape[-1] == 1:
        shape = shape[:-1]
    return shape


def header(path):
    """``(shape, dtype)`` of an image file without reading its pixels."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
            return tuple(arr.shape), arr.dtype
        if suffix in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tf:
                series = tf.series[0]
                return tuple(series.shape), np.dtype(series.dtype)
        if suffix == ".png":
            from PIL import Image

            with Image.open(path) as im:
                w, h = im.size
                bands = len(im.getbands())
                dtype = np.dtype(np.uint16) if im.mode.startswith("I;16") or im.mode == "I" else np.dtype(np.uint8)
                return ((h, w) if bands == 1 else (h, w, bands)), dtype
    except Exception as exc:  # noqa: BLE001 - any reader failure is reported with the file's name
        raise InputError(f"{path}: could not read the file ({type(exc).__name__}: {exc})") from exc
    raise InputError(f"{path}: unsupported file type {suffix!r}; expected one of {', '.join(MAP_SUFFIXES)}")


def _read(path):
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix in (".tif", ".tiff"):
            import tifffile

            return tifffile.imread(path)
        if suffix == ".png":
            from PIL import Image

            with Image.open(path) as im:
                return np.asarray(im)
    except Exception as exc:  # noqa: BLE001 - any reader failure is reported with the file's name
        raise InputError(f"{path}: could not read the file ({type(exc).__name__}: {exc})") from exc
    raise InputError(f"{path}: unsupported file type {suffix!r}; expected one of {', '.join(MAP_SUFFIXES)}")


def map_shape(path, shape):
    """The 2-D shape of a map from its header shape, or an error naming the file."""
    squeezed = _squeezed(shape)
    if len(squeezed) != 2:
        raise InputError(f"{path}: expected a single-channel 2-D anomaly map, received shape {tuple(shape)}")
    if 0 in squeezed:
        raise InputError(f"{path}: the anomaly map is empty (shape {tuple(shape)})")
    return squeezed


def mask_shape(path, shape):
    """The 2-D shape of a mask (grey+alpha and colour masks: see :func:`read_mask`)."""
    squeezed = _squeezed(shape)
    if len(squeezed) == 3 and squeezed[-1] in (2, 3, 4):
        squeezed = squeezed[:2]
    if len(squeezed) != 2:
        raise InputError(f"{path}: expected a 2-D mask, received shape {tuple(shape)}")
    return squeezed


def read_map(path):
    """A map as a 2-D array of its own dtype (values exactly as stored); NaN, and integers
    beyond +-2**53 (not exact in float64), rejected."""
    arr = _read(path)
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{path}: expected real anomaly scores, received dtype {arr.dtype}")
    arr = arr.reshape(map_shape(path, arr.shape))
    if arr.dtype.kind == "f":
        n_nan = int(np.count_nonzero(np.isnan(arr)))
        if n_nan:
            raise InputError(f"{path}: the anomaly map holds {n_nan:,} NaN value{'s' if n_nan != 1 else ''}")
    elif arr.dtype.kind in "iu" and arr.dtype.itemsize == 8:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < -(2 ** 53) or hi > 2 ** 53:
            raise InputError(f"{path}: integer scores must lie within +-2**53 to be handled exactly, "
                             f"received values from {lo} to {hi}")
    return arr


def read_mask(path, above=0):
    """A mask as a 2-D bool array: ``value > above`` (0: any non-zero value; Real-IAD's rule is 127); a
    colour mask is defective where any colour channel is, a grey+alpha mask where its grey channel is
    (alpha is ignored), a palette PNG where its colour is."""
    path = Path(path)
    if path.suffix.lower() == ".png":
        try:
            from PIL import Image

            with Image.open(path) as im:
                arr = np.asarray(im.convert("RGB") if im.mode == "P" else im)
        except Exception as exc:  # noqa: BLE001 - any reader failure is reported with the file's name
            raise InputError(f"{path}: could not read the file ({type(exc).__name__}: {exc})") from exc
    else:
        arr = _read(path)
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{path}: expected a mask of numbers, received dtype {arr.dtype}")
    arr = arr.reshape(_squeezed(arr.shape))
    if arr.ndim == 3 and arr.shape[-1] == 2:
        arr = arr[..., 0]
    elif arr.ndim == 3 and arr.shape[-1] in (3, 4):
        arr = (arr[..., :3] > above).any(axis=-1)
    arr = arr.reshape(mask_shape(path, arr.shape))
    return arr > above
