"""Every metric on every backend, on the same cases.

Backends: ``cpu`` (NumPy in), ``cuda`` (NumPy in, ``backend="cuda"``: copied to
the device once) and ``device`` (numba device arrays in, ``backend="auto"``:
the scores never leave the device). The CUDA ones are parametrised only where
CUDA is usable: on a GPU, or under the numba-cuda simulator, where
``tests/test_cuda_sim.py`` runs this module in a subprocess on every test run.

Each result is checked against the exact oracle (``tests/naive.py``, 1e-12) and,
on the CUDA backends, against the CPU's: results derived from integer counts
(all but AnomalyScoreDistribution, whose logs come from the device's ``log``)
are bit-identical.
"""

import copy
import math
import os
import warnings

import numpy as np
import pytest

import refmetrics as rm
from refmetrics import functional as F

from . import naive
from .checks import close, quiet, same

BACKENDS = ["cpu"] + (["cuda", "device"] if rm.cuda_available() else [])


def on(backend, *arrays):
    """The arrays as the backend takes them, and the ``backend=`` argument."""
    if backend == "device":
        from numba import cuda

        return [cuda.to_device(np.ascontiguousarray(a)) for a in arrays], "auto"
    return list(arrays), backend


def call(backend, fn, *arrays, **kwargs):
    args, where = on(backend, *arrays)
    return fn(*args, backend=where, **kwargs)


def identical(a, b):
    """Bit-identical results: floats, tuples of floats, arrays or tuples of arrays."""
    if isinstance(a, tuple):
        return len(a) == len(b) and all(identical(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and all(same(x, y) for x, y in zip(a.ravel().tolist(),
                                                                                       b.ravel().tolist()))
    return same(float(a), float(b))


# ---------------------------------------------------------------------------
# cases (small: the simulator runs every CUDA thread as a Python thread)
# ---------------------------------------------------------------------------

_rng = np.random.default_rng(20261125)


def _ranking_cases():
    cases = {}
    s = (np.round(_rng.standard_normal(64) * 3) / 4).astype(np.float32)  # many ties
    s[:3] = [np.inf, -np.inf, -0.0]
    s[3] = 0.0
    cases["float32-ties-inf"] = (s, (_rng.random(64) < 0.3).astype(np.uint8), None)
    cases["float64-bool"] = (_rng.standard_normal(48) * 1e-3 + 20.0, _rng.random(48) < 0.5, None)
    t = (_rng.random(60) < 0.4).astype(np.int64)
    t[::7] = -1
    cases["int16-ignore"] = (_rng.integers(-3, 4, 60).astype(np.int16), t, -1)
    big = _rng.integers(-(2 ** 53), 2 ** 53, 40, dtype=np.int64)
    big[:4] = [2 ** 53, 2 ** 53 - 1, -(2 ** 53), 2 ** 53]
    cases["int64-2**53"] = (big, (_rng.random(40) < 0.5).astype(np.float32), None)
    cases["float16"] = (_rng.random(50).astype(np.float16), (_rng.random(50) < 0.3).astype(np.float64), None)
    cases["one-class"] = (_rng.random(20).astype(np.float32), np.zeros(20, np.uint8), None)
    # ignore_index 0 or 1 drops one class before the label check: one class is left
    mixed = (_rng.random(32) < 0.5).astype(np.uint8)
    cases["ignore-zero"] = (np.round(_rng.random(32) * 8).astype(np.float32) / 8, mixed, 0)
    cases["ignore-one"] = (_rng.standard_normal(32), mixed.astype(bool), 1)
    return cases


RANKING = _ranking_cases()


def _oracle_pairs(case):
    preds, target, ignore = RANKING[case]
    return naive.drop_ignored(preds, target, ignore)


# ---------------------------------------------------------------------------
# ranking metrics
# ---------------------------------------------------------------------------

SCALARS = {
    "auroc": (F.auroc, naive.auroc),
    "average_precision": (F.average_precision, naive.average_precision),
    "aupr_trapezoid": (lambda p, t, **kw: F.aupr(p, t, curve="trapezoid", **kw), naive.aupr_trapezoid),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", list(RANKING))
@pytest.mark.parametrize("metric", list(SCALARS))
def test_ranking_scalars(metric, case, backend):
    fn, oracle = SCALARS[metric]
    preds, target, ignore = RANKING[case]
    got = quiet(call, backend, fn, preds, target, ignore_index=ignore)
    assert close(got, oracle(*_oracle_pairs(case)))
    if backend != "cpu":
        assert identical(got, quiet(fn, preds, target, ignore_index=ignore, backend="cpu"))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", ["float32-ties-inf", "int16-ignore", "int64-2**53", "one-class", "ignore-zero",
                                  "ignore-one"])
def test_curves_and_f1(case, backend):
    preds, target, ignore = RANKING[case]
    scores, labels = _oracle_pairs(case)
    results = {}
    for name in ("roc_curve", "precision_recall_curve", "f1_adaptive_threshold", "f1_max"):
        results[name] = quiet(call, backend, getattr(F, name), preds, target, ignore_index=ignore)
    fpr, tpr, thr = results["roc_curve"]
    assert thr[1:].tolist() == naive.thresholds(scores)
    if labels.count(1) and labels.count(0):
        exact_fpr, exact_tpr, _ = naive.roc_curve(scores, labels)
        assert all(close(a, x) and close(b, y) for a, b, x, y in zip(fpr, tpr, exact_fpr, exact_tpr))
    threshold, f1 = results["f1_adaptive_threshold"]
    exact_t, exact_f1 = naive.f1_adaptive(scores, labels)
    assert threshold == exact_t and close(f1, exact_f1) and close(results["f1_max"], exact_f1)
    if backend != "cpu":
        for name, value in results.items():
            assert identical(value, quiet(getattr(F, name), preds, target, ignore_index=ignore, backend="cpu")), name


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", ["float32-ties-inf", "int16-ignore", "ignore-zero"])
def test_binned_mode(case, backend):
    preds, target, ignore = RANKING[case]
    thr = np.linspace(-1.0, 1.0, 9)
    auroc = quiet(call, backend, F.auroc, preds, target, thresholds=thr, ignore_index=ignore)
    assert close(auroc, naive.binned_roc_auc(*_oracle_pairs(case), thr.tolist()))
    ap = quiet(call, backend, F.average_precision, preds, target, thresholds=thr, ignore_index=ignore)
    assert close(ap, naive.binned_average_precision(*_oracle_pairs(case), thr.tolist()))
    (p, t), where = on(backend, preds, target)
    f1_threshold = rm.F1AdaptiveThreshold(thresholds=thr, ignore_index=ignore, backend=where)
    f1_threshold.update(p, t)
    exact_t, exact_f1 = naive.binned_f1_adaptive(*_oracle_pairs(case), thr.tolist())
    assert quiet(f1_threshold.compute) == exact_t and close(f1_threshold.f1, exact_f1)
    if backend != "cpu":
        assert identical(auroc, quiet(F.auroc, preds, target, thresholds=thr, ignore_index=ignore, backend="cpu"))
        curve = quiet(call, backend, F.precision_recall_curve, preds, target, thresholds=thr, ignore_index=ignore)
        assert identical(curve, quiet(F.precision_recall_curve, preds, target, thresholds=thr,
                                      ignore_index=ignore, backend="cpu"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_binned_thresholds_from_a_curve(backend):
    """``thresholds=`` takes what roc_curve returned (+inf first, +-inf scores among them) and -inf:
    ``score >= t`` on every backend, so a +inf threshold counts only +inf scores."""
    preds, target, ignore = RANKING["float32-ties-inf"]
    _, _, thr = F.roc_curve(preds, target, backend="cpu")
    thr = np.concatenate([thr[::4], [np.inf, -np.inf, 0.5]])
    assert thr[0] == np.inf and np.isinf(preds).any()
    values = sorted(thr.tolist())
    scores, labels = _oracle_pairs("float32-ties-inf")
    auroc = quiet(call, backend, F.auroc, preds, target, thresholds=thr)
    assert close(auroc, naive.binned_roc_auc(scores, labels, values))
    precision, recall, got = quiet(call, backend, F.precision_recall_curve, preds, target, thresholds=thr)
    exact_p, exact_r, _ = naive.binned_pr(scores, labels, values)
    assert got.tolist() == values and len(precision) == len(exact_p)
    assert all(close(a, x) and close(b, y) for a, b, x, y in zip(precision, recall, exact_p, exact_r))
    metric = rm.AUROC(thr, backend="cpu" if backend == "cpu" else "auto")
    (p, t), _ = on(backend, preds, target)
    metric.update(p, t)
    assert close(quiet(metric.compute), naive.binned_roc_auc(scores, labels, values))
    if backend != "cpu":
        assert identical(auroc, quiet(F.auroc, preds, target, thresholds=thr, backend="cpu"))
        assert identical((precision, recall, got),
                         quiet(F.precision_recall_curve, preds, target, thresholds=thr, backend="cpu"))


# ---------------------------------------------------------------------------
# F1Score, MinMax, AnomalyScoreDistribution
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", ["float32-ties-inf", "float64-bool", "int16-ignore", "float16", "ignore-zero",
                                  "ignore-one"])
def test_f1_score(case, backend):
    preds, target, ignore = RANKING[case]
    for threshold in (0.5, 0.0, 0.9999):
        got = call(backend, F.f1_score, preds, target, threshold=threshold, ignore_index=ignore)
        assert close(got, naive.f1_score(preds, target, threshold, ignore)), threshold
        if backend != "cpu":
            assert identical(got, F.f1_score(preds, target, threshold=threshold, ignore_index=ignore, backend="cpu"))
    rows = np.asarray(preds).reshape(4, -1) if np.asarray(preds).size % 4 == 0 else None
    if rows is not None:
        labels = np.asarray(target).reshape(4, -1)
        got = call(backend, F.f1_score, rows, labels, multidim_average="samplewise", ignore_index=ignore)
        assert [close(g, naive.f1_score(r, y, 0.5, ignore)) for g, r, y in zip(got, rows, labels)] == [True] * 4


def test_sigmoid_cut_reproduces_the_cpu_rule():
    from refmetrics.functional.threshold import positive_cut

    for threshold in (0.5, 0.0, 0.25, 1e-300, 0.9999999999999999, 1.0, -0.5):
        cut = positive_cut(threshold, True)
        xs = [cut, np.nextafter(cut, -np.inf)] if math.isfinite(cut) else [-1e308, 0.0, 1e308]
        for x in xs:
            assert (x >= cut) == naive.sigmoid_gt(x, threshold), (threshold, x)
    assert math.isnan(positive_cut(1.0, True)) and positive_cut(-0.5, True) == -np.inf
    assert positive_cut(0.5, False) == np.nextafter(0.5, 1) and math.isnan(positive_cut(np.inf, False))


@pytest.mark.parametrize("backend", BACKENDS)
def test_min_max_and_distribution(backend):
    preds = RANKING["float32-ties-inf"][0]
    assert call(backend, F.min_max, preds) == (-np.inf, np.inf)
    values = np.abs(RANKING["float64-bool"][0]).reshape(6, 8)
    lo, hi = call(backend, F.min_max, values)
    assert (lo, hi) == (float(values.min()), float(values.max()))
    scores = np.exp(np.arange(1.0, 6.0))
    im, istd, pm, pstd = call(backend, F.anomaly_score_distribution, scores, values.reshape(6, 2, 4))
    assert close(im, naive.mean_std(np.log(scores))[0])
    logs = np.log(values).reshape(6, -1)
    for j in range(8):
        mean, std = naive.mean_std(logs[:, j])
        assert close(pm.reshape(-1)[j], mean) and abs(pstd.reshape(-1)[j] - std) <= 1e-12
    if backend != "cpu":
        # the device's log (libdevice, within 1 ulp) may differ from NumPy's in the last bit
        cpu = F.anomaly_score_distribution(scores, values.reshape(6, 2, 4), backend="cpu")
        assert abs(im - cpu[0]) <= 4e-16 * abs(cpu[0]) and np.allclose(pm, cpu[2], rtol=4e-16, atol=0)


# ---------------------------------------------------------------------------
# region metrics
# ---------------------------------------------------------------------------

def _region_cases():
    cases = {}
    masks = np.zeros((3, 6, 7), np.uint8)
    masks[0, 1:3, 1:4] = 1
    masks[0, 4, 5] = 1
    masks[1, 0, 0] = masks[1, 1, 1] = 1  # one region under connectivity 2
    maps = np.round(_rng.random(masks.shape) * 8).astype(np.float32) / 8 + masks * 0.25  # ties
    cases["float32-ties"] = (maps, masks)
    maps64 = _rng.standard_normal((2, 1, 5, 5)) + 1e-9 * np.arange(50).reshape(2, 1, 5, 5)
    masks64 = np.zeros((2, 5, 5), bool)
    masks64[1, 2:4, 1:5] = True
    cases["float64-b1hw"] = (maps64, masks64)
    return cases


REGIONS = _region_cases()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", list(REGIONS))
def test_region_metrics(case, backend):
    maps, masks = REGIONS[case]
    for fpr_limit in (0.3, 1.0):
        got = call(backend, F.aupro, maps, masks, fpr_limit=fpr_limit)
        assert close(got, naive.aupro(maps, masks, fpr_limit)), fpr_limit
        if backend != "cpu":
            assert identical(got, F.aupro(maps, masks, fpr_limit=fpr_limit, backend="cpu"))
    sampled = call(backend, F.aupro, maps, masks, num_thresholds=7)
    assert close(sampled, naive.aupro(maps, masks, 0.3, num_thresholds=7))
    curve = call(backend, F.pro_curve, maps, masks)
    exact = naive.pro_points(maps, masks)
    assert all(close(f, x) and close(p, y) for f, p, (x, y) in zip(*curve, exact))
    pro = call(backend, F.pro_score, maps, masks, threshold=0.5)
    assert close(pro, naive.pro_score(maps, masks, 0.5))
    if backend != "cpu":
        assert identical(sampled, F.aupro(maps, masks, num_thresholds=7, backend="cpu"))
        assert identical(curve, F.pro_curve(maps, masks, backend="cpu"))
        assert identical(pro, F.pro_score(maps, masks, threshold=0.5, backend="cpu"))


# ---------------------------------------------------------------------------
# stateful classes: device state, merges across backends, batching
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_classes_split_and_merge(backend):
    preds, target, _ = RANKING["float32-ties-inf"]
    maps, masks = REGIONS["float32-ties"]
    specs = [(rm.AUROC, {}, preds, target), (rm.AUPR, {"curve": "trapezoid"}, preds, target),
             (rm.F1AdaptiveThreshold, {}, preds, target), (rm.AUROC, {"thresholds": 9}, preds, target),
             (rm.F1AdaptiveThreshold, {"thresholds": 9}, preds, target),
             (rm.AUPRO, {}, maps, masks), (rm.PRO, {}, maps, masks)]
    for cls, kwargs, p, t in specs:
        whole = cls(**kwargs, backend="cpu")
        whole.update(p, t)
        (p1, t1), where = on(backend, p[:len(p) // 2], t[:len(t) // 2])
        for device_first in (True, False):  # a host state merged into a device one, and the reverse
            a = cls(**kwargs, backend=where)
            a.update(p1, t1)
            b = cls(**kwargs, backend="cpu")
            b.update(p[len(p) // 2:], t[len(t) // 2:])
            merged = a.merge(b) if device_first else b.merge(a)
            assert identical(quiet(merged.compute), quiet(whole.compute)), cls.__name__


class _RequiresGrad:
    """Stands for a torch tensor that requires grad: its own interfaces refuse to export it (as
    torch's do, with a RuntimeError that ``hasattr`` does not swallow) and ``detach()`` gives the
    same data (here the array itself)."""

    requires_grad = True

    def __init__(self, arr):
        self._arr = arr

    @property
    def __cuda_array_interface__(self):
        raise RuntimeError("Can't get __cuda_array_interface__ on Variable that requires grad")

    def __dlpack__(self, *args, **kwargs):
        raise RuntimeError("Can't export tensors that require gradient, use tensor.detach()")

    def detach(self):
        return self._arr


@pytest.mark.parametrize("backend", BACKENDS)
def test_copies_and_tensors_that_require_grad(backend):
    preds, target, _ = RANKING["float32-ties-inf"]
    maps, masks = REGIONS["float32-ties"]
    (p, t), where = on(backend, preds, target)
    assert identical(F.auroc(_RequiresGrad(p), t, backend=where), F.auroc(preds, target, backend="cpu"))
    specs = [(rm.AUROC, {}, preds, target), (rm.AUROC, {"thresholds": 9}, preds, target),
             (rm.F1Max, {}, preds, target), (rm.AUPRO, {}, maps, masks), (rm.PRO, {}, maps, masks)]
    for cls, kwargs, p, t in specs:
        half = len(p) // 2
        first, whole = cls(**kwargs, backend="cpu"), cls(**kwargs, backend="cpu")
        first.update(p[:half], t[:half])
        whole.update(p, t)
        (p1, t1), where = on(backend, p[:half], t[:half])
        (p2, t2), _ = on(backend, p[half:], t[half:])
        metric = cls(**kwargs, backend=where)
        metric.update(_RequiresGrad(p1), t1)
        twin = copy.copy(metric)
        twin.update(p2, t2)
        assert identical(quiet(metric.compute), quiet(first.compute)), cls.__name__
        assert identical(quiet(twin.compute), quiet(whole.compute)), cls.__name__
        metric.update(p2, t2)
        assert identical(quiet(twin.compute), quiet(whole.compute)), cls.__name__


# ---------------------------------------------------------------------------
# errors: the same messages on every backend
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_errors(backend):
    preds = np.array([0.1, np.nan, 0.4, np.nan], np.float32)
    with pytest.raises(ValueError, match="2 NaNs"):
        call(backend, F.auroc, preds, np.array([0, 1, 0, 1]))
    with pytest.raises(ValueError, match=r"received 1 other value \(e\.g\. 255\)"):
        call(backend, F.auroc, np.array([0.1, 0.2, 0.3]), np.array([0, 255, 1], np.uint8))
    with pytest.raises(ValueError, match="within \\+-2\\*\\*53"):
        call(backend, F.auroc, np.array([2 ** 53 + 1, 0]), np.array([0, 1]))
    with pytest.raises(ValueError, match="expected the same shape"):
        call(backend, F.auroc, np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        call(backend, F.aupro, np.full((1, 2, 2), np.nan), np.eye(2)[None])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert math.isnan(call(backend, F.auroc, np.array([0.1, 0.2]), np.array([1, 1])))
    assert any(issubclass(w.category, rm.UndefinedMetricWarning) for w in caught)
    if backend == "device":
        (p, t), _ = on("device", np.zeros(2), np.array([0, 1]))
        with pytest.raises(rm.BackendUnavailableError, match="lives on a CUDA device"):
            F.auroc(p, t, backend="cpu")


# ---------------------------------------------------------------------------
# no silent CPU-only pass; torch's streams
# ---------------------------------------------------------------------------

def _numba_cuda_installed():
    import importlib.metadata

    try:
        importlib.metadata.version("numba-cuda")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _nvidia_driver_present():
    import ctypes.util

    return os.path.exists("/dev/nvidiactl") or ctypes.util.find_library("cuda") is not None


def test_the_cuda_backends_run_wherever_they_can():
    """With numba-cuda installed, the cuda and device cases must be collected under the simulator,
    on a machine with an NVIDIA driver, and where REFMETRICS_REQUIRE_CUDA=1 (the GPU check sets it):
    a broken numba-cuda or a driver numba-cuda cannot use must fail here, not turn this module into
    a CPU-only pass. Without a driver, the simulator parts of tests/test_cuda_sim.py run them."""
    from refmetrics._arrays import cuda_unavailable_reason

    if not _numba_cuda_installed():
        assert "cuda" not in BACKENDS
        return
    reason = cuda_unavailable_reason()
    assert not (reason or "").startswith("numba-cuda is not installed"), f"numba-cuda is installed but {reason}"
    expected = (os.environ.get("NUMBA_ENABLE_CUDASIM") == "1" or os.environ.get("REFMETRICS_REQUIRE_CUDA") == "1"
                or _nvidia_driver_present())
    if expected:
        assert BACKENDS == ["cpu", "cuda", "device"], f"the CUDA cases were not collected: {reason}"
    else:
        assert BACKENDS == ["cpu"] and "driver library cannot be found" in reason, reason


def test_numba_cuda_warnings_are_errors():
    """numba-cuda's warnings (a slow launch, an implicit copy) fail the tests, as numba's do
    (tests/conftest.py adds numba-cuda's own warning class to pyproject.toml's filter)."""
    if not _numba_cuda_installed():
        return
    from numba.cuda.core.errors import NumbaPerformanceWarning

    with pytest.raises(NumbaPerformanceWarning, match="host array"):
        warnings.warn("a kernel was launched with a host array", NumbaPerformanceWarning)


if "cuda" in BACKENDS:

    def test_torch_tensors_are_read_after_torch_stream_work(monkeypatch):
        """A tensor written on a torch side stream: its interface (version 2) names no stream, so
        the current torch stream of its device is synchronised before any kernel reads it."""
        import sys
        import types

        from numba import cuda

        events = []

        class Stream:
            def synchronize(self):
                events.append("synchronize")

        class Tensor:  # what refmetrics sees of a torch CUDA tensor
            def __init__(self, values):
                self.values, self.device = values, types.SimpleNamespace(type="cuda", index=None)

            @property
            def __cuda_array_interface__(self):
                return {"shape": self.values.shape, "typestr": self.values.dtype.str, "version": 2,
                        "data": (0, False), "strides": None}

        fake_torch = types.SimpleNamespace(Tensor=Tensor, cuda=types.SimpleNamespace(
            current_stream=lambda device: events.append(("current_stream", device.type)) or Stream()))
        monkeypatch.setitem(sys.modules, "torch", fake_torch)

        def as_cuda_array(obj):  # the simulator has none: the tensor's values, as a device array
            events.append("as_cuda_array")
            return cuda.to_device(obj.values)

        monkeypatch.setattr(cuda, "as_cuda_array", as_cuda_array, raising=False)
        from refmetrics.kernels.cuda import ranking as KC

        def recording_launch(self, *args):
            if "launch" not in events:
                events.append("launch")
            return launch(self, *args)

        if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":  # the simulator's kernel is launched by its __call__
            launcher = type(KC.encode_keys)
        else:  # a real launch, kernel[grid, block](...), calls its launch configuration (first GPU run)
            from numba.cuda.dispatcher import _LaunchConfiguration as launcher
        launch = launcher.__call__
        monkeypatch.setattr(launcher, "__call__", recording_launch)
        preds, target, _ = RANKING["float32-ties-inf"]
        got = F.auroc(Tensor(preds), Tensor(target))
        assert identical(got, F.auroc(preds, target, backend="cpu"))
        first_launch = events.index("launch")
        assert events[:first_launch].count("synchronize") == 2, events[:first_launch]  # preds and target
        assert ("current_stream", "cuda") in events[:first_launch]
        # a tensor whose interface names its stream (version 3) is synchronised by numba itself
        events.clear()
        Tensor.__cuda_array_interface__ = property(lambda self: {"shape": self.values.shape, "version": 3,
                                                                 "typestr": self.values.dtype.str,
                                                                 "data": (0, False), "strides": None, "stream": 1})
        F.auroc(Tensor(preds), Tensor(target))
        assert "synchronize" not in events


# ---------------------------------------------------------------------------
# the device building blocks, where CUDA is usable
# ---------------------------------------------------------------------------

if "cuda" in BACKENDS and os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":

    def test_a_large_case_on_the_gpu():
        """On real hardware: many tiles, rounds and scan levels (the simulator runs only small cases)."""
        rng = np.random.default_rng(5)
        preds = rng.standard_normal(300_000).astype(np.float32)
        target = (rng.random(300_000) < 0.05).astype(np.uint8)
        maps, masks = preds.reshape(3, 400, 250), np.zeros((3, 400, 250), bool)
        masks[1:, 100:180, 50:90] = True
        for fn, args in ((F.auroc, (preds, target)), (F.average_precision, (preds, target)),
                         (F.f1_max, (preds, target)), (F.aupro, (maps, masks))):
            assert identical(fn(*args, backend="cuda"), fn(*args, backend="cpu")), fn.__name__


if "cuda" in BACKENDS:

    SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"

    # the digit width is read when a kernel runs in the simulator, but when it compiles on a GPU
    @pytest.mark.parametrize("radix_bits", [4, 8] if SIMULATOR else [8])
    def test_radix_sort_pairs_and_scans(radix_bits, monkeypatch):
        """The sort by (key, payload) against np.lexsort, at the tests' digit width and at the
        GPU's 8 bits, with multi-tile inputs; a multi-level scan against np.cumsum."""
        from numba import cuda

        from refmetrics.kernels.cuda import _driver as D
        from refmetrics.kernels.cuda import ranking as KC

        monkeypatch.setattr(KC, "RADIX_BITS", radix_bits)
        monkeypatch.setattr(KC, "RADIX_SIZE", 1 << radix_bits)
        rng = np.random.default_rng(20261125)
        for kd, n in ((np.uint32, 150), (np.uint64, 70)):
            keys = rng.integers(0, 6, n).astype(kd) << kd(8 * np.dtype(kd).itemsize - 4)  # top digits only
            keys[::5] = rng.integers(0, np.iinfo(kd).max, keys[::5].size, dtype=np.uint64).astype(kd)
            payload = rng.integers(0, 300, n).astype(np.uint64)
            sk, sp = D.radix_sort(cuda.to_device(keys), cuda.to_device(payload), payload_bits=9)
            order = np.lexsort((payload, keys))
            assert sk.copy_to_host().tolist() == keys[order].tolist()
            assert sp.copy_to_host().tolist() == payload[order].tolist()
        values = rng.integers(0, 9, 1000).astype(np.int8)
        out, total = D.exclusive_scan(cuda.to_device(values))
        assert out.copy_to_host().tolist() == (np.cumsum(values) - values).tolist() and total == int(values.sum())

    def test_groups_on_the_device():
        """Distinct keys of two sorted arrays, decreasing, with the counts of each."""
        from numba import cuda

        from refmetrics.kernels.cuda import _driver as D

        a = np.array([1, 1, 3, 7, 7, 7, 9], np.uint32)
        b = np.array([0, 3, 3, 4, 9, 12], np.uint32)
        keys, ca, cb = D.groups(cuda.to_device(a), cuda.to_device(b))
        assert keys.copy_to_host().tolist() == [12, 9, 7, 4, 3, 1, 0]
        assert ca.copy_to_host().tolist() == [0, 1, 3, 0, 1, 2, 0]
        assert cb.copy_to_host().tolist() == [1, 1, 0, 1, 2, 0, 1]
        n_region, dfp = D.region_groups(cuda.to_device(a), cuda.to_device(b), collapse=True)
        # background-only groups (12, 4, 0) have region groups between them: nothing folds
        assert n_region.tolist() == [0, 1, 3, 0, 1, 2, 0] and dfp.tolist() == [1, 1, 0, 1, 2, 0, 1]
        b2 = np.array([10, 11, 12], np.uint32)  # three background-only groups above 9 fold into one
        n_region, dfp = D.region_groups(cuda.to_device(a), cuda.to_device(b2), collapse=True)
        assert n_region.tolist() == [0, 1, 3, 1, 2] and dfp.tolist() == [3, 0, 0, 0, 0]

    def _sorted_on_the_device(keys, payload=None, payload_bits=0):
        """``radix_sort`` of host arrays, results back on the host."""
        from numba import cuda

        from refmetrics.kernels.cuda import _driver as D

        d_payload = None if payload is None else cuda.to_device(payload)
        sk, sp = D.radix_sort(cuda.to_device(keys), d_payload, payload_bits=payload_bits)
        return sk.copy_to_host(), (None if sp is None else sp.copy_to_host())

    @pytest.mark.parametrize("radix_bits", [4, 8] if SIMULATOR else [8])
    def test_radix_sort_warp_ranking(radix_bits, monkeypatch):
        """The warp-ranked scatter against NumPy's stable sort: a payload of input positions
        (``payload_bits=0``: sorted by key only) must come out as ``np.argsort(kind="stable")``,
        so equal keys keep their input order. Cases: most keys sharing one digit in every
        round, float keys (their high digits all equal, as scores' keys), all keys equal (every
        pass skipped), and sizes that are not multiples of a tile or of 32."""
        from refmetrics.kernels.cuda import ranking as KC

        monkeypatch.setattr(KC, "RADIX_BITS", radix_bits)
        monkeypatch.setattr(KC, "RADIX_SIZE", 1 << radix_bits)
        rng = np.random.default_rng(20261128)
        cases = [
            rng.choice(np.array([0x11, 0x11, 0x11, 0x1F, 0xF1], np.uint32), 45),  # one digit dominates each round
            (rng.random(70) + 1.0).astype(np.float32).view(np.uint32),  # exponent and top mantissa bits shared
            (rng.random(37) * 1e-3 + 20.0).view(np.uint64),  # float64 keys: the top 20 bits shared
            np.full(33, 0xDEADBEEF, np.uint32),  # every pass skipped
            rng.integers(0, 2 ** 63, 2, dtype=np.uint64),
        ]
        for keys in cases:
            index = np.arange(keys.size, dtype=np.uint64)
            sk, sp = _sorted_on_the_device(keys, index)
            order = np.argsort(keys, kind="stable")
            assert sk.tolist() == np.sort(keys).tolist()
            assert sp.tolist() == order.tolist()  # stable: ties in input order
        # by (key, payload): payload passes first, then key passes, with ties in both
        keys = rng.integers(0, 3, 61).astype(np.uint64) << np.uint64(60)
        payload = rng.integers(0, 40, 61).astype(np.uint64)
        sk, sp = _sorted_on_the_device(keys, payload, payload_bits=6)
        order = np.lexsort((payload, keys))
        assert sk.tolist() == keys[order].tolist() and sp.tolist() == payload[order].tolist()
        assert _sorted_on_the_device(keys[:29])[0].tolist() == np.sort(keys[:29]).tolist()  # no payload

    @pytest.mark.filterwarnings("ignore:.*Grid size:Warning")  # a one-block launch on purpose (real GPU)
    def test_match_any_sync_masks():
        """``cuda.match_any_sync`` (the simulator's, from ``kernels/cuda/_simulator.py``, or the
        GPU's) against NumPy: a block of 48 threads is a full warp and a partial one of 16 lanes,
        the mask names the lanes that exist, and three calls in a row each see their own values."""
        from numba import cuda

        from refmetrics.kernels.cuda import ranking as KC

        rng = np.random.default_rng(7)
        values = rng.integers(0, 3, (3, 48)).astype(np.int32)
        values[2] = 5  # all lanes equal
        out = cuda.device_array((3, 48), np.uint32)
        KC.warp_peers[1, 48](cuda.to_device(values), out)
        expected = np.zeros((3, 48), np.uint32)
        for r in range(3):
            for t in range(48):
                first = t - t % 32
                lanes = values[r, first:min(first + 32, 48)]
                expected[r, t] = sum(1 << lane for lane in np.flatnonzero(lanes == values[r, t]))
        assert out.copy_to_host().tolist() == expected.tolist()
        assert expected[2, 40] == 0xFFFF and expected[2, 0] == 0xFFFFFFFF  # the partial warp: 16 lanes

    def test_radix_sort_copies_once_per_sort(monkeypatch):
        """A sort of random uint64 keys (every pass runs: 16 at the tests' 4-bit digits, 8 at 8)
        copies one array to the host in all (the bits in which the keys differ, to skip passes)
        and uploads nothing; a payload sort too. More than ``SORT_MAX_THREADS`` threads per
        block is refused with an error that names THREADS."""
        from numba import cuda

        from refmetrics.kernels.cuda import _driver as D
        from refmetrics.kernels.cuda import ranking as KC

        rng = np.random.default_rng(3)
        keys = rng.integers(0, 2 ** 64, 50, dtype=np.uint64)
        payload = rng.integers(0, 2 ** 10, 50, dtype=np.uint64)
        d_keys, d_payload, d_keys2 = cuda.to_device(keys), cuda.to_device(payload), cuda.to_device(keys)
        calls = {"copy_to_host": 0, "copy_to_device": 0, "to_device": 0}
        array_class = type(d_keys)

        def counting(name, fn):
            def wrapper(*args, **kwargs):
                calls[name] += 1
                return fn(*args, **kwargs)
            return wrapper

        for name in ("copy_to_host", "copy_to_device"):
            monkeypatch.setattr(array_class, name, counting(name, getattr(array_class, name)))
        monkeypatch.setattr(cuda, "to_device", counting("to_device", cuda.to_device))
        sk, _ = D.radix_sort(d_keys)
        assert calls == {"copy_to_host": 1, "copy_to_device": 0, "to_device": 0}
        sk2, sp2 = D.radix_sort(d_keys2, d_payload, payload_bits=10)
        assert calls == {"copy_to_host": 2, "copy_to_device": 0, "to_device": 0}
        monkeypatch.undo()
        assert sk.copy_to_host().tolist() == np.sort(keys).tolist()
        order = np.lexsort((payload, keys))
        assert sk2.copy_to_host().tolist() == keys[order].tolist()
        assert sp2.copy_to_host().tolist() == payload[order].tolist()
        monkeypatch.setattr(KC, "THREADS", 512)
        with pytest.raises(ValueError, match=r"THREADS <= 256.*received THREADS = 512"):
            D.radix_sort(cuda.to_device(keys))

    def test_radix_sort_at_the_gpu_block_shape(monkeypatch):
        """The sort at the GPU's block shape (256 threads: 8 full warps, 8-bit digits), with 2 keys
        per thread (the GPU has 16: more rounds of the same code; the simulator needs ~2 min per
        9000 keys at 16, this runs in seconds): float keys, a third of them equal (long runs of one
        digit in every warp), 1300 keys in 3 tiles, against NumPy's stable sort."""
        from refmetrics.kernels.cuda import ranking as KC

        for name, value in (("THREADS", 256), ("ITEMS", 2), ("RADIX_BITS", 8), ("RADIX_SIZE", 256)):
            monkeypatch.setattr(KC, name, value)
        rng = np.random.default_rng(1)
        keys = (rng.standard_normal(1300) + 4.0).astype(np.float32).view(np.uint32)
        keys[::3] = keys[0]
        sk, sp = _sorted_on_the_device(keys, np.arange(keys.size, dtype=np.uint64))
        assert sk.tolist() == np.sort(keys).tolist()
        assert sp.tolist() == np.argsort(keys, kind="stable").tolist()


@pytest.mark.parametrize("backend", BACKENDS)
def test_merged_states_stay_intact(backend):
    """A state merged into another keeps its own result: no sort works in arrays both hold."""
    rng = np.random.default_rng(11)
    mixed = (rng.standard_normal(40).astype(np.float32), (rng.random(40) < 0.5).astype(np.uint8))
    normals = (rng.standard_normal(30).astype(np.float32), np.zeros(30, np.uint8))
    for cls in (rm.AUROC, rm.AUPRO):
        data = [mixed, normals] if cls is rm.AUROC else [
            (mixed[0].reshape(4, 10), mixed[1].reshape(4, 10)), (normals[0].reshape(3, 10), normals[1].reshape(3, 10))]
        (p1, t1), where = on(backend, *data[0])
        (p2, t2), _ = on(backend, *data[1])
        b = cls(backend=where)
        b.update(p1, t1)
        first = quiet(b.compute)
        a = cls(backend=where)
        a.update(p2, t2)
        a.merge(b)
        quiet(a.compute)
        assert identical(quiet(b.compute), first), cls.__name__
        b2 = cls(backend=where)  # a single shared part, sorted by the state it was merged into
        b2.update(p1, t1)
        a2 = cls(backend=where)
        a2.merge(b2)
        assert identical(quiet(a2.compute), first) and identical(quiet(b2.compute), first), cls.__name__


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_and_float64_batches_merge(backend):
    preds, target, _ = RANKING["float32-ties-inf"]
    wide = RANKING["float64-bool"]
    metric = rm.AUROC(backend="cpu" if backend == "cpu" else "auto")
    for p, t in ((preds, target), (wide[0], wide[1].astype(np.uint8))):
        (pp, tt), _ = on(backend, p, t)
        metric.update(pp, tt)
    both_p = np.concatenate([preds.astype(np.float64), wide[0]])
    both_t = np.concatenate([target, wide[1].astype(np.uint8)])
    assert identical(metric.compute(), F.auroc(both_p, both_t, backend="cpu"))
    assert close(metric.compute(), naive.auroc(both_p, both_t))


@pytest.mark.parametrize("backend", BACKENDS)
def test_strided_inputs(backend):
    preds, target, _ = RANKING["float32-ties-inf"]
    p2, t2 = preds.reshape(8, 8), target.reshape(8, 8)
    if backend == "device":
        from numba import cuda

        got = F.auroc(cuda.to_device(p2)[:, ::2], cuda.to_device(t2)[:, ::2])
    else:
        got = call(backend, F.auroc, p2[:, ::2], t2[:, ::2])
    assert identical(got, F.auroc(np.ascontiguousarray(p2[:, ::2]), np.ascontiguousarray(t2[:, ::2]),
                                  backend="cpu"))


# ---------------------------------------------------------------------------
# contention: atomics aggregated per block or per warp, reductions on the device
# ---------------------------------------------------------------------------

if "cuda" in BACKENDS:

    import threading
    from fractions import Fraction

    _SIMULATED = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"

    def _f1_oracle(pos, neg):
        """``(tp, fp, key)`` at the largest F1 = 2tp/(tp+fp+P) over the keys (``tp = #pos >= key``),
        the lowest key among equal F1s: exact fractions over every distinct key."""
        best = None
        for k in sorted(set(pos.tolist()) | set(neg.tolist())):  # increasing: strict > keeps the lowest key
            tp = int(np.sum(pos >= k))
            fp = int(np.sum(neg >= k))
            f1 = Fraction(2 * tp, tp + fp + pos.size)
            if best is None or f1 > best[0]:
                best = (f1, tp, fp, k)
        return best[1:]

    def _f1_tie_case():
        """Sorted uint32 keys where keys 99 and 100 give the same largest F1 (2/5: tp 5, fp 0 at
        100; tp 6, fp 4 at 99). At 16 threads the positive at 99 and the first positive at 100
        fall in block 0, the other positives at 100 in block 1: the tie is decided within a block
        and again across blocks, by the device reduction (310 elements: 20 blocks, two levels)."""
        rng = np.random.default_rng(20261128)
        pos = np.array([10] * 14 + [99] + [100] * 5, np.uint32)
        # 40 negatives tie with the positives at 10, where F1 is smaller; the others lie below 99
        neg = np.concatenate([[99] * 4, [10] * 40, rng.integers(0, 99, 246)]).astype(np.uint32)
        return np.sort(pos), np.sort(neg)

    def test_f1_best_is_reduced_on_the_device(monkeypatch):
        """The device's F1 reduction against an exact oracle, with an F1 tie between two keys
        spread over many blocks (ties go to the lower key), on the public API too."""
        from numba import cuda

        from refmetrics.kernels.cuda import _driver as D
        from refmetrics.kernels.cuda import ranking as KC

        pos, neg = _f1_tie_case()
        assert _f1_oracle(pos, neg) == (6, 4, 99)  # the case is what it says: the tie goes to 99
        launches = []
        reduce_kernel = KC.f1_reduce_best

        class Recorded:
            def __getitem__(self, config):
                launches.append(config)
                return reduce_kernel[config]

        monkeypatch.setattr(KC, "f1_reduce_best", Recorded())
        tp, fp, key = D.f1_best(cuda.to_device(pos), cuda.to_device(neg))
        assert (tp, fp, key.tolist(), key.dtype) == (6, 4, [99], np.dtype(np.uint32))
        blocks = -(-(pos.size + neg.size) // KC.THREADS)
        levels = 0
        while blocks > 1:
            blocks = -(-blocks // KC.THREADS)
            levels += 1
        assert len(launches) == levels >= 1
        for seed in range(3):  # random ties
            rng = np.random.default_rng(seed)
            p = np.sort(rng.integers(0, 12, 40)).astype(np.uint64)
            n = np.sort(rng.integers(0, 12, 70)).astype(np.uint64)
            tp, fp, key = D.f1_best(cuda.to_device(p), cuda.to_device(n))
            assert (tp, fp, int(key[0])) == _f1_oracle(p, n), seed
        preds = np.concatenate([pos, neg]).astype(np.float32)
        target = np.concatenate([np.ones(pos.size, np.uint8), np.zeros(neg.size, np.uint8)])
        got = F.f1_max(preds, target, backend="cuda")
        assert identical(got, F.f1_max(preds, target, backend="cpu")) and close(got, Fraction(2, 5))

    def _column_case():
        """Columns of logs with a large mean and a small spread (cancellation in the squares)."""
        rng = np.random.default_rng(20261128)
        one = 700.0 + 1e-3 * rng.standard_normal(3000)
        several = np.log(rng.lognormal(2.0, 0.75, (400, 5)))
        several[:, 4] = -3.0 + 1e-9 * rng.standard_normal(400)
        return one.reshape(-1, 1), several

    def _device_mean_std(rows):
        """``column_mean_std``'s kernel on the columns of ``rows`` sorted (as the driver sorts them),
        at the driver's launch shape."""
        from numba import cuda

        from refmetrics.kernels.cuda import ranking as KC
        from refmetrics.kernels.cuda import stats as KS

        n, m = rows.shape
        columns = np.ascontiguousarray(np.sort(rows, axis=0).T).reshape(-1)
        mean = cuda.device_array(m, np.float64)
        std = cuda.device_array(m, np.float64)
        KS.column_mean_std[m, KC.THREADS](cuda.to_device(columns), np.int64(n), mean, std)
        return mean.copy_to_host(), std.copy_to_host()

    @pytest.mark.filterwarnings("ignore:.*Grid size:Warning")  # a one-block launch on purpose (real GPU)
    @pytest.mark.filterwarnings("ignore:overflow encountered in scalar add:RuntimeWarning")  # the simulator's
    def test_auroc_counts_carry_past_2_64():                                                # uint64 atomic wraps
        """``2U`` is 128 bits on the device: a block total that wraps the low word adds its carry
        to the high word (the low word starts 3 below 2**64 here, so the first block wraps it)."""
        from numba import cuda

        from refmetrics.kernels.cuda import ranking as KC

        pos = np.array([1, 2, 2, 5], np.uint32)
        neg = np.array([0, 2, 3], np.uint32)
        u2 = 2 * 4 + (2 * 1 + 2) + 2 * 1  # per negative: 2 #(pos > k) + #(pos == k)
        start = (7 << 64) + (1 << 64) - 3
        out = cuda.to_device(np.array([start & (2 ** 64 - 1), start >> 64], np.uint64))
        KC.auroc_counts[1, 32](cuda.to_device(pos), cuda.to_device(neg), out)
        low, high = (int(x) for x in out.copy_to_host())
        assert (high << 64) + low == start + u2

    @pytest.mark.filterwarnings("ignore:.*Grid size:Warning")  # a one-block launch on purpose (real GPU)
    def test_f1_order_device_twin_exact_past_2_64():
        """The device F1 comparator (compiled from ``cpu.ranking.f1_order`` with the 128-bit helpers'
        twins) where uint64 cross products wrap: check_overflow.py's case, in which the wrapped
        order preferred the candidate with the smaller F1."""
        from numba import cuda

        from refmetrics.kernels.cuda import ranking as KC

        p = 3136876171
        better, worse = (2844002102, 2863201219), (1843333982, 2037136789)
        assert Fraction(better[0], sum(better) + p) > Fraction(worse[0], sum(worse) + p)
        for rows in ([(*better, 1, 7), (*worse, 1, 9)], [(*worse, 1, 9), (*better, 1, 7)]):
            best = cuda.to_device(np.zeros((1, 4), np.uint64))
            KC.f1_reduce_best[1, 32](cuda.to_device(np.array(rows, np.uint64)), np.int64(p), best)
            assert best.copy_to_host().tolist() == [[*better, 1, 7]]

    @pytest.mark.filterwarnings("ignore:.*Grid size:Warning")  # a one-block launch on purpose (real GPU)
    def test_column_mean_std_in_parallel():
        """One block per column, the threads' compensated sums combined in a tree: within 1e-12 of
        the exact mean and std (naive.mean_std, fractions) and of the CPU's sequential sums (in
        fact the mean within 2 ulps of the exact one, the std within 4 of the CPU's), the same bits
        on a second run; +-inf and NaN as on the CPU."""
        from refmetrics.functional.stats import mean_std_columns
        from refmetrics.kernels.cuda import _driver as D

        for rows in _column_case():
            mean, std = _device_mean_std(rows)
            again = _device_mean_std(rows)
            assert identical((mean, std), again)
            cpu_mean, cpu_std = mean_std_columns(rows)
            for j in range(rows.shape[1]):
                exact_mean, exact_std = naive.mean_std(rows[:, j].tolist())
                assert close(mean[j], exact_mean) and abs(std[j] - exact_std) <= 1e-12, j
                assert abs(mean[j] - cpu_mean[j]) <= 1e-12 and abs(std[j] - cpu_std[j]) <= 1e-12, j
                assert abs(mean[j] - float(exact_mean)) <= 2 * np.spacing(abs(mean[j])), j
                # the deviations are taken from the rounded mean on both backends (two passes), which
                # moves a tiny std (column 4) by more than an ulp from the exact one, the same way
                assert abs(std[j] - cpu_std[j]) <= 4 * np.spacing(std[j]), j
        special = np.array([[1.0, 1.0, 1.0, 1.0, 5.0], [-np.inf, np.inf, np.nan, 2.0, 5.0],
                            [3.0, -np.inf, 0.5, np.inf, 5.0]] * 7)  # 21 rows: more than one per thread
        with warnings.catch_warnings():  # inf - inf in the simulator's threads (NumPy scalars) warns
            warnings.simplefilter("ignore", RuntimeWarning)
            assert identical(_device_mean_std(special), mean_std_columns(special))
        # the driver: the device radix sort by value and column (several tiles), then the kernel
        rows = _column_case()[1][:20]
        got = D.column_mean_std(D.to_device(np.ascontiguousarray(rows).reshape(-1)), 20, 5)
        assert identical(got, _device_mean_std(rows))
        one = D.column_mean_std(D.to_device(np.array([2.5])), 1, 1)
        assert one[0].tolist() == [2.5] and math.isnan(one[1][0])

    if _SIMULATED:

        def _record_copies(monkeypatch):
            """Record the shape of every device array copied to the host (the simulator's
            ``copy_to_host``), until ``monkeypatch.undo()``."""
            from numba.cuda.simulator.cudadrv import devicearray

            copies = []
            copy = devicearray.FakeCUDAArray.copy_to_host

            def recorded(self, *args, **kwargs):
                copies.append(self.shape)
                return copy(self, *args, **kwargs)

            monkeypatch.setattr(devicearray.FakeCUDAArray, "copy_to_host", recorded)
            return copies

        def _record_atomics(monkeypatch):
            """Wrap the simulator's atomic add: each call appends ``(array, index, block, warp)``,
            ``array`` being the shape of the global array (``"shared"`` for shared memory)."""
            from numba.cuda.simulator import kernelapi
            from numba.cuda.simulator.cudadrv.devicearray import FakeWithinKernelCUDAArray

            records = []
            lock = threading.Lock()
            add = kernelapi.FakeCUDAAtomic.add

            def recorded(self, array, index, val):
                thread = threading.current_thread()
                where = array._item._ary.shape if isinstance(array, FakeWithinKernelCUDAArray) else "shared"
                with lock:
                    records.append((where, tuple(int(k) for k in np.atleast_1d(index)), thread.blockIdx.x,
                                    thread.thread_id // 32))
                return add(self, array, index, val)

            monkeypatch.setattr(kernelapi.FakeCUDAAtomic, "add", recorded)
            return records

        def _per(records, shape, *fields):
            """How many global atomics on arrays of ``shape`` share each value of ``fields``
            (indices into ``(index, block, warp)``): a dict."""
            counts = {}
            for where, *rest in records:
                if where == shape:
                    key = tuple(rest[f] for f in fields)
                    counts[key] = counts.get(key, 0) + 1
            return counts

        INDEX, BLOCK, WARP = 0, 1, 2

        def test_confusion_counts_one_atomic_per_block_and_counter(monkeypatch):
            """F1Score's counts against NumPy, with rows of 1, 5 (blocks straddle rows) and all
            elements: at most one global atomic per (block, row, counter)."""
            from numba import cuda

            from refmetrics.kernels.cuda import _driver as D
            from refmetrics.kernels.cuda import ranking as KC

            rng = np.random.default_rng(3)
            n = 120
            scores = rng.random(n).astype(np.float32)
            target = (rng.random(n) < 0.5).astype(np.int64)
            target[::11] = -1  # ignored
            target[5] = 7  # a bad label
            keep = target != -1
            for rows in (1, n // 5, n):
                records = _record_atomics(monkeypatch)
                out, bad = D.confusion_counts(cuda.to_device(scores), cuda.to_device(target), True, np.int64(-1),
                                              0.5, rows)
                monkeypatch.undo()
                r = np.arange(n) // (n // rows)
                positive = scores >= 0.5
                for col, hit in enumerate((positive & (target == 1), positive & (target == 0),
                                           ~positive & (target == 1))):
                    assert out[:, col].tolist() == np.bincount(r[hit & keep], minlength=rows).tolist(), (rows, col)
                assert bad == 1
                per = _per(records, (rows, 3), INDEX, BLOCK)
                assert per and max(per.values()) == 1, rows
                assert sum(per.values()) <= 3 * (-(-n // KC.THREADS) + rows)  # not one per element
                assert _per(records, (1,), INDEX) == {((0,),): 1}  # the bad label: its own atomic

        def test_auroc_counts_one_atomic_per_block(monkeypatch):
            """2U against the pairwise count, with one global atomic per block."""
            from numba import cuda

            from refmetrics.kernels.cuda import _driver as D
            from refmetrics.kernels.cuda import ranking as KC

            rng = np.random.default_rng(4)
            pos = np.sort(rng.integers(0, 30, 45)).astype(np.uint32)
            neg = np.sort(rng.integers(0, 30, 70)).astype(np.uint32)
            records = _record_atomics(monkeypatch)
            got = D.auroc_u2(cuda.to_device(pos), cuda.to_device(neg))
            monkeypatch.undo()
            pairs = pos[:, None].astype(np.int64) - neg[None, :].astype(np.int64)
            assert got == int(2 * np.sum(pairs > 0) + np.sum(pairs == 0))
            per = _per(records, (2,), BLOCK)  # a block whose sum is 0 adds nothing (2U: 128 bits, 2 words)
            assert 1 <= len(per) <= -(-neg.size // KC.THREADS) and max(per.values()) == 1

        @pytest.mark.parametrize("shared", [True, False])
        def test_binned_histogram_one_atomic_per_block_and_bin(shared, monkeypatch):
            """The binned histogram against np.searchsorted: with the per-block shared histogram,
            at most one global atomic per (block, bin); without it (a histogram over the shared
            limit), at most one per (warp, bin)."""
            from numba import cuda

            from refmetrics.kernels.cuda import _driver as D

            rng = np.random.default_rng(5)
            n = 150
            scores = np.round(rng.random(n) * 4) / 4  # a few distinct scores: crowded bins
            scores[7] = np.nan
            target = (rng.random(n) < 0.4).astype(np.uint8)
            target[9] = 2
            thresholds = np.linspace(0.0, 1.0, 9)
            if not shared:
                monkeypatch.setattr(D, "SHARED_BYTES", 0)
            hist = D.zeros((2, 10), np.int64)
            records = _record_atomics(monkeypatch)
            n_nan, n_bad = D.binned_histogram(cuda.to_device(scores), cuda.to_device(target), False, np.uint8(0),
                                              thresholds, hist)
            monkeypatch.undo()
            valid = ~np.isnan(scores) & (target <= 1)
            bins = np.searchsorted(thresholds, scores, side="right")
            expected = [np.bincount(bins[valid & (target == side)], minlength=10).tolist() for side in (1, 0)]
            assert hist.copy_to_host().tolist() == expected and (n_nan, n_bad) == (1, 1)
            per = _per(records, (2, 10), INDEX, BLOCK) if shared else _per(records, (2, 10), INDEX, BLOCK, WARP)
            assert max(per.values()) == 1 and sum(per.values()) < valid.sum()
            assert any(where == "shared" for where, *_ in records) == shared

        def test_top_histogram_and_overlaps_aggregate_per_warp(monkeypatch):
            """The background top-bits histogram and the region overlaps against NumPy, with at
            most one global atomic per (warp, address)."""
            from numba import cuda

            from refmetrics.kernels.cuda import _driver as D
            from refmetrics.kernels.cuda import ranking as KC

            rng = np.random.default_rng(6)
            n = 130
            keys = (rng.integers(0, 3, n).astype(np.uint32) << np.uint32(28)) | rng.integers(0, 1 << 20, n).astype(
                np.uint32)
            codes = rng.integers(0, 2, n).astype(np.int8)
            records = _record_atomics(monkeypatch)
            hist = D.top_histogram(cuda.to_device(keys), cuda.to_device(codes), np.uint32(24), 256)
            monkeypatch.undo()
            assert hist.tolist() == np.bincount(keys[codes == 0] >> 24, minlength=256).tolist()
            per = _per(records, (256,), INDEX, BLOCK, WARP)
            assert max(per.values()) == 1 and sum(per.values()) <= 3 * (-(-n // KC.THREADS))

            ids = np.repeat(np.array([0, 1, 2, 0, 3, 4, 0, 5], np.uint32), [10, 25, 7, 13, 30, 20, 5, 20])
            scores = rng.random(ids.size)
            scores[3] = np.nan
            records = _record_atomics(monkeypatch)
            above, n_nan = D.region_overlaps(cuda.to_device(scores), cuda.to_device(ids), 5, 0.3)
            monkeypatch.undo()
            hit = (scores > 0.3) & (ids != 0)
            assert above.tolist() == np.bincount(ids[hit], minlength=6).tolist() and n_nan == 1
            per = _per(records, (6,), INDEX, BLOCK, WARP)
            assert max(per.values()) == 1 and sum(per.values()) < hit.sum() // 3

        def test_segment_add_aggregates_per_warp(monkeypatch):
            """Folded groups' sums against np.add.at, with at most one global atomic per (warp,
            output group)."""
            from numba import cuda

            from refmetrics.kernels.cuda import _driver as D
            from refmetrics.kernels.cuda import regions as KR

            rng = np.random.default_rng(7)
            g = 70
            flags = (rng.random(g) < 0.15).astype(np.int8)
            flags[0] = 1
            ranks = (np.cumsum(flags) - flags).astype(np.int64)
            values = rng.integers(0, 50, g).astype(np.int64)
            out = D.zeros(int(flags.sum()), np.int64)
            records = _record_atomics(monkeypatch)
            KR.segment_add[D.grid(g)](cuda.to_device(values), cuda.to_device(flags), cuda.to_device(ranks), out)
            monkeypatch.undo()
            expected = np.zeros(int(flags.sum()), np.int64)
            np.add.at(expected, np.cumsum(flags) - 1, values)
            assert out.copy_to_host().tolist() == expected.tolist()
            per = _per(records, (int(flags.sum()),), INDEX, BLOCK, WARP)
            assert max(per.values()) == 1 and sum(per.values()) < g // 2

        def test_f1_best_brings_one_row_to_the_host(monkeypatch):
            """Of f1_best's device arrays, one row of four values is copied to the host, not one
            row per block."""
            from numba import cuda

            from refmetrics.kernels.cuda import _driver as D

            pos, neg = _f1_tie_case()
            d_pos, d_neg = cuda.to_device(pos), cuda.to_device(neg)
            copies = _record_copies(monkeypatch)
            tp, fp, key = D.f1_best(d_pos, d_neg)
            monkeypatch.undo()
            assert copies == [(1, 4)] and (tp, fp, int(key[0])) == (6, 4, 99)

        def test_min_max_is_reduced_on_the_device(monkeypatch):
            """MinMax's per-block results reduced on the device (two levels at 16 threads) against
            NumPy, NaNs counted, ignored labels skipped; one row of (min, max) and the NaN count
            are all that is copied to the host."""
            from numba import cuda

            from refmetrics.kernels.cuda import _driver as D

            rng = np.random.default_rng(8)
            values = rng.standard_normal(300).astype(np.float32)
            values[[5, 77]] = np.nan
            labels = (rng.random(300) < 0.5).astype(np.uint8)
            values[labels == 1] *= 100  # the ignored elements hold the extremes
            d_values, d_labels = cuda.to_device(values), cuda.to_device(labels)
            copies = _record_copies(monkeypatch)
            got = D.min_max(d_values, d_labels, np.uint8(1))
            monkeypatch.undo()
            kept = values[(labels == 0) & ~np.isnan(values)].astype(np.float64)
            assert got == (kept.min(), kept.max(), int(np.isnan(values[labels == 0]).sum()))
            assert sorted(copies) == [(1,), (1, 2)]
            assert D.min_max(d_values)[:2] == (float(np.nanmin(values)), float(np.nanmax(values)))


# ---------------------------------------------------------------------------
# PIMO / AUPIMO (issue 13, section 1)
# ---------------------------------------------------------------------------

def _pimo_cases():
    rng = np.random.default_rng(20261128)
    cases = {}
    maps = np.round(rng.standard_normal((6, 4, 5)) * 2).astype(np.float32) / 2  # ties across images
    masks = np.zeros(maps.shape, np.uint8)
    masks[3, 1:3, 1:4] = 1
    masks[4, 0, :] = 1
    masks[5, 3, 4] = 1
    maps[masks == 1] += 1
    maps[0, 0, 0] = np.inf
    cases["float32-ties-inf"] = (maps, masks, (1.01 / 60, 0.5))
    maps = rng.standard_normal((5, 3, 7))  # float64
    masks = (rng.random(maps.shape) < 0.4).astype(bool)
    masks[:2] = False
    cases["float64-bool"] = (maps, masks, (1.01 / 42, 1.0))
    return cases


PIMO = _pimo_cases()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(PIMO))
def test_aupimo_and_pimo_curve_on_every_backend(backend, case):
    maps, masks, bounds = PIMO[case]
    expected_mean, expected = naive.aupimo(maps, masks, bounds)
    mean, per_image = call(backend, F.aupimo, maps, masks, fpr_bounds=bounds, return_per_image=True)
    assert abs(mean - expected_mean) <= 1e-9
    assert all(abs(x - e) <= 1e-9 if e is not None else math.isnan(x) for x, e in zip(per_image.tolist(), expected))
    assert identical((mean, per_image), F.aupimo(maps, masks, fpr_bounds=bounds, return_per_image=True,
                                                 backend="cpu"))
    curve = call(backend, F.pimo_curve, maps, masks)
    assert identical(curve, F.pimo_curve(maps, masks, backend="cpu"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_aupimo_class_batches_and_host_device_merge(backend):
    maps, masks, bounds = PIMO["float32-ties-inf"]
    whole = F.aupimo(maps, masks, fpr_bounds=bounds, return_per_image=True, backend="cpu")
    first, second = rm.AUPIMO(fpr_bounds=bounds), rm.AUPIMO(fpr_bounds=bounds)
    args, where = on(backend, maps[:4], masks[:4])
    first.backend = where
    first.update(*args)
    second.update(maps[4:], masks[4:])  # a host part merged with a device part computes on the device
    assert identical((first.merge(second).compute(), first.per_image), whole)


@pytest.mark.parametrize("backend", BACKENDS)
def test_aupimo_errors_and_undefined_on_every_backend(backend):
    maps, masks, _ = PIMO["float64-bool"]
    bad = maps.copy()
    bad[1, 0, 0] = np.nan
    with pytest.raises(ValueError, match="preds: expected no NaN values, received 1 NaN"):
        call(backend, F.aupimo, bad, masks)
    with pytest.raises(ValueError, match=r"target: expected binary labels in \{0, 1\}.*e\.g\. 2"):
        call(backend, F.aupimo, maps, masks.astype(np.uint8) * 2)
    with pytest.warns(rm.UndefinedMetricWarning, match=r"reachable shared FPR range is \[0\.0238095, 1\]"):
        assert math.isnan(call(backend, F.aupimo, maps, masks))


# sPRO / AU-sPRO (MVTec LOCO AD): defects as (mask, saturation threshold, relative)
# ---------------------------------------------------------------------------

def _spro_cases():
    rng = np.random.default_rng(20261128)
    cases = {}
    maps = (np.round(rng.random((3, 5, 6)) * 6) / 6).astype(np.float32)  # heavy ties
    m = rng.random((3, 5, 6)) < 0.35
    one = np.zeros((5, 6), bool)
    one[2, 3] = True
    defects = [[(m[0], 0.5, True), (m[0] | m[1], 4, False), (one, 0.5, True)],  # overlap; S = 0 for `one`
               [],
               [(m[2], 1.0, True), (m[2] & ~m[1] | one, 2, False)]]
    cases["float32-ties-overlap"] = (maps, defects)
    maps64 = rng.standard_normal((2, 1, 4, 5)) + 1e-9 * np.arange(40).reshape(2, 1, 4, 5)
    maps64[0, 0, 0, 0] = np.inf
    cases["float64-b1hw"] = (maps64, [[(rng.random((4, 5)) < 0.5, 0.3, True)], [(np.eye(4, 5), 3, False)]])
    return cases


SPRO = _spro_cases()
SPRO_LIMITS = [0.01, 0.05, 0.1, 0.3, 1.0]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", list(SPRO))
def test_spro_metrics(case, backend):
    maps, defects = SPRO[case]
    (d_maps,), where = on(backend, maps)
    got = quiet(F.au_spro, d_maps, defects, fpr_limit=SPRO_LIMITS, backend=where)
    for limit, value in zip(SPRO_LIMITS, got):
        assert close(value, naive.au_spro(maps, defects, limit)), limit
    curve = quiet(F.spro_curve, d_maps, defects, backend=where)
    points = naive.spro_points(maps, defects)
    assert len(curve[0]) == len(points)
    assert all(close(f, x) and close(s, y) for f, s, (x, y) in zip(*curve, points))
    at = [0.5, -np.inf, 1.0 / 3, 0.0]
    sampled = quiet(F.spro_curve, d_maps, defects, thresholds=at, backend=where)
    assert all(close(f, x) and close(s, y) for f, s, (x, y) in zip(*sampled, naive.spro_points(maps, defects, at)))
    if backend != "cpu":
        assert identical(tuple(got), tuple(quiet(F.au_spro, maps, defects, fpr_limit=SPRO_LIMITS, backend="cpu")))
        assert identical(curve, quiet(F.spro_curve, maps, defects, backend="cpu"))
        assert identical(sampled, quiet(F.spro_curve, maps, defects, thresholds=at, backend="cpu"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_spro_class_split_and_merge(backend):
    maps, defects = SPRO["float32-ties-overlap"]
    whole = rm.AUsPRO(fpr_limit=SPRO_LIMITS, backend="cpu")
    quiet(whole.update, maps, defects)
    (first,), where = on(backend, maps[:2])
    for device_first in (True, False):  # a host state merged into a device one, and the reverse
        a = rm.AUsPRO(fpr_limit=SPRO_LIMITS, backend=where)
        quiet(a.update, first, defects[:2])
        b = rm.AUsPRO(fpr_limit=SPRO_LIMITS, backend="cpu")
        quiet(b.update, maps[2:], defects[2:])
        merged = a.merge(b) if device_first else b.merge(a)
        assert identical(tuple(quiet(merged.compute)), tuple(quiet(whole.compute)))
        assert identical(quiet(merged.curve), quiet(whole.curve))


# issue 13, sections 3-5: PBn/PGn, segmentation scores at a threshold, the validation threshold,
# ADer's mF1/mAcc/mIoU, image scores from maps
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", ["float32-ties-inf", "float64-bool", "int16-ignore", "one-class"])
def test_pbn_pgn(case, backend):
    preds, target, ignore = RANKING[case]
    scores, labels = _oracle_pairs(case)
    for rate in (0.05, 0.0, 0.5, 1.0):
        got = quiet(call, backend, F.pbn, preds, target, fpr=rate, ignore_index=ignore)
        assert close(got, naive.pbn(scores, labels, rate)), rate
        got_g = quiet(call, backend, F.pgn, preds, target, fnr=rate, ignore_index=ignore)
        assert close(got_g, naive.pgn(scores, labels, rate)), rate
        if backend != "cpu":
            assert identical(got, quiet(F.pbn, preds, target, fpr=rate, ignore_index=ignore, backend="cpu"))
            assert identical(got_g, quiet(F.pgn, preds, target, fnr=rate, ignore_index=ignore, backend="cpu"))
    # the classes: two device updates merged with a host state give the functional value
    metric, other = rm.PBn(0.2, ignore_index=ignore), rm.PBn(0.2, ignore_index=ignore)
    half = np.asarray(preds).size // 2
    args, where = on(backend, np.asarray(preds)[:half], np.asarray(target)[:half])
    metric = rm.PBn(0.2, ignore_index=ignore, backend=where)
    metric.update(*args)
    other.update(np.asarray(preds)[half:], np.asarray(target)[half:])
    assert identical(quiet(metric.merge(other).compute),
                     quiet(F.pbn, preds, target, fpr=0.2, ignore_index=ignore, backend="cpu"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_segmentation_scores_and_ader(backend):
    preds, target, ignore = RANKING["int16-ignore"]
    for threshold, strict in ((0.0, True), (0.0, False), (-np.inf, False), (np.inf, True), (2.5, True)):
        got = call(backend, F.segmentation_scores, preds, target, threshold=threshold, strict=strict,
                   ignore_index=ignore)
        scores, labels = _oracle_pairs("int16-ignore")
        counts = naive.segmentation_counts(scores, labels, threshold, strict)
        assert (got["tp"], got["fp"], got["fn"], got["tn"]) == counts
        assert got["f1"] == float(naive.segmentation_rates(*counts)["f1"])
    maps, masks = RANKING["float32-ties-inf"][0].reshape(4, 16), RANKING["float32-ties-inf"][1].reshape(4, 16)
    got = call(backend, F.segmentation_scores, maps, masks, threshold=0.25, average="samplewise")
    for i in range(4):
        counts = naive.segmentation_counts(maps[i], masks[i], 0.25)
        assert tuple(int(got[k][i]) for k in ("tp", "fp", "fn", "tn")) == counts
    if backend != "cpu":
        cpu = F.segmentation_scores(maps, masks, 0.25, average="samplewise", backend="cpu")
        assert all(np.array_equal(got[k], cpu[k]) and np.asarray(got[k]).dtype == np.asarray(cpu[k]).dtype
                   for k in cpu)
    maps = np.abs(RANKING["float64-bool"][0]).reshape(6, 8)
    masks = RANKING["float64-bool"][1].reshape(6, 8)
    from refmetrics.functional.segmentation import ADER_THRESHOLDS

    got = call(backend, F.ader_segmentation, maps, masks)
    exact = naive.ader_segmentation(maps, masks, ADER_THRESHOLDS)
    assert all(close(got[k], exact[k]) for k in exact)
    if backend != "cpu":
        assert got == F.ader_segmentation(maps, masks, backend="cpu")


@pytest.mark.parametrize("backend", BACKENDS)
def test_validation_threshold(backend):
    from fractions import Fraction

    for values in (RANKING["float64-bool"][0].reshape(6, 8), RANKING["float16"][0].reshape(5, 10),
                   np.array([1e8 + 1, 1e8 - 1, 1e8 + 1, 1e8 - 1]), np.array([3e-310, -2.5, 0.0, 1e300], np.float64),
                   RANKING["int16-ignore"][0]):
        got = call(backend, F.validation_threshold, values)
        mean, var = naive.mean_var_population(np.asarray(values).ravel().tolist())
        exact = Fraction(float(mean)) + 3 * naive.sqrt_fraction(var)
        assert abs(Fraction(got) - exact) <= Fraction(1, 10**12) * max(1, abs(exact))
        if backend != "cpu":
            assert identical(got, F.validation_threshold(values, backend="cpu"))
    # a device state merged with a host state
    values = RANKING["float64-bool"][0]
    args, where = on(backend, values[:20])
    metric = rm.ValidationThreshold(backend=where)
    metric.update(*args)
    other = rm.ValidationThreshold()
    other.update(values[20:])
    assert identical(metric.merge(other).compute(), F.validation_threshold(values, backend="cpu"))
    with pytest.warns(rm.UndefinedMetricWarning, match="infinite pixels"):
        assert math.isnan(call(backend, F.validation_threshold, RANKING["float32-ties-inf"][0]))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
def test_image_scores(dtype, backend):
    from fractions import Fraction

    rng = np.random.default_rng(13)
    maps = (np.round(rng.standard_normal((3, 5, 6)) * 4) / 4 * (1e15 if dtype == np.float64 else 1)).astype(dtype)
    if dtype == np.float64:
        maps[1, 2, 3] = 1.0  # a small value among huge ones: the compensated sums keep it
    for reduce, kw in (("max", {}), ("top_k_mean", {"k": 0.3}), ("top_k_mean", {"k": 1.0}),
                       ("pooled_max", {"kernel": 3}), ("pooled_max", {"kernel": 1})):
        got = call(backend, F.image_scores, maps, reduce=reduce, **kw)
        for i in range(3):
            if reduce == "max":
                exact = Fraction(naive.image_max(maps[i]))
            elif reduce == "top_k_mean":
                exact = naive.image_top_k_mean(maps[i], max(1, math.floor(kw["k"] * 30)))
            else:
                exact = naive.image_pooled_max(maps[i], kw["kernel"])
            assert abs(Fraction(got[i]) - exact) <= Fraction(1, 10**12) * max(1, abs(exact)), (reduce, i)
        if backend != "cpu":
            assert identical(got, F.image_scores(maps, reduce=reduce, backend="cpu", **kw)), reduce
    with_inf = np.zeros((2, 3, 3), np.float32)
    with_inf[0, 0, 0], with_inf[0, 2, 2], with_inf[1, 1, 1] = np.inf, -np.inf, np.inf
    with pytest.warns(rm.UndefinedMetricWarning, match="both \\+inf and -inf"):
        got = call(backend, F.image_scores, with_inf, reduce="pooled_max", kernel=3)
    assert math.isnan(got[0]) and got[1] == np.inf
    with pytest.raises(ValueError, match="maps: expected no NaN values, received 1 NaN"):
        bad = np.zeros((2, 3, 3))
        bad[1, 1, 1] = np.nan
        call(backend, F.image_scores, bad, reduce="top_k_mean")
