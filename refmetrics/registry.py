"""The registry of metrics: one entry per metric, read by the tests, the conformance suite and ``evaluate``.

Each :class:`MetricSpec` names a metric's function (in :mod:`refmetrics.functional`),
its class (in :mod:`refmetrics`), its brute-force oracle (in the test suite's
``tests/naive.py``), the inputs it takes, when it is undefined, its section of
``docs/definitions.md``, the columns ``refmetrics evaluate`` reports from it and
the conformance metrics that check it. A new metric is one entry here: the
tests then check its oracle, its batching and merging, its undefined cases, its
documentation and its export from the entry alone.

>>> from refmetrics.registry import METRICS, spec
>>> spec("auroc").function([0.1, 0.9, 0.4], [0, 1, 1])
1.0
>>> [m.name for m in METRICS if "pixel AUROC" in m.evaluate]
['auroc']
"""

from dataclasses import dataclass, field

#: kinds of input: what the function's positional arguments are
INPUTS = {
    "scores": "(preds, target): scores and {0, 1} labels of the same shape",
    "maps": "(preds, target): maps (B, H, W) and {0, 1} masks of the same shape",
    "values": "(preds,): scores alone",
    "other": "arguments of their own (see the function)",
}


@dataclass(frozen=True)
class MetricSpec:
    """One metric of the library.

    Attributes
    ----------
    name : str
        The function's name in :mod:`refmetrics.functional`.
    cls : str or None
        The stateful class's name in :mod:`refmetrics` (None: function only).
    oracle : str or None
        The function of ``tests/naive.py`` giving the exact value from the same
        positional arguments (a Fraction, a float, or None where undefined).
    inputs : str
        A key of :data:`INPUTS`.
    undefined : str
        When the metric is undefined (returns NaN with an ``UndefinedMetricWarning``
        that says why); "never" when it always has a value.
    one_class_is_nan : bool
        Whether data with negatives only (and, with ``needs_negative``, positives only) is undefined.
    section : str
        Its heading in ``docs/definitions.md``.
    evaluate : tuple of str
        The columns of ``refmetrics evaluate`` computed by this metric.
    conformance : tuple of str
        The conformance suite's metrics (``refmetrics.conformance.cases.METRICS``) that check it.
    needs_negative : bool
        Whether it needs a negative too (False for AP, AUPR, F1: defined with positives alone).
    """

    name: str
    cls: str | None
    oracle: str | None
    inputs: str
    undefined: str
    one_class_is_nan: bool
    section: str
    evaluate: tuple = field(default=())
    conformance: tuple = field(default=())
    needs_negative: bool = True

    @property
    def function(self):
        from . import functional

        return getattr(functional, self.name)

    @property
    def metric_class(self):
        import refmetrics

        return None if self.cls is None else getattr(refmetrics, self.cls)


_ONE_CLASS = "no positive or no negative (a one-class ranking)"

METRICS = (
    MetricSpec("roc_curve", None, "roc_curve", "scores", _ONE_CLASS + ": the undefined rate is NaN", True,
               "roc_curve"),
    MetricSpec("auroc", "AUROC", "auroc", "scores", _ONE_CLASS, True, "AUROC",
               evaluate=("image AUROC", "pixel AUROC"), conformance=("image_auroc", "pixel_auroc")),
    MetricSpec("precision_recall_curve", "BinaryPrecisionRecallCurve", "pr_curve", "scores",
               "no positive: recall is NaN", True, "precision_recall_curve", needs_negative=False),
    MetricSpec("average_precision", None, "average_precision", "scores", "no positive", True,
               "average precision", evaluate=("image AP", "pixel AP"), conformance=("image_ap", "pixel_ap"),
               needs_negative=False),
    MetricSpec("aupr", "AUPR", "average_precision", "scores", "no positive", True, "AUPR (step and trapezoid)",
               needs_negative=False),
    MetricSpec("f1_max", "F1Max", "f1_max", "scores", "no positive", True, "F1-max",
               evaluate=("image F1-max", "pixel F1-max"), conformance=("pixel_f1max",), needs_negative=False),
    MetricSpec("f1_adaptive_threshold", "F1AdaptiveThreshold", "f1_adaptive", "scores",
               "no positive: F1 is NaN, the threshold the highest score", True, "F1AdaptiveThreshold",
               conformance=("pixel_f1_threshold",), needs_negative=False),
    MetricSpec("f1_score", "F1Score", "f1_score", "scores", "never (0 where TP + FP + FN = 0)", False, "F1Score",
               conformance=("pixel_f1_score",)),
    MetricSpec("min_max", "MinMax", "min_max", "values", "never (an empty input is an error)", False, "MinMax",
               conformance=("min_score", "max_score")),
    MetricSpec("anomaly_score_distribution", "AnomalyScoreDistribution", None, "other",
               "fewer than two values: the standard deviation is NaN", False, "AnomalyScoreDistribution"),
    MetricSpec("pro_curve", None, "pro_points", "maps", "no defect region or no defect-free pixel", True,
               "pro_curve"),
    MetricSpec("aupro", "AUPRO", "aupro", "maps", "no defect region or no defect-free pixel", True,
               "AUPRO (exact and sampled)", evaluate=("AUPRO",), conformance=("aupro",)),
    MetricSpec("pro_score", "PRO", "pro_score", "maps", "no defect region", False, "PRO", conformance=("pro",)),
    MetricSpec("pimo_curve", None, None, "maps",
               "no normal image (the shared FPR is NaN) or no anomalous image (every TPR row is NaN)", True,
               "PIMO curve and AUPIMO"),
    MetricSpec("aupimo", "AUPIMO", "aupimo_mean", "maps",
               "no normal image, no anomalous image, or fpr_bounds' lower bound below the smallest positive "
               "shared FPR reachable (the warning gives the range)", True, "PIMO curve and AUPIMO",
               conformance=("aupimo",)),
    MetricSpec("spro_curve", None, "spro_points", "other",
               "no defect (sPRO is NaN) or no defect-free pixel (FPR is NaN)", False, "sPRO and AU-sPRO"),
    MetricSpec("au_spro", "AUsPRO", "au_spro", "other", "no defect or no defect-free pixel", False,
               "sPRO and AU-sPRO", conformance=("au_spro",)),
    MetricSpec("pbn", "PBn", "pbn", "scores",
               "no positive or no negative; a quantile interpolated between -inf and +inf", True, "PBn and PGn",
               conformance=("image_pbn",)),
    MetricSpec("pgn", "PGn", "pgn", "scores",
               "no positive or no negative; a quantile interpolated between -inf and +inf", True, "PBn and PGn",
               conformance=("image_pgn",)),
    MetricSpec("segmentation_scores", None, "segmentation_scores", "other", "never (0 where a denominator is 0)",
               False, "Segmentation scores at a threshold"),
    MetricSpec("validation_threshold", "ValidationThreshold", "validation_threshold", "other",
               "no pixel, or an infinite pixel", False, "Segmentation scores at a threshold"),
    MetricSpec("ader_segmentation", None, "ader_segmentation", "other", "constant maps or infinite scores", False,
               "Segmentation scores at a threshold"),
    MetricSpec("image_scores", None, "image_scores", "other",
               "a mean over both +inf and -inf (that image's score is NaN)", False, "Image scores from maps"),
)

#: functions of :mod:`refmetrics.functional` that are not metrics: helpers that build a metric's input,
#: with their section of ``docs/definitions.md``
UTILITIES = {
    "label_regions": "regions (label_regions)",
    "read_defects_config": "sPRO and AU-sPRO",
    "defects_from_channels": "sPRO and AU-sPRO",
    # uncertainty of a metric: an interval or a paired test, not a metric of its own
    "auroc_ci": "Confidence intervals (DeLong)",
    "delong_test": "Confidence intervals (DeLong)",
    "bootstrap_ci": "Bootstrap",
    "bootstrap_test": "Bootstrap",
}

_BY_NAME = {m.name: m for m in METRICS}


def spec(name):
    """The entry of the metric whose function is ``refmetrics.functional.<name>``."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"name: expected a metric of the registry ({', '.join(_BY_NAME)}), "
                       f"received {name!r}") from None


def evaluate_columns():
    """The columns of ``refmetrics evaluate``, in the registry's order: image metrics, then pixel and region."""
    cols = [c for m in METRICS for c in m.evaluate]
    return tuple([c for c in cols if c.startswith("image ")] + [c for c in cols if not c.startswith("image ")])


def conformance_metrics():
    """The conformance suite's metrics, in the registry's order: image metrics first."""
    names = [c for m in METRICS for c in m.conformance]
    return tuple([c for c in names if c.startswith("image_")] + [c for c in names if not c.startswith("image_")])
