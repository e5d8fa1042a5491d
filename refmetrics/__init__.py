"""refmetrics: exact, fast anomaly-detection evaluation metrics.

Classes carry anomalib's names and parameters; :mod:`refmetrics.functional`
holds the stateless functions. Importing refmetrics imports neither torch nor
matplotlib, and compiles nothing: kernels compile on first use and are cached.

What every metric computes (comparisons, ties, end points, undefined cases,
exactness, sources) is defined in ``docs/definitions.md``, which is installed
with the package as ``refmetrics/definitions.md``.
"""

from . import functional
from ._arrays import cuda_available
from ._validation import BackendUnavailableError, BinningWarning, UndefinedMetricWarning
from .metrics import (
    AUPR,
    AUPRO,
    AUROC,
    PRO,
    AUsPRO,
    AnomalyScoreDistribution,
    BinaryPrecisionRecallCurve,
    F1AdaptiveThreshold,
    F1Max,
    F1Score,
    ManualThreshold,
    Metric,
    MinMax,
)
from .state import PixelState

# --- PIMO / AUPIMO (issue 13, section 1) ---
from .metrics import AUPIMO  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "AUPR",
    "AUPRO",
    "AUROC",
    "AUsPRO",
    "AnomalyScoreDistribution",
    "BackendUnavailableError",
    "BinningWarning",
    "BinaryPrecisionRecallCurve",
    "F1AdaptiveThreshold",
    "F1Max",
    "F1Score",
    "ManualThreshold",
    "Metric",
    "MinMax",
    "PRO",
    "PixelState",
    "UndefinedMetricWarning",
    "cuda_available",
    "functional",
    # PIMO / AUPIMO
    "AUPIMO",
]

# --- issue 13, sections 3-4: PBn/PGn, the validation threshold ---
from .metrics import PBn, PGn, ValidationThreshold  # noqa: E402

__all__ += ["PBn", "PGn", "ValidationThreshold"]

# --- issue 15: the image-level bootstrap ---
from .metrics import Bootstrap, PairedBootstrap  # noqa: E402

__all__ += ["Bootstrap", "PairedBootstrap"]

# --- issue 16, section 1: threads and the sort inside key ranges ---
from ._threads import get_num_threads, get_sort, set_num_threads, set_sort, threads  # noqa: E402

__all__ += ["get_num_threads", "get_sort", "set_num_threads", "set_sort", "threads"]
