"""One metric over many files, map-reduced over processes with ``merge()``: the value of one pass over all."""
from multiprocessing import get_context

import numpy as np

from refmetrics import AUPRO


def part(pairs):
    """The metric of some (map, mask) file pairs, built in a worker process and sent back whole."""
    metric = AUPRO(fpr_limit=0.3)
    for map_path, mask_path in pairs:
        metric.update(np.load(map_path)[np.newaxis], np.load(mask_path)[np.newaxis])
    return metric


def aupro_of(pairs, processes=4):
    # "spawn": fresh workers, safe beside threads (numba's, torch's, JAX's) that a fork would copy mid-lock
    with get_context("spawn").Pool(processes) as pool:
        parts = pool.map(part, [pairs[i::processes] for i in range(processes)])
    total = parts[0]
    for other in parts[1:]:
        total.merge(other)  # exact: the same value as one metric over every pair, in any order
    return total.compute()
