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

AUPIMO (:func:`aupimo`) reads only the top of the normal images' scores:
per chunk a histogram of their keys' top bits, summed; on the client the cut
where the shared FPR reaches ``fpr_bounds[1]``; the normal keys at or above
the cut (that fraction of the normal pixels plus part of one 16-bit prefix)
gathered and walked on the client; the window sent back to every chunk's task,
which computes its anomalous images' areas. ``pimo_curve`` (every distinct
score, a ``(B, T)`` array) is not offered on Dask.

Threads: the in-memory kernels use :func:`refmetrics.set_num_threads` threads
(all cores by default) inside every sort. Dask already runs one task per
worker thread, so every task here runs its kernels with **one thread** by
default, and W workers x T threads use W x T cores, not W x T x cores. Set
``dask.config.set({"refmetrics.threads_per_task": n})`` on the client (read
when the graph is built) to give each task ``n`` threads, e.g. one worker of
one thread on a machine of ``n`` cores. The count is per worker process:
tasks that overlap in one process share the first one's count, and the
process's own count is restored when the last one ends.

Needs the ``dask`` extra: ``pip install "refmetrics[dask]"``.
"""

try:
    import dask  # noqa: F401
    import dask.array  # noqa: F401
except ImportError as _err:  # pragma: no cover - depends on the environment
    raise ImportError('refmetrics.dask needs dask[array] (and distributed for a cluster): '
                      'pip install "refmetrics[dask]"') from _err

from ._api import (DEFAULT_BUCKET_SIZE, au_spro, aupimo, aupr, aupro, auroc, average_precision, f1_adaptive_threshold, f1_max,
                   precision_recall_curve, pro_curve, pro_score, roc_curve)

__all__ = ["DEFAULT_BUCKET_SIZE", "au_spro", "aupimo", "aupr", "aupro", "auroc", "average_precision", "f1_adaptive_threshold", "f1_max",
           "precision_recall_curve", "pro_curve", "pro_score", "roc_curve"]
