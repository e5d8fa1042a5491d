"""``refmetrics evaluate --protocol visa``: the VisA release's split CSV -> MVTec AD's metrics, exactly, with
VisA's own pixel AUROC (200 thresholds) and image AUPR (sklearn's auc) beside them.

Every exact number is checked against the functional API on the same arrays (bit
for bit) and the oracle (1e-12); the official columns against the published
model called directly on the same arrays.
"""

import csv
import json

import numpy as np
import pytest
import tifffile
from PIL import Image

from refmetrics import cli
from refmetrics import functional as F
from refmetrics.conformance import published
from refmetrics.evaluate.protocols.visa import IMAGE_AUPR, PIXEL_AUROC, percentile_of_sorted, visa_image_aupr

from . import naive
from .checks import close, quiet

H, W = 8, 9
EXACT = ("image AUROC", "image AP", "image F1-max", "pixel AUROC", "pixel AP", "pixel F1-max", "AUPRO")


def build_tree(tmp_path, rng):
    """Two objects laid out as the VisA release: ``VisA/split_csv/1cls.csv``, class-id masks under ``VisA``,
    maps under ``maps`` mirroring the image paths (.tiff, .npy and 8-bit .png).

    Returns ``{object: (maps as read, masks (B,H,W) bool, labels)}`` in the CSV's test order.
    """
    data, maps_root = tmp_path / "VisA", tmp_path / "maps"
    (data / "split_csv").mkdir(parents=True)
    rows, truth = [["object", "split", "label", "image", "mask"]], {}
    spec = {"candle": [("normal", ".tiff", 3), ("anomaly", ".npy", 3)],
            "pcb1": [("anomaly", ".png", 2), ("normal", ".png", 2), ("anomaly", ".tiff", 1)]}
    for obj, parts in spec.items():
        rows.append([obj, "train", "normal", f"{obj}/Data/Images/Normal/9999.JPG", ""])  # no map: never read
        maps, masks, labels = [], [], []
        for label, suffix, count in parts:
            kind = label.capitalize()
            (maps_root / obj / "Data" / "Images" / kind).mkdir(parents=True, exist_ok=True)
            for _ in range(count):
                name = f"{len(maps):03d}"
                ids = np.zeros((H, W), np.uint8)
                mask_path = ""
                if label == "anomaly":
                    y, x = rng.integers(0, H - 2), rng.integers(0, W - 3)
                    ids[y:y + 2, x:x + rng.integers(1, 4)] = rng.integers(1, 4)  # class ids 1..3
                    ids[-1, -1] = 2 * (len(maps) % 2)  # sometimes a second, one-pixel region of class 2
                    mask_path = f"{obj}/Data/Masks/Anomaly/{name}.png"
                    (data / mask_path).parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(ids).save(data / mask_path)
                values = (rng.standard_normal((H, W)) + 1.5 * (ids != 0) + 5).astype(np.float32)
                target = maps_root / obj / "Data" / "Images" / kind / f"{name}{suffix}"
                if suffix == ".npy":
                    np.save(target, values)
                elif suffix == ".tiff":
                    tifffile.imwrite(target, values)
                else:
                    values = np.clip(values * 20, 0, 255).astype(np.uint8)  # integer scores
                    Image.fromarray(values).save(target)
                rows.append([obj, "test", label, f"{obj}/Data/Images/{kind}/{name}.JPG", mask_path])
                maps.append(values)
                masks.append(ids != 0)
                labels.append(int(label == "anomaly"))
        truth[obj] = (maps, np.stack(masks), np.array(labels, np.uint8))
    with open(data / "split_csv" / "1cls.csv", "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)
    return truth


@pytest.fixture
def tree(tmp_path):
    return tmp_path, build_tree(tmp_path, np.random.default_rng(20261128))


def run(*args):
    return cli.main(["evaluate", "--quiet", "--protocol", "visa", *map(str, args)])


def _errors(capsys, *args):
    rc = run(*args)
    return rc, capsys.readouterr().err


def _results(out):
    return json.loads((out / "results.json").read_text())


def exact(maps, masks, labels, fpr_limit=0.3):
    stacked = np.stack([np.asarray(m, np.float32) for m in maps])
    scores = np.array([float(m.max()) for m in maps])
    return {"image AUROC": F.auroc(scores, labels), "image AP": F.average_precision(scores, labels),
            "image F1-max": F.f1_max(scores, labels), "pixel AUROC": F.auroc(stacked, masks),
            "pixel AP": F.average_precision(stacked, masks), "pixel F1-max": F.f1_max(stacked, masks),
            "AUPRO": F.aupro(stacked, masks, fpr_limit=fpr_limit)}


def naive_visa_aupr(scores, labels):
    """Exact: the trapezoid over the PR curve's points in threshold order (recall decreasing), negated."""
    precision, recall, _ = naive.pr_curve(scores, labels)
    return -naive.trapezoid(list(zip(recall, precision)))


def official(maps, masks, labels):
    scores = np.array([float(m.max()) for m in maps])
    flat = np.concatenate([m.reshape(-1) for m in maps])  # as stored (float32, uint8), pooled
    return {IMAGE_AUPR: visa_image_aupr(scores, labels), PIXEL_AUROC: published.visa_pixel_auroc(flat, masks.reshape(-1))}


def test_visa_split_csv_end_to_end(tree, capsys):
    root, truth = tree
    out = root / "out"
    assert run("--split-csv", root / "VisA" / "split_csv" / "1cls.csv", "--maps", root / "maps", "--out", out) == 0
    printed = capsys.readouterr().out
    results = _results(out)
    assert results["protocol"]["name"] == "visa" and list(results["categories"]) == ["candle", "pcb1"]
    assert [c["key"] for c in results["columns"]] == ["image AUROC", "image AP", IMAGE_AUPR, "image F1-max",
                                                      "pixel AUROC", PIXEL_AUROC, "pixel AP", "pixel F1-max",
                                                      "AUPRO"]
    assert [c["key"] for c in results["columns"] if c["official"]] == [IMAGE_AUPR, PIXEL_AUROC]
    assert results["settings"]["split"] == "test" and results["settings"]["root"] == str((root / "VisA").resolve())
    for obj, (maps, masks, labels) in truth.items():
        entry = results["categories"][obj]
        got = entry["metrics"]
        assert {k: got[k] for k in EXACT} == exact(maps, masks, labels), obj  # bit for bit
        assert {k: got[k] for k in (IMAGE_AUPR, PIXEL_AUROC)} == official(maps, masks, labels), obj
        scores = [float(m.max()) for m in maps]
        stacked = np.stack([np.asarray(m, np.float64) for m in maps])
        assert close(got["image AUROC"], naive.auroc(scores, labels))
        assert close(got["image AP"], naive.average_precision(scores, labels))
        assert close(got["image F1-max"], naive.f1_adaptive(scores, labels)[1])
        assert close(got["pixel AUROC"], naive.auroc(stacked, masks))
        assert close(got["pixel AP"], naive.average_precision(stacked, masks))
        assert close(got["pixel F1-max"], naive.f1_adaptive(stacked, masks)[1])
        assert close(got["AUPRO"], naive.aupro(stacked, masks, 0.3))
        assert close(got[IMAGE_AUPR], naive_visa_aupr(scores, labels))
        assert got[PIXEL_AUROC] == round(got[PIXEL_AUROC], 4)  # VisA rounds to 4 decimals
        counts = entry["counts"]
        assert counts["images"] == len(maps) and counts["defective images"] == int(labels.sum())
        assert counts["defect pixels"] == int(masks.sum())  # class ids 1..3 all count: != 0
        assert counts["regions"] == F.label_regions(masks, return_num=True)[1]
        assert "defects" not in entry  # the CSV names no defect type
    for key, value in results["mean"].items():
        assert value == np.mean([results["categories"][o]["metrics"][key] for o in truth])
    assert "no defect type" in " ".join(results["notes"])
    assert "AUPR*" in printed and "200 thresholds" in printed and "candle" in printed
    md = (out / "results.md").read_text()
    assert f"{IMAGE_AUPR} (official)" in md and "AUPRO@0.3" in md
    assert sorted(p.name for p in (out / "figures").iterdir()) == sorted(
        f"{o}_{k}.png" for o in truth for k in ("roc", "pr", "pro", "scores"))


def test_image_aupr_is_sklearn_auc_not_anomalib_trapezoid():
    sklearn = pytest.importorskip("sklearn.metrics")
    example = ([0.59, 0.35, 0.72, 0.33, 0.73, 0.81, 0.30, 0.05, 0.04, 0.48], [0, 1, 1, 1, 0, 0, 0, 0, 1, 1])
    assert close(visa_image_aupr(*example), naive_visa_aupr(*example))
    assert abs(visa_image_aupr(*example) - F.aupr(*example, curve="trapezoid")) > 0.09  # 0.3899 vs 0.4899
    rng = np.random.default_rng(20261128)
    for i in range(300):
        n = int(rng.integers(2, 25))
        labels = rng.integers(0, 2, n)
        labels[0] = 1
        scores = rng.integers(0, 5, n).astype(float) if i % 2 else rng.random(n)  # ties every other case
        precision, recall, _ = sklearn.precision_recall_curve(labels, scores)
        assert visa_image_aupr(scores, labels) == sklearn.auc(recall, precision), i
    assert visa_image_aupr([0.2, 0.9], [1, 1]) == 1.0  # positives only: every precision is 1
    with pytest.warns(Warning, match="no anomalous image"):
        assert np.isnan(visa_image_aupr([0.2, 0.9], [0, 0]))


def test_no_official_leaves_the_columns_out(tree):
    root, truth = tree
    args = ("--split-csv", root / "VisA" / "split_csv" / "1cls.csv", "--maps", root / "maps", "--no-figures")
    assert run(*args, "--out", root / "a") == 0
    assert run(*args, "--out", root / "b", "--no-official", "--fpr-limit", 0.1) == 0
    results = _results(root / "b")
    assert [c["key"] for c in results["columns"]] == list(EXACT)
    assert results["settings"]["official"] is False and results["settings"]["fpr_limit"] == 0.1
    for obj, (maps, masks, labels) in truth.items():
        got = results["categories"][obj]["metrics"]
        assert got == exact(maps, masks, labels, fpr_limit=0.1)
        with_official = _results(root / "a")["categories"][obj]["metrics"]
        assert {k: with_official[k] for k in EXACT if k != "AUPRO"} == {k: got[k] for k in EXACT if k != "AUPRO"}
    assert "200 thresholds" not in (root / "b" / "results.md").read_text()


def test_gt_gives_the_root_and_categories_select(tree, capsys):
    root, truth = tree
    moved = root / "elsewhere.csv"
    moved.write_bytes((root / "VisA" / "split_csv" / "1cls.csv").read_bytes())
    out = root / "out"
    assert run("--split-csv", moved, "--gt", root / "VisA", "--maps", root / "maps", "--out", out,
               "--categories", "pcb1", "--no-figures") == 0
    results = _results(out)
    assert list(results["categories"]) == ["pcb1"]
    assert {k: results["categories"]["pcb1"]["metrics"][k] for k in EXACT} == exact(*truth["pcb1"])
    rc, err = _errors(capsys, "--split-csv", moved, "--maps", root / "maps", "--out", root / "never")
    assert rc == 2 and "missing mask" in err and str(root.parent / "candle") in err  # the CSV's grandparent
    rc, err = _errors(capsys, "--split-csv", moved, "--gt", root / "VisA", "--maps", root / "maps",
                      "--categories", "cashew", "--out", root / "never")
    assert rc == 2 and "cashew" in err and "candle, pcb1" in err
    rc, err = _errors(capsys, "--maps", root / "maps", "--out", root / "never")
    assert rc == 2 and "--split-csv and --maps: give both" in err
    rc, err = _errors(capsys, "--split-csv", moved, "--maps", root / "maps", "--manifest", moved)
    assert rc == 2 and "--protocol visa: takes --maps, --gt, --split-csv; received --manifest" in err
    assert not (root / "never").exists()


def test_malformed_csv_and_trees_name_the_file_and_line(tree, capsys):
    root, _ = tree
    split = root / "VisA" / "split_csv" / "1cls.csv"
    original = split.read_text()
    lines = original.splitlines()
    out = root / "out"
    args = ("--split-csv", split, "--maps", root / "maps", "--out", out)
    test_line = next(i for i, line in enumerate(lines) if ",test,anomaly," in line)  # 0-based: CSV line i + 1
    anomaly = lines[test_line].split(",")
    bad = {
        "object,split,label,image\n" + "\n".join(lines[1:]): "expected a CSV whose header names the columns "
                                                            "object, split, label, image, mask",
        original.replace(",test,anomaly,", ",test,defect,", 1): f"line {test_line + 1}: label must be normal or "
                                                                "anomaly, received 'defect'",
        original.replace(",test,", ",Tst,", 1): "split must be train or test, received 'Tst'",
        original.replace(anomaly[4], "candle/Data/Masks/Anomaly/nope.png"): f"line {test_line + 1}: missing "
                                                                            "mask",
        original.replace("," + anomaly[4], ","): f"line {test_line + 1}: an anomaly needs its mask",
        original + lines[test_line] + "\n": f"is listed twice (also on line {test_line + 1})",
        original.replace(anomaly[3], "candle/Data/Images/Anomaly/777.JPG"): "missing map for image "
                                                                             "candle/Data/Images/Anomaly/777.JPG",
        original + "candle,test,normal,/abs/x.JPG,\n": "expected the image path relative to the dataset root",
        original + "candle,test,normal\n": "expected 5 fields",
        "object,split,label,image,mask\ncandle,train,normal,x.JPG,\n": "no rows with split 'test'",
    }
    for text, message in bad.items():
        split.write_text(text)
        rc, err = _errors(capsys, *args)
        assert rc == 2 and message in err and str(split) in err, (message, err)
    split.write_text(original)
    assert not out.exists()  # nothing written

    first = root / "maps" / "candle" / "Data" / "Images" / "Normal" / "000.tiff"
    np.save(first.with_suffix(".npy"), np.zeros((H, W), np.float32))
    rc, err = _errors(capsys, *args)
    assert rc == 2 and "two maps for image candle/Data/Images/Normal/000.JPG" in err and str(split) in err
    first.with_suffix(".npy").rename(first.with_suffix(".jpg"))
    first.unlink()
    rc, err = _errors(capsys, *args)
    assert rc == 2 and f"{first.with_suffix('.jpg')}: unsupported map file type '.jpg'" in err
    first.with_suffix(".jpg").unlink()
    tifffile.imwrite(first, np.zeros((H + 1, W), np.float32))
    rc, err = _errors(capsys, *args)
    assert rc == 2 and str(first) in err and "the masks of its category" in err  # a normal map of the wrong size
    tifffile.imwrite(first, np.zeros((H, W), np.float32))
    normal = lines.index(next(line for line in lines if ",test,normal," in line))
    row = lines[normal].split(",")
    lines[normal] = ",".join(row[:4] + [anomaly[4]])  # a normal image listed with an anomaly's mask
    split.write_text("\n".join(lines) + "\n")
    rc, err = _errors(capsys, *args)
    assert rc == 2 and "the mask of a good image holds" in err and anomaly[4] in err
    split.write_bytes("object,split,label,image,mask\ncaf\xe9,test,normal,a.JPG,\n".encode("latin-1"))
    rc, err = _errors(capsys, *args)
    assert rc == 2 and "expected a UTF-8 CSV file" in err
    rc, err = _errors(capsys, "--split-csv", root / "nope.csv", "--maps", root / "maps", "--out", out)
    assert rc == 2 and "--split-csv" in err and "nope.csv" in err
    assert not out.exists()


def test_undefined_metrics_are_nan_with_notes(tmp_path, capsys):
    truth = build_tree(tmp_path, np.random.default_rng(7))
    split = tmp_path / "VisA" / "split_csv" / "1cls.csv"
    rows = [r for r in split.read_text().splitlines() if not (r.startswith("pcb1,") and ",anomaly," in r)]
    split.write_text("\n".join(rows) + "\n")  # pcb1: normal images only
    out = tmp_path / "out"
    assert run("--split-csv", split, "--maps", tmp_path / "maps", "--out", out, "--no-figures") == 0
    entry = _results(out)["categories"]["pcb1"]
    assert entry["metrics"][IMAGE_AUPR] is None and entry["metrics"][PIXEL_AUROC] is None
    assert entry["metrics"]["image AUROC"] is None and entry["metrics"]["AUPRO"] is None
    notes = " ".join(entry["notes"])
    assert f"{IMAGE_AUPR}: no anomalous image" in notes and f"{PIXEL_AUROC}: no defect pixel" in notes
    maps, masks, labels = truth["candle"]
    assert {k: _results(out)["categories"]["candle"]["metrics"][k] for k in EXACT} == exact(maps, masks, labels)


def test_demo(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["evaluate", "--quiet", "--protocol", "visa", "--demo"]) == 0
    results = _results(tmp_path / "refmetrics-demo")
    assert set(results["categories"]) == {"candle", "pcb1"}
    assert results["settings"]["dataset"] == "refmetrics demo of visa (bundled)"
    assert len(list((tmp_path / "refmetrics-demo" / "figures").glob("*.png"))) == 8
    from importlib import resources

    with resources.as_file(resources.files("refmetrics").joinpath("data/demo/visa")) as demo:
        with open(demo / "VisA" / "split_csv" / "1cls.csv", newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if r["split"] == "test"]
        assert {r["label"] for r in rows} == {"normal", "anomaly"} and len(rows) == 18
        for obj in ("candle", "pcb1"):
            mine = [r for r in rows if r["object"] == obj]
            maps = [tifffile.imread(demo / "maps" / r["image"].replace(".JPG", ".tiff")) for r in mine]
            ids = [np.asarray(Image.open(demo / "VisA" / r["mask"])) if r["mask"]
                   else np.zeros_like(maps[0], np.uint8) for r in mine]
            assert {int(v) for m in ids for v in np.unique(m)} == {0, 1, 2}  # class ids, not 0/255
            masks = np.stack([m != 0 for m in ids])
            labels = np.array([r["label"] == "anomaly" for r in mine], np.uint8)
            got = results["categories"][obj]["metrics"]
            assert {k: got[k] for k in EXACT} == exact(maps, masks, labels)
            assert {k: got[k] for k in (IMAGE_AUPR, PIXEL_AUROC)} == official(maps, masks, labels)
            assert all(0.5 < got[k] <= 1 for k in ("image AUROC", "pixel AUROC", "AUPRO"))
    assert quiet(cli.main, ["evaluate", "--protocol", "visa", "--demo", "--maps", "x"]) == 2


def test_palette_masks_read_as_their_class_ids(tree):
    """A class-id mask saved as a palette PNG (indices 1..3 coloured, 0 black) gives the same defect pixels
    as the 8-bit grey one: a defect pixel is any non-zero class id."""
    root, truth = tree
    split = root / "VisA" / "split_csv" / "1cls.csv"
    args = ("--split-csv", split, "--maps", root / "maps", "--no-figures", "--no-official")
    assert run(*args, "--out", root / "grey") == 0
    palette = [0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [7] * (768 - 12)
    for path in sorted((root / "VisA").glob("*/Data/Masks/Anomaly/*.png")):
        ids = np.asarray(Image.open(path))
        assert ids.max() <= 3
        image = Image.fromarray(ids, mode="P")
        image.putpalette(palette)
        image.save(path)
        with Image.open(path) as check:
            assert check.mode == "P"
    assert run(*args, "--out", root / "palette") == 0
    assert _results(root / "palette")["categories"] == _results(root / "grey")["categories"]
    maps, masks, labels = truth["candle"]
    assert {k: _results(root / "palette")["categories"]["candle"]["metrics"][k] for k in EXACT} == \
        exact(maps, masks, labels)


def test_pixel_auroc_from_the_state_is_the_model_bit_for_bit():
    """``visa.visa_pixel_auroc`` (from the finished pixel state and the maps' dtype) against the published
    model on the arrays, unrounded and rounded, for float32, float64 and 8-bit maps, in any image order."""
    import math

    from refmetrics.evaluate.protocols import visa
    from refmetrics.state import PixelState

    rng = np.random.default_rng(20261128)
    for trial in range(9):
        n, h, w = int(rng.integers(1, 5)), int(rng.integers(5, 30)), int(rng.integers(5, 30))
        dtype = (np.float32, np.float64, np.uint8)[trial % 3]
        if dtype is np.uint8:
            maps = rng.integers(0, 256, (n, h, w)).astype(np.uint8)
        else:
            maps = (rng.standard_normal((n, h, w)) * (1e-6 if trial == 4 else 1.0)).astype(dtype)
        masks = rng.random((n, h, w)) < (0.2 if trial != 6 else 0.0)
        state = PixelState(maps.size, np.float64 if dtype is np.float64 else np.float32)
        for b in rng.permutation(n):
            state.add(maps[b], masks[b])
        state.finish()
        if trial == 6:  # no defect pixel: the official code raises, nan here
            assert math.isnan(quiet(visa.visa_pixel_auroc, state, maps.dtype))
            continue
        want = published.visa_pixel_auroc(maps.reshape(-1), masks.reshape(-1))
        assert visa.visa_pixel_auroc(state, maps.dtype) == want, (trial, want)
        # unrounded: the same thresholds, counts and area (``round`` replaced in both modules)
        unrounded = {}
        with pytest.MonkeyPatch.context() as mp:
            for module in (published, visa):
                mp.setattr(module, "round", lambda x, _d, m=module.__name__, u=unrounded: u.setdefault(m, x),
                           raising=False)
            published.visa_pixel_auroc(maps.reshape(-1), masks.reshape(-1))
            visa.visa_pixel_auroc(state, maps.dtype)
        assert len(set(unrounded.values())) == 1 and len(unrounded) == 2, (trial, unrounded)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.uint8, np.int64])
def test_percentiles_from_order_statistics_are_numpys(dtype):
    # visa_pixel_auroc reads only the order statistics it needs (a spilled or Dask state holds no array of
    # the defect scores): NumPy's own np.percentile is the oracle, bit for bit and dtype for dtype
    rng = np.random.default_rng(int(np.dtype(dtype).num))
    for trial in range(300):
        n = int(rng.integers(1, 400))
        if np.dtype(dtype).kind == "f":
            a = (rng.standard_normal(n) * 10.0 ** rng.integers(-4, 4)).astype(dtype)
            if trial % 7 == 0:
                a[rng.integers(0, n)] = np.inf  # NumPy's lerp gives nan next to inf: so must we
            if trial % 11 == 0:
                a[:] = a[0]
        else:
            a = rng.integers(0, 255, n).astype(dtype)
        q = np.linspace(100, 0, num=100) if trial % 2 else rng.uniform(0, 100, 37)
        ordered = np.sort(a)
        with np.errstate(invalid="ignore"):
            want = np.percentile(a, q)
            got = percentile_of_sorted(lambda r: ordered[r], n, q)
        assert got.dtype == want.dtype and np.array_equal(got, want, equal_nan=True), (trial, n)
