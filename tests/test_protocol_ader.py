"""``refmetrics evaluate --protocol ader`` end to end: ADer's mAD, mF1/mAcc/mIoU and ADEval's 50-bin columns.

Every number the command writes is checked against the functional API on the
same arrays (bit for bit), against the exact oracles of ``tests/naive.py``
(1e-12), and the official columns against the ADEval model called directly.
"""

import json
import math
import warnings

import numpy as np
import pytest
import tifffile
from PIL import Image

import refmetrics as rm
from refmetrics import cli
from refmetrics import functional as F
from refmetrics.conformance.causes import adeval_model
from refmetrics.evaluate.protocols import ader
from refmetrics.state import PixelState

from . import naive
from .checks import close, quiet, same

H, W = 16, 19  # the 16x16 pool leaves a 1x4 pooled map
SEVEN = ("image AUROC", "image AP", "image F1-max", "pixel AUROC", "pixel AP", "pixel F1-max", "AUPRO")
OFFICIAL = {"pixel AUROC (ADEval, 50 bins)": "pixel_auroc", "pixel AP (ADEval, 50 bins)": "pixel_ap",
            "AUPRO@0.3 (ADEval, 50 bins)": "aupro"}


def build_tree(root, rng):
    """Two categories (float32 .npy/.tiff maps; 8-bit .png maps), masks as 0/255 PNGs.

    Returns ``{category: (maps as read (B,H,W), masks bool, labels, defect types)}``.
    """
    spec = {"cable": [("good", ".npy", 2), ("bent", ".tiff", 2), ("cut", ".npy", 2)],
            "wood": [("good", ".png", 2), ("hole", ".png", 2)]}
    truth = {}
    for category, defects in spec.items():
        maps, masks, labels, kinds = [], [], [], []
        for defect, suffix, count in defects:
            d = root / "maps" / category / "test" / defect
            d.mkdir(parents=True)
            for i in range(count):
                mask = np.zeros((H, W), bool)
                if defect != "good":
                    y, x = rng.integers(0, H - 4), rng.integers(0, W - 5)
                    mask[y:y + 3, x:x + rng.integers(2, 5)] = True
                    mask[-1, -1] = defect == "cut"  # a second, one-pixel region
                    g = root / "gt" / category / "ground_truth" / defect
                    g.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(mask.astype(np.uint8) * 255).save(g / f"{i:03d}_mask.png")
                values = (rng.standard_normal((H, W)) + 1.5 * mask + 5).astype(np.float32)
                if suffix == ".npy":
                    np.save(d / f"{i:03d}.npy", values)
                elif suffix == ".tiff":
                    tifffile.imwrite(d / f"{i:03d}.tiff", values)
                else:
                    values = np.clip(values * 20, 0, 255).astype(np.uint8)  # integer scores, many ties
                    Image.fromarray(values).save(d / f"{i:03d}.png")
                maps.append(values)
                masks.append(mask)
                labels.append(int(defect != "good"))
                kinds.append(defect)
        truth[category] = (np.stack(maps), np.stack(masks), np.array(labels, np.uint8), kinds)
    return truth


@pytest.fixture
def tree(tmp_path):
    return tmp_path, build_tree(tmp_path, np.random.default_rng(20261128))


def run(*args):
    return cli.main(["evaluate", "--quiet", "--protocol", "ader", *map(str, args)])


def printed(capsys):
    """What the command printed, its wrapped lines joined (the wrapping follows the terminal's width)."""
    return " ".join(capsys.readouterr().out.split())


def _results(out):
    return json.loads((out / "results.json").read_text())


class Case:
    """What ``adeval_model`` reads (the conformance suite's case: maps, masks, image maxima)."""

    spatial_dims = 2

    def __init__(self, maps, masks):
        self.maps, self.masks = maps, masks

    def image_level(self):
        return self.maps.reshape(len(self.maps), -1).max(axis=1), self.masks.reshape(len(self.masks), -1).max(axis=1)


def expected(maps, masks, labels, scores=None, fpr_limit=0.3, official=True):
    """Every column from the functional API (and the ADEval model) on the arrays."""
    if scores is None:
        scores = F.image_scores(maps, reduce="pooled_max", kernel=16)
    out = quiet(lambda: {
        "image AUROC": F.auroc(scores, labels), "image AP": F.average_precision(scores, labels),
        "image F1-max": F.f1_max(scores, labels), "pixel AUROC": F.auroc(maps, masks),
        "pixel AP": F.average_precision(maps, masks), "pixel F1-max": F.f1_max(maps, masks),
        "AUPRO": F.aupro(maps, masks, fpr_limit=fpr_limit), **F.ader_segmentation(maps, masks)})
    out["mAD"] = math.fsum(out[m] for m in SEVEN) / 7
    if official:
        case = Case(maps.astype(np.float64), masks)
        for key, name in OFFICIAL.items():  # ADEval's AUPRO limit is 0.3, whatever --fpr-limit says
            value = adeval_model(case, name, nstrips=50, fpr_limit=0.3)
            out[key] = float("nan") if value is None else value
    return out


def same_values(got, want):
    """JSON metrics (None for NaN) bit-identical to ``want``, key for key."""
    assert set(got) == set(want), sorted(set(got) ^ set(want))
    for key, value in want.items():
        assert same(float("nan") if got[key] is None else got[key], value), (key, got[key], value)


def test_ader_tree_end_to_end(tree, capsys):
    root, truth = tree
    out = root / "out"
    assert run("--maps", root / "maps", "--gt", root / "gt", "--out", out) == 0
    text = printed(capsys)
    results = _results(out)
    assert results["protocol"]["name"] == "ader" and list(results["categories"]) == ["cable", "wood"]
    assert [c["key"] for c in results["columns"]] == [
        "image AUROC", "image AP", "image F1-max", "pixel AUROC", "pixel AUROC (ADEval, 50 bins)", "pixel AP",
        "pixel AP (ADEval, 50 bins)", "pixel F1-max", "AUPRO", "AUPRO@0.3 (ADEval, 50 bins)", "mF1", "mAcc",
        "mIoU", "mAD"]
    assert [c["key"] for c in results["columns"] if c["official"]] == list(OFFICIAL)
    settings = results["settings"]
    assert settings["image_score"].startswith("pooled_max (maximum of the 16x16")
    assert settings["adeval_nstrips"] == 50 and settings["fpr_limit"] == 0.3
    assert settings["segmentation_thresholds"] == list(naive.ADER_THRESHOLDS)
    for category, (maps, masks, labels, kinds) in truth.items():
        entry = results["categories"][category]
        got = entry["metrics"]
        same_values(got, expected(maps, masks, labels))
        assert got["mAD"] == math.fsum(got[m] for m in SEVEN) / 7
        assert abs(got["mAD"] - np.mean([got[m] for m in SEVEN])) <= 1e-15  # the mean of its parts
        # the oracles, exact to 1e-12
        scores = naive.image_scores(maps, reduce="pooled_max", kernel=16)
        assert F.image_scores(maps, reduce="pooled_max", kernel=16).tolist() == [float(s) for s in scores]
        assert close(got["image AUROC"], naive.auroc(scores, labels))
        assert close(got["image AP"], naive.average_precision(scores, labels))
        assert close(got["image F1-max"], naive.f1_max(scores, labels))
        assert close(got["pixel AUROC"], naive.auroc_midranks(maps, masks))
        assert close(got["pixel AP"], naive.average_precision(maps, masks))
        assert close(got["pixel F1-max"], naive.f1_max(maps, masks))
        assert close(got["AUPRO"], naive.aupro(maps, masks, 0.3))
        segmentation = naive.ader_segmentation(maps, masks)
        for name in ("mF1", "mAcc", "mIoU"):
            assert close(got[name], segmentation[name]), name
        # the 50 bins are not the exact values (they are what ADer prints)
        assert got["pixel AP (ADEval, 50 bins)"] != got["pixel AP"]
        counts = entry["counts"]
        assert counts["images"] == len(maps) and counts["defect pixels"] == int(masks.sum())
        assert counts["defective images"] == int(labels.sum())
        # per defect type: its images and every good one, the same numbers on that subset
        types = sorted(set(kinds) - {"good"})
        if len(types) > 1:
            assert sorted(entry["defects"]) == types
            for kind in types:
                keep = np.array([k in ("good", kind) for k in kinds])
                same_values(entry["defects"][kind]["metrics"], expected(maps[keep], masks[keep], labels[keep]))
        else:
            assert "defects" not in entry
    for metric, value in results["mean"].items():
        assert value == np.mean([results["categories"][c]["metrics"][metric] for c in truth])
    assert "ADer (Zhang et al., 2024)" in text and "mAD" in text and "AUROC50*" in text
    assert "ADEval's 50-bin histogram" in text and "(image scores: pooled_max" in text
    assert "whatever --fpr-limit says" not in text
    md, tex = (out / "results.md").read_text(), (out / "results.tex").read_text()
    assert "| cable |" in md and "pixel AP (ADEval, 50 bins) (official)" in md and "mAD" in md
    assert "### cable: per defect type" in md and f"{results['mean']['mAD']:.4f}" in tex
    assert sorted(p.name for p in (out / "figures").iterdir()) == sorted(
        f"{c}_{k}.png" for c in truth for k in ("roc", "pr", "pro", "scores"))


def test_segmentation_from_the_pixel_state_is_ader_segmentation_bit_for_bit():
    rng = np.random.default_rng(20261128)
    for trial in range(6):
        shape = (int(rng.integers(1, 5)), int(rng.integers(2, 7)), int(rng.integers(2, 7)))
        if trial % 3 == 0:  # integer scores: many ties, some exactly on a normalised cut
            maps = rng.integers(0, 11, shape).astype(np.float32)
        elif trial % 3 == 1:  # signed zeros, negative scores, float64
            maps = rng.choice([-0.0, 0.0, -1.5, 2.25, 1e-3, 3.0], shape).astype(np.float64)
        else:
            maps = rng.standard_normal(shape).astype(np.float32)
        masks = rng.random(shape) < 0.3
        state = PixelState(maps.size, maps.dtype)
        for m, k in zip(maps, masks):
            state.add(m, k)
        state.finish()
        want = quiet(F.ader_segmentation, maps, masks)
        got = quiet(ader.segmentation_from_state, state)
        assert got.keys() == want.keys()
        assert all(same(got[k], want[k]) for k in want), (trial, got, want)
        exact = naive.ader_segmentation(maps, masks)
        assert all(close(got[k], exact[k]) for k in want), (trial, got, exact)
        assert state.score_range() == (float(maps.min()) + 0.0, float(maps.max()) + 0.0)
        cuts = np.unique(np.concatenate([maps.ravel().astype(np.float64), [-np.inf, np.inf, 0.5, 1e-300]]))
        counts = state.counts_at_least(cuts)
        for cut, (n_bg, n_defect) in zip(cuts, counts.tolist()):
            assert n_bg == int(np.count_nonzero(maps[~masks] >= cut))
            assert n_defect == int(np.count_nonzero(maps[masks] >= cut))
    # a float64 cut between two float32 scores: counted as the float32 comparison would
    state = PixelState(3)
    state.add(np.array([1.0, 1.0 + 2.0 ** -23, 2.0], np.float32), np.array([0, 1, 1]))
    state.finish()
    assert state.counts_at_least([1.0 + 2.0 ** -30, 1.0]).tolist() == [[0, 2], [1, 2]]
    # constant maps: undefined, NaN with the same warning as the function
    state = PixelState(4)
    state.add(np.ones((2, 2), np.float32), np.eye(2))
    state.finish()
    with pytest.warns(rm.UndefinedMetricWarning, match="the maps are constant"):
        got = ader.segmentation_from_state(state)
    assert all(math.isnan(v) for v in got.values())


def test_image_score_override_and_no_official_columns(tree, capsys):
    root, truth = tree
    out = root / "out-max"
    assert run("--maps", root / "maps", "--gt", root / "gt", "--out", out, "--no-figures", "--image-score", "max",
               "--no-official", "--fpr-limit", 0.1) == 0
    assert "(--image-score: not ADer's image score, pooled_max (maximum of the 16x16" in printed(capsys)
    results = _results(out)
    assert results["settings"]["image_score"].startswith("max") and results["settings"]["adeval_nstrips"] is None
    assert not any(c["official"] for c in results["columns"]) and results["settings"]["fpr_limit"] == 0.1
    for category, (maps, masks, labels, _) in truth.items():
        scores = maps.reshape(len(maps), -1).max(axis=1).astype(np.float64)
        got = results["categories"][category]["metrics"]
        same_values(got, expected(maps, masks, labels, scores=scores, fpr_limit=0.1, official=False))
        pooled = F.image_scores(maps, reduce="pooled_max", kernel=16)
        assert not np.array_equal(scores, pooled)  # the override changed the scores
        assert close(got["AUPRO"], naive.aupro(maps, masks, 0.1))
    # the official AUPRO stays at ADEval's fixed limit, 0.3, and the summary says so
    out = root / "out-limit"
    assert run("--maps", root / "maps", "--gt", root / "gt", "--out", out, "--no-figures", "--no-per-defect",
               "--fpr-limit", 0.1, "--image-score", "pooled_max", "--pool-kernel", 4) == 0
    results = _results(out)
    maps, masks, labels, _ = truth["cable"]
    scores = F.image_scores(maps, reduce="pooled_max", kernel=4)
    same_values(results["categories"]["cable"]["metrics"], expected(maps, masks, labels, scores, fpr_limit=0.1))
    assert "AUPRO@0.3 (ADEval, 50 bins)" in results["categories"]["cable"]["metrics"]
    assert "ADEval's AUPRO limit is 0.3 whatever --fpr-limit says" in printed(capsys)


def test_official_columns_match_adeval_itself(tree):
    """The model against ADEval's own EvalAccumulator with ADer's 50 strips (where ADEval is installed)."""
    pytest.importorskip("adeval")
    from refmetrics.conformance import adapters

    root, truth = tree
    out = root / "out"
    assert run("--maps", root / "maps", "--gt", root / "gt", "--out", out, "--no-figures", "--no-per-defect") == 0
    results = _results(out)
    for category, (maps, masks, _, _) in truth.items():
        got = results["categories"][category]["metrics"]
        case = Case(maps, masks)
        for key, metric in OFFICIAL.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                value = adapters.ADAPTERS["ader-adeval"].fn(metric, case)
            assert abs(got[key] - value) <= 1e-12, (category, key, got[key], value)


def _errors(capsys, *args):
    rc = run(*args)
    return rc, capsys.readouterr().err


def test_malformed_trees_name_the_file_and_write_nothing(tree, capsys):
    root, _ = tree
    out = root / "out"
    base = ("--maps", root / "maps", "--gt", root / "gt", "--out", out)
    missing = root / "gt" / "cable" / "ground_truth" / "bent" / "001_mask.png"
    missing.rename(missing.with_suffix(".bak"))
    rc, err = _errors(capsys, *base)
    assert rc == 2 and f"missing mask, expected {missing}" in err and "001.tiff" in err
    missing.with_suffix(".bak").rename(missing)

    orphan = root / "gt" / "wood" / "ground_truth" / "hole" / "007_mask.png"
    Image.fromarray(np.zeros((H, W), np.uint8)).save(orphan)
    rc, err = _errors(capsys, *base)
    assert rc == 2 and f"{orphan}: missing map" in err
    orphan.unlink()

    bad_size = root / "maps" / "cable" / "test" / "cut" / "000.npy"
    kept = np.load(bad_size)
    np.save(bad_size, np.ones((H + 2, W), np.float32))
    rc, err = _errors(capsys, *base)
    assert rc == 2 and str(bad_size) in err and f"{H + 2}x{W}" in err and f"{H}x{W}" in err and "--resize" in err
    np.save(bad_size, kept)

    # maps smaller than ADer's 16x16 pool: the file, the kernel expected and the size found
    small = root / "small"
    (small / "maps" / "obj" / "test" / "good").mkdir(parents=True)
    np.save(small / "maps" / "obj" / "test" / "good" / "000.npy", np.ones((8, 8), np.float32))
    rc, err = _errors(capsys, "--maps", small / "maps", "--gt", small / "gt", "--out", out)
    assert rc == 2 and str(small / "gt") in err and "not a directory" in err
    (small / "gt").mkdir()
    rc, err = _errors(capsys, "--maps", small / "maps", "--gt", small / "gt", "--out", out)
    assert rc == 2 and "000.npy: map of size 8x8, but the image score, pooled_max (maximum of the 16x16" in err
    assert "needs maps of at least 16x16" in err and "--pool-kernel" in err, err

    rc, err = _errors(capsys, "--maps", root / "maps", "--out", out)
    assert rc == 2 and "--maps and --gt: give both" in err
    rc, err = _errors(capsys, "--manifest", root / "m.csv", "--out", out)
    assert rc == 2 and "--protocol ader: takes --maps, --gt" in err and "--manifest" in err
    rc, err = _errors(capsys, *base, "--categories", "nope")
    assert rc == 2 and "nope" in err
    assert not out.exists()


def test_demo(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["evaluate", "--quiet", "--protocol", "ader", "--demo"]) == 0
    printed = capsys.readouterr().out
    assert "tile" in printed and "screw" in printed and "mAD" in printed
    results = _results(tmp_path / "refmetrics-demo")
    assert results["settings"]["dataset"] == "refmetrics demo of ader (bundled)"
    assert list(results["categories"]) == ["screw", "tile"]
    root = ader.ADer().demo_root()
    for category, entry in results["categories"].items():
        files = sorted((root / "maps" / category / "test").rglob("*.*"))
        maps = np.stack([tifffile.imread(f) if f.suffix == ".tiff" else np.asarray(Image.open(f)) for f in files])
        assert maps.shape[1:] == (64, 64) and maps.dtype.kind in "fu"
        masks = np.stack([np.asarray(Image.open(root / "gt" / category / "ground_truth" / f.parent.name /
                                                f"{f.stem}_mask.png")) > 0
                          if f.parent.name != "good" else np.zeros((64, 64), bool) for f in files])
        labels = np.array([f.parent.name != "good" for f in files], np.uint8)
        same_values(entry["metrics"], expected(maps, masks, labels))
        assert sorted(entry["defects"]) == sorted({f.parent.name for f in files} - {"good"})
        assert all(v is not None and 0.3 < v <= 1 for v in entry["metrics"].values())
    assert len(list((tmp_path / "refmetrics-demo" / "figures").glob("*.png"))) == 8


def test_undefined_values_are_null_with_notes(tmp_path, capsys):
    """A category of constant, defect-free maps: every column undefined, each with a note that says why."""
    rng = np.random.default_rng(7)
    good = tmp_path / "maps" / "blank" / "test" / "good"
    good.mkdir(parents=True)
    for i in range(2):
        np.save(good / f"{i:03d}.npy", np.full((H, W), 0.5, np.float32))
    (tmp_path / "gt").mkdir()
    build_tree(tmp_path / "other", rng)  # a second, well-formed category beside it
    (tmp_path / "other" / "maps" / "wood").rename(tmp_path / "maps" / "wood")
    (tmp_path / "other" / "gt" / "wood").rename(tmp_path / "gt" / "wood")
    out = tmp_path / "out"
    assert quiet(run, "--maps", tmp_path / "maps", "--gt", tmp_path / "gt", "--out", out, "--no-figures") == 0
    results = _results(out)
    blank = results["categories"]["blank"]
    assert all(v is None for v in blank["metrics"].values()), blank["metrics"]
    notes = " | ".join(blank["notes"])
    assert "mF1, mAcc, mIoU: ader_segmentation is undefined: the maps are constant" in notes
    assert "mAD: undefined as one of its seven metrics is (reported as nan)" in notes
    assert "pixel AUROC (ADEval, 50 bins): ADEval raises AssertionError here" in notes
    assert "image AUROC" in notes and "AUPRO" in notes
    assert results["mean"]["mAD"] is None  # the mean over categories of a nan is nan
    assert all(v is not None for v in results["categories"]["wood"]["metrics"].values())


def test_demo_tree_is_what_its_generator_writes(tmp_path):
    """``tools/demos/ader.py`` regenerates the bundled tree: the same files, the same pixels."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "tools" / "demos" / "ader.py"
    spec = importlib.util.spec_from_file_location("ader_demo", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(tmp_path / "ader")
    bundled = Path(str(ader.ADer().demo_root()))
    files = sorted(p.relative_to(bundled) for p in bundled.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "ader") for p in (tmp_path / "ader").rglob("*") if p.is_file())
    assert sum((bundled / f).stat().st_size for f in files) < 60_000  # small enough to ship

    def pixels(p):
        return tifffile.imread(p) if p.suffix == ".tiff" else np.asarray(Image.open(p))

    for f in files:
        a, b = pixels(bundled / f), pixels(tmp_path / "ader" / f)
        assert a.dtype == b.dtype and np.array_equal(a, b), f


def test_adeval_pixel_from_the_state_is_the_model():
    """``ader.adeval_pixel`` (from the finished pixel state, no maps kept) against ``adeval_model`` on the
    arrays: pixel AUROC and AP bit for bit (the same counts and float64 operations), AUPRO within 1e-12 (its
    float32 weights are summed exactly here, region by region in float64 by the model), undefined and
    raising cases alike."""
    from refmetrics.conformance.causes import Raises

    rng = np.random.default_rng(20261128)
    for trial in range(8):
        n, h, w = int(rng.integers(1, 6)), int(rng.integers(16, 40)), int(rng.integers(16, 40))
        if trial % 4 == 0:
            maps = rng.integers(0, 256, (n, h, w)).astype(np.uint8)  # integer scores, ties on the edges
        elif trial % 4 == 1:
            maps = rng.standard_normal((n, h, w))  # float64 keys
        else:
            maps = rng.standard_normal((n, h, w)).astype(np.float32)
        masks = np.zeros((n, h, w), bool)
        for b in range(n):
            for _ in range(int(rng.integers(0, 4))):
                y, x = rng.integers(0, h - 3), rng.integers(0, w - 3)
                masks[b, y:y + rng.integers(1, 12), x:x + rng.integers(1, 12)] = True
        if trial == 7:
            masks[:] = False  # no defect pixel: undefined
        state = PixelState(maps.size, np.float64 if maps.dtype == np.float64 else np.float32)
        for m, k in zip(maps, masks):
            state.add(m, k)
        state.finish()
        case = Case(maps.astype(np.float64), masks)
        for name in ("pixel_auroc", "pixel_ap", "aupro"):
            for nstrips, limit in ((50, 0.3), (1000, 0.05)):
                want = quiet(adeval_model, case, name, nstrips=nstrips, fpr_limit=limit)
                got = quiet(ader.adeval_pixel, state, name, nstrips, limit)
                if isinstance(want, Raises) or want is None:
                    assert type(got) is type(want) and getattr(got, "name", None) == getattr(want, "name", None)
                elif name == "aupro":
                    assert (math.isnan(got) and math.isnan(want)) or abs(got - want) <= 1e-12, (trial, got, want)
                else:
                    assert same(got, want), (trial, name, got, want)
    state = PixelState(4)
    state.add(np.ones((2, 2), np.float32), np.eye(2))
    state.finish()
    assert ader.adeval_pixel(state, "pixel_auroc", 50, 0.3).name == "AssertionError"  # constant maps
