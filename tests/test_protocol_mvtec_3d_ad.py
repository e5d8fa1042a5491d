"""``refmetrics evaluate --protocol mvtec-3d-ad``: an MVTec 3D-AD tree -> image AUROC, pixel AUROC, AUPRO@0.3 and
AUPRO@0.01, exactly, with the 100-threshold routine's AUPRO beside each.

Every exact number is checked against the functional API on the same arrays (bit
for bit) and the oracle (1e-12), per object and per defect type; the official
columns against the published model called directly on the same arrays.
"""

import json

import numpy as np
import pytest
import tifffile
from PIL import Image

from refmetrics import cli
from refmetrics import functional as F
from refmetrics.conformance import published

from . import naive
from .checks import close, quiet

H, W = 8, 9
LIMITS = (0.3, 0.01)


def build_tree(root, rng):
    """Two objects in the MVTec 3D-AD layout: ``gt/<obj>/test/<defect>/{gt,rgb}/NNN.png`` (0/255 masks, all zero
    for good) and maps ``maps/<obj>/test/<defect>/NNN.<suffix>``.

    Returns ``{object: {defect: (maps as read, masks bool, labels)}}``.
    """
    spec = {"bagel": [("combined", ".tiff", 2), ("crack", ".npy", 2), ("good", ".tiff", 3)],
            "foam": [("color", ".png", 2), ("good", ".png", 2)]}
    truth = {}
    for obj, defects in spec.items():
        truth[obj] = {}
        for defect, suffix, count in defects:
            maps_dir = root / "maps" / obj / "test" / defect
            gt_dir = root / "gt" / obj / "test" / defect / "gt"
            for d in (maps_dir, gt_dir, gt_dir.parent / "rgb"):
                d.mkdir(parents=True)
            maps, masks = [], []
            for i in range(count):
                mask = np.zeros((H, W), bool)
                if defect != "good" and not (defect == "combined" and i == 1):  # combined/001: an empty mask
                    y, x = rng.integers(0, H - 2), rng.integers(0, W - 3)
                    mask[y:y + 2, x:x + rng.integers(1, 4)] = True
                    mask[-1, -1] = defect == "crack"  # a second, one-pixel region
                Image.fromarray(mask.astype(np.uint8) * 255).save(gt_dir / f"{i:03d}.png")
                Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(gt_dir.parent / "rgb" / f"{i:03d}.png")
                values = (rng.standard_normal((H, W)) + 1.5 * mask + 5).astype(np.float32)
                if suffix == ".npy":
                    np.save(maps_dir / f"{i:03d}.npy", values)
                elif suffix == ".tiff":
                    tifffile.imwrite(maps_dir / f"{i:03d}.tiff", values)
                else:
                    values = np.clip(values * 20, 0, 255).astype(np.uint8)  # integer scores
                    Image.fromarray(values).save(maps_dir / f"{i:03d}.png")
                maps.append(values)
                masks.append(mask)
            # the official script's labels: anomalous when the mask holds a defect pixel
            truth[obj][defect] = (maps, masks, [int(m.any()) for m in masks])
    return truth


def stacked(parts):
    maps = np.stack([m for p in parts for m in p[0]])
    masks = np.stack([m for p in parts for m in p[1]])
    labels = np.array([y for p in parts for y in p[2]], np.uint8)
    return maps, masks, labels


@pytest.fixture
def tree(tmp_path):
    return tmp_path, build_tree(tmp_path, np.random.default_rng(20261129))


def run(*args):
    return cli.main(["evaluate", "--quiet", "--protocol", "mvtec-3d-ad", *map(str, args)])


def _errors(capsys, *args):
    rc = run(*args)
    return rc, capsys.readouterr().err


def _results(out):
    return json.loads((out / "results.json").read_text())


def exact(maps, masks, labels, limits=LIMITS):
    scores = maps.reshape(len(maps), -1).max(axis=1).astype(np.float64)
    out = {"image AUROC": F.auroc(scores, labels), "pixel AUROC": F.auroc(maps, masks)}
    out.update({f"AUPRO@{limit:g}": F.aupro(maps, masks, fpr_limit=limit) for limit in limits})
    return out


def official(maps, masks, limits=LIMITS):
    return {f"AUPRO@{limit:g} (100 thresholds)": published.mvtec3d_aupro(maps.astype(np.float64), masks,
                                                                         fpr_limit=limit) for limit in limits}


def check_group(got, maps, masks, labels, oracle=True):
    assert {k: got[k] for k in exact(maps, masks, labels)} == exact(maps, masks, labels)  # bit for bit
    assert {k: got[k] for k in official(maps, masks)} == official(maps, masks)
    if not oracle:
        return
    scores = maps.reshape(len(maps), -1).max(axis=1)
    assert close(got["image AUROC"], naive.auroc(scores, labels))
    assert close(got["pixel AUROC"], naive.auroc(maps, masks))
    points = naive.pro_points(maps, masks)  # the exact PRO curve, once for both limits
    for limit in LIMITS:
        assert close(got[f"AUPRO@{limit:g}"], naive.area_to_limit(points, limit))


def test_mvtec_3d_ad_tree_end_to_end(tree, capsys):
    root, truth = tree
    out = root / "out"
    assert run("--maps", root / "maps", "--gt", root / "gt", "--out", out) == 0
    printed = capsys.readouterr().out
    results = _results(out)
    assert results["protocol"]["name"] == "mvtec-3d-ad" and list(results["categories"]) == ["bagel", "foam"]
    assert [(c["key"], c["official"]) for c in results["columns"]] == [
        ("image AUROC", False), ("pixel AUROC", False), ("AUPRO@0.3", False), ("AUPRO@0.3 (100 thresholds)", True),
        ("AUPRO@0.01", False), ("AUPRO@0.01 (100 thresholds)", True)]
    assert results["settings"]["fpr_limits"] == [0.3, 0.01]
    for obj, defects in truth.items():
        entry = results["categories"][obj]
        maps, masks, labels = stacked(list(defects.values()))
        check_group(entry["metrics"], maps, masks, labels)
        assert entry["counts"]["defective images"] == int(labels.sum())  # bagel's combined/001 counts as good
        assert entry["counts"]["regions"] == F.label_regions(masks, return_num=True)[1]
        broken_down = [d for d in defects if d != "good"]
        assert sorted(entry.get("defects", {})) == (sorted(broken_down) if len(broken_down) > 1 else [])
        for defect, result in entry.get("defects", {}).items():  # each type with every good image
            check_group(result["metrics"], *stacked([defects["good"], defects[defect]]))
    for key, value in results["mean"].items():
        assert value == np.mean([results["categories"][o]["metrics"][key] for o in truth])
    assert "AUPRO@0.01*" in printed and "100-threshold" in printed
    assert sorted(p.name for p in (out / "figures").iterdir()) == sorted(
        f"{o}_{k}.png" for o in truth for k in ("roc", "pr", "pro", "pro0.01", "scores"))
    md = (out / "results.md").read_text()
    assert "AUPRO@0.01 (100 thresholds) (official)" in md and "### bagel: per defect type" in md


def test_fpr_limit_and_no_official(tree):
    root, truth = tree
    base = ("--maps", root / "maps", "--gt", root / "gt", "--no-figures")
    assert run(*base, "--out", root / "a", "--fpr-limit", 0.05) == 0
    results = _results(root / "a")
    assert [c["key"] for c in results["columns"]] == ["image AUROC", "pixel AUROC", "AUPRO@0.05",
                                                      "AUPRO@0.05 (100 thresholds)"]
    maps, masks, labels = stacked(list(truth["bagel"].values()))
    got = results["categories"]["bagel"]["metrics"]
    assert got == {**exact(maps, masks, labels, (0.05,)), **official(maps, masks, (0.05,))}
    assert close(got["AUPRO@0.05"], naive.aupro(maps, masks, 0.05))
    assert run(*base, "--out", root / "b", "--no-official", "--no-per-defect") == 0
    results = _results(root / "b")
    assert [c["key"] for c in results["columns"]] == ["image AUROC", "pixel AUROC", "AUPRO@0.3", "AUPRO@0.01"]
    assert results["categories"]["bagel"]["metrics"] == exact(maps, masks, labels)
    assert "defects" not in results["categories"]["bagel"] and results["settings"]["official"] is False


def test_malformed_trees_name_the_file_and_write_nothing(tree, capsys):
    root, _ = tree
    out = root / "out"
    base = ("--maps", root / "maps", "--gt", root / "gt", "--out", out)
    the_map = root / "maps" / "bagel" / "test" / "crack" / "001.npy"
    the_map.rename(root / "kept.npy")
    rc, err = _errors(capsys, *base)
    mask = root / "gt" / "bagel" / "test" / "crack" / "gt" / "001.png"
    assert rc == 2 and f"{mask}: missing map, expected {the_map.with_suffix('')}" in err
    (root / "kept.npy").rename(the_map)

    extra = root / "maps" / "bagel" / "test" / "crack" / "009.npy"
    np.save(extra, np.zeros((H, W), np.float32))
    rc, err = _errors(capsys, *base)
    assert rc == 2 and f"{extra}: no ground truth for this map, expected {mask.parent / '009.png'}" in err
    extra.rename(extra.with_suffix(".jpg"))
    rc, err = _errors(capsys, *base)
    assert rc == 2 and f"{extra.with_suffix('.jpg')}: unsupported map file type '.jpg'" in err
    extra.with_suffix(".jpg").unlink()

    (root / "maps" / "bagel" / "test" / "hole").mkdir()
    rc, err = _errors(capsys, *base)
    assert rc == 2 and "no ground truth for these maps" in err and str(root / "gt" / "bagel" / "test" / "hole") in err
    (root / "maps" / "bagel" / "test" / "hole").rmdir()

    gt = root / "gt" / "foam" / "test" / "color" / "gt"
    gt.rename(gt.with_name("gt-moved"))
    rc, err = _errors(capsys, *base)
    assert rc == 2 and f"{gt.parent}: expected a gt/ directory of masks" in err
    gt.with_name("gt-moved").rename(gt)

    good = root / "gt" / "foam" / "test" / "good" / "gt" / "000.png"
    Image.fromarray(np.full((H, W), 255, np.uint8)).save(good)
    rc, err = _errors(capsys, *base)
    assert rc == 2 and f"{good}: the mask of a good image holds {H * W} defect pixels" in err
    Image.fromarray(np.zeros((H, W), np.uint8)).save(good)

    (root / "maps" / "tire" / "test").mkdir(parents=True)
    rc, err = _errors(capsys, *base)
    assert rc == 2 and f"no {root / 'gt' / 'tire' / 'test'} directory" in err
    rc, err = _errors(capsys, *base, "--categories", "foam", "rope")
    assert rc == 2 and "rope" in err and "--categories" in err
    (root / "maps" / "tire" / "test").rmdir()

    bad_size = root / "maps" / "foam" / "test" / "good" / "001.png"
    Image.fromarray(np.zeros((H + 1, W), np.uint8)).save(bad_size)
    rc, err = _errors(capsys, *base)
    assert rc == 2 and str(bad_size) in err and "--resize" in err and f"{H + 1}x{W}" in err
    rc, err = _errors(capsys, "--maps", root / "maps", "--out", out)
    assert rc == 2 and "--maps and --gt: give both" in err
    rc, err = _errors(capsys, "--maps", root / "nowhere", "--gt", root / "gt", "--out", out)
    assert rc == 2 and f"--maps: {root / 'nowhere'} is not a directory" in err
    assert not out.exists()


def test_masks_of_several_sizes_leave_the_official_column_nan(tree, capsys):
    root, truth = tree
    defect = root / "gt" / "foam" / "test" / "color" / "gt" / "000.png"
    mask = np.zeros((H + 2, W), np.uint8)
    mask[1:3, 2:4] = 255
    Image.fromarray(mask).save(defect)
    Image.fromarray(np.arange((H + 2) * W, dtype=np.uint8).reshape(H + 2, W)).save(
        root / "maps" / "foam" / "test" / "color" / "000.png")
    out = root / "out"
    assert run("--maps", root / "maps", "--gt", root / "gt", "--out", out, "--no-figures", "--categories",
               "foam") == 0
    entry = _results(out)["categories"]["foam"]
    assert entry["metrics"]["AUPRO@0.3 (100 thresholds)"] is None
    assert "AUPRO@0.3 (100 thresholds): the maps have several sizes (8x9, 10x9)" in " ".join(entry["notes"])
    maps, masks, _ = truth["foam"]["color"]
    good_maps, good_masks, _ = truth["foam"]["good"]
    flat = np.concatenate([np.arange((H + 2) * W), maps[1].ravel(), *(m.ravel() for m in good_maps)])
    flat_masks = np.concatenate([mask.ravel() > 0, masks[1].ravel(), *(m.ravel() for m in good_masks)])
    assert entry["metrics"]["pixel AUROC"] == F.auroc(flat, flat_masks)  # the exact columns pool every pixel


def test_demo(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["evaluate", "--quiet", "--protocol", "mvtec-3d-ad", "--demo"]) == 0
    results = _results(tmp_path / "refmetrics-demo")
    assert set(results["categories"]) == {"bagel", "rope"}
    assert len(list((tmp_path / "refmetrics-demo" / "figures").glob("*.png"))) == 10
    from importlib import resources

    with resources.as_file(resources.files("refmetrics").joinpath("data/demo/mvtec-3d-ad")) as demo:
        for obj, entry in results["categories"].items():
            masks = sorted((demo / "gt" / obj / "test").glob("*/gt/*.png"))
            maps = np.stack([tifffile.imread(demo / "maps" / obj / "test" / m.parent.parent.name / f"{m.stem}.tiff")
                             for m in masks])
            gts = np.stack([np.asarray(Image.open(m)) > 0 for m in masks])
            labels = gts.reshape(len(gts), -1).any(axis=1).astype(np.uint8)
            check_group(entry["metrics"], maps, gts, labels, oracle=False)  # the oracle: on the small trees
            assert set(entry["defects"]) == {d.name for d in (demo / "gt" / obj / "test").iterdir()} - {"good"}
    assert quiet(cli.main, ["evaluate", "--protocol", "mvtec-3d-ad", "--demo", "--gt", "x"]) == 2


def test_sampled_aupro_from_the_state_is_the_model():
    """``mvtec_3d_ad.sampled_aupro`` (from the finished pixel state) against ``published.mvtec3d_aupro`` on
    the arrays: within 1e-12 (the model adds the regions' shares one by one in float64, the state sums them
    exactly), for float32 and float64 maps with ties, at both limits; NaN where the model is undefined."""
    import math

    from refmetrics.evaluate.protocols import mvtec_3d_ad
    from refmetrics.state import PixelState

    rng = np.random.default_rng(20261128)
    for trial in range(8):
        n, h, w = int(rng.integers(1, 5)), int(rng.integers(8, 40)), int(rng.integers(8, 40))
        maps = rng.standard_normal((n, h, w))
        if trial % 2:
            maps = np.round(maps * 4) / 4  # ties, on the thresholds too
        maps = maps.astype(np.float32 if trial % 4 < 2 else np.float64)
        masks = np.zeros((n, h, w), bool)
        for b in range(n):
            for _ in range(int(rng.integers(0 if trial != 7 else 1, 5))):
                y, x = rng.integers(0, h - 2), rng.integers(0, w - 2)
                masks[b, y:y + rng.integers(1, 9), x:x + rng.integers(1, 9)] = True
                maps[b, y:y + 3, x:x + 3] += 1
        state = PixelState(maps.size, maps.dtype)
        for b in rng.permutation(n):
            state.add(maps[b], masks[b])
        state.finish()
        for limit in LIMITS:
            got = quiet(mvtec_3d_ad.sampled_aupro, state, {(h, w)}, limit)
            want = published.mvtec3d_aupro(maps.astype(np.float64), masks, fpr_limit=limit)
            assert (math.isnan(got) and math.isnan(want)) or abs(got - want) <= 1e-12, (trial, limit, got, want)
            assert not math.isnan(want) or not masks.any()
