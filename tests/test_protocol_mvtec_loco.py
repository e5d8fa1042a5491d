"""``refmetrics evaluate --protocol mvtec-loco`` end to end: an MVTec LOCO AD tree on disk -> tables,
``metrics_<object>.json`` and figures.

Every number is checked against the functional API on the same arrays (bit for bit: the same exact
state), against the oracle (1e-12), and the official column against the published model of the
official evaluation called directly.
"""

import json
import math

import numpy as np
import pytest
import tifffile
from PIL import Image

from refmetrics import cli
from refmetrics import functional as F
from refmetrics.conformance import published
from refmetrics.evaluate.protocols import mvtec_loco

from . import naive
from .checks import close, quiet

H, W = 8, 9
LIMITS = (0.01, 0.05, 0.1, 0.3, 1.0)
SUBSETS = ("logical_anomalies", "structural_anomalies")
CONFIG = [  # both saturation conventions; a relative one that saturates below the area
    {"defect_name": "missing", "pixel_value": 255, "saturation_threshold": 1.0, "relative_saturation": True},
    {"defect_name": "extra", "pixel_value": 200, "saturation_threshold": 3, "relative_saturation": False},
    {"defect_name": "scratch", "pixel_value": 100, "saturation_threshold": 0.5, "relative_saturation": True},
    {"defect_name": "dent", "pixel_value": 50, "saturation_threshold": 40, "relative_saturation": False},
]
VALUES = {"logical_anomalies": (255, 200), "structural_anomalies": (100, 50)}
SPEC = {  # object -> (map suffix, images per subset)
    "bottle": (".tiff", {"good": 3, "logical_anomalies": 2, "structural_anomalies": 3}),
    "pins": (".png", {"good": 2, "logical_anomalies": 3, "structural_anomalies": 2}),  # 8-bit maps: ties
}


def _config_entry(value):
    entry = next(e for e in CONFIG if e["pixel_value"] == value)
    return entry["saturation_threshold"], entry["relative_saturation"]


def build_tree(root, rng, spec=SPEC):
    """The tree; returns ``{object: [(subset, map as read, defects)]}`` with each defect
    ``(mask, saturation_threshold, relative_saturation)`` built from the arrays written."""
    truth = {}
    for obj, (suffix, counts) in spec.items():
        gt = root / "gt" / obj
        gt.mkdir(parents=True)
        (gt / "defects_config.json").write_text(json.dumps(CONFIG), encoding="utf-8")
        images = []
        for subset, count in counts.items():
            d = root / "maps" / obj / "test" / subset
            d.mkdir(parents=True)
            for i in range(count):
                defects, union = [], np.zeros((H, W), bool)
                for j in range(0 if subset == "good" else 1 + i % 2):
                    mask = np.zeros((H, W), bool)
                    y, x = rng.integers(0, H - 2), rng.integers(0, W - 3)
                    mask[y:y + 2, x:x + rng.integers(2, 4)] = True
                    if j == 1:
                        mask[-1, 0] = True  # a second component, the same defect
                    value = VALUES[subset][j]
                    channels = gt / "ground_truth" / subset / f"{i:03d}"
                    channels.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(mask.astype(np.uint8) * value).save(channels / f"{j:03d}.png")
                    defects.append((mask, *_config_entry(value)))
                    union |= mask
                values = (rng.standard_normal((H, W)) + 1.2 * union + 5).astype(np.float32)
                if suffix == ".tiff":
                    tifffile.imwrite(d / f"{i:03d}.tiff", values)
                else:
                    values = np.clip(values * 20, 0, 255).astype(np.uint8)
                    Image.fromarray(values).save(d / f"{i:03d}.png")
                images.append((subset, values, defects))
        truth[obj] = images
    return truth


@pytest.fixture
def tree(tmp_path):
    return tmp_path, build_tree(tmp_path, np.random.default_rng(20261128))


def run(*args):
    return cli.main(["evaluate", "--quiet", "--protocol", "mvtec-loco", *map(str, args)])


def subset_data(images, subset):
    kept = [(v, d) for s, v, d in images if s in ("good", subset)]
    maps = np.stack([v for v, _ in kept])
    return maps, [d for _, d in kept], np.array([int(bool(d)) for _, d in kept], np.uint8)


def expected(images, limits=LIMITS):
    """``{subset: (AU-sPRO list, image AUROC)}`` from the functional API."""
    out = {}
    for subset in SUBSETS:
        if not any(s == subset for s, _, _ in images):
            continue
        maps, defects, labels = subset_data(images, subset)
        scores = maps.reshape(len(maps), -1).max(axis=1).astype(np.float64)
        out[subset] = (F.au_spro(maps, defects, fpr_limit=list(limits)), F.auroc(scores, labels))
    return out


def test_loco_tree_end_to_end(tree, capsys):
    root, truth = tree
    out = root / "out"
    assert run("--maps", root / "maps", "--gt", root / "gt", "--out", out) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert results["protocol"]["name"] == "mvtec-loco" and results["settings"]["fpr_limits"] == list(LIMITS)
    for obj, images in truth.items():
        entry = results["categories"][obj]
        got, want = entry["metrics"], expected(images)
        for subset, (areas, auroc) in want.items():
            maps, defects, labels = subset_data(images, subset)
            points = naive.spro_points(maps, defects)
            scores = maps.reshape(len(maps), -1).max(axis=1)
            row = entry["defects"][subset]["metrics"]  # the per-defect row: the subset with every good image
            assert row["image AUROC"] == auroc == got[f"image AUROC ({mvtec_loco.SHORT[subset]})"]
            assert close(auroc, naive.auroc(scores, labels))
            for limit, area in zip(LIMITS, areas):
                assert row[f"AU-sPRO@{limit:g}"] == area  # bit for bit: the same exact state
                assert close(area, naive.area_to_limit(points, limit)), (obj, subset, limit)
            counts = entry["defects"][subset]["counts"]
            assert counts["images"] == len(maps) and counts["defects"] == sum(len(d) for d in defects)
        # the category row: the official "mean" over the two subsets
        assert got["image AUROC"] == float(np.mean([want[s][1] for s in SUBSETS]))
        for i, limit in enumerate(LIMITS):
            assert got[f"AU-sPRO@{limit:g}"] == float(np.mean([want[s][0][i] for s in SUBSETS]))
        counts = entry["counts"]
        assert counts["images"] == len(images) and counts["pixels"] == len(images) * H * W
        assert counts["defect pixels"] == sum(int(np.logical_or.reduce([m for m, _, _ in d]).sum())
                                              for _, _, d in images if d)
        # metrics_<object>.json: the official schema, the exact values
        doc = json.loads((out / f"metrics_{obj}.json").read_text())
        keys = ["0.01", "0.05", "0.1", "0.3", "1.0"]
        assert doc == {
            "localization": {"auc_spro": {**{s: dict(zip(keys, want[s][0])) for s in SUBSETS},
                                          "mean": {k: got[f"AU-sPRO@{limit:g}"] for k, limit in zip(keys, LIMITS)}}},
            "classification": {"auc_roc": {**{s: want[s][1] for s in SUBSETS}, "mean": got["image AUROC"]}}}
    for key, value in results["mean"].items():
        assert value == np.mean([results["categories"][c]["metrics"][key] for c in truth])
    assert "bottle" in printed and "official" in printed
    md = (out / "results.md").read_text()
    assert "AU-sPRO@0.05 (official)" in md and "logical\\_anomalies" in md
    figures = sorted(p.name for p in (out / "figures").iterdir())
    kinds = ("roc", "scores") + tuple(f"spro{limit:g}" for limit in LIMITS)
    assert figures == sorted(f"{obj}_{k}.png" for obj in truth for k in kinds)
    assert sorted(results["files"]) == sorted(["results.json", "results.md", "results.tex", "metrics_bottle.json",
                                               "metrics_pins.json"] + [f"figures/{f}" for f in figures])


def _official(images, subsets, limit):
    """The official per-subset values with the published model's functions called directly: thresholds
    from every image of the object, each subset (with every good image) evaluated at them."""
    maps = np.stack([v for _, v, _ in images])
    thresholds, _, _ = published.mvtec_loco_curve(maps, [d for _, _, d in images], seed=mvtec_loco.SEED)
    out = {}
    for subset in subsets:
        kept = [i for i, (s, _, _) in enumerate(images) if s in ("good", subset)]
        spro, fpr = published.loco_points(maps[kept], [images[i][2] for i in kept], thresholds)
        out[subset] = published.loco_area(fpr, spro, limit)
    return out


def test_official_column_is_the_published_model(tree):
    root, truth = tree
    out = root / "out"
    assert run("--maps", root / "maps", "--gt", root / "gt", "--out", out, "--no-figures") == 0
    results = json.loads((out / "results.json").read_text())
    for obj, images in truth.items():
        entry = results["categories"][obj]
        for limit in LIMITS:
            official = _official(images, SUBSETS, limit)
            key = f"AU-sPRO@{limit:g} (official)"
            for subset in SUBSETS:
                assert entry["defects"][subset]["metrics"][key] == official[subset]
            assert entry["metrics"][key] == float(np.mean([official[s] for s in SUBSETS]))
    # one subset only: the object's thresholds are those of that subset's images, so the column is the
    # published model called on them, as the conformance suite calls it
    tmp = root / "single"
    images = build_tree(tmp, np.random.default_rng(7), {"cap": (".tiff", {"good": 2, "logical_anomalies": 3})})
    images = images["cap"]
    assert run("--maps", tmp / "maps", "--gt", tmp / "gt", "--out", tmp / "out", "--no-figures") == 0
    single = json.loads((tmp / "out" / "results.json").read_text())["categories"]["cap"]
    maps = np.stack([v for _, v, _ in images])
    for limit in LIMITS:
        direct = published.mvtec_loco_au_spro(maps, [d for _, _, d in images], fpr_limit=limit,
                                              seed=mvtec_loco.SEED)
        assert single["metrics"][f"AU-sPRO@{limit:g} (official)"] == direct
        assert single["metrics"][f"AU-sPRO@{limit:g}"] == quiet(F.au_spro, maps, [d for _, _, d in images],
                                                               fpr_limit=limit)
    assert single["metrics"]["image AUROC (structural)"] is None
    assert any("no structural_anomalies images" in n for n in single["notes"])
    assert "defects" not in single  # one subset: no per-defect breakdown
    doc = json.loads((tmp / "out" / "metrics_cap.json").read_text())
    assert set(doc["localization"]["auc_spro"]) == {"logical_anomalies", "mean"}


def test_no_official_fpr_limit_and_no_per_defect(tree):
    root, truth = tree
    out = root / "out"
    assert run("--maps", root / "maps", "--gt", root / "gt", "--out", out, "--no-official", "--no-per-defect",
               "--fpr-limit", 0.2, "--categories", "pins") == 0
    results = json.loads((out / "results.json").read_text())
    assert [c["key"] for c in results["columns"]] == ["image AUROC (logical)", "image AUROC (structural)",
                                                      "image AUROC", "AU-sPRO@0.2"]
    entry = results["categories"]["pins"]
    want = expected(truth["pins"], (0.2,))
    assert entry["metrics"]["AU-sPRO@0.2"] == float(np.mean([want[s][0][0] for s in SUBSETS]))
    assert "defects" not in entry and list(results["categories"]) == ["pins"]
    doc = json.loads((out / "metrics_pins.json").read_text())
    assert doc["localization"]["auc_spro"]["logical_anomalies"] == {"0.2": want["logical_anomalies"][0][0]}
    assert sorted(p.name for p in (out / "figures").iterdir()) == ["pins_roc.png", "pins_scores.png",
                                                                  "pins_spro0.2.png"]


def _snapshot(out):
    return {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} if out.exists() else None


@pytest.mark.parametrize("case", ["missing channels", "no config", "bad json", "bad config entry",
                                  "value not in config", "two values in a channel", "map size",
                                  "channel sizes", "unexpected subset", "channels without a map",
                                  "empty channel directory", "colour channel", "good ground truth"])
def test_malformed_trees_name_the_file_and_write_nothing(tree, capsys, case):
    root, _ = tree
    gt = root / "gt" / "bottle"
    channels = gt / "ground_truth" / "logical_anomalies" / "001"
    config = gt / "defects_config.json"
    if case == "missing channels":
        for p in channels.iterdir():
            p.unlink()
        channels.rmdir()
        named, what = root / "maps" / "bottle" / "test" / "logical_anomalies" / "001.tiff", str(channels)
    elif case == "no config":
        config.unlink()
        named, what = config, "missing defects config"
    elif case == "bad json":
        config.write_text("[{", encoding="utf-8")
        named, what = config, "expected a JSON file"
    elif case == "bad config entry":
        config.write_text(json.dumps([{"defect_name": "x", "pixel_value": 300, "saturation_threshold": 1,
                                       "relative_saturation": False}]), encoding="utf-8")
        named, what = config, "pixel_value to be an int in 1..255, received 300"
    elif case == "value not in config":
        mask = np.zeros((H, W), np.uint8)
        mask[1:3, 1:3] = 77
        Image.fromarray(mask).save(channels / "000.png")
        named, what = channels / "000.png", "received 77"
    elif case == "two values in a channel":
        mask = np.zeros((H, W), np.uint8)
        mask[1, 1], mask[2, 2] = 255, 200
        Image.fromarray(mask).save(channels / "000.png")
        named, what = channels / "000.png", "exactly one positive pixel value"
    elif case == "map size":
        tifffile.imwrite(root / "maps" / "bottle" / "test" / "logical_anomalies" / "001.tiff",
                         np.zeros((H + 1, W), np.float32))
        named, what = root / "maps" / "bottle" / "test" / "logical_anomalies" / "001.tiff", f"{H + 1}x{W}"
    elif case == "channel sizes":
        Image.fromarray(np.full((H, W + 2), 255, np.uint8)).save(channels / "001.png")
        named, what = channels / "001.png", f"{H}x{W + 2}"
    elif case == "unexpected subset":
        (root / "maps" / "bottle" / "test" / "crack").mkdir()
        named, what = root / "maps" / "bottle" / "test" / "crack", "unexpected subset directory"
    elif case == "channels without a map":
        extra = gt / "ground_truth" / "structural_anomalies" / "009"
        extra.mkdir()
        Image.fromarray(np.full((H, W), 100, np.uint8)).save(extra / "000.png")
        named, what = extra, "ground truth without a map"
    elif case == "colour channel":
        mask = np.zeros((H, W, 3), np.uint8)
        mask[1:3, 1:3] = 255
        Image.fromarray(mask).save(channels / "000.png")
        named, what = channels / "000.png", f"received an image of shape ({H}, {W}, 3)"
    elif case == "good ground truth":
        (gt / "ground_truth" / "good" / "000").mkdir(parents=True)
        named, what = gt / "ground_truth" / "good", "good images have no ground truth"
    else:
        for p in channels.iterdir():
            p.unlink()
        named, what = channels, "expected one or more channel PNGs"
    out = root / "out"
    out.mkdir()
    (out / "keep.txt").write_text("previous")
    before = _snapshot(out)
    capsys.readouterr()
    rc = run("--maps", root / "maps", "--gt", root / "gt", "--out", out)
    err = capsys.readouterr().err
    assert rc == 2 and str(named) in err and what in err, (case, err)
    assert _snapshot(out) == before  # nothing written


def test_demo(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["evaluate", "--protocol", "mvtec-loco", "--demo", "--quiet"]) == 0
    out = tmp_path / "refmetrics-demo"
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["dataset"] == "refmetrics demo of mvtec-loco (bundled)"
    assert list(results["categories"]) == ["box", "connector"]
    root = mvtec_loco.MVTecLOCO().demo_root()
    for obj, entry in results["categories"].items():
        config = F.read_defects_config(root / "gt" / obj / "defects_config.json")
        assert {e.relative_saturation for e in config.values()} == {True, False}  # both conventions
        images = []
        for subset in ("good", *SUBSETS):
            for path in sorted((root / "maps" / obj / "test" / subset).iterdir()):
                channels = root / "gt" / obj / "ground_truth" / subset / path.stem
                defects = F.defects_from_channels(sorted(str(p) for p in channels.glob("*.png")), config=config) \
                    if subset != "good" else []
                images.append((subset, tifffile.imread(path), defects))
        want = expected(images)
        for subset, (areas, auroc) in want.items():
            assert entry["defects"][subset]["metrics"]["image AUROC"] == auroc
            assert entry["defects"][subset]["metrics"]["AU-sPRO@0.05"] == areas[1]
            assert entry["defects"][subset]["metrics"]["AU-sPRO@0.05 (official)"] == \
                _official(images, [subset], 0.05)[subset]
        assert not math.isnan(entry["metrics"]["AU-sPRO@0.3"]) and entry["notes"] == []
        assert json.loads((out / f"metrics_{obj}.json").read_text())["classification"]["auc_roc"]["mean"] == \
            entry["metrics"]["image AUROC"]
    assert len(list((out / "figures").glob("*.png"))) == 2 * 7


def test_official_failure_is_a_note(tmp_path):
    """float32 maps near 1000: the official end thresholds (min - 1e-6, max + 1e-6 in float32) are the
    extreme scores themselves, the sampled curve never reaches FPR 1 and the official tool stops with an
    AssertionError: the column is nan, a note says why, the exact values are unaffected."""
    truth = build_tree(tmp_path, np.random.default_rng(5), {"cap": (".tiff", {"good": 2, "logical_anomalies": 2})})
    for path in sorted((tmp_path / "maps" / "cap" / "test").rglob("*.tiff")):
        tifffile.imwrite(path, tifffile.imread(path) + np.float32(1000))
    images = [(s, v + np.float32(1000), d) for s, v, d in truth["cap"]]
    with pytest.raises(AssertionError):
        published.mvtec_loco_au_spro(np.stack([v for _, v, _ in images]), [d for _, _, d in images], fpr_limit=0.3)
    assert run("--maps", tmp_path / "maps", "--gt", tmp_path / "gt", "--out", tmp_path / "out", "--no-figures") == 0
    entry = json.loads((tmp_path / "out" / "results.json").read_text())["categories"]["cap"]
    assert all(entry["metrics"][f"AU-sPRO@{limit:g} (official)"] is None for limit in LIMITS)
    assert any("the official evaluation fails on these maps" in n for n in entry["notes"])
    maps, defects, _ = subset_data(images, "logical_anomalies")
    assert entry["metrics"]["AU-sPRO@0.3"] == F.au_spro(maps, defects, fpr_limit=0.3)


def test_spro_points_from_state_follow_the_exact_curve():
    """The figure's streamed curve: points of the exact curve (background-only runs as one point), up to
    and including the first point past the limit."""
    from refmetrics.functional import spro as functional_spro

    rng = np.random.default_rng(11)
    maps = np.round(rng.random((3, 6, 7)), 2)  # ties
    masks = rng.random((3, 6, 7)) > 0.75
    defects = [[(masks[0], 0.5, True), (masks[1], 2, False)], [], [(masks[2], 1.0, True)]]
    fpr, spro = F.spro_curve(maps, defects)
    exact = set(zip(fpr.tolist(), spro.tolist()))
    for limit in (0.1, 1.0):
        state = functional_spro.DefectScores()
        functional_spro.add_batch(state, maps, defects, "cpu")
        chunks = list(functional_spro.spro_points_from_state(state, limit))
        x = np.concatenate([c[0] for c in chunks])
        y = np.concatenate([c[1] for c in chunks])
        assert all(any(abs(a - p) < 1e-12 and abs(b - q) < 1e-12 for p, q in exact) for a, b in zip(x, y))
        assert np.all(np.diff(x) >= 0) and np.all(np.diff(y) >= 0)
        assert x[-1] > limit or (limit == 1.0 and x[-1] == 1.0)
        assert np.all(x[:-1] <= limit)
        if limit == 1.0:  # the figure's sums are plain float64 (the exact curve's are double-double): 1e-12
            assert x[-1] == fpr[-1] and abs(y[-1] - spro[-1]) < 1e-12


def test_a_directory_in_the_way_of_metrics_json_fails_before_computing(tmp_path, capsys, monkeypatch):
    """The protocol's own files are checked with the others before anything is computed (review: a directory
    named metrics_<object>.json failed the run only after every metric had been computed)."""
    import importlib

    run_module = importlib.import_module("refmetrics.evaluate.run")  # the module (the package exports run())

    out = tmp_path / "out"
    (out / "metrics_box.json").mkdir(parents=True)
    computed = []
    real = run_module.evaluate_category
    monkeypatch.setattr(run_module, "evaluate_category", lambda *a: computed.append(1) or real(*a))
    assert cli.main(["evaluate", "--protocol", "mvtec-loco", "--demo", "--quiet", "--out", str(out)]) == 2
    assert "metrics_box.json" in capsys.readouterr().err and not computed
