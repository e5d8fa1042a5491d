"""refmetrics.dask on a LocalCluster against the single-process functional results, with ``==``.

Two worker processes of one thread each, limited to 600 MiB each (a worker idles at 180 to
260 MiB with numba and refmetrics loaded; at 300 MiB a worker paused by memory it could not
release stalled the graph in a CI run). tests/test_dask_memory.py runs workers whose limit is
smaller than the data. The data (about 80 MB of scores and labels, 60 MB of maps and masks) are
generated chunk by chunk on the workers from seeds; the oracle is
refmetrics.functional on the same data in this process. A scheduler plugin records
the bytes every task receives: no task receives more than one chunk or one bucket.
"""

import warnings

import dask
import dask.array as da
import distributed
import numpy as np
import pytest

import refmetrics.dask as RD
from refmetrics import UndefinedMetricWarning
from refmetrics import _buckets as B
from refmetrics import functional as F
from refmetrics.functional import _ranked as R

from .dask_cluster import InputBytes, largest_inputs, reset_inputs

WORKER_MEMORY = "600MiB"


@pytest.fixture(scope="module")
def client():
    # Pause only close to the limit: a worker's idle memory (numba, refmetrics: ~180 MiB) is most of
    # it, and a worker paused by memory it cannot release would stall the graph. The nanny still
    # restarts a worker that passes 95% of the limit.
    with dask.config.set({"distributed.worker.memory.pause": 0.92, "distributed.worker.memory.target": 0.85,
                          "distributed.worker.memory.spill": 0.88,
                          # freed arrays go back to the system, so a worker's memory falls after a task
                          "distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": 65536}):
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           memory_limit=WORKER_MEMORY, dashboard_address=None)
    with distributed.Client(cluster) as c:
        c.register_plugin(InputBytes())
        tiny = da.from_array(np.float32([0.2, 0.7, 0.4, 0.1]), chunks=2), da.from_array(np.uint8([0, 1, 1, 0]), chunks=2)
        assert RD.auroc(*tiny) == 1.0  # loads the compiled kernels on both workers before the timed tests
        yield c
    cluster.close()


# ---------------------------------------------------------------------------
# data, generated per chunk from a seed (on the workers, and here for the oracle)
# ---------------------------------------------------------------------------

def ranking_chunk(i, n):
    rng = np.random.default_rng([16, i])
    y = (rng.random(n) < 0.1).astype(np.uint8)
    s = (np.round((rng.normal(size=n) + y) * 1024) / 1024).astype(np.float32)  # ties: ~10^4 distinct scores
    s[rng.random(n) < 0.01] = 0.0  # one heavy key
    s[rng.random(n) < 0.001] = -0.0
    return s, y


def ranking_arrays(n_chunks, n):
    parts = [dask.delayed(ranking_chunk, pure=True)(i, n) for i in range(n_chunks)]
    s = da.concatenate([da.from_delayed(p[0], (n,), np.float32) for p in parts])
    y = da.concatenate([da.from_delayed(p[1], (n,), np.uint8) for p in parts])
    ref = [ranking_chunk(i, n) for i in range(n_chunks)]
    return s, y, np.concatenate([r[0] for r in ref]), np.concatenate([r[1] for r in ref])


def region_chunk(i, n_img, side):
    rng = np.random.default_rng([61, i])
    maps = np.round(rng.random((n_img, side, side)) * 2048) / 2048
    masks = np.zeros(maps.shape, np.uint8)
    for j in range(n_img):
        if rng.random() < 0.3:
            continue  # defect-free image
        for _ in range(rng.integers(1, 5)):
            r, c = rng.integers(0, side - 20, 2)
            h, w = rng.integers(2, 20, 2)
            masks[j, r:r + h, c:c + w] = 1
            maps[j, r:r + h, c:c + w] += rng.uniform(0, 0.5)
    return maps.astype(np.float32), masks


def region_arrays(n_chunks, n_img, side):
    parts = [dask.delayed(region_chunk, pure=True)(i, n_img, side) for i in range(n_chunks)]
    shape = (n_img, side, side)
    m = da.concatenate([da.from_delayed(p[0], shape, np.float32) for p in parts])
    k = da.concatenate([da.from_delayed(p[1], shape, np.uint8) for p in parts])
    ref = [region_chunk(i, n_img, side) for i in range(n_chunks)]
    return m, k, np.concatenate([r[0] for r in ref]), np.concatenate([r[1] for r in ref])


# ---------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------

def test_ranking_metrics_equal_functional_with_limited_workers(client):
    n_chunks, n, budget = 12, 1_000_000, 1 << 20  # 12M pixels: 60 MB of scores and labels
    s, y, s_ref, y_ref = ranking_arrays(n_chunks, n)
    assert s_ref.nbytes + y_ref.nbytes > 55 * 2**20
    reset_inputs(client)
    assert RD.auroc(s, y, bucket_size=budget) == F.auroc(s_ref, y_ref)
    assert RD.average_precision(s, y, bucket_size=budget) == F.average_precision(s_ref, y_ref)
    # the plan the graph used (it depends only on the histogram): every bucket within the budget
    part = R.partition(R.intake_pair(s_ref, y_ref, None, "cpu"))
    plan = B.plan_buckets(B.prefix_histogram(part.pos) + B.prefix_histogram(part.neg), budget)
    assert plan.n_buckets > 8 and plan.sizes.max() <= budget
    # no task received more than one chunk (5 MB) or one bucket (4 B a key) of data
    largest = largest_inputs(client)
    assert largest["ranking_bucket"] <= 4 * budget + 64 * 1024, largest
    assert max(largest.values()) <= 5 * n + 64 * 1024, largest
    assert max(largest.values()) < (s_ref.nbytes + y_ref.nbytes) / 10


def test_ranking_curves_and_small_buckets(client):
    s, y, s_ref, y_ref = ranking_arrays(5, 40_000)
    s = s.rechunk(33_333)  # chunks that do not follow the generating blocks
    for got, ref in ((RD.roc_curve(s, y, bucket_size=10_000), F.roc_curve(s_ref, y_ref)),
                     (RD.precision_recall_curve(s, y, bucket_size=10_000), F.precision_recall_curve(s_ref, y_ref))):
        assert all(np.array_equal(a, b) for a, b in zip(got, ref))
    # small buckets (about 40): the delayed shuffle's graph grows as chunks x buckets
    assert RD.aupr(s, y, curve="trapezoid", bucket_size=5_000) == F.aupr(s_ref, y_ref, curve="trapezoid")
    assert RD.f1_adaptive_threshold(s, y, bucket_size=5_000) == F.f1_adaptive_threshold(s_ref, y_ref)
    assert RD.f1_max(s, y, bucket_size=5_000) == F.f1_max(s_ref, y_ref)
    ignore = np.where(np.arange(y_ref.size) % 7 == 0, 255, y_ref).astype(np.uint8)
    assert RD.auroc(s, da.from_array(ignore, chunks=50_000), ignore_index=255, bucket_size=20_000) \
        == F.auroc(s_ref, ignore, ignore_index=255)


def test_region_metrics_equal_functional_with_limited_workers(client):
    # 480 maps of 128x128 (7.9M pixels, 40 MB), 40 per generated block, chunked by 35 images: every
    # chunk boundary falls between images, never inside one; 30% of the images are defect-free
    m, k, m_ref, k_ref = region_arrays(12, 40, 128)
    m, k = m.rechunk((35, 64, 128)), k.rechunk((50, 128, 128))  # spatial chunks are made whole inside
    reset_inputs(client)
    for limit in (0.3, 1.0):
        assert RD.aupro(m, k, fpr_limit=limit, bucket_size=1 << 18) == F.aupro(m_ref, k_ref, fpr_limit=limit)
    largest = largest_inputs(client)
    assert largest["region_bucket"] <= 12 * (1 << 18) + 64 * 1024, largest
    assert max(largest.values()) < (m_ref.nbytes + k_ref.nbytes) / 8


def test_pro_curve_and_pro_score(client):
    m, k, m_ref, k_ref = region_arrays(4, 15, 64)
    m, k = m.rechunk((7, 64, 64)), k.rechunk((11, 64, 64))
    got, ref = RD.pro_curve(m, k, bucket_size=20_000), F.pro_curve(m_ref, k_ref)
    assert all(np.array_equal(a, b) for a, b in zip(got, ref))
    assert RD.pro_score(m, k, threshold=0.6) == F.pro_score(m_ref, k_ref, threshold=0.6)
    assert RD.aupro(m[:, None], k, fpr_limit=0.05, bucket_size=2_000) \
        == F.aupro(m_ref[:, None], k_ref, fpr_limit=0.05)  # (N,1,H,W) maps


def test_defect_free_and_one_class_inputs(client):
    maps = da.from_array(np.random.default_rng(3).random((6, 16, 16)).astype(np.float32), chunks=(2, 16, 16))
    masks = da.zeros((6, 16, 16), np.uint8, chunks=(3, 16, 16))
    with pytest.warns(UndefinedMetricWarning, match="AUPRO is undefined with no defect region"):
        assert np.isnan(RD.aupro(maps, masks))
    with pytest.warns(UndefinedMetricWarning, match="AUROC is undefined with no positive"):
        assert np.isnan(RD.auroc(maps, masks))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        got, ref = RD.pro_curve(maps, masks), F.pro_curve(maps.compute(), masks.compute())
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(got, ref))


def test_arguments_are_checked():
    s = da.from_array(np.float32([0.1, 0.9, 0.4]), chunks=2)
    y = da.from_array(np.uint8([0, 1, 1]), chunks=2)
    with pytest.raises(ValueError, match="bucket_size: expected None or a positive int"):
        RD.auroc(s, y, bucket_size=0)
    with pytest.raises(ValueError, match="thresholds: refmetrics.dask computes the exact metrics only"):
        RD.auroc(s, y, thresholds=10)
    with pytest.raises(ValueError, match="target: expected as many elements as preds"):
        RD.auroc(s, y[:2])
    with pytest.raises(ValueError, match="NaN"):
        RD.auroc(da.from_array(np.float32([0.1, np.nan, 0.4]), chunks=2), y, scheduler="sync")
    assert RD.auroc(s, y, scheduler="sync") == F.auroc(s.compute(), y.compute())


def test_signatures_follow_functional():
    import inspect

    for name in RD.__all__:
        fn = getattr(RD, name)
        if not callable(fn):
            continue
        ours = list(inspect.signature(fn).parameters)
        theirs = list(inspect.signature(getattr(F, name)).parameters)
        assert ours[:len(theirs)] == theirs, name
        assert set(ours[len(theirs):]) <= {"bucket_size", "scheduler"}, name


def test_au_spro_equal_functional(client):
    rng = np.random.default_rng(5)
    n, side = 30, 40
    maps = (np.round(rng.random((n, side, side)) * 256) / 256).astype(np.float32)
    defects = []
    for i in range(n):
        items = []
        if i % 3:  # a third of the images without defects
            for j in range(rng.integers(1, 3)):
                mask = np.zeros((side, side), bool)
                r, c = rng.integers(0, side - 10, 2)
                mask[r:r + 8, c:c + 6] = True
                maps[i][mask] += 0.2
                items.append((mask, [0.5, 20][j % 2], j % 2 == 0))  # relative and absolute saturation
        defects.append(items)
    defects[4].append((np.arange(side * side).reshape(side, side) % 7 == 0, 0, False))  # saturated by 0 pixels
    dm = da.from_array(maps, chunks=(7, 20, 40))  # chunks of 7 images, spatial axes made whole inside
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        for limit in (0.05, [0.05, 0.3, 1.0]):
            assert RD.au_spro(dm, defects, fpr_limit=limit, bucket_size=300) == F.au_spro(maps, defects,
                                                                                           fpr_limit=limit)


# ---------------------------------------------------------------------------
# AUPIMO
# ---------------------------------------------------------------------------

def pimo_equal(got, ref):
    return (got[0] == ref[0] or (np.isnan(got[0]) and np.isnan(ref[0]))) \
        and np.array_equal(got[1], ref[1], equal_nan=True)


def test_aupimo_equal_functional_with_limited_workers(client):
    # 480 maps of 128x128 (7.9M pixels, 40 MB), 40 per generated block, chunked by 35 images (chunk
    # boundaries between images, never inside one); about 30% of the images are defect-free; scores on
    # a 1/2048 grid (ties: the top normal score alone holds about 10^-3 of the normal pixels)
    m, k, m_ref, k_ref = region_arrays(12, 40, 128)
    m, k = m.rechunk((35, 64, 128)), k.rechunk((50, 128, 128))
    reset_inputs(client)
    for bounds in ((1e-3, 1e-2), (1e-2, 0.3), (0.5, 1.0)):
        got = RD.aupimo(m, k, fpr_bounds=bounds, return_per_image=True)
        ref = F.aupimo(m_ref, k_ref, fpr_bounds=bounds, return_per_image=True)
        assert np.isfinite(ref[0]) and np.count_nonzero(np.isfinite(ref[1])) > 250
        assert pimo_equal(got, ref), (bounds, got[0], ref[0])
    assert RD.aupimo(m, k, fpr_bounds=(1e-3, 1e-2)) == F.aupimo(m_ref, k_ref, fpr_bounds=(1e-3, 1e-2))
    largest = largest_inputs(client)
    chunk_bytes = 50 * 128 * 128 * 5  # the largest chunk of maps and masks
    assert max(largest.values()) <= chunk_bytes + 64 * 1024, largest
    assert max(largest.values()) < (m_ref.nbytes + k_ref.nbytes) / 8
    # the client gathers only the normal keys at or above the cut: U of the normal pixels plus part of
    # one 16-bit key prefix (1/128 of an octave for float32: about 1% of these uniform scores)
    from refmetrics.dask import _api as RA
    from refmetrics.dask import _graph as D

    chunks, _, n_per, _ = RA._pimo_chunks(m, k)
    plan = D.PimoPlan(chunks, n_per, None)
    plan.window(np.uint32, 1e-2)
    normal_pixels = plan.n_normal * n_per
    assert 1e-2 * normal_pixels <= plan.n_gathered < 2.5e-2 * normal_pixels, (plan.n_gathered, normal_pixels)


def test_aupimo_ties_defect_free_chunks_and_undefined(client):
    rng = np.random.default_rng(16)
    maps = (np.floor(rng.random((23, 12, 10)) * 16) / 16).astype(np.float32)  # 16 distinct scores: ties
    masks = np.zeros(maps.shape, np.uint8)
    for j in (1, 2, 5, 11, 12, 13, 21):
        masks[j, 2:2 + j % 5 + 1, 3:7] = 1
        maps[j, 2:2 + j % 5 + 1, 3:7] = np.floor(maps[j, 2:2 + j % 5 + 1, 3:7] * 8 + 8) / 16
    masks[12] = 1  # an image that is all defect
    for chunks in (1, 4, 6, 23):  # chunks of one image; chunks holding only defect-free images (14..20)
        dm = da.from_array(maps, chunks=(chunks, 12, 10))
        for bounds in ((0.07, 0.2), (0.1, 1.0)):  # the top normal score alone: shared FPR 0.066
            got = RD.aupimo(dm, masks, fpr_bounds=bounds, return_per_image=True)
            ref = F.aupimo(maps, masks, fpr_bounds=bounds, return_per_image=True)
            assert np.isfinite(ref[0]) and np.count_nonzero(np.isfinite(ref[1])) == 7
            assert pimo_equal(got, ref), (chunks, bounds)
    dm = da.from_array(maps, chunks=(5, 12, 10))
    with pytest.warns(UndefinedMetricWarning, match="the lower bound is below the smallest positive shared FPR"):
        mean, per_image = RD.aupimo(dm, masks, return_per_image=True)  # default (1e-5, 1e-4): out of reach
    assert np.isnan(mean) and per_image.shape == (23,) and np.isnan(per_image).all()
    with pytest.warns(UndefinedMetricWarning, match="no anomalous image"):
        assert np.isnan(RD.aupimo(dm, np.zeros_like(masks), fpr_bounds=(0.1, 1.0)))
    with pytest.warns(UndefinedMetricWarning, match="no normal image"):
        assert np.isnan(RD.aupimo(dm, np.ones_like(masks), fpr_bounds=(0.1, 1.0)))
    with pytest.raises(ValueError, match="fpr_bounds: expected 0 < lower < upper <= 1"):
        RD.aupimo(dm, masks, fpr_bounds=(0.2, 0.1))
    with pytest.raises(ValueError, match="target: expected masks with the images along the first axis"):
        RD.aupimo(dm, masks.reshape(23 * 12, 10))
    with pytest.raises(ValueError, match="preds: expected maps of shape"):
        RD.aupimo(dm.reshape(-1), masks.reshape(-1))


# ---------------------------------------------------------------------------
# threads inside tasks
# ---------------------------------------------------------------------------

def kernel_threads():
    from refmetrics import _threads as T

    return T.get_num_threads()


def test_tasks_run_with_threads_per_task():
    from refmetrics import _threads as T
    from refmetrics.dask import _graph as D

    before = T.get_num_threads()
    assert D._delayed(kernel_threads)().compute(scheduler="sync") == 1  # the default: one thread per task
    with dask.config.set({"refmetrics.threads_per_task": 3}):
        assert D._delayed(kernel_threads)().compute(scheduler="sync") == 3
        with pytest.raises(ValueError, match="refmetrics.threads_per_task: expected a positive integer"):
            with dask.config.set({"refmetrics.threads_per_task": 0}):
                D._delayed(kernel_threads)
    assert T.get_num_threads() == before  # restored after the task
    s, y, s_ref, y_ref = ranking_arrays(3, 20_000)
    with dask.config.set({"refmetrics.threads_per_task": 2}):
        assert RD.average_precision(s, y, bucket_size=8_000, scheduler="threads") \
            == F.average_precision(s_ref, y_ref)
    assert T.get_num_threads() == before
