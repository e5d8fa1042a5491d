"""Stateless metric functions.

What each computes (comparison, ties, end points, undefined cases, source) is
defined in ``docs/definitions.md``. Each takes ``backend="auto"|"cpu"|"cuda"`` and validates its input the same way;
the stateful classes in :mod:`refmetrics` call the same drivers.
"""

from .ranking import (
    aupr,
    auroc,
    average_precision,
    f1_adaptive_threshold,
    f1_max,
    precision_recall_curve,
    roc_curve,
)
from .regions import aupro, label_regions, pro_curve, pro_score
from .spro import au_spro, defects_from_channels, read_defects_config, spro_curve
from .stats import anomaly_score_distribution, min_max
from .threshold import f1_score

# --- PIMO / AUPIMO (issue 13, section 1) ---
from .pimo import aupimo, pimo_curve  # noqa: E402

__all__ = [
    "anomaly_score_distribution",
    "au_spro",
    "aupr",
    "aupro",
    "auroc",
    "average_precision",
    "defects_from_channels",
    "f1_adaptive_threshold",
    "f1_max",
    "f1_score",
    "label_regions",
    "min_max",
    "pro_curve",
    "pro_score",
    "precision_recall_curve",
    "read_defects_config",
    "roc_curve",
    # PIMO / AUPIMO
    "aupimo",
    "pimo_curve",
    # sPRO / AU-sPRO
    "spro_curve",
]

# --- issue 13, sections 3-5: PBn/PGn, segmentation scores at a threshold, image scores from maps ---
from .image_scores import image_scores  # noqa: E402
from .pgpb import pbn, pgn  # noqa: E402
from .segmentation import ader_segmentation, segmentation_scores, validation_threshold  # noqa: E402

__all__ += ["ader_segmentation", "image_scores", "pbn", "pgn", "segmentation_scores", "validation_threshold"]

# --- issue 15: the image-level bootstrap ---
from .bootstrap import bootstrap_ci, bootstrap_test  # noqa: E402

__all__ += ["bootstrap_ci", "bootstrap_test"]

# --- issue 15, item 1: DeLong's interval for AUROC and DeLong's paired test ---
from .delong import auroc_ci, delong_test  # noqa: E402

__all__ += ["auroc_ci", "delong_test"]
