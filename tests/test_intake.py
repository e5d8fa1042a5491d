"""Input handling: array kinds, dtypes, shapes, and the errors users see."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest

import refmetrics as rm
from refmetrics import functional as F

from . import naive

PREDS = np.array([0.1, 0.8, 0.3, 0.9, 0.5, 0.2])
TARGET = np.array([0, 1, 0, 1, 1, 0])
EXPECTED = float(naive.auroc(PREDS, TARGET))


class OnlyDLPack:
    """Exposes DLPack only, as a CPU tensor does (besides ``__array__``)."""

    def __init__(self, arr):
        self._arr = arr

    def __dlpack__(self, *args, **kwargs):
        return self._arr.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self._arr.__dlpack_device__()


class OnlyArray:
    def __init__(self, arr):
        self._arr = arr

    def __array__(self, dtype=None, copy=None):
        return self._arr if dtype is None else self._arr.astype(dtype)


class OnDevice:
    __cuda_array_interface__ = {"shape": (3,), "typestr": "<f4", "data": (0, False), "version": 3}


def test_dlpack_array_interface_and_lists():
    assert F.auroc(OnlyDLPack(PREDS), OnlyDLPack(TARGET)) == EXPECTED
    assert F.auroc(OnlyArray(PREDS), OnlyArray(TARGET)) == EXPECTED
    assert F.auroc(PREDS.tolist(), TARGET.tolist()) == EXPECTED
    assert rm.MinMax()(OnlyDLPack(PREDS)) == (0.1, 0.9)


def test_torch_cpu_tensor_when_installed():
    torch = pytest.importorskip("torch")
    assert F.auroc(torch.tensor(PREDS), torch.tensor(TARGET)) == EXPECTED
    # a tensor that requires grad is read detached (tests/test_api.py checks that nothing is copied)
    assert F.auroc(torch.tensor(PREDS, requires_grad=True), torch.tensor(TARGET)) == EXPECTED


def test_jax_arrays_go_through_the_same_intake():
    # JAX arrays (CPU) expose __array__ and DLPack: every entry point reads them as the NumPy arrays they hold
    jnp = pytest.importorskip("jax.numpy")
    rng = np.random.default_rng(17)
    maps = np.round(rng.random((4, 12, 10)), 2).astype(np.float32)
    masks = rng.random((4, 12, 10)) > 0.8
    masks[0] = False
    jm, jt = jnp.asarray(maps), jnp.asarray(masks)
    assert F.auroc(jnp.asarray(PREDS), jnp.asarray(TARGET)) == EXPECTED
    assert F.auroc(jm.ravel(), jt.ravel()) == F.auroc(maps.ravel(), masks.ravel())
    assert F.aupro(jm, jt, fpr_limit=0.3) == F.aupro(maps, masks, fpr_limit=0.3)
    assert F.f1_max(jm.ravel(), jt.ravel()) == F.f1_max(maps.ravel(), masks.ravel())
    metric = rm.AUPRO(fpr_limit=0.3)
    metric.update(jm[:2], jt[:2])
    metric.update(maps[2:], masks[2:])
    assert metric.compute() == F.aupro(maps, masks, fpr_limit=0.3)
    state = rm.PixelState(n_pixels=maps.size)
    for m, t in zip(jm, jt):
        state.add(m, t)
    state.finish()
    assert state.auroc() == F.auroc(maps.ravel(), masks.ravel())


def test_cupy_arrays_go_through_the_cuda_intake():
    # CuPy arrays expose __cuda_array_interface__: backend "auto" reads them on the device. CuPy needs a CUDA
    # device to create an array, so this runs where one is (the GPU check), and is skipped elsewhere
    cp = pytest.importorskip("cupy")
    try:
        cp.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001 - CuPy raises its own CUDA error types
        pytest.skip(f"CuPy is installed but has no CUDA device: {exc}")
    assert F.auroc(cp.asarray(PREDS), cp.asarray(TARGET)) == EXPECTED
    assert F.auroc(cp.asarray(PREDS), cp.asarray(TARGET), backend="cuda") == EXPECTED


def test_every_dtype_and_non_contiguous():
    for dt in (np.float16, np.float32, np.float64, np.int8, np.uint8, np.int16, np.uint16, np.int32,
               np.uint32, np.int64, np.uint64):
        p = (PREDS * 10).astype(dt)
        assert F.auroc(p, TARGET) == EXPECTED, dt
    for dt in (bool, np.uint8, np.int8, np.int32, np.int64, np.float16, np.float32, np.float64):
        assert F.auroc(PREDS, TARGET.astype(dt)) == EXPECTED, dt
    wide = np.zeros((6, 3))
    wide[:, 1] = PREDS
    assert not wide[:, 1].flags.c_contiguous
    assert F.auroc(wide[:, 1], TARGET[::-1][::-1]) == EXPECTED
    assert F.aupr(PREDS[::-1], TARGET[::-1]) == F.aupr(PREDS, TARGET)


def test_map_and_mask_shapes():
    rng = np.random.default_rng(20261125)
    maps = rng.random((3, 1, 8, 8))
    masks = rng.random((3, 8, 8)) < 0.2
    assert F.auroc(maps, masks) == float(naive.auroc(maps, masks))
    with pytest.raises(ValueError, match=r"preds \(3, 1, 8, 8\) and target \(3, 8, 7\)"):
        F.auroc(maps, masks[:, :, :7])


def test_nan_is_rejected_with_count():
    p = PREDS.copy()
    p[[1, 3]] = np.nan
    for fn in (F.auroc, F.average_precision, F.f1_max, F.f1_score, F.roc_curve):
        with pytest.raises(ValueError, match="preds: expected no NaN values, received 2 NaNs"):
            fn(p, TARGET)
    with pytest.raises(ValueError, match="1 NaN"):
        F.auroc(p.astype(np.float32)[:2], [0, 1])
    with pytest.raises(ValueError, match="NaN"):
        F.auroc(p, TARGET, thresholds=5)
    with pytest.raises(ValueError, match="NaN"):
        F.min_max(p)


def test_non_binary_targets_are_rejected():
    with pytest.raises(ValueError, match=r"received 2 other values \(e.g. 255\).*target > 0"):
        F.auroc(PREDS, [0, 255, 0, 255, 1, 0])
    with pytest.raises(ValueError, match=r"0.5"):
        F.aupr(PREDS, [0, 0.5, 0, 1, 1, 0])
    with pytest.raises(ValueError, match="nan"):
        F.auroc(PREDS, [0, np.nan, 0, 1, 1, 0])
    with pytest.raises(ValueError, match="-1"):
        F.f1_score(PREDS, [0, -1, 0, 1, 1, 0])


def test_bad_arguments():
    with pytest.raises(ValueError, match="preds: expected at least one element"):
        F.auroc([], [])
    with pytest.raises(TypeError, match="preds: expected .* received dtype <U1"):
        F.auroc(["a", "b"], [0, 1])
    with pytest.raises(TypeError, match="complex"):
        F.auroc(np.array([1j, 2]), [0, 1])
    with pytest.raises(TypeError, match="received None"):
        F.auroc(None, [0, 1])
    with pytest.raises(ValueError, match="backend: expected one of 'auto', 'cpu', 'cuda', received 'gpu'"):
        F.auroc(PREDS, TARGET, backend="gpu")
    with pytest.raises(ValueError, match="curve: expected one of 'step', 'trapezoid', received 'area'"):
        F.aupr(PREDS, TARGET, curve="area")
    with pytest.raises(ValueError, match=r"thresholds: expected None, an int in \[2, 16,777,216\]"):
        F.auroc(PREDS, TARGET, thresholds=1)
    with pytest.raises(ValueError, match=r"received 4611686018427387904"):
        F.auroc(PREDS, TARGET, thresholds=2**62)
    for bad in (np.array([True, False]), ["0.5", "0.1"], [10**400, 0.0]):
        with pytest.raises(TypeError, match="thresholds: expected None, an int >= 2 or an array of real"):
            F.auroc(PREDS, TARGET, thresholds=bad)
    with pytest.raises(ValueError, match="threshold: expected a number within the float64 range"):
        F.f1_score(PREDS, TARGET, threshold=10**400)
    with pytest.raises(ValueError, match="default_value: expected a number within the float64 range"):
        rm.ManualThreshold(10**400)
    with pytest.raises(ValueError, match=r"thresholds: expected real thresholds \(\+-inf allowed\), received 1 NaN"):
        F.auroc(PREDS, TARGET, thresholds=[0.1, np.nan])
    with pytest.raises(TypeError, match="ignore_index: expected None or a number, received 'x'"):
        F.auroc(PREDS, TARGET, ignore_index="x")  # 0 and 1 are allowed (issue 10): tests/test_ranking.py
    with pytest.raises(ValueError, match=r"integer scores must lie within \+-2\*\*53"):
        F.auroc(np.array([0, 2**60]), [0, 1])
    with pytest.raises(ValueError, match="multidim_average"):
        F.f1_score(PREDS, TARGET, multidim_average="macro")
    with pytest.raises(TypeError, match="threshold: expected a real number"):
        rm.F1Score(threshold="0.5")
    with pytest.raises(TypeError, match="other: expected a AUROC to merge, received AUPR"):
        rm.AUROC().merge(rm.AUPR())


def test_cuda_without_a_device_is_a_clear_error(monkeypatch):
    from refmetrics import _arrays

    # as on a machine without numba-cuda: the error says what is needed and why it is missing here
    monkeypatch.setattr(_arrays, "cuda_unavailable_reason", lambda: "numba-cuda is not installed or failed to "
                                                                    "import (ModuleNotFoundError: numba.cuda)")
    with pytest.raises(rm.BackendUnavailableError, match=r"needs an NVIDIA GPU with its driver and numba-cuda .*; "
                                                         r"here numba-cuda is not installed or failed to import "
                                                         r"\(ModuleNotFoundError: numba.cuda\)"):
        F.auroc(PREDS, TARGET, backend="cuda")
    assert not rm.cuda_available()
    with pytest.raises(rm.BackendUnavailableError, match=r"\(an input exposes __cuda_array_interface__\)"):
        F.auroc(OnDevice(), TARGET[:3])
    with pytest.raises(rm.BackendUnavailableError, match="copy it to the host"):
        F.auroc(OnDevice(), TARGET[:3], backend="cpu")
    for cls in (rm.AUROC, rm.AUPRO, rm.MinMax):
        with pytest.raises(rm.BackendUnavailableError, match="no CUDA device is usable"):
            cls(backend="cuda")
    for cls in (rm.AUROC, rm.AUPR, rm.BinaryPrecisionRecallCurve, rm.F1AdaptiveThreshold, rm.F1Max,
                rm.F1Score, rm.ManualThreshold, rm.MinMax, rm.AnomalyScoreDistribution):
        assert cls(backend="cpu").backend == "cpu"


def test_a_gpu_without_nvvm_is_a_clear_error(monkeypatch):
    """A driver without libNVVM passes numba's is_available(): say so before any kernel compiles."""
    from numba import cuda
    from numba.cuda.cudadrv import nvvm

    def missing():
        raise RuntimeError("libNVVM cannot be found")

    monkeypatch.setattr(cuda, "is_available", lambda: True)
    monkeypatch.setattr(nvvm, "NVVM", missing)
    assert not rm.cuda_available()
    with pytest.raises(rm.BackendUnavailableError, match=r"here a GPU is present but numba-cuda cannot load NVVM, "
                                                         r"its compiler \(RuntimeError: libNVVM cannot be found\): "
                                                         r"install numba-cuda with the extra"):
        F.auroc(PREDS, TARGET, backend="cuda")
    monkeypatch.setattr(nvvm, "NVVM", lambda: None)
    assert rm.cuda_available()


def test_inputs_are_not_modified():
    p = np.array([0.5, -0.0, 0.2, 0.9], np.float32)
    t = np.array([1, 0, 0, 1], np.uint8)
    before = p.tobytes(), t.tobytes()
    F.auroc(p, t)
    m = rm.AUROC()
    m.update(p, t)
    m.compute()
    assert (p.tobytes(), t.tobytes()) == before


def test_cuda_available_reports_the_simulator_and_its_absence():
    code = "import refmetrics; print(refmetrics.cuda_available())"
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "True"
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    direct = subprocess.run([sys.executable, "-c", "from numba import cuda; print(bool(cuda.is_available()))"],
                            capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == direct.stdout.strip()  # False on a machine without a GPU


def test_import_is_cheap_and_framework_free():
    # what `import refmetrics` loads, not how long it takes (timings belong to benchmarks: this machine is shared)
    heavy = ("torch", "matplotlib", "tqdm", "skimage", "numba.cuda", "PIL", "tifffile", "sklearn", "cupy")
    code = f"import sys; import refmetrics; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_big_endian_arrays():
    for p, t in ((PREDS.astype(">f8"), TARGET), (PREDS, TARGET.astype(">i4")), (PREDS.astype(">f4"),
                                                                                TARGET.astype(">i8"))):
        assert F.auroc(p, t) == EXPECTED
        assert F.f1_score(p, t) == F.f1_score(PREDS, TARGET)
    assert F.min_max(PREDS.astype(">f8")) == (0.1, 0.9)


def test_ignore_index_is_compared_in_the_labels_dtype():
    t = np.array([0, 1, 0.1, 1], np.float32)
    assert F.auroc(PREDS[:4], t, ignore_index=0.1) == float(naive.auroc(PREDS[[0, 1, 3]], [0, 1, 1]))
    big = np.array([0, 1, 2**53 + 1, 1, 0], np.int64)
    with pytest.raises(ValueError, match=r"e.g. 9007199254740993"):
        F.auroc(np.arange(5.0), big, ignore_index=2**53)
    # 255 cannot be an int8 label: it ignores nothing, and -1 is reported as a bad label
    with pytest.raises(ValueError, match=r"\(or ignore_index=255\).*e.g. -1"):
        F.auroc(PREDS[:3], np.array([0, 1, -1], np.int8), ignore_index=255)
    assert F.auroc(PREDS[:3], np.array([0, 1, 1], np.int8), ignore_index=255) == 1.0
    with pytest.warns(rm.UndefinedMetricWarning, match="no samples"):
        assert math.isnan(F.auroc(PREDS, np.full(6, 255), ignore_index=255))
    with pytest.warns(rm.UndefinedMetricWarning, match=r"\(nan, nan\)"):
        thr, f1 = F.f1_adaptive_threshold(PREDS, np.full(6, 255), ignore_index=255)
    assert math.isnan(thr) and math.isnan(f1)
