"""Exact metrics on a Dask cluster, from ``dask.array`` inputs.

The functions have the names and signatures of :mod:`refmetrics.functional`
and return the same values, bit for bit: the keys are split into *buckets*
(contiguous ranges of their leading 16 bits) chosen from a histogram, shuffled
so that each bucket's keys meet on one worker, sorted there, and reduced to
exact integer parts or carried double-double sums (``refmetrics/_buckets.py``).
No task holds more than one input chunk or one bucket (``bucket_size`` keys,
except a single prefix holding more), so no worker gathers all keys.

Maps are chunked along the image axis only: the spatial axes are rechunked to
full size, so that an image is never split and its regions are labelled inside
the chunk's task. Every function computes on Dask's current scheduler (a
``dask.distributed.Client`` when one is active), or on ``scheduler``.

Needs the ``dask`` extra: ``pip install "refmetrics[dask]"``.
"""

try:
    import dask  # noqa: F401
    import dask.array  # noqa: F401
except ImportError as _err:  # pragma: no cover - depends on the environment
    raise ImportError('refmetrics.dask needs dask[array] (and distributed for a cluster): '
                      'pip install "refmetrics[dask]"') from _err

from ._api import (DEFAULT_BUCKET_SIZE, au_spro, aupr, aupro, auroc, average_precision, f1_adaptive_threshold, f1_max,
                   precision_recall_curve, pro_curve, pro_score, roc_curve)

__all__ = ["DEFAULT_BUCKET_SIZE", "au_spro", "aupr", "aupro", "auroc", "average_precision", "f1_adaptive_threshold", "f1_max",
           "precision_recall_curve", "pro_curve", "pro_score", "roc_curve"]
