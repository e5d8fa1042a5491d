"""MinMax and AnomalyScoreDistribution."""

import math
import warnings

import numpy as np
import pytest

import refmetrics as rm
from refmetrics import functional as F

from . import naive


def test_min_max_documented_example_and_state():
    m = rm.MinMax()
    assert m.compute() == (math.inf, -math.inf)
    assert m([0.0807, 0.6329, 0.0559, 0.9860, 0.3595]) == (0.0559, 0.9860)
    m.update([0.3251, 0.3169, 0.3072, 0.6247, 0.9999])
    assert m.compute() == (0.0559, 0.9999)
    other = rm.MinMax()
    other.update(np.array([[-3, 7]], np.int16))
    assert m.merge(other).compute() == (-3.0, 7.0)
    assert F.min_max(np.array([-np.inf, 2.0, -0.0])) == (-np.inf, 2.0)
    lo, _ = F.min_max(np.array([-0.0, 1.0], np.float32))
    assert math.copysign(1, lo) == 1


def test_distribution_matches_exact_mean_and_std():
    rng = np.random.default_rng(20261125)
    scores = rng.random(37) + 0.01
    maps = rng.random((5, 1, 3, 4)) + 0.01
    im, istd, pm, pstd = F.anomaly_score_distribution(scores, maps)
    mean, std = naive.mean_std(np.log(scores).tolist())
    assert abs(im - float(mean)) <= 1e-12 and abs(istd - std) <= 1e-12
    assert pm.shape == (3, 4) and pstd.shape == (3, 4)
    logs = np.log(maps).reshape(5, 12)
    for j in range(12):
        mean, std = naive.mean_std(logs[:, j].tolist())
        assert abs(pm.reshape(-1)[j] - float(mean)) <= 1e-12
        assert abs(pstd.reshape(-1)[j] - std) <= 1e-12


def test_distribution_is_independent_of_batching_and_order():
    rng = np.random.default_rng(20261126)
    scores = rng.random(50) * 10 + 1e-3
    maps = rng.random((8, 6, 6)) + 1e-3
    whole = F.anomaly_score_distribution(scores, maps)
    m = rm.AnomalyScoreDistribution()
    order = rng.permutation(8)
    for chunk in np.array_split(order, 3):
        m.update(anomaly_maps=maps[chunk])
    other = rm.AnomalyScoreDistribution()
    other.update(anomaly_scores=scores[::-1][:20])
    m.update(anomaly_scores=scores[::-1][20:])
    got = m.merge(other).compute()
    assert got[0] == whole[0] and got[1] == whole[1]
    assert got[2].tobytes() == whole[2].tobytes() and got[3].tobytes() == whole[3].tobytes()


def test_distribution_nonpositive_scores_warn_like_log():
    with pytest.warns(rm.UndefinedMetricWarning, match="<= 0"):
        im, istd, _, _ = F.anomaly_score_distribution([0.0, 1.0, 2.0])
    assert im == -math.inf and math.isnan(istd)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        im, istd, pm, pstd = F.anomaly_score_distribution([math.e])
    assert im == 1.0 and math.isnan(istd) and math.isnan(pm) and math.isnan(pstd)


def test_distribution_rejects_inconsistent_maps():
    m = rm.AnomalyScoreDistribution()
    m.update(anomaly_maps=np.ones((2, 4, 4)))
    with pytest.raises(ValueError, match=r"expected maps of shape \(4, 4\)"):
        m.update(anomaly_maps=np.ones((2, 4, 5)))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        F.anomaly_score_distribution(anomaly_maps=np.ones(3))
    with pytest.raises(ValueError, match="NaN"):
        F.anomaly_score_distribution([1.0, np.nan])
