"""Implementations used by the conformance tests through ``--impl tests.conformance_plugin:NAME``."""

import numpy as np


def rank_auroc(metric, preds, target):
    """A correct AUROC written from midranks (agrees), and nothing else."""
    if metric not in ("image_auroc", "pixel_auroc"):
        raise NotImplementedError
    from scipy.stats import rankdata

    p, t = preds.reshape(-1), target.reshape(-1).astype(bool)
    n_pos, n_neg = t.sum(), (~t).sum()
    if not n_pos or not n_neg:
        return float("nan")
    return float((rankdata(p)[t].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def broken_auroc(metric, preds, target):
    """Wrong on purpose: an unexplained disagreement."""
    if metric != "pixel_auroc":
        raise NotImplementedError
    return 0.123 + 0.0 * np.sum(preds)


def slightly_off(metric, preds, target):
    """A float64 result 3e-6 away from the exact AUROC: no modelled cause may excuse it."""
    value = rank_auroc(metric, preds, target)
    return value + 3e-6


def always_nan(metric, preds, target):
    if metric != "aupro":
        raise NotImplementedError
    return float("nan")
