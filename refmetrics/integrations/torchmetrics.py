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

How: each ``update`` keeps a copy of its inputs (detached, on their device, flattened, as their bytes) in
list states registered with ``dist_reduce_fx="cat"``, with their dtypes and shapes in one more such state. torchmetrics gathers
these across processes before ``compute`` (DDP), which replays the batches, in order, into a fresh
:mod:`refmetrics.metrics` object and returns its value as a float64 tensor on the inputs' device. So the
value is refmetrics' exact one, whatever the number of processes: every metric but F1Score is
independent of batching, and F1Score's per-batch rule sees each batch whole. CUDA tensors stay on the
device and are read by refmetrics' CUDA backend (``backend="auto"``).

Memory: the inputs themselves (a float32 score and a bool label: 5 bytes per pixel), as torchmetrics'
exact metrics keep them; :class:`refmetrics.PixelState` is the bounded alternative outside torchmetrics.
Not wrapped: ``AnomalyScoreDistribution`` (keyword inputs) and ``AUsPRO`` (its defects are Python lists,
which torchmetrics cannot synchronise); use them from :mod:`refmetrics.metrics`.
"""

import math

try:
    import torch
    import torchmetrics
    from torchmetrics.utilities.data import dim_zero_cat
except ImportError as exc:  # the integration is optional: say what to install
    raise ImportError(f"refmetrics.integrations.torchmetrics needs torch and torchmetrics ({exc}): "
                      'pip install "refmetrics[torch]"') from None

import numpy as np

from .. import metrics as _metrics

__all__ = ["AUPIMO", "AUPR", "AUPRO", "AUROC", "BinaryPrecisionRecallCurve", "F1AdaptiveThreshold", "F1Max",
           "F1Score", "ManualThreshold", "MinMax", "PBn", "PGn", "PRO", "RefmetricsMetric", "ValidationThreshold"]

#: the dtypes an input may have, by the code kept in the ``shapes`` state (inputs are kept as their bytes;
#: bfloat16 is kept as float32, exactly)
DTYPES = (torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.float16,
          torch.float32, torch.float64)

#: keyword arguments that go to ``torchmetrics.Metric`` rather than to the refmetrics metric
TORCHMETRICS_KWARGS = ("compute_on_cpu", "dist_sync_on_step", "process_group", "dist_sync_fn",
                       "distributed_available_fn", "sync_on_compute", "compute_with_cache")


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


class RefmetricsMetric(torchmetrics.Metric):
    """A :mod:`refmetrics.metrics` class (``metric_class``) as a ``torchmetrics.Metric`` whose ``update``
    takes ``n_inputs`` tensors (or arrays) positionally. Subclasses set the two class attributes."""

    is_differentiable = False
    higher_is_better = None
    full_state_update = False
    metric_class = None
    n_inputs = 2

    def __init__(self, *args, **kwargs):
        options = {k: kwargs.pop(k) for k in TORCHMETRICS_KWARGS if k in kwargs}
        super().__init__(**options)
        self._metric = self.metric_class(*args, **kwargs)  # checks the parameters now, naming them
        self._config = self._metric._config()
        for i in range(self.n_inputs):
            self.add_state(f"input{i}", default=[], dist_reduce_fx="cat")
        self.add_state("shapes", default=[], dist_reduce_fx="cat")
        for name in self.metric_class._outputs:
            setattr(self, name, getattr(self._metric, name, None))

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._config.items())
        return f"{type(self).__name__}({args})"

    #: inputs past ``n_inputs`` are ignored rather than refused (MinMax, as anomalib's, ignores the labels)
    ignore_extra = False

    def update(self, *inputs):
        """Keep one batch (``n_inputs`` tensors or arrays, as the refmetrics metric's ``update`` takes them): a
        copy, so a buffer the caller reuses for the next batch changes nothing kept; nothing is computed until
        :meth:`compute`."""
        if self.ignore_extra:
            inputs = inputs[:self.n_inputs]
        if len(inputs) != self.n_inputs:
            raise TypeError(f"{type(self).__name__}.update: expected {self.n_inputs} inputs "
                            f"({', '.join(self._input_names())}), received {len(inputs)}")
        tensors = [x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x)) for x in inputs]
        device = tensors[0].device if tensors else self.device
        shape = []
        for name, i, t in zip(self._input_names(), range(self.n_inputs), tensors):
            if t.dtype == torch.bfloat16:  # exact in float32, which refmetrics reads (NumPy has no bfloat16)
                t = t.float()
            if t.dtype not in DTYPES:
                raise TypeError(f"{type(self).__name__}.update: {name}: expected a real or bool tensor, "
                                f"received dtype {t.dtype}")
            # kept as a copy of its bytes (every process's state then has one dtype, uint8, also one without
            # data), padded to 8 bytes so that each batch's bytes start aligned for any dtype
            data = t.contiguous().reshape(-1).view(torch.uint8)
            kept = torch.zeros(-(-data.numel() // 8) * 8, dtype=torch.uint8, device=data.device)
            kept[:data.numel()] = data
            getattr(self, f"input{i}").append(kept)
            shape += [DTYPES.index(t.dtype), t.ndim, *t.shape]
        self.shapes.append(torch.tensor(shape, dtype=torch.int64, device=device))

    def _sync_dist(self, dist_sync_fn=None, process_group=None):
        """torchmetrics' gather, with this metric's own empty states on a process that saw no batch (uint8
        inputs, int64 shapes: torchmetrics' placeholder has the default float dtype, which no other process's
        state has)."""
        for name in [f"input{i}" for i in range(self.n_inputs)] + ["shapes"]:
            if isinstance(getattr(self, name), list) and not getattr(self, name):
                setattr(self, name, [torch.empty(0, dtype=torch.int64 if name == "shapes" else torch.uint8,
                                                 device=self.device)])
        if dist_sync_fn is None:
            return super()._sync_dist(process_group=process_group)
        return super()._sync_dist(dist_sync_fn, process_group=process_group)

    def _input_names(self):
        import inspect

        return list(inspect.signature(self.metric_class.update).parameters)[1:1 + self.n_inputs]

    def _batches(self):
        """The batches kept (after a DDP gather: every process's, in rank order), as they were given."""
        if isinstance(self.shapes, list) and not self.shapes:
            return
        shapes = dim_zero_cat(self.shapes).tolist()
        data = [dim_zero_cat(getattr(self, f"input{i}")) for i in range(self.n_inputs)]
        at, used = 0, [0] * self.n_inputs
        while at < len(shapes):
            batch = []
            for i in range(self.n_inputs):
                dtype, ndim = DTYPES[int(shapes[at])], int(shapes[at + 1])
                dims = [int(d) for d in shapes[at + 2:at + 2 + ndim]]
                at += 2 + ndim
                size = math.prod(dims) * torch.empty(0, dtype=dtype).element_size()
                batch.append(data[i][used[i]:used[i] + size].view(dtype).reshape(dims))
                used[i] += -(-size // 8) * 8  # the padding update added
            yield batch

    def compute(self):
        """The refmetrics metric of every batch kept, as float64 tensors on the inputs' device (numbers as
        0-d tensors; curves as tuples of tensors); attributes it sets (``F1Max.threshold``) are copied."""
        metric = self.metric_class(**self._config)
        device = self.device
        for batch in self._batches():
            device = batch[0].device if batch else device
            metric.update(*batch)
        value = metric.compute()
        for name in metric._outputs:
            setattr(self, name, getattr(metric, name))
        return _to_torch(value, device)


def _wrap(cls, n_inputs=2, higher_is_better=None, ignore_extra=False):
    doc = (f"refmetrics' :class:`refmetrics.metrics.{cls.__name__}` as a ``torchmetrics.Metric`` (constructor "
           f"and ``update`` of that class, plus torchmetrics' keyword arguments; see "
           f":mod:`refmetrics.integrations.torchmetrics`).")
    return type(cls.__name__, (RefmetricsMetric,), {"metric_class": cls, "n_inputs": n_inputs, "__doc__": doc,
                                                     "higher_is_better": higher_is_better,
                                                     "ignore_extra": ignore_extra,
                                                     "__module__": __name__})


AUROC = _wrap(_metrics.AUROC, higher_is_better=True)
AUPR = _wrap(_metrics.AUPR, higher_is_better=True)
AUPRO = _wrap(_metrics.AUPRO, higher_is_better=True)
PRO = _wrap(_metrics.PRO, higher_is_better=True)
F1Max = _wrap(_metrics.F1Max, higher_is_better=True)
F1Score = _wrap(_metrics.F1Score, higher_is_better=True)
AUPIMO = _wrap(_metrics.AUPIMO, higher_is_better=True)
PBn = _wrap(_metrics.PBn, higher_is_better=True)
PGn = _wrap(_metrics.PGn, higher_is_better=True)
BinaryPrecisionRecallCurve = _wrap(_metrics.BinaryPrecisionRecallCurve)
F1AdaptiveThreshold = _wrap(_metrics.F1AdaptiveThreshold)
MinMax = _wrap(_metrics.MinMax, n_inputs=1, ignore_extra=True)
ValidationThreshold = _wrap(_metrics.ValidationThreshold, n_inputs=1)
ManualThreshold = _wrap(_metrics.ManualThreshold, n_inputs=0, ignore_extra=True)
