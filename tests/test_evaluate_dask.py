"""``refmetrics evaluate --dask``: the pixel metrics computed on a Dask cluster, the same results.json.

The oracle is the run without ``--dask`` (the in-memory pixel state) and refmetrics.functional on the
same arrays. A LocalCluster of two one-thread workers is started once for the module (reached by its
address, as a remote scheduler is) and once by ``--dask local[2]`` itself.
"""

import json
import sys

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

from refmetrics import _files as fileio  # noqa: E402
from refmetrics import cli  # noqa: E402
from refmetrics.evaluate import dask_state  # noqa: E402

from .test_evaluate import build_tree, expected  # noqa: E402


def run(*args):
    return cli.main(["evaluate", "--quiet", *map(str, args)])


@pytest.fixture(scope="module")
def address():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def _json(out):
    return json.loads((out / "results.json").read_text())


def test_demo_on_a_local_cluster_is_identical(tmp_path, monkeypatch):
    chunks = []
    real = dask_state.chunks_of

    def small(samples, chunk_pixels=None):  # a few images per task: regions and ties across chunks
        out = real(samples, 3 * 64 * 64)
        chunks.append(len(out))
        return out

    monkeypatch.setattr(dask_state, "chunks_of", small)
    assert run("--demo", "--out", tmp_path / "a") == 0
    assert not chunks
    assert run("--demo", "--dask", "local[2]", "--out", tmp_path / "b") == 0
    assert chunks and max(chunks) > 2
    a, b = (tmp_path / d for d in "ab")
    assert (a / "results.json").read_bytes() == (b / "results.json").read_bytes()
    for f in (a / "figures").iterdir():  # the curves come back whole: the same points, the same files
        assert f.read_bytes() == (b / "figures" / f.name).read_bytes(), f.name


def test_tree_on_a_cluster_address_equals_functional(tmp_path, address, monkeypatch):
    # integer (PNG) maps with ties, defect-free images without masks, two regions in an image, per defect type
    truth = build_tree(tmp_path, np.random.default_rng(20261128))
    data = ("--maps", tmp_path / "maps", "--gt", tmp_path / "gt", "--no-figures")
    assert run(*data, "--out", tmp_path / "a") == 0

    def refused(*args, **kwargs):
        raise AssertionError("the client read a map")

    monkeypatch.setattr(fileio, "read_map", refused)  # in this process only: the workers read the maps
    monkeypatch.setattr(fileio, "read_mask", refused)
    assert run(*data, "--dask", address, "--out", tmp_path / "b") == 0
    a, b = _json(tmp_path / "a"), _json(tmp_path / "b")
    assert a == b
    for category, (maps, masks, labels) in truth.items():
        assert b["categories"][category]["metrics"] == expected(maps, masks, labels)
    assert b["categories"]["bottle"]["defects"]  # the per-defect groups ran on the cluster too


@pytest.mark.parametrize("protocol, columns", [
    ("mvtec-3d-ad", ["AUPRO@0.3 (100 thresholds)", "AUPRO@0.01 (100 thresholds)"]),
    ("visa", ["pixel AUROC (VisA, 200 thresholds)"]),
    ("real-iad", ["pixel AUROC (ADEval)", "pixel AP (ADEval)", "AUPRO (ADEval)"]),
    ("ader", ["pixel AUROC (ADEval, 50 bins)", "AUPRO@0.3 (ADEval, 50 bins)", "mF1", "mAcc", "mIoU", "mAD"]),
    ("mvtec-ad-2", ["SegF1", "SegF1 (per image)", "AUPRO@0.05"]),
    ("mvtec-loco", ["AU-sPRO@0.05", "AU-sPRO@1", "image AUROC"]),
])
def test_other_protocols_with_their_official_columns_and_figures(protocol, columns, tmp_path, address):
    # the official columns read order statistics (M3DM's thresholds, VisA's percentiles), counts at
    # thresholds (VisA, ADEval, ADer's segmentation) and region overlaps; MVTec AD 2 its validation moments
    # and per-image SegF1 counts, computed on the workers; MVTec LOCO each subset's AU-sPRO (its official
    # column holds every map: refused on a cluster)
    common = ("--protocol", protocol, "--demo") + (("--no-official",) if protocol == "mvtec-loco" else ())
    assert run(*common, "--out", tmp_path / "a") == 0
    assert run(*common, "--dask", address, "--out", tmp_path / "b") == 0
    a, b = (tmp_path / d for d in "ab")
    assert (a / "results.json").read_bytes() == (b / "results.json").read_bytes()
    for category in _json(b)["categories"].values():
        assert all(np.isfinite(category["metrics"][c]) for c in columns), category["metrics"]
    figures = sorted(f.name for f in (a / "figures").iterdir())
    assert figures and figures == sorted(f.name for f in (b / "figures").iterdir())
    for name in figures:
        assert (a / "figures" / name).read_bytes() == (b / "figures" / name).read_bytes(), name


@pytest.mark.parametrize("args, message", [
    (("--ci",), "--dask: --ci resamples every image's pixel keys"),
    (("--memory-limit", "1GB"), "give one of --dask and --memory-limit"),
    (("--protocol", "mvtec-loco"), "--dask: --protocol mvtec-loco's official AU-sPRO holds every map of an "
                                   "object at once"),
])
def test_what_the_cluster_cannot_compute_is_refused(args, message, tmp_path, capsys):
    assert run("--demo", "--dask", "local[2]", *args, "--out", tmp_path / "out") == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("value, message", [
    ("local[0]", "expected local[N] with N >= 1 workers, received 'local[0]'"),
    ("local[two]", "expected local[N] (N workers, e.g. local[4]) or a scheduler address"),
    ("local", "expected local[N] (N workers, e.g. local[4]) or a scheduler address"),
    ("two words", "expected a scheduler address (tcp://host:8786, host:8786) or local[N], received 'two words'"),
])
def test_bad_values_are_errors(value, message, tmp_path, capsys):
    assert run("--demo", "--dask", value, "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "--dask" in err and message in err
    assert not (tmp_path / "out").exists()


def test_an_unreachable_scheduler_and_a_missing_dask_are_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(dask_state, "CONNECT_TIMEOUT", "1s")
    assert run("--demo", "--dask", "tcp://127.0.0.1:9", "--no-figures", "--out", tmp_path / "out") == 2
    assert "--dask: could not connect to a Dask scheduler at tcp://127.0.0.1:9" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed: ImportError
    assert run("--demo", "--dask", "local[2]", "--out", tmp_path / "out") == 2
    assert 'pip install "refmetrics[dask]"' in capsys.readouterr().err


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_ranking_plan_from_the_region_histograms_is_the_ranking_plan(dtype):
    # the ranking metrics' plan reuses the region pass's histograms: the same keys, the same plan
    import dask

    from refmetrics import _buckets as B
    from refmetrics.dask import _graph as D

    rng = np.random.default_rng(7)
    maps = np.round(rng.random((5, 12, 10)), 2).astype(dtype)  # ties
    masks = rng.random((5, 12, 10)) > 0.8
    masks[1] = False  # a defect-free image
    chunks = [(dask.delayed(maps[i:i + 2]), dask.delayed(masks[i:i + 2])) for i in range(0, 5, 2)]
    regions = D.RegionPlan(chunks, 2, 2, 64, "sync")
    ours = dask_state.RankingFromRegions(chunks, regions.hist, 64, "sync")
    theirs = D.RankingPlan(chunks, None, 64, "sync")
    assert np.array_equal(ours.hist, theirs.hist) and ours.plan.n_buckets == theirs.plan.n_buckets > 2
    assert (ours.n_pos, ours.n_neg) == (theirs.n_pos, theirs.n_neg) == (int(masks.sum()), int((~masks).sum()))
    assert np.array_equal(ours.tp_above, theirs.tp_above) and np.array_equal(ours.fp_above, theirs.fp_above)
    a, b = ours.run({"auroc", "ap", "f1"}), theirs.run({"auroc", "ap", "f1"})
    assert a["auroc"] == b["auroc"] and a["f1"] == b["f1"]
    assert B.ap_finish(a["ap"], ours.n_pos) == B.ap_finish(b["ap"], theirs.n_pos)


def test_a_bad_map_read_by_a_worker_is_named(tmp_path, address, capsys):
    build_tree(tmp_path, np.random.default_rng(3))
    bad = tmp_path / "maps" / "bottle" / "test" / "good" / "001.npy"
    values = np.load(bad)
    values[2, 3] = np.nan
    np.save(bad, values)
    args = ("--maps", tmp_path / "maps", "--gt", tmp_path / "gt", "--no-figures")
    assert run(*args, "--out", tmp_path / "a") == 2
    local = capsys.readouterr().err
    assert run(*args, "--dask", address, "--out", tmp_path / "b") == 2
    err = capsys.readouterr().err
    assert f"{bad}: the anomaly map holds 1 NaN value" in err and err == local  # as read in this process
    assert not (tmp_path / "b").exists()


def _states(dtype, monkeypatch, seed=11):
    """The in-memory pixel state and a DaskPixelState (synchronous scheduler) of the same maps: ties, a
    defect-free image, regions in chunks of two images."""
    import dask

    from refmetrics.dask import _graph as D
    from refmetrics.state import PixelState

    monkeypatch.setattr(dask_state, "_compute", lambda *a: D.compute(*a, scheduler="sync"))
    rng = np.random.default_rng(seed)
    maps = (np.round(rng.random((7, 18, 15)) ** 3, 3) * rng.choice([-1, 1], (7, 18, 15))).astype(dtype)
    maps[0, :2] = -0.0  # -0.0 and +0.0: one score
    masks = rng.random((7, 18, 15)) > 0.85
    masks[2] = False
    chunks = [(dask.delayed(maps[i:i + 2]), dask.delayed(masks[i:i + 2])) for i in range(0, 7, 2)]
    ours = dask_state.DaskPixelState(dtype, 2, None)
    ours._chunks = chunks
    plan = D.RegionPlan(chunks, 2, 2, 64, "sync")
    ours._regions, ours.n_bg, ours.n_defect, ours.n_regions = plan, plan.n_bg, plan.n_region_pixels, plan.n_regions
    ours._finished = True
    theirs = PixelState(maps.size, dtype, 2)
    for m, t in zip(maps, masks):
        theirs.add(m, t)
    theirs.finish()
    return ours, theirs, maps


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_threshold_conventions_read_the_same_numbers_on_a_cluster(dtype, monkeypatch):
    ours, theirs, maps = _states(dtype, monkeypatch)
    assert ours.score_range() == theirs.score_range() == (float(maps.min()), float(maps.max()))
    values = np.unique(maps.astype(np.float64))
    t = np.concatenate([values[::7], np.nextafter(values[::5], np.inf), [-np.inf, np.inf, 0.0, -0.0, 2.0]])
    for strict in (False, True):
        counts = ours.counts_above(t) if strict else ours.counts_at_least(t)
        assert np.array_equal(counts, theirs.counts_above(t) if strict else theirs.counts_at_least(t))
        for weight in (None, lambda sizes: (1.0 / sizes).astype(np.float32).astype(np.float64)):
            got = ours.region_overlap_at_least(t, weight, strict)
            assert np.array_equal(got, theirs.region_overlap_at_least(t, weight, strict))
    # an independent check of one count: pixels at or above the median score, read off the maps
    median = float(np.median(maps))
    assert ours.counts_at_least([median]).sum() == np.count_nonzero(maps >= median)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_order_statistics_are_found_without_gathering_keys(dtype, monkeypatch):
    ours, theirs, _ = _states(dtype, monkeypatch)
    digits = []
    real = dask_state._delayed

    def count(fn):
        if getattr(fn, "__name__", "") == "region_digits":
            digits.append(fn)
        return real(fn)

    monkeypatch.setattr(dask_state, "_delayed", count)
    for mine, want in zip(ours.sorted_keys(), theirs.sorted_keys()):
        assert mine.size == want.size and mine.dtype == want.dtype
        ranks = np.arange(want.size)
        assert np.array_equal(mine[ranks], want)  # every rank, ties included
        assert mine[-1] == want[-1] and mine[0] == want[0]
        assert np.array_equal(mine[np.array([[3, -2], [0, 5]])], want[np.array([[3, -2], [0, 5]])])
        with pytest.raises(IndexError, match=rf"index: expected ranks in \[-{want.size}, {want.size}\)"):
            mine[want.size]
        with pytest.raises(TypeError, match="index: expected an int or an int array of ranks"):
            mine[0.5]
    # 16 bits per pass after the histogram's 16: one pass per side (4 chunks) for float32, three for float64
    assert len(digits) == 2 * 4 * (1 if dtype == np.float32 else 3)


@pytest.mark.parametrize("protocol", ["mvtec-ad-2", "mvtec-loco"])
def test_per_image_accumulators_are_computed_on_the_workers(protocol, tmp_path, address, monkeypatch):
    # accumulators with part_of (MVTec AD 2's SegF1 counts and validation moments, MVTec LOCO's defect
    # checks and counts) and LOCO's sPRO states: the client never reads a map (nor a validation map)
    args = ("--protocol", protocol, "--demo", "--no-figures", "--no-official")
    assert run(*args, "--out", tmp_path / "a") == 0
    from refmetrics.evaluate import state as evaluate_state

    def refused(*args, **kwargs):
        raise AssertionError("the client read a map")

    monkeypatch.setattr(evaluate_state.GroupState, "read", refused)
    assert run(*args, "--dask", address, "--out", tmp_path / "b") == 0
    assert _json(tmp_path / "a") == _json(tmp_path / "b")


@pytest.mark.parametrize("chunk", [3, 1 << 16])
def test_figure_curves_from_the_cluster_are_the_one_process_bits(chunk, monkeypatch):
    # the PRO and sPRO figure points: the buckets' groups come back, are collapsed (sPRO) and summed in the
    # chunks the one-process walk uses; its own points are the oracle (chunk 3: many chunk boundaries)
    import dask

    from refmetrics.dask import _graph as D
    from refmetrics.functional import _regions as G
    from refmetrics.functional import spro as S

    monkeypatch.setattr(G, "CHUNK", chunk)
    ours, theirs, _ = _states(np.float32, monkeypatch)

    def whole(points):
        points = list(points)
        return tuple(np.concatenate([p[i] for p in points]) for i in range(2))

    for got, want in zip(whole(ours.pro_points()), whole(theirs.pro_points())):
        assert np.array_equal(got, want)
    rng = np.random.default_rng(5)
    maps = np.round(rng.random((6, 30, 20)), 2).astype(np.float32)
    defects = []
    for i in range(6):  # two defects in every other image: one saturating by pixels, one relative
        a, b = np.zeros((30, 20), bool), np.zeros((30, 20), bool)
        a[5:12, 3:9], b[20:25, 10:18] = True, True
        defects.append([(a, int(a.sum() * 0.7), False), (b, 0.5, True)] if i % 2 else [])
    state = S.DefectScores()
    S.add_batch(state, maps, defects, "cpu")
    cluster = object.__new__(dask_state.DaskSpro)
    cluster.plan = D.SProPlan([(dask.delayed(maps[i:i + 2]), defects[i:i + 2]) for i in range(0, 6, 2)], 64, "sync")
    for name in ("n_bg", "n_regions", "n_full", "n_region_pixels"):
        setattr(cluster, name, getattr(cluster.plan, name))
    cluster.kd = np.dtype(np.uint32)  # float32 maps' keys
    for limit in (0.01, 0.3, 1.0):
        got, want = whole(cluster.spro_points(limit)), whole(S.spro_points_from_state(state, limit))
        assert got[0].size > 1 and all(np.array_equal(g, w) for g, w in zip(got, want))
    assert cluster.au_spro([0.05, 1.0]) == S.au_spro_from_state(state, [0.05, 1.0])


def test_visa_reads_its_order_statistics_in_one_pass(monkeypatch):
    # the percentiles read ranks 0 and n - 1 among the others: the extremes then come from what is known
    # (one digit pass for float32 keys, defect side only); the value is the in-memory state's
    from refmetrics.evaluate.protocols import visa

    ours, theirs, maps = _states(np.float32, monkeypatch)
    calls = []
    real = dask_state._delayed

    def count(fn):
        calls.append(getattr(fn, "__name__", ""))
        return real(fn)

    monkeypatch.setattr(dask_state, "_delayed", count)
    assert visa.visa_pixel_auroc(ours, maps.dtype) == visa.visa_pixel_auroc(theirs, maps.dtype)
    assert calls.count("region_digits") == 4  # 4 chunks, one pass
    assert calls.count("region_counts") == 2 * 4  # the extreme scores, then the counts above the thresholds


def test_a_cluster_state_without_images_counts_nothing(monkeypatch):
    from refmetrics.dask import _graph as D
    from refmetrics.state import PixelState

    monkeypatch.setattr(dask_state, "_compute", lambda *a: D.compute(*a, scheduler="sync"))
    ours = dask_state.DaskPixelState(np.float32, 2, None)
    ours._chunks, ours._finished = [], True
    theirs = PixelState(0)
    theirs.finish()
    t = [-np.inf, 0.5, np.inf]
    for name in ("counts_at_least", "counts_above"):
        assert np.array_equal(getattr(ours, name)(t), getattr(theirs, name)(t)) and getattr(ours, name)(t).shape == (3, 2)
    assert np.array_equal(ours.region_overlap_at_least(t), theirs.region_overlap_at_least(t))
    assert all(np.isnan(ours.score_range())) and all(np.isnan(theirs.score_range()))


def test_a_protocol_without_cluster_support_is_refused(tmp_path, capsys, monkeypatch):
    # every protocol is supported today; a new one is refused until it is added to SUPPORTED
    monkeypatch.setattr(dask_state, "SUPPORTED", ("visa",))
    assert run("--demo", "--dask", "local[2]", "--out", tmp_path / "out") == 2
    assert "--dask: --protocol mvtec-ad is not computed on a cluster" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_loco_tree_on_a_cluster_and_its_errors(tmp_path, address, capsys):
    # MVTec LOCO's subsets (8-bit maps: ties; defects with both saturation rules), then a ground-truth
    # channel that a worker reads and refuses: the same message, naming the file, as without --dask
    from .test_protocol_mvtec_loco import build_tree as loco_tree

    loco_tree(tmp_path, np.random.default_rng(20261129))
    args = ("--protocol", "mvtec-loco", "--maps", tmp_path / "maps", "--gt", tmp_path / "gt", "--no-official",
            "--no-figures")
    assert run(*args, "--out", tmp_path / "a") == 0
    assert run(*args, "--dask", address, "--out", tmp_path / "b") == 0
    assert _json(tmp_path / "a") == _json(tmp_path / "b")
    from PIL import Image as PILImage

    channel = tmp_path / "gt" / "bottle" / "ground_truth" / "logical_anomalies" / "000" / "000.png"
    mask = np.zeros(np.asarray(PILImage.open(channel)).shape, np.uint8)
    mask[1, 1], mask[2, 2] = 255, 200
    PILImage.fromarray(mask).save(channel)
    capsys.readouterr()
    assert run(*args, "--out", tmp_path / "c") == 2
    local = capsys.readouterr().err
    assert run(*args, "--dask", address, "--out", tmp_path / "d") == 2
    err = capsys.readouterr().err
    assert str(channel) in err and "exactly one positive pixel value" in err and err == local
    assert not (tmp_path / "d").exists()
