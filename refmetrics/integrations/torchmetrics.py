"""Each refmetrics metric as a ``torchmetrics.Metric``: exact values inside a Lightning module, under DDP.

``pip install "refmetrics[torch]"`` (torch and torchmetrics). Every class here has the name, constructor
and ``update`` arguments of its :mod:`refmetrics.metrics` twin, plus torchmetrics' own keyword arguments
(``compute_on_cpu``, ``dist_sync_on_step``, ``process_group``, ``dist_sync_fn``,
``distributed_available_fn``, ``sync_on_compute``, ``compute_with_cache``)::

    from refmetrics.integrations.torchmetrics import AUPRO, AUROC

    class Module(lightning.LightningModule):
        def __init__(self):
            super().__init__()
            self.pixel_auroc, self.aupro = AUROC(), AUPRO(fpr_limit=0.3)

        def test_step(self, batch, _):
            maps = self(batch["image"])
            self.pixel_auroc.update(maps, batch["mask"])
            self.aupro.update(maps, batch["mask"])

        def on_test_epoch_end(self):
            self.log("pixel_AUROC", self.pixel_auroc)   # computed (float64, exact, synchronised), then reset
            self.log("AUPRO", self.aupro)

How: each ``update`` (inputs by position or by their names, so ``MetricCollection`` and
``metric(preds=..., target=...)`` work) keeps a copy of its inputs (detached, flattened, as their bytes) in
list states registered with ``dist_reduce_fx="cat"``, with their dtypes and shapes in one more such state.
torchmetrics gathers these across processes before ``compute`` (DDP), which replays the batches, in order,
into a fresh :mod:`refmetrics.metrics` object and returns its value as a float64 tensor on the inputs'
device. So the value is refmetrics' exact one, whatever the number of processes: every metric but F1Score
is independent of batching, and F1Score's per-batch rule sees each batch whole. Attributes the refmetrics
metric sets (``F1Max.threshold``, ``AUPIMO.per_image``) are copied as tensors by ``compute`` and cleared
by ``reset``.

Devices: CUDA tensors stay on the device and are read by refmetrics' CUDA backend (``backend="auto"``);
NumPy inputs are kept on the metric's device (so NCCL can gather them); tensors on any other device (MPS,
XLA) are copied to the CPU, where refmetrics reads them. anomalib's ``Evaluator`` moves its metrics to the
CPU when one device is used (``compute_on_cpu=True``, its default): pass ``Evaluator(...,
compute_on_cpu=False)`` to compute on the GPU.

Memory: the inputs themselves (a float32 score and a bool label: 5 bytes per pixel), as torchmetrics'
exact metrics keep them (MinMax keeps two numbers, ``min`` and ``max``, reduced by min and max under DDP); :class:`refmetrics.PixelState` is the bounded alternative outside torchmetrics.
Not wrapped: ``AUsPRO`` (its defects are Python lists, which torchmetrics cannot synchronise); use it from
:mod:`refmetrics.metrics`.
"""

import inspect
import logging
import math
import warnings

try:
    import torch
    import torchmetrics
    from torchmetrics.utilities.data import dim_zero_cat
except ImportError as exc:  # the integration is optional: say what to install
    raise ImportError(f"refmetrics.integrations.torchmetrics needs torch and torchmetrics ({exc}): "
                      'pip install "refmetrics[torch]"') from None

import numpy as np

from .. import metrics as _metrics

__all__ = ["AUPIMO", "AUPR", "AUPRO", "AUROC", "AnomalyScoreDistribution", "BinaryPrecisionRecallCurve",
           "F1AdaptiveThreshold", "F1Max", "F1Score", "ManualThreshold", "MinMax", "PBn", "PGn", "PRO",
           "RefmetricsMetric", "ValidationThreshold"]

logger = logging.getLogger(__name__)

#: the dtypes an input may have, by the code kept in the ``shapes`` state (inputs are kept as their bytes;
#: bfloat16 is kept as float32, exactly); an optional input not given is kept as the code ``ABSENT``
DTYPES = (torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.float16,
          torch.float32, torch.float64) + tuple(getattr(torch, n) for n in ("uint16", "uint32", "uint64")
                                                if hasattr(torch, n))
ABSENT = -1

#: keyword arguments that go to ``torchmetrics.Metric`` rather than to the refmetrics metric
TORCHMETRICS_KWARGS = ("compute_on_cpu", "dist_sync_on_step", "process_group", "dist_sync_fn",
                       "distributed_available_fn", "sync_on_compute", "compute_with_cache")

_MISSING = object()


def _to_torch(value, device):
    """A refmetrics result as torch: numbers as 0-d float64 tensors, arrays as tensors, containers kept."""
    if value is None:
        return None
    if isinstance(value, (tuple, list)):
        return type(value)(_to_torch(v, device) for v in value)
    if isinstance(value, dict):
        return {k: _to_torch(v, device) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value)).to(device)
    if isinstance(value, (bool, int, float, np.number)):
        return torch.tensor(float(value), dtype=torch.float64, device=device)
    if hasattr(value, "__cuda_array_interface__"):  # a device array of refmetrics' CUDA backend
        return torch.as_tensor(value, device=device)
    return value


def _readable(device):
    """Where refmetrics can read a tensor: CPU and CUDA as they are; anything else (MPS, XLA) is copied to
    the CPU, where NumPy reads it."""
    return device if device.type in ("cpu", "cuda") else torch.device("cpu")


class RefmetricsMetric(torchmetrics.Metric):
    """A :mod:`refmetrics.metrics` class (``metric_class``) as a ``torchmetrics.Metric`` whose ``update``
    takes ``n_inputs`` tensors (or arrays), by position or by the refmetrics metric's argument names.
    Subclasses set the class attributes."""

    is_differentiable = False
    higher_is_better = None
    full_state_update = False
    metric_class = None
    n_inputs = 2
    #: inputs past ``n_inputs``, and unknown keywords, are ignored rather than refused (MinMax, as
    #: anomalib's, ignores the labels; ManualThreshold ignores everything)
    ignore_extra = False
    #: every input may be omitted (AnomalyScoreDistribution: scores, maps or both)
    optional_inputs = False
    #: keywords accepted and ignored (AnomalyScoreDistribution's ``labels``, as anomalib's)
    ignored_keywords = ()
    #: other names an input is accepted under, ``{alias: name}`` (MinMax's ``predictions``, anomalib's name)
    aliases = {}

    def __init__(self, *args, **kwargs):
        options = {k: kwargs.pop(k) for k in TORCHMETRICS_KWARGS if k in kwargs}
        super().__init__(**options)
        self._metric = self.metric_class(*args, **kwargs)  # checks the parameters now, naming them
        self._config = self._metric._config()
        for i in range(self.n_inputs):
            self.add_state(f"input{i}", default=[], dist_reduce_fx="cat")
        self.add_state("shapes", default=[], dist_reduce_fx="cat")
        self._set_outputs(self._metric, self.device)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._config.items())
        return f"{type(self).__name__}({args})"

    @classmethod
    def _input_names(cls):
        params = inspect.signature(cls.metric_class.update).parameters.values()
        return [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD][1:1 + cls.n_inputs]

    def _bind(self, inputs, named):
        """The ``n_inputs`` inputs of one ``update`` call, from positions then keywords (None for an optional
        input not given); a wrong number or an unknown keyword is refused, naming the inputs expected."""
        names = self._input_names()
        where = f"{type(self).__name__}.update"
        for alias, name in self.aliases.items():
            if alias in named:
                if name in named:
                    raise TypeError(f"{where}: {name}: expected it once, received it as {name} and as {alias}")
                named[name] = named.pop(alias)
        for name in self.ignored_keywords:
            named.pop(name, None)
        if len(inputs) > len(names) and not self.ignore_extra:
            raise TypeError(f"{where}: expected {self.n_inputs} inputs ({', '.join(names)}), received {len(inputs)}")
        values = list(inputs[:len(names)])
        for name in names[:len(values)]:
            if name in named:
                raise TypeError(f"{where}: {name}: expected it by position or by keyword, received both")
        values += [named.pop(name, _MISSING) for name in names[len(values):]]
        if named and not self.ignore_extra:
            raise TypeError(f"{where}: expected the inputs {', '.join(names)}, received the unknown keyword "
                            f"argument(s) {', '.join(sorted(named))}")
        if self.optional_inputs:
            return [None if v is _MISSING else v for v in values]
        if any(v is _MISSING for v in values):
            given = len(inputs) + sum(v is not _MISSING for v in values[len(inputs):])
            raise TypeError(f"{where}: expected {self.n_inputs} inputs ({', '.join(names)}), received {given}")
        return values

    def update(self, *inputs, **named):
        """Keep one batch (``n_inputs`` tensors or arrays, as the refmetrics metric's ``update`` takes them,
        by position or by name): a copy, so a buffer the caller reuses for the next batch changes nothing
        kept; nothing is computed until :meth:`compute`."""
        values = self._bind(inputs, named)
        if all(v is None for v in values) and self.optional_inputs and values:
            return
        shape = []
        device = None
        for name, i, x in zip(self._input_names(), range(self.n_inputs), values):
            if x is None:
                shape += [ABSENT, 0]
                continue
            if isinstance(x, torch.Tensor):
                t = x.detach()
                t = t.to(_readable(t.device))
            else:  # NumPy (or anything NumPy reads): kept on the metric's device, which DDP gathers on
                if isinstance(x, np.ma.MaskedArray):
                    raise TypeError(f"{type(self).__name__}.update: {name}: expected an array without a mask "
                                    f"(pass ignore_index, or drop the masked elements), received a masked array")
                a = np.ascontiguousarray(x)
                if not a.dtype.isnative:  # big-endian bytes: torch reads native ones
                    a = a.astype(a.dtype.newbyteorder("="))
                t = torch.as_tensor(a, device=_readable(self.device))
            if t.dtype == torch.bfloat16:  # exact in float32, which refmetrics reads (NumPy has no bfloat16)
                t = t.float()
            if t.dtype not in DTYPES:
                raise TypeError(f"{type(self).__name__}.update: {name}: expected a real or bool tensor, "
                                f"received dtype {t.dtype}")
            device = t.device if device is None else device
            # kept as a copy of its bytes (every process's state then has one dtype, uint8, also one without
            # data), padded to 8 bytes so that each batch's bytes start aligned for any dtype
            data = t.contiguous().reshape(-1).view(torch.uint8)
            kept = torch.zeros(-(-data.numel() // 8) * 8, dtype=torch.uint8, device=data.device)
            kept[:data.numel()] = data
            getattr(self, f"input{i}").append(kept)
            shape += [DTYPES.index(t.dtype), t.ndim, *t.shape]
        self.shapes.append(torch.tensor(shape, dtype=torch.int64, device=device or _readable(self.device)))

    def _sync_dist(self, dist_sync_fn=None, process_group=None):
        """torchmetrics' gather, with this metric's own empty states on a process that saw no batch (uint8
        inputs, int64 shapes: torchmetrics' placeholder has the default float dtype, which no other process's
        state has)."""
        for name in [f"input{i}" for i in range(self.n_inputs)] + ["shapes"]:
            if isinstance(getattr(self, name), list) and not getattr(self, name):
                setattr(self, name, [torch.empty(0, dtype=torch.int64 if name == "shapes" else torch.uint8,
                                                 device=_readable(self.device))])
        if dist_sync_fn is None:
            return super()._sync_dist(process_group=process_group)
        return super()._sync_dist(dist_sync_fn, process_group=process_group)

    def _batches(self):
        """The batches kept (after a DDP gather: every process's, in rank order), as they were given."""
        if isinstance(self.shapes, list) and not self.shapes:
            return
        shapes = dim_zero_cat(self.shapes).tolist()
        data = [getattr(self, f"input{i}") for i in range(self.n_inputs)]
        data = [None if isinstance(d, list) and not d else dim_zero_cat(d) for d in data]
        data = [None if d is None else d.to(_readable(d.device)) for d in data]  # moved to MPS after update
        at, used = 0, [0] * self.n_inputs
        while at < len(shapes):
            batch = []
            for i in range(self.n_inputs):
                code, ndim = int(shapes[at]), int(shapes[at + 1])
                dims = [int(d) for d in shapes[at + 2:at + 2 + ndim]]
                at += 2 + ndim
                if code == ABSENT:
                    batch.append(None)
                    continue
                dtype = DTYPES[code]
                size = math.prod(dims) * torch.empty(0, dtype=dtype).element_size()
                batch.append(data[i][used[i]:used[i] + size].view(dtype).reshape(dims))
                used[i] += -(-size // 8) * 8  # the padding update added
            yield batch

    def _replay(self):
        """A fresh refmetrics metric updated with every batch kept, and the device of the inputs."""
        metric = self.metric_class(**self._config)
        device = _readable(self.device)
        for batch in self._batches():
            present = [x for x in batch if x is not None]
            device = present[0].device if present else device
            metric.update(*batch)
        return metric, device

    def compute(self):
        """The refmetrics metric of every batch kept, as float64 tensors on the inputs' device (numbers as
        0-d tensors; curves as tuples of tensors); attributes it sets (``F1Max.threshold``) are copied, as
        tensors. Its warnings (an undefined value) are issued here."""
        metric, device = self._replay()
        value = metric.compute()
        self._set_outputs(metric, device)
        return _to_torch(value, device)

    def reset(self):
        """Forget every batch, and the attributes ``compute`` set (back to their values before any)."""
        super().reset()
        if hasattr(self, "_metric"):
            self._set_outputs(self._metric, _readable(self.device))

    def _set_outputs(self, metric, device):
        for name in metric._outputs:
            setattr(self, name, _to_torch(getattr(metric, name, None), device))



def _signature(cls, n_inputs, ignore_extra, optional, ignored=()):
    """``update``'s signature for the class wrapping ``cls``: its input names (torchmetrics'
    ``MetricCollection`` passes each metric the keywords its signature names)."""
    P = inspect.Parameter
    names = RefmetricsMetric._input_names.__func__(type("_", (), {"metric_class": cls, "n_inputs": n_inputs}))
    params = [P("self", P.POSITIONAL_OR_KEYWORD)]
    params += [P(n, P.POSITIONAL_OR_KEYWORD, **({"default": None} if optional else {})) for n in names]
    params += [P(n, P.KEYWORD_ONLY, default=None) for n in ignored]
    if ignore_extra:
        params += [P("args", P.VAR_POSITIONAL), P("kwargs", P.VAR_KEYWORD)]
    return inspect.Signature(params)


def _wrap(cls, n_inputs=2, higher_is_better=None, ignore_extra=False, optional_inputs=False, ignored_keywords=(),
          base=None, **namespace):
    doc = (f"refmetrics' :class:`refmetrics.metrics.{cls.__name__}` as a ``torchmetrics.Metric`` (constructor "
           f"and ``update`` of that class, plus torchmetrics' keyword arguments; see "
           f":mod:`refmetrics.integrations.torchmetrics`).")

    base = base or RefmetricsMetric

    def update(self, *inputs, **named):
        return base.update(self, *inputs, **named)

    update.__doc__ = base.update.__doc__
    update.__signature__ = _signature(cls, n_inputs, ignore_extra, optional_inputs, ignored_keywords)
    if hasattr(cls, "generate_figure"):  # AUROC, AUPR, AUPRO: what anomalib's metrics callback plots
        namespace.setdefault("generate_figure", _generate_figure)
    return type(cls.__name__, (base,), {
        "metric_class": cls, "n_inputs": n_inputs, "__doc__": namespace.pop("__doc__", doc),
        "higher_is_better": higher_is_better, "ignore_extra": ignore_extra, "optional_inputs": optional_inputs,
        "ignored_keywords": ignored_keywords,
        "update": update, "__module__": __name__, **namespace})


def _generate_figure(self):
    """The refmetrics metric's figure of every batch kept: ``(matplotlib figure, title)``, as anomalib's
    ``generate_figure``."""
    metric, _ = self._replay()
    return metric.generate_figure()


def _rate_name(prefix, key):
    """anomalib's ``PGn``/``PBn`` rename themselves ``PG<percent>``/``PB<percent>`` (``PG5`` for
    ``fnr=0.05``), the name they are logged under; the same here."""
    def __init__(self, *args, **kwargs):
        RefmetricsMetric.__init__(self, *args, **kwargs)
        self.name = prefix + str(int(self._config[key] * 100))
    return __init__


def _f1_score_init(self, *args, **kwargs):
    RefmetricsMetric.__init__(self, *args, **kwargs)
    self.threshold = self._config["threshold"]  # as torchmetrics' BinaryF1Score


def _manual_init(self, *args, **kwargs):
    RefmetricsMetric.__init__(self, *args, **kwargs)
    # saved in the state dict under anomalib's key, so either class loads the other's checkpoint; a buffer,
    # so it follows .to(device) and survives reset
    self.register_buffer("value", torch.tensor(float(self._config["default_value"]), dtype=torch.float64))


def _manual_compute(self):
    """``default_value`` as a float64 tensor (or the ``value`` a checkpoint held), whatever the data."""
    return self.value.clone()


def _f1_adaptive_compute(self):
    """The threshold; without an anomalous (normal) sample, refmetrics' warning is issued and, as anomalib's
    class does, the fall-back is logged."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = RefmetricsMetric.compute(self)
    for w in caught:
        _f1_adaptive_log(self, str(w.message))
        warnings.warn(w.message, stacklevel=2)
    return value


def _f1_adaptive_log(self, message):
    binned = self._config.get("thresholds") is not None
    if "no anomalous sample" in message:
        missing, fallback = "anomalous", "highest " + ("candidate threshold boundary" if binned else
                                                       "anomaly score observed (in its normal images)")
    elif "no normal sample" in message:
        missing, fallback = "normal", "lowest " + ("candidate threshold boundary" if binned else
                                                   "anomaly score observed (in its anomalous images)")
    else:
        return
    logger.warning(f"F1AdaptiveThreshold: the validation set does not contain any {missing} images; the "
                   f"adaptive threshold is the {fallback}, which may give poor predictions")


class _Extremes(RefmetricsMetric):
    """MinMax keeps two numbers, as anomalib's: ``min`` and ``max`` are float64 states reduced across
    processes by ``min`` and ``max`` (exact), each batch read and checked by refmetrics' ``MinMax``."""

    def __init__(self, *args, **kwargs):
        options = {k: kwargs.pop(k) for k in TORCHMETRICS_KWARGS if k in kwargs}
        torchmetrics.Metric.__init__(self, **options)
        self._metric = self.metric_class(*args, **kwargs)
        self._config = self._metric._config()
        self.add_state("min", default=torch.tensor(math.inf, dtype=torch.float64), dist_reduce_fx="min")
        self.add_state("max", default=torch.tensor(-math.inf, dtype=torch.float64), dist_reduce_fx="max")

    def update(self, *inputs, **named):
        """Fold one batch of scores into ``min`` and ``max`` (anything after the scores is ignored)."""
        (x,) = self._bind(inputs, named)
        if isinstance(x, torch.Tensor):
            x = x.detach().to(_readable(x.device))
        batch = self.metric_class(**self._config)
        batch.update(x)  # refmetrics' intake: NaN, dtype and the CUDA backend as everywhere else
        lo, hi = batch.compute()
        self.min = torch.minimum(self.min, torch.tensor(lo, dtype=torch.float64, device=self.min.device))
        self.max = torch.maximum(self.max, torch.tensor(hi, dtype=torch.float64, device=self.max.device))

    def _sync_dist(self, dist_sync_fn=None, process_group=None):
        if dist_sync_fn is None:
            return torchmetrics.Metric._sync_dist(self, process_group=process_group)
        return torchmetrics.Metric._sync_dist(self, dist_sync_fn, process_group=process_group)

    def compute(self):
        """``(min, max)`` of every score seen (every process's under DDP), float64 tensors; ``(inf, -inf)``
        before any."""
        return self.min.clone(), self.max.clone()


def _distribution_init(self, *args, **kwargs):
    """anomalib's AnomalyScoreDistribution keeps its results in saved states (empty before ``compute`` and
    after ``reset``): the same here, under the same names, so either class loads the other's checkpoint."""
    RefmetricsMetric.__init__(self, *args, **kwargs)
    for name in ("image_mean", "image_std", "pixel_mean", "pixel_std"):
        self.add_state(name, default=torch.empty(0), persistent=True)


def _distribution_compute(self):
    value = RefmetricsMetric.compute(self)
    for name, v in zip(("image_mean", "image_std", "pixel_mean", "pixel_std"), value):
        setattr(self, name, v)
    return value


AUROC = _wrap(_metrics.AUROC, higher_is_better=True)
AUPR = _wrap(_metrics.AUPR, higher_is_better=True)
AUPRO = _wrap(_metrics.AUPRO, higher_is_better=True)
PRO = _wrap(_metrics.PRO, higher_is_better=True)
F1Max = _wrap(_metrics.F1Max, higher_is_better=True)
F1Score = _wrap(_metrics.F1Score, higher_is_better=True, __init__=_f1_score_init)
AUPIMO = _wrap(_metrics.AUPIMO, higher_is_better=True)
PBn = _wrap(_metrics.PBn, higher_is_better=True, __init__=_rate_name("PB", "fpr"))
PGn = _wrap(_metrics.PGn, higher_is_better=True, __init__=_rate_name("PG", "fnr"))
BinaryPrecisionRecallCurve = _wrap(_metrics.BinaryPrecisionRecallCurve)
F1AdaptiveThreshold = _wrap(_metrics.F1AdaptiveThreshold, compute=_f1_adaptive_compute)
MinMax = _wrap(_metrics.MinMax, n_inputs=1, ignore_extra=True, aliases={"predictions": "preds"}, base=_Extremes)
ValidationThreshold = _wrap(_metrics.ValidationThreshold, n_inputs=1)
ManualThreshold = _wrap(_metrics.ManualThreshold, n_inputs=0, ignore_extra=True, __init__=_manual_init,
                        compute=_manual_compute)
AnomalyScoreDistribution = _wrap(_metrics.AnomalyScoreDistribution, optional_inputs=True, ignored_keywords=("labels",),
                                 __init__=_distribution_init, compute=_distribution_compute)
