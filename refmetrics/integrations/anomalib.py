"""Drop-ins for anomalib 2.x's metrics: the same classes, constructors and batch fields, refmetrics' exact values.

``pip install "refmetrics[anomalib]"``. Each class is an ``anomalib.metrics.AnomalibMetric`` (so anomalib's
``Evaluator`` and ``Engine.test`` take it where they take anomalib's own, with ``fields=[...]``,
``prefix=`` and ``strict=``, and log it under ``prefix + class name``) built on the matching
:mod:`refmetrics.integrations.torchmetrics` class (so DDP synchronisation is torchmetrics'). The one-line
swap::

    # from anomalib.metrics import AUPRO, AUROC, Evaluator
    from anomalib.metrics import Evaluator
    from refmetrics.integrations.anomalib import AUPRO, AUROC

    evaluator = Evaluator(test_metrics=[AUROC(fields=["pred_score", "gt_label"], prefix="image_"),
                                        AUROC(fields=["anomaly_map", "gt_mask"], prefix="pixel_"),
                                        AUPRO(fields=["anomaly_map", "gt_mask"], prefix="pixel_")])

Values are float64 tensors, so nothing is rounded to float32. Where anomalib's constructor has a parameter
that refmetrics has no use for, it is accepted and documented on the class (``normalization``: refmetrics
ranks the raw scores, never their float32 sigmoid, which ties large scores; ``num_thresholds`` and ``force``
of AUPIMO: every distinct score is a threshold). Anything else that would change the value is refused with
an error naming the parameter.

``ManualThreshold``, ``AnomalyScoreDistribution`` and ``BinaryPrecisionRecallCurve`` are plain
``torchmetrics`` metrics in anomalib (not ``AnomalibMetric`` subclasses), and so are they here: the
:mod:`refmetrics.integrations.torchmetrics` classes, with anomalib's ``update`` (``ManualThreshold`` ignores
its inputs; ``AnomalyScoreDistribution`` takes ``anomaly_scores=``, ``anomaly_maps=`` and ignores
``labels=``).

anomalib's ``Evaluator`` moves its metrics to the CPU when one device is used (its ``compute_on_cpu=True``);
pass ``Evaluator(..., compute_on_cpu=False)`` to keep CUDA inputs on the GPU, where refmetrics' CUDA backend
reads them.

:class:`PostProcessor` is anomalib's ``PostProcessor`` with these ``F1AdaptiveThreshold`` and ``MinMax`` in
place of anomalib's, so the thresholds and the normalisation bounds it learns on the validation set are exact
(``model = Patchcore(post_processor=PostProcessor())``). Not replaced: ``PIMO`` (its curve result type is
anomalib's) and ``MEBinPostProcessor``.
"""

try:
    from anomalib.metrics import AnomalibMetric
except ImportError as exc:  # the integration is optional: say what to install
    raise ImportError(f"refmetrics.integrations.anomalib needs anomalib ({exc}): "
                      'pip install "refmetrics[anomalib]"') from None

import numpy as np
import torch

from . import torchmetrics as _tm

__all__ = ["AUPIMO", "AUPR", "AUPRO", "AUROC", "AnomalyScoreDistribution", "BinaryPrecisionRecallCurve",
           "F1AdaptiveThreshold", "F1Max", "F1Score", "ManualThreshold", "MinMax", "PBn", "PGn", "PRO",
           "PostProcessor"]

#: anomalib's plain torchmetrics classes: the refmetrics ones, unchanged
ManualThreshold = _tm.ManualThreshold
BinaryPrecisionRecallCurve = _tm.BinaryPrecisionRecallCurve


class AnomalyScoreDistribution(_tm.AnomalyScoreDistribution):
    """anomalib's ``AnomalyScoreDistribution``, exact: :class:`refmetrics.AnomalyScoreDistribution`, with
    anomalib's ``update``: the inputs by keyword only, positional arguments ignored (as anomalib's, so a
    ``MetricCollection`` may pass it ``preds, target``), ``labels`` accepted and ignored."""

    def update(self, *args, anomaly_scores=None, anomaly_maps=None, labels=None):
        del args, labels
        _tm.RefmetricsMetric.update(self, anomaly_scores=anomaly_scores, anomaly_maps=anomaly_maps)


def _accept(name, value, allowed, why):
    if value not in allowed:
        raise ValueError(f"{name}: expected one of {allowed!r} ({why}), received {value!r}")


_SIGMOID = ("refmetrics ranks the raw scores exactly; anomalib's float32 sigmoid ties scores above about 17, "
            "which is the difference this drop-in removes")


class AUROC(AnomalibMetric, _tm.AUROC):
    """anomalib's ``AUROC``, exact: :class:`refmetrics.AUROC`. ``normalization`` ("sigmoid" or None) is
    accepted and has no effect: the raw scores are ranked."""

    def __init__(self, fields=None, prefix="", strict=True, normalization="sigmoid", **kwargs):
        _accept("normalization", normalization, ("sigmoid", None), _SIGMOID)
        super().__init__(fields=fields, prefix=prefix, strict=strict, **kwargs)


class AUPR(AnomalibMetric, _tm.AUPR):
    """anomalib 2.7's ``AUPR`` (average precision, the step-wise sum), exact: :class:`refmetrics.AUPR`.
    ``normalization`` as in :class:`AUROC`."""

    def __init__(self, fields=None, prefix="", strict=True, normalization="sigmoid", **kwargs):
        _accept("normalization", normalization, ("sigmoid", None), _SIGMOID)
        super().__init__(fields=fields, prefix=prefix, strict=strict, **kwargs)


class AUPRO(AnomalibMetric, _tm.AUPRO):
    """anomalib's ``AUPRO(fpr_limit=0.3)``, exact: :class:`refmetrics.AUPRO` (every distinct score a
    threshold, regions labelled per image). ``fpr_limit`` is also a buffer, as anomalib registers it, so
    checkpoints written with anomalib's class load, and the limit they hold is the one computed with.
    anomalib stores it in float32 (0.1 as 0.10000000149...): a loaded float32 value is read as the shortest
    decimal that rounds to it (0.1)."""

    def __init__(self, fields=None, prefix="", strict=True, **kwargs):
        super().__init__(fields=fields, prefix=prefix, strict=strict, **kwargs)
        self.register_buffer("fpr_limit", torch.tensor(self._config["fpr_limit"], dtype=torch.float64))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        before = self.fpr_limit.clone()
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        if prefix + "fpr_limit" not in state_dict:
            return
        limit = float(self.fpr_limit)
        if float(np.float32(limit)) == limit:  # written in float32, as anomalib does
            limit = float(str(np.float32(limit)))
        if limit != self._config["fpr_limit"]:
            try:
                metric = self.metric_class(**{**self._config, "fpr_limit": limit})
            except ValueError as exc:  # torch's way: collected, raised by load_state_dict with the others
                error_msgs.append(f"{prefix}fpr_limit: {exc}")
                self.fpr_limit.copy_(before)
                return
            self._metric, self._config = metric, metric._config()
        self.fpr_limit = torch.tensor(self._config["fpr_limit"], dtype=torch.float64, device=self.fpr_limit.device)


class PRO(AnomalibMetric, _tm.PRO):
    """anomalib's ``PRO(threshold=0.5)``, exact: :class:`refmetrics.PRO`."""


class F1Score(AnomalibMetric, _tm.F1Score):
    """anomalib's ``F1Score`` (torchmetrics' ``BinaryF1Score``), exact: :class:`refmetrics.F1Score`.
    ``zero_division`` must be 0, its default (the F1 of a batch without a positive or a prediction)."""

    def __init__(self, fields=None, prefix="", strict=True, zero_division=0, **kwargs):
        _accept("zero_division", zero_division, (0,), "refmetrics' F1 is 0 where it has no positive or prediction")
        super().__init__(fields=fields, prefix=prefix, strict=strict, **kwargs)


class F1Max(AnomalibMetric, _tm.F1Max):
    """anomalib's ``F1Max``, exact: :class:`refmetrics.F1Max`; ``threshold`` is set by ``compute``."""


class F1AdaptiveThreshold(AnomalibMetric, _tm.F1AdaptiveThreshold):
    """anomalib's ``F1AdaptiveThreshold``, exact: :class:`refmetrics.F1AdaptiveThreshold`. ``normalization``
    as in :class:`AUROC`. Without an anomalous (normal) image it falls back to the highest (lowest) score,
    or candidate threshold when binned, and logs it, as anomalib's; ``value`` is the threshold."""

    def __init__(self, fields=None, prefix="", strict=True, normalization=None, **kwargs):
        _accept("normalization", normalization, ("sigmoid", None), _SIGMOID)
        super().__init__(fields=fields, prefix=prefix, strict=strict, **kwargs)


class MinMax(AnomalibMetric, _tm.MinMax):
    """anomalib's ``MinMax``: ``tensor([min, max])`` of the scores seen, float64; the ``min`` and ``max``
    attributes are those of the scores this process has seen so far (+inf and -inf before any score)."""

    def compute(self):
        value = super().compute()
        return None if value is None else torch.stack(list(value))


class PGn(AnomalibMetric, _tm.PGn):
    """anomalib's ``PGn(fnr=0.05)``, exact: :class:`refmetrics.PGn`. Named and logged ``PG<percent>``
    (``PG5``), as anomalib's, which renames itself so and drops ``prefix``. Without a normal image the value
    is NaN with a warning (SPEC), where anomalib's raises ``ValueError``."""

    default_fields = ("pred_score", "gt_label")


class PBn(AnomalibMetric, _tm.PBn):
    """anomalib's ``PBn(fpr=0.05)``, exact: :class:`refmetrics.PBn`. Named and logged ``PB<percent>``
    (``PB5``), as anomalib's. Without an anomalous image the value is NaN with a warning (SPEC), where
    anomalib's raises ``ValueError``."""

    default_fields = ("pred_score", "gt_label")


class AUPIMO(AnomalibMetric, _tm.AUPIMO):
    """anomalib's ``AUPIMO``, exact: :class:`refmetrics.AUPIMO`, the mean over anomalous images
    (``return_average=True``, anomalib's default; the per-image values are the ``per_image`` attribute that
    ``compute`` sets). ``num_thresholds`` and ``force`` are accepted and have no effect: every distinct
    score is a threshold, so there is no sampling to force."""

    default_fields = ("anomaly_map", "gt_mask")

    def __init__(self, fields=None, prefix="", strict=True, num_thresholds=300_000, fpr_bounds=(1e-5, 1e-4),
                 return_average=True, force=False, **kwargs):  # anomalib's order: AnomalibMetric's arguments first
        _accept("return_average", return_average, (True,), "the per-image values are the per_image attribute "
                "compute sets; anomalib's (PIMOResult, AUPIMOResult) pair is not reproduced")
        del num_thresholds, force
        super().__init__(fields=fields, prefix=prefix, strict=strict, fpr_bounds=tuple(fpr_bounds), **kwargs)


def _post_processor_base():
    from anomalib.post_processing import PostProcessor as base

    return base


class PostProcessor(_post_processor_base()):
    """anomalib's ``PostProcessor`` (same arguments, same buffers and checkpoints) whose image and pixel
    thresholds come from :class:`F1AdaptiveThreshold` and whose normalisation bounds from :class:`MinMax`
    here: refmetrics' exact F1-maximising threshold and extreme scores of the validation set. The buffers
    keep anomalib's float32: a threshold and the bounds are scores, so they are exact there for float32 maps.
    """

    #: the metrics anomalib's PostProcessor builds, by attribute, and their drop-ins here
    _DROP_INS = {"_image_threshold_metric": lambda: F1AdaptiveThreshold(fields=["pred_score", "gt_label"], strict=False),
                 "_pixel_threshold_metric": lambda: F1AdaptiveThreshold(fields=["anomaly_map", "gt_mask"], strict=False),
                 "_image_min_max_metric": lambda: MinMax(fields=["pred_score"], strict=False),
                 "_pixel_min_max_metric": lambda: MinMax(fields=["anomaly_map"], strict=False)}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, make in self._DROP_INS.items():
            if not hasattr(self, name):  # a later anomalib that renamed them: say so rather than do nothing
                import anomalib

                raise RuntimeError(f"refmetrics.integrations.anomalib.PostProcessor: expected anomalib's "
                                   f"PostProcessor to have the attribute {name} (anomalib 2.4 to 2.7 have it), "
                                   f"received anomalib {anomalib.__version__} without it")
            setattr(self, name, make())
