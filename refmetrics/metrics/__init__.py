"""Stateful metrics with anomalib's names: thin wrappers over :mod:`refmetrics.functional`."""

from .base import Metric
from .ranking import AUPR, AUROC, BinaryPrecisionRecallCurve, F1AdaptiveThreshold, F1Max
from .regions import AUPRO, PRO
from .spro import AUsPRO
from .stats import AnomalyScoreDistribution, MinMax
from .threshold import F1Score, ManualThreshold

# --- PIMO / AUPIMO (issue 13, section 1) ---
from .pimo import AUPIMO  # noqa: E402

__all__ = [
    "AUPR",
    "AUPRO",
    "AUROC",
    "AUsPRO",
    "AnomalyScoreDistribution",
    "BinaryPrecisionRecallCurve",
    "F1AdaptiveThreshold",
    "F1Max",
    "F1Score",
    "ManualThreshold",
    "Metric",
    "MinMax",
    "PRO",
    # PIMO / AUPIMO
    "AUPIMO",
]

# --- issue 13, sections 3-4: PBn/PGn, the validation threshold ---
from .pgpb import PBn, PGn  # noqa: E402
from .segmentation import ValidationThreshold  # noqa: E402

__all__ += ["PBn", "PGn", "ValidationThreshold"]

# --- issue 15: the image-level bootstrap ---
from .bootstrap import Bootstrap, PairedBootstrap  # noqa: E402

__all__ += ["Bootstrap", "PairedBootstrap"]
