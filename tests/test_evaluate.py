"""``refmetrics evaluate`` end to end: an MVTec-layout tree on disk -> tables and figures.

Every number the command writes is checked against the functional API on the
same arrays (bit for bit) and against the exact oracle (1e-12).
"""

import csv
import json

import numpy as np
import pytest
import tifffile
from PIL import Image

from refmetrics import cli
from refmetrics import functional as F

from . import naive
from .checks import close, quiet

H, W = 8, 9


def _map(rng, mask, strength=1.5):
    return (rng.standard_normal((H, W)) + strength * mask + 5).astype(np.float32)


def build_tree(root, rng):
    """Two categories; maps as .npy, .tiff and 8-bit .png, masks as 0/255 PNGs.

    Returns ``{category: (maps (B,H,W) as read, masks (B,H,W) bool, labels)}``.
    """
    truth = {}
    spec = {"bottle": [("good", ".npy", 2), ("crack", ".tiff", 2), ("dot", ".npy", 1)],
            "grid": [("good", ".png", 2), ("bent", ".png", 2)]}
    for category, defects in spec.items():
        maps, masks, labels = [], [], []
        for defect, suffix, count in defects:
            d = root / "maps" / category / "test" / defect
            d.mkdir(parents=True)
            for i in range(count):
                mask = np.zeros((H, W), bool)
                if defect != "good":
                    y, x = rng.integers(0, H - 2), rng.integers(0, W - 3)
                    mask[y:y + 2, x:x + rng.integers(1, 4)] = True
                    mask[-1, -1] = defect == "dot"  # a second, one-pixel region
                    g = root / "gt" / category / "ground_truth" / defect
                    g.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(mask.astype(np.uint8) * 255).save(g / f"{i:03d}_mask.png")
                values = _map(rng, mask)
                if suffix == ".npy":
                    np.save(d / f"{i:03d}.npy", values)
                elif suffix == ".tiff":
                    tifffile.imwrite(d / f"{i:03d}.tiff", values)
                else:
                    values = np.clip(values * 20, 0, 255).astype(np.uint8)  # integer scores
                    Image.fromarray(values).save(d / f"{i:03d}.png")
                maps.append(values)
                masks.append(mask)
                labels.append(int(defect != "good"))
        truth[category] = (np.stack(maps), np.stack(masks), np.array(labels, np.uint8))
    return truth


@pytest.fixture
def tree(tmp_path):
    return tmp_path, build_tree(tmp_path, np.random.default_rng(20261125))


def run(*args):
    return cli.main(["evaluate", "--quiet", *map(str, args)])


def expected(maps, masks, labels, scores=None, fpr_limit=0.3):
    scores = maps.reshape(len(maps), -1).max(axis=1).astype(np.float64) if scores is None else scores
    return {
        "image AUROC": F.auroc(scores, labels), "image AP": F.average_precision(scores, labels),
        "image F1-max": F.f1_max(scores, labels), "pixel AUROC": F.auroc(maps, masks),
        "pixel AP": F.average_precision(maps, masks), "pixel F1-max": F.f1_max(maps, masks),
        "AUPRO": F.aupro(maps, masks, fpr_limit=fpr_limit),
    }


def test_mvtec_tree_end_to_end(tree, capsys):
    root, truth = tree
    out = root / "out"
    assert run("--maps", root / "maps", "--gt", root / "gt", "--out", out) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert list(results["categories"]) == ["bottle", "grid"]
    for category, (maps, masks, labels) in truth.items():
        got = results["categories"][category]["metrics"]
        want = expected(maps, masks, labels)
        assert got == want, category  # bit for bit: the same multiset gives the same floats
        scores = maps.reshape(len(maps), -1).max(axis=1)
        assert close(got["image AUROC"], naive.auroc(scores, labels))
        assert close(got["image AP"], naive.average_precision(scores, labels))
        assert close(got["pixel AUROC"], naive.auroc(maps, masks))
        assert close(got["pixel AP"], naive.average_precision(maps, masks))
        assert close(got["pixel F1-max"], naive.f1_adaptive(maps, masks)[1])
        assert close(got["AUPRO"], naive.aupro(maps, masks, 0.3))
        counts = results["categories"][category]["counts"]
        assert counts["images"] == len(maps) and counts["defect pixels"] == int(masks.sum())
        assert counts["regions"] == F.label_regions(masks, return_num=True)[1]
    for metric, value in results["mean"].items():
        assert value == np.mean([results["categories"][c]["metrics"][metric] for c in truth])
    assert "bottle" in printed and "mean" in printed
    md = (out / "results.md").read_text()
    tex = (out / "results.tex").read_text()
    assert "| bottle |" in md and "| **mean** |" in md and "AUPRO@0.3" in md
    assert r"\begin{tabular}" in tex and "Mean &" in tex and f"{results['mean']['AUPRO']:.4f}" in tex
    figures = sorted(p.name for p in (out / "figures").iterdir())
    assert figures == sorted(f"{c}_{k}.png" for c in truth for k in ("roc", "pr", "pro", "scores"))
    for name in figures:
        with Image.open(out / "figures" / name) as im:
            assert im.format == "PNG" and im.size[0] > 100
            im.verify()


def test_manifest_with_given_scores_and_fpr_limit(tree):
    root, truth = tree
    files = sorted((root / "maps" / "bottle" / "test").rglob("*.*"))
    rows, scores = [], []
    for i, path in enumerate(files):
        defect = path.parent.name
        mask = "" if defect == "good" else str(root / "gt" / "bottle" / "ground_truth" / defect /
                                               f"{path.stem}_mask.png")
        rows.append({"map": str(path), "mask": mask, "score": f"{0.25 * i}"})
        scores.append(0.25 * i)
    manifest = root / "manifest.csv"
    with open(manifest, "w", newline="") as fh:
        writer = csv.DictWriter(fh, ["map", "mask", "score"])
        writer.writeheader()
        writer.writerows(rows)
    out = root / "out-manifest"
    assert run("--manifest", manifest, "--out", out, "--fpr-limit", 0.1, "--no-figures") == 0
    results = json.loads((out / "results.json").read_text())
    got = results["categories"]["all"]["metrics"]
    m = np.stack([np.load(f) if f.suffix == ".npy" else tifffile.imread(f) for f in files])
    k = np.stack([np.asarray(Image.open(r["mask"])) > 0 if r["mask"] else np.zeros((H, W), bool) for r in rows])
    y = np.array([int(bool(r["mask"])) for r in rows], np.uint8)
    assert got == expected(m, k, y, np.array(scores), fpr_limit=0.1)
    assert got["image AUROC"] != expected(m, k, y, fpr_limit=0.1)["image AUROC"]  # the given scores were used
    assert not (out / "figures").exists() and results["settings"]["fpr_limit"] == 0.1
    assert results["files"] == ["results.json", "results.md", "results.tex"]


def test_manifest_columns_and_errors(tree, capsys):
    root, truth = tree
    maps = sorted((root / "maps" / "grid" / "test").rglob("*.png"))
    rel = [p.relative_to(root) for p in maps]
    manifest = root / "m.csv"
    lines = ["\ufeffMap, Mask, label, category"]  # Excel's BOM, spaces and capitals in the header
    for p in rel:
        mask = "" if p.parent.name == "good" else f"gt/grid/ground_truth/{p.parent.name}/{p.stem}_mask.png"
        lines.append(f"{p}, {mask}, {int(p.parent.name != 'good')}, grid")
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = root / "out-m"
    assert run("--manifest", manifest, "--out", out, "--no-figures") == 0
    got = json.loads((out / "results.json").read_text())["categories"]["grid"]["metrics"]
    assert got == expected(*truth["grid"])
    bad = {"map,mask,map\nx.npy,,y.npy\n": "received map, mask, map",
           "map,mask\n ,m.png\n": "line 2: the map path is empty",
           f"map,mask,label\n{rel[0]},,2\n": "label must be 0 (good) or 1 (defective)",
           f"map,mask\n{rel[0]},\n{rel[0]},\n": "is listed twice (also on line 2)",
           "map,mask\nnope.npy,\n": "line 2: missing map",
           f"map,mask,score\n{rel[0]},,high\n": "score 'high' is not a number"}
    for text, message in bad.items():
        manifest.write_text(text, encoding="utf-8")
        rc, err = _errors(capsys, "--manifest", manifest, "--out", root / "never")
        assert rc == 2 and message in err and str(manifest) in err, (text, err)
    manifest.write_bytes("map,mask\ncaf\xe9.npy,\n".encode("latin-1"))
    rc, err = _errors(capsys, "--manifest", manifest, "--out", root / "never")
    assert rc == 2 and "expected a UTF-8 CSV file" in err
    assert not (root / "never").exists()


def _errors(capsys, *args):
    rc = run(*args)
    return rc, capsys.readouterr().err


def test_bad_inputs_name_the_file_and_write_nothing(tree, capsys):
    root, _ = tree
    out = root / "out"
    base = ("--maps", root / "maps", "--gt", root / "gt", "--out", out)
    missing = root / "gt" / "bottle" / "ground_truth" / "crack" / "001_mask.png"
    missing.rename(missing.with_suffix(".bak"))
    rc, err = _errors(capsys, *base)
    assert rc == 2 and f"missing mask, expected {missing}" in err and "001.tiff" in err
    missing.with_suffix(".bak").rename(missing)
    assert not out.exists()

    bad_size = root / "maps" / "bottle" / "test" / "dot" / "000.npy"
    np.save(bad_size, np.ones((H + 2, W), np.float32))
    rc, err = _errors(capsys, *base)
    assert rc == 2 and str(bad_size) in err and "--resize" in err and f"{H + 2}x{W}" in err
    assert not out.exists()
    assert run(*base, "--resize", "nearest", "--no-figures") == 0
    assert json.loads((out / "results.json").read_text())["settings"]["resize"] == "nearest"
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    nan_map = root / "maps" / "grid" / "test" / "good" / "000.png"
    nan_map.unlink()
    np.save(nan_map.with_suffix(".npy"), np.full((H, W), np.nan, np.float32))
    rc, err = _errors(capsys, *base, "--resize", "nearest")
    assert rc == 2 and f"{nan_map.with_suffix('.npy')}: the anomaly map holds {H * W} NaN values" in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before  # nothing half-written

    np.save(nan_map.with_suffix(".npy"), np.zeros((H, W), np.float32))
    corrupt = root / "maps" / "bottle" / "test" / "crack" / "000.tiff"
    corrupt.write_bytes(b"not a tiff")
    rc, err = _errors(capsys, *base, "--resize", "nearest")
    assert rc == 2 and f"{corrupt}: could not read the file" in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before

    rc, err = _errors(capsys, "--maps", root / "maps")
    assert rc == 2 and "--maps and --gt: give both" in err
    rc, err = _errors(capsys, *base, "--categories", "nope")
    assert rc == 2 and "nope" in err


def test_resize_bilinear_matches_resizing_by_hand(tree):
    from skimage.transform import resize

    root, truth = tree
    maps, masks, labels = truth["grid"]
    big = root / "maps" / "grid" / "test" / "bent" / "001.png"
    small = np.asarray(Image.open(big))[::2, ::3]  # 4x3: resized back to 8x9 bilinearly
    Image.fromarray(small).save(big)
    out = root / "out-resize"
    assert run("--maps", root / "maps", "--gt", root / "gt", "--categories", "grid", "--resize", "bilinear",
               "--out", out, "--no-figures") == 0
    fixed = maps.astype(np.float64)
    fixed[-1] = resize(small.astype(np.float64), (H, W), order=1, preserve_range=True, anti_aliasing=False)
    scores = fixed.reshape(len(fixed), -1).max(axis=1)
    scores[-1] = small.max()  # the image score is the maximum of the map as stored, not as resized
    got = json.loads((out / "results.json").read_text())["categories"]["grid"]["metrics"]
    assert got == expected(fixed, masks, labels, scores)


def test_resize_brings_good_images_to_the_masks_size(tree):
    root, truth = tree
    maps, masks, labels = truth["bottle"]
    test = root / "maps" / "bottle" / "test"
    files = [test / "good" / "000.npy", test / "good" / "001.npy", test / "crack" / "000.tiff",
             test / "crack" / "001.tiff", test / "dot" / "000.npy"]  # the order of truth["bottle"]
    for f in files:  # every map stored at half the height: 4x9
        if f.suffix == ".npy":
            np.save(f, np.load(f)[::2])
        else:
            tifffile.imwrite(f, tifffile.imread(f)[::2])
    out = root / "out-nearest"
    assert run("--maps", root / "maps", "--gt", root / "gt", "--categories", "bottle", "--resize", "nearest",
               "--out", out, "--no-figures") == 0
    stored = np.stack([np.load(f) if f.suffix == ".npy" else tifffile.imread(f) for f in files])
    resized = np.repeat(stored, 2, axis=1).astype(np.float64)  # nearest from 4 rows to 8: each row twice
    got = json.loads((out / "results.json").read_text())["categories"]["bottle"]
    assert got["counts"]["pixels"] == len(files) * H * W  # good images resized too: every pixel weighs the same
    assert got["metrics"] == expected(resized, masks, labels, stored.reshape(len(files), -1).max(axis=1))


def test_formats_dtypes_and_undefined_categories(tmp_path):
    rng = np.random.default_rng(7)
    root = tmp_path
    values = {}
    for defect, suffix, dtype in (("good", ".tif", ">f8"), ("hole", ".npy", "<i8"), ("rim", ".npy", ">f8")):
        d = root / "maps" / "odd" / "test" / defect
        d.mkdir(parents=True)
        v = (rng.standard_normal((H, W)) * 1e-12 + 1).astype(dtype) if dtype.endswith("f8") else \
            rng.integers(2 ** 52, 2 ** 53, (H, W)).astype(dtype)
        v = v.astype(np.float64).astype(dtype) if defect == "hole" else v
        if suffix == ".tif":
            tifffile.imwrite(d / "000.tif", v.astype("<f8"))
        else:
            np.save(d / "000.npy", v)
        values[defect] = v.astype(np.float64)
        if defect != "good":
            g = root / "gt" / "odd" / "ground_truth" / defect
            g.mkdir(parents=True)
            mask = np.zeros((H, W), np.uint8)
            if defect == "hole":
                mask[2:4, 2:5] = 255
            Image.fromarray(np.dstack([mask] * 3)).save(g / "000_mask.png")  # an RGB mask; "rim" all zero
    (root / "maps" / "only-good" / "test" / "good").mkdir(parents=True)
    np.save(root / "maps" / "only-good" / "test" / "good" / "000.npy", np.ones((H, W), np.float32))
    out = root / "out"
    assert run("--maps", root / "maps", "--gt", root / "gt", "--out", out, "--no-figures") == 0
    results = json.loads((out / "results.json").read_text())
    maps = np.stack([values["good"], values["hole"], values["rim"]])
    masks = np.zeros(maps.shape, bool)
    masks[1, 2:4, 2:5] = True
    got = results["categories"]["odd"]["metrics"]
    assert got == expected(maps, masks, np.array([0, 1, 1], np.uint8))  # float64 kept exact (1e-12 apart)
    assert results["categories"]["odd"]["counts"]["defective images"] == 2  # "rim": defective by its folder
    good_only = results["categories"]["only-good"]
    assert all(v is None for v in good_only["metrics"].values())
    notes = good_only["notes"]
    # each note names the metric and so its level; nothing is said twice (no figures: no curve notes either)
    for level, metric, why in (("image", "AUROC", "no positive"), ("image", "F1-max", "no positive"),
                               ("pixel", "AUROC", "no positive"), ("pixel", "F1-max", "no positive"),
                               ("AUPRO", "AUPRO", "no defect region")):
        name = f"{level} {metric}" if level != metric else metric
        assert sum(n.startswith(f"{name}: ") and why in n and n.endswith("(reported as nan)") for n in notes) == 1, \
            (name, notes)
    assert len(notes) == len(set(notes)) == 7, notes  # image/pixel AUROC, AP, F1-max, and AUPRO
    assert all(v is None for v in results["mean"].values())  # undefined anywhere -> undefined mean


def test_missing_map_for_a_mask_and_output_clashes(tree, capsys):
    root, _ = tree
    gone = root / "maps" / "bottle" / "test" / "crack" / "001.tiff"
    gone.unlink()
    rc, err = _errors(capsys, "--maps", root / "maps", "--gt", root / "gt", "--out", root / "o")
    assert rc == 2 and "001_mask.png: missing map" in err and "crack/001" in err
    tifffile.imwrite(gone, np.zeros((H, W), np.float32))
    (root / "maps" / "bottle" / "test" / "crack" / "002.jpg").write_bytes(b"")
    rc, err = _errors(capsys, "--maps", root / "maps", "--gt", root / "gt", "--out", root / "o")
    assert rc == 2 and "002.jpg: unsupported map file type '.jpg'" in err
    (root / "maps" / "bottle" / "test" / "crack" / "002.jpg").unlink()
    (root / "file").write_text("x")
    rc, err = _errors(capsys, "--maps", root / "maps", "--gt", root / "gt", "--out", root / "file")
    assert rc == 2 and "exists and is not a directory" in err
    rc, err = _errors(capsys, "--maps", root / "maps", "--gt", root / "gt", "--out", root / "file" / "sub")
    assert rc == 2 and "cannot be created" in err
    out = root / "o"
    (out / "figures" / "grid_roc.png").mkdir(parents=True)
    rc, err = _errors(capsys, "--maps", root / "maps", "--gt", root / "gt", "--out", out)
    assert rc == 2 and "cannot write over the directory" in err and "grid_roc.png" in err
    assert sorted(p.name for p in out.rglob("*")) == ["figures", "grid_roc.png"]  # nothing moved in, nothing left
    (out / "figures" / "grid_roc.png").rmdir()
    assert run("--maps", root / "maps", "--gt", root / "gt", "--out", out) == 0
    assert (out / "figures" / "grid_roc.png").is_file()
    assert run("--maps", root / "maps", "--gt", root / "gt", "--out", out, "--categories", "bottle") == 0
    figures = sorted(p.name for p in (out / "figures").iterdir())
    assert figures == [f"bottle_{k}.png" for k in ("pr", "pro", "roc", "scores")]  # the grid ones removed


def test_a_failure_while_writing_leaves_out_as_it_was(tree, monkeypatch, capsys):
    from refmetrics import evaluate as E

    root, _ = tree
    out = root / "out"
    assert run("--maps", root / "maps", "--gt", root / "gt", "--out", out, "--no-figures") == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(E.writers, "write_figures", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        run("--maps", root / "maps", "--gt", root / "gt", "--out", out, "--fpr-limit", 0.2)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert not list(out.glob(".refmetrics-*")) and not list(root.glob(".refmetrics-*"))  # the staging is gone


def test_demo_runs_without_arguments(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["evaluate", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "disc" in printed and "stripe" in printed and "mean" in printed
    results = json.loads((tmp_path / "refmetrics-demo" / "results.json").read_text())
    assert set(results["categories"]) == {"disc", "stripe"}
    assert all(v is not None and 0.5 < v <= 1 for v in results["mean"].values())
    assert len(list((tmp_path / "refmetrics-demo" / "figures").glob("*.png"))) == 8
    assert quiet(cli.main, ["evaluate", "--demo", "--maps", "x"]) == 2
    # no dataset: the demo, whatever the other options
    capsys.readouterr()
    assert cli.main(["evaluate", "--quiet", "--no-figures", "--out", "res", "--categories", "disc"]) == 0
    results = json.loads((tmp_path / "res" / "results.json").read_text())
    assert set(results["categories"]) == {"disc"} and results["files"] == ["results.json", "results.md",
                                                                           "results.tex"]
    assert results["settings"]["dataset"] == "refmetrics demo of mvtec-ad (bundled)" and "disc" in capsys.readouterr().out
    assert cli.main(["evaluate", "--quiet", "--gt", "x"]) == 2  # half a dataset is a mistake
    assert "--maps and --gt: give both" in capsys.readouterr().err


def _results(out):
    return json.loads((out / "results.json").read_text())


def test_every_map_has_its_category_s_size(tree, capsys):
    root, truth = tree
    base = ("--maps", root / "maps", "--gt", root / "gt")
    # a good image's map of another size than its category's masks: an error naming the file and both sizes
    good = root / "maps" / "bottle" / "test" / "good" / "001.npy"
    stored = np.load(good)
    np.save(good, np.ones((2 * H, 2 * W), np.float32))
    rc, err = _errors(capsys, *base, "--out", root / "o")
    assert rc == 2 and f"{good}: map of size {2 * H}x{2 * W}" in err and f"are {H}x{W}" in err
    assert "--resize" in err and not (root / "o").exists()
    # with --resize it is brought to the masks' size
    assert run(*base, "--resize", "nearest", "--categories", "bottle", "--out", root / "o", "--no-figures") == 0
    assert _results(root / "o")["categories"]["bottle"]["counts"]["pixels"] == 5 * H * W
    np.save(good, stored)
    # a category without any mask: its maps must agree with each other, with or without --resize
    d = root / "maps" / "plain" / "test" / "good"
    d.mkdir(parents=True)
    np.save(d / "a.npy", np.zeros((H, W), np.float32))
    np.save(d / "b.npy", np.zeros((H, W + 1), np.float32))
    for extra in ((), ("--resize", "bilinear")):
        rc, err = _errors(capsys, *base, "--out", root / "o", *extra)
        assert rc == 2 and f"{d / 'b.npy'}: map of size {H}x{W + 1}" in err and f"{d / 'a.npy'}" in err, err
        assert "has no mask" in err
    np.save(d / "b.npy", np.ones((H, W), np.float32))
    assert run(*base, "--out", root / "o", "--no-figures") == 0
    # the same rule for a manifest, per category
    manifest = root / "m.csv"
    bent = sorted((root / "maps" / "grid" / "test" / "bent").iterdir())[0]
    manifest.write_text(f"map,mask,category\n{bent},{root}/gt/grid/ground_truth/bent/{bent.stem}_mask.png,grid\n"
                        f"{good},,grid\n{d / 'a.npy'},,other\n{root / 'big.npy'},,other\n")
    np.save(root / "big.npy", np.zeros((H + 3, W), np.float32))
    rc, err = _errors(capsys, "--manifest", manifest, "--out", root / "o2")
    assert rc == 2 and f"{root / 'big.npy'}: map of size {H + 3}x{W}" in err and "'other'" in err
    np.save(root / "big.npy", np.zeros((H, W), np.float32))
    assert run("--manifest", manifest, "--out", root / "o2", "--no-figures") == 0


def test_good_masks_under_ground_truth_good_are_used_and_checked(tree, capsys):
    root, truth = tree
    good_truth = root / "gt" / "bottle" / "ground_truth" / "good"
    good_truth.mkdir()
    for name in ("000", "001"):
        Image.fromarray(np.zeros((H, W), np.uint8)).save(good_truth / f"{name}_mask.png")
    out = root / "out"
    assert run("--maps", root / "maps", "--gt", root / "gt", "--out", out, "--no-figures") == 0
    assert _results(out)["categories"]["bottle"]["metrics"] == expected(*truth["bottle"])
    # a good mask is the size a good map must have
    Image.fromarray(np.zeros((H + 1, W), np.uint8)).save(good_truth / "001_mask.png")
    rc, err = _errors(capsys, "--maps", root / "maps", "--gt", root / "gt", "--out", out)
    assert rc == 2 and "001.npy: map of size" in err and "001_mask.png" in err
    # a defect pixel in a good mask is an error naming the mask
    mask = np.zeros((H, W), np.uint8)
    mask[1, 2:4] = 255
    Image.fromarray(mask).save(good_truth / "001_mask.png")
    rc, err = _errors(capsys, "--maps", root / "maps", "--gt", root / "gt", "--out", out)
    assert rc == 2 and f"{good_truth / '001_mask.png'}: the mask of a good image holds 2 defect pixels" in err
    # a good mask without its map is a missing map, as any mask
    (good_truth / "001_mask.png").unlink()
    Image.fromarray(np.zeros((H, W), np.uint8)).save(good_truth / "007_mask.png")
    rc, err = _errors(capsys, "--maps", root / "maps", "--gt", root / "gt", "--out", out)
    assert rc == 2 and "007_mask.png: missing map" in err


def test_manifest_notes_markdown_escapes_and_no_repeated_notes(tree, capsys):
    root, truth = tree
    maps, masks, labels = truth["grid"]
    files = sorted((root / "maps" / "grid" / "test").rglob("*.png"))
    manifest = root / "m.csv"
    rows = ["map,mask,label,category,comment,"]
    for p in files:
        mask = f"gt/grid/ground_truth/{p.parent.name}/{p.stem}_mask.png" if p.parent.name != "good" else ""
        rows.append(f"{p.relative_to(root)},{mask},0,a|b *c*,seen twice,x")  # every label 0: two contradict masks
    manifest.write_text("\n".join(rows) + "\n")
    out = root / "out"
    assert run("--manifest", manifest, "--out", out, "--no-figures") == 0
    printed = capsys.readouterr().out
    results = _results(out)
    assert any("comment, (unnamed) ignored" in n for n in results["notes"]), results["notes"]
    notes = results["categories"]["a|b *c*"]["notes"]
    assert any(n.startswith("2 images labelled good (label 0) in the manifest have defect pixels in their masks "
                            f"({files[0]}") for n in notes), notes
    got = results["categories"]["a|b *c*"]["metrics"]
    assert got["pixel AUROC"] == F.auroc(maps, masks)  # the defect pixels still count as defect pixels
    assert "| a\\|b \\*c\\* |" in (out / "results.md").read_text()
    assert "note: " in printed and "comment, (unnamed) ignored" in " ".join(printed.split())
    # the same notes with and without figures (the curves' warnings are not notes)
    assert run("--manifest", manifest, "--out", root / "out-figures") == 0
    assert _results(root / "out-figures")["categories"]["a|b *c*"]["notes"] == notes


def test_the_table_fits_the_terminal(tree, capsys, monkeypatch):
    from refmetrics import evaluate as E

    root, _ = tree
    long_name = root / "maps" / ("a-category-name-that-goes-on-and-on-for-quite-a-while" * 2)
    (root / "maps" / "bottle").rename(long_name)
    (root / "gt" / "bottle").rename(root / "gt" / long_name.name)
    for columns, limit in (("100", 100), ("70", 70), ("160", 160)):
        monkeypatch.setenv("COLUMNS", columns)
        assert run("--maps", root / "maps", "--gt", root / "gt", "--out", root / "out", "--no-figures") == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines and max(len(line) for line in lines) <= limit, (columns, lines)
        assert long_name.name in "".join(lines) and any(line.startswith("grid ") for line in lines)
    columns = E.get_protocol("mvtec-ad").columns(E.Options(fpr_limit=0.05))
    table = E.text_table([E.Result("disc", dict.fromkeys(E.METRICS, 1.0), {})], columns, width=100)
    assert table.splitlines()[1].split() == ["category", "AUROC", "AP", "F1-max", "AUROC", "AP", "F1-max",
                                             "AUPRO@0.05"]
    assert "image" in table.splitlines()[0] and "pixel" in table.splitlines()[0]


def test_figures_show_perfect_curves_integer_counts_and_uncovered_curves():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from refmetrics import plotting

    figures = [
        plotting.curves_figure([("image", [0, 0, 1], [0, 1, 1])], "FPR", "TPR", "ROC", diagonal=True),
        plotting.curves_figure([("image", [0, 1, 1], [1, 1, 0.5])], "Recall", "Precision", "PR", step=True),
        plotting.roc_figure(np.array([0.0, 0.0, 1.0]), np.array([0.0, 1.0, 1.0]), 1.0),
        plotting.pr_figure(np.array([0.5, 1.0, 1.0]), np.array([1.0, 1.0, 0.0]), 1.0, 0.5),
        plotting.pro_figure(np.array([0.0, 0.0, 0.5]), np.array([0.0, 1.0, 1.0]), 1.0, 0.3),
        plotting.score_histogram_figure(np.array([1.0, 1.1, 1.2]), np.array([2.0, 2.5]), "scores"),
    ]
    for fig in figures:
        FigureCanvasAgg(fig).draw()
        ax = fig.axes[0]
        renderer = fig.canvas.get_renderer()
        legend = fig.legends[0].get_window_extent(renderer) if fig.legends else ax.get_legend().get_window_extent()
        assert not legend.overlaps(ax.get_window_extent(renderer))  # the legend covers nothing drawn in the axes
        if fig is figures[-1]:
            ticks = ax.get_yticks()
            assert np.all(ticks == np.round(ticks)) and len(ticks) >= 2  # image counts: integer ticks
            continue
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        high = 0.3 if fig is figures[4] else 1.0
        assert x0 < 0 < high < x1 and y0 < 0 < 1 < y1  # a curve along the frame stays visible


@pytest.mark.parametrize("reduce, options, k, kernel", [
    ("top_k_mean", ["--top-k", "0.1"], 0.1, 16),
    ("pooled_max", ["--pool-kernel", "3"], 0.01, 3),
])
def test_image_score_reductions(tree, capsys, reduce, options, k, kernel):
    root, truth = tree
    out = root / "out"
    assert run("--maps", root / "maps", "--gt", root / "gt", "--out", out, "--no-figures",
               "--image-score", reduce, *options) == 0
    assert f"(image scores: {reduce}" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["image_score"].startswith(reduce)
    for category, (maps, masks, labels) in truth.items():
        # each map reduced on its own, as stored: the function's value over the stack is the same
        scores = F.image_scores(maps, reduce=reduce, k=k, kernel=kernel)
        if reduce == "top_k_mean":  # the oracle: the mean of the floor(0.1 * 72) = 7 largest pixels
            top = np.sort(maps.reshape(len(maps), -1).astype(np.float64), axis=1)[:, -7:]
            assert np.allclose(scores, top.mean(axis=1), rtol=0, atol=1e-12)
        got = results["categories"][category]["metrics"]
        assert got == expected(maps, masks, labels, scores=scores), category
        assert not np.array_equal(scores, maps.reshape(len(maps), -1).max(axis=1))  # not the maximum


def test_image_score_options_are_checked(tree, capsys):
    root, _ = tree
    assert run("--maps", root / "maps", "--gt", root / "gt", "--out", root / "o", "--image-score", "pooled_max",
               "--pool-kernel", "10") == 2
    err = capsys.readouterr().err
    assert "000.tiff: map of size 8x9, but the image score, pooled_max (maximum of the 10x10 average-pooled " \
           "map), needs maps of at least 10x10 (--pool-kernel sets the window" in err
    assert not (root / "o" / "results.json").exists()
    with pytest.raises(SystemExit):
        run("--top-k", "1.5")
    assert "argument --top-k: expected a number in (0, 1], received '1.5'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run("--image-score", "mean")


@pytest.mark.parametrize("protocol", ["real-iad", "ader"])
def test_wide_tables_continue_below_within_the_terminal(protocol, tmp_path, capsys, monkeypatch):
    """A protocol with more columns than fit: the table continues in blocks below, each line within the
    width, every column shown once with every category's value."""
    from refmetrics import evaluate as E

    monkeypatch.setenv("COLUMNS", "70")
    assert cli.main(["evaluate", "--protocol", protocol, "--demo", "--quiet", "--no-figures",
                     "--out", str(tmp_path / "out")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 70
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    columns = E.get_protocol(protocol).columns(E.Options())
    headers = [line for line in lines if line.startswith("category ")]
    assert len(headers) >= 2  # it did not fit in one block
    shown = [h for line in headers for h in line.split()[1:]]
    assert shown == [c.short + ("*" if c.official else "") for c in columns]
    for category, entry in results["categories"].items():
        cells = [v for line in lines if line.startswith(category + " ") for v in line.split()[1:]]
        assert cells == [f"{entry['metrics'][c.key]:.4f}" for c in columns]


def test_float16_with_resize_stays_exact(tree):
    """--float16 rounds each map first; a map then resized holds float64 values, which the state keeps
    exactly (review: they were cast to float32 when --float16 was given)."""
    from skimage.transform import resize

    root, truth = tree
    maps, masks, labels = truth["grid"]
    big = root / "maps" / "grid" / "test" / "bent" / "001.png"
    small = np.asarray(Image.open(big))[::2, ::3]
    Image.fromarray(small).save(big)
    out = root / "out-f16"
    assert run("--maps", root / "maps", "--gt", root / "gt", "--categories", "grid", "--resize", "bilinear",
               "--float16", "--out", out, "--no-figures") == 0
    fixed = maps.astype(np.float16).astype(np.float64)
    fixed[-1] = resize(small.astype(np.float16).astype(np.float64), (H, W), order=1, preserve_range=True,
                       anti_aliasing=False)
    scores = fixed.reshape(len(fixed), -1).max(axis=1)
    scores[-1] = float(small.astype(np.float16).max())
    got = json.loads((out / "results.json").read_text())["categories"]["grid"]["metrics"]
    assert got == expected(fixed, masks, labels, scores)
    assert fixed[-1].astype(np.float32).astype(np.float64).tolist() != fixed[-1].tolist()  # float32 would round
    # ranks survive that rounding here, so say it directly: a resized map needs float64 keys, float16 or not
    from pathlib import Path

    from refmetrics.evaluate.samples import Sample
    from refmetrics.evaluate.state import is_wide

    resized = Sample("grid", Path("001.png"), None, True, dtype=np.dtype(np.uint8), shape=(4, 3), target=(H, W))
    kept = Sample("grid", Path("000.png"), None, True, dtype=np.dtype(np.float64), shape=(H, W), target=(H, W))
    assert is_wide([resized], float16=True) and is_wide([kept]) and not is_wide([kept], float16=True)


def test_a_manifest_with_defect_types_and_no_labels_breaks_down_like_the_tree(tmp_path):
    """A manifest with a defect column and no label column: rows without a mask are good images, and the
    per-defect breakdown equals the tree's (review: "good" became a defect type, every image metric NaN)."""
    from importlib import resources

    with resources.as_file(resources.files("refmetrics").joinpath("data/demo/mvtec-ad")) as demo:
        rows = ["map,mask,category,defect"]
        for path in sorted((demo / "maps").rglob("*.*")):
            category, defect = path.parts[-4], path.parts[-2]
            mask = demo / "gt" / category / "ground_truth" / defect / f"{path.stem}_mask.png"
            rows.append(f"{path},{mask if defect != 'good' else ''},{category},{defect}")
        (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
        assert run("--manifest", tmp_path / "m.csv", "--out", tmp_path / "a", "--no-figures") == 0
        assert run("--maps", demo / "maps", "--gt", demo / "gt", "--out", tmp_path / "b", "--no-figures") == 0
    a = json.loads((tmp_path / "a" / "results.json").read_text())["categories"]
    b = json.loads((tmp_path / "b" / "results.json").read_text())["categories"]
    for category in b:
        assert list(a[category]["defects"]) == ["blob", "scratch"]
        assert a[category]["defects"] == b[category]["defects"]
        assert a[category]["metrics"] == b[category]["metrics"]


def test_options_a_run_cannot_use_are_errors(tmp_path, capsys):
    """--top-k and --pool-kernel refine the rule in force (--image-score's or the protocol's) and are errors
    where it does not use them; --sample-key is Real-IAD's alone (review: they were silently ignored)."""
    out = tmp_path / "out"
    for args, message in ((["--top-k", "0.1"], "--top-k: applies to the top_k_mean image score; this run's is max"),
                          (["--image-score", "top_k_mean", "--pool-kernel", "4"],
                           "--pool-kernel: applies to the pooled_max image score; this run's is top_k_mean"),
                          (["--sample-key", "_C[1-5]"], "--sample-key: --protocol mvtec-ad has no use for it")):
        assert run("--demo", "--out", out, *args) == 2
        assert message in capsys.readouterr().err
        assert not out.exists()
    # ADer's own rule is pooled_max: --pool-kernel refines it
    assert run("--protocol", "ader", "--demo", "--out", out, "--no-figures", "--no-official", "--no-per-defect",
               "--pool-kernel", "4") == 0
    settings = json.loads((out / "results.json").read_text())["settings"]
    assert settings["image_score"].startswith("pooled_max (maximum of the 4x4 average-pooled map)")


def test_results_json_names_the_column_an_official_one_is_beside(tmp_path):
    """Each official column names the exact column it approximates ("beside"); the image-score rule is
    recorded as data too; results.tex has the per-defect tables results.md has."""
    out = tmp_path / "out"
    assert run("--protocol", "visa", "--demo", "--out", out, "--no-figures", "--image-score", "top_k_mean",
               "--top-k", "0.05") == 0
    results = json.loads((out / "results.json").read_text())
    beside = {c["key"]: c["beside"] for c in results["columns"]}
    assert beside == {"image AUROC": None, "image AP": None, "image AUPR (VisA, trapezoid)": "image AP",
                      "image F1-max": None, "pixel AUROC": None, "pixel AUROC (VisA, 200 thresholds)": "pixel AUROC",
                      "pixel AP": None, "pixel F1-max": None, "AUPRO": None}
    assert results["settings"]["image_score_rule"] == {"reduce": "top_k_mean", "k": 0.05, "kernel": 16}
    assert run("--demo", "--out", out, "--no-figures") == 0
    tex = (out / "results.tex").read_text()
    assert tex.count(r"\begin{tabular}") == 3 and "% disc: per defect type" in tex
    assert "\nblob & 1.0000 & 1.0000 & 1.0000 & " in tex


@pytest.mark.parametrize("protocol", ["mvtec-ad", "mvtec-ad-2", "mvtec-loco", "visa", "mvtec-3d-ad", "real-iad",
                                      "ader"])
def test_each_demo_tree_is_what_tools_generates(protocol, tmp_path):
    """tools/make_demo_data.py regenerates every bundled demo tree byte for byte (deterministic seeds), and
    every protocol has one."""
    import importlib
    import sys
    from importlib import resources
    from pathlib import Path

    from refmetrics.evaluate import PROTOCOLS

    tools = Path(__file__).resolve().parents[1] / "tools"
    sys.path.insert(0, str(tools))
    try:
        make = importlib.import_module("make_demo_data")
        assert set(make.DEMOS) == set(PROTOCOLS) | {"compare"}  # compare: refmetrics compare --demo
        importlib.import_module(f"demos.{make.DEMOS[protocol]}").main(tmp_path / protocol)
    finally:
        sys.path.remove(str(tools))
    with resources.as_file(resources.files("refmetrics").joinpath(f"data/demo/{protocol}")) as bundled:
        want = {p.relative_to(bundled): p.read_bytes() for p in sorted(bundled.rglob("*")) if p.is_file()}
    got = {p.relative_to(tmp_path / protocol): p.read_bytes() for p in sorted((tmp_path / protocol).rglob("*"))
           if p.is_file()}
    assert got.keys() == want.keys() and all(got[k] == want[k] for k in want)
