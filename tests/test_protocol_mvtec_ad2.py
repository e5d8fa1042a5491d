"""``refmetrics evaluate --protocol mvtec-ad-2`` end to end, and ``refmetrics check-submission``.

Every number results.json holds is checked against the functional API on the same arrays (bit for bit)
and against the exact oracle of tests/naive.py (1e-12); the validation threshold against mean + 3 std
computed by hand (float64 and exact), SegF1 against a pixel-by-pixel count.
"""

import json
import math
from fractions import Fraction

import numpy as np
import pytest
import tifffile
from PIL import Image

from refmetrics import cli
from refmetrics import functional as F
from refmetrics.conformance import published
from refmetrics.evaluate import submission

from . import naive
from .checks import close

H, W = 8, 9
OBJECTS = ("can", "rice")


def _map(rng, mask):
    # 1/3-steps: values that float16 cannot hold, so --float16 changes them
    return (rng.standard_normal((H, W)) + 2.0 * mask + 5 + 1 / 3).astype(np.float32)


def build_tree(root, rng):
    """Two objects in the MVTec AD 2 layout: validation/good (3 maps), test_public good (2) and bad (3,
    with masks), test_private (2) and test_private_mixed (1) maps; the dataset's good and validation
    images for "can". Returns ``{object: {"maps", "masks", "labels", "validation"}}``."""
    truth = {}
    for obj in OBJECTS:
        maps_dir = root / "maps" / obj
        val = []
        (maps_dir / "validation" / "good").mkdir(parents=True)
        for i in range(3):
            v = _map(rng, np.zeros((H, W), bool))
            val.append(v)
            if i == 0:
                np.save(maps_dir / "validation" / "good" / f"{i:03d}_regular.npy", v)
            else:
                tifffile.imwrite(maps_dir / "validation" / "good" / f"{i:03d}_regular.tiff", v)
        maps, masks, labels = [], [], []
        for label, count in (("good", 2), ("bad", 3)):
            (maps_dir / "test_public" / label).mkdir(parents=True)
            for i in range(count):
                name = f"{i:03d}_regular"
                mask = np.zeros((H, W), bool)
                if label == "bad":
                    y, x = rng.integers(0, H - 2), rng.integers(0, W - 3)
                    mask[y:y + 2, x:x + rng.integers(1, 4)] = True
                    mask[-1, -1] = i == 2  # a second, one-pixel region
                    g = root / "gt" / obj / "test_public" / "ground_truth" / "bad"
                    g.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(mask.astype(np.uint8) * 255).save(g / f"{name}_mask.png")
                values = _map(rng, mask)
                tifffile.imwrite(maps_dir / "test_public" / label / f"{name}.tiff", values)
                maps.append(values)
                masks.append(mask)
                labels.append(int(label == "bad"))
        for split, count, suffix in (("test_private", 2, "regular"), ("test_private_mixed", 1, "mixed")):
            (maps_dir / split).mkdir()
            for i in range(count):
                tifffile.imwrite(maps_dir / split / f"{i:03d}_{suffix}.tiff", _map(rng, np.zeros((H, W), bool)))
        truth[obj] = {"maps": np.stack(maps), "masks": np.stack(masks), "labels": np.array(labels, np.uint8),
                      "validation": np.stack(val)}
    for split, n in (("test_public/good", 2), ("validation/good", 3)):  # the dataset's images, for "can"
        d = root / "gt" / "can" / split
        d.mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.zeros((H, W), np.uint8)).save(d / f"{i:03d}_regular.png")
    return truth


@pytest.fixture
def tree(tmp_path):
    return tmp_path, build_tree(tmp_path, np.random.default_rng(20261128))


def run(*args):
    return cli.main(["evaluate", "--quiet", "--protocol", "mvtec-ad-2", *map(str, args)])


def _errors(capsys, *args):
    rc = run(*args)
    return rc, capsys.readouterr().err


def hand_threshold(validation):
    """mean + 3 std (ddof 0) in float64 (NumPy, as the official baseline writes it), and exactly."""
    values = np.asarray(validation, np.float64).ravel()
    exact = naive.validation_threshold(values)
    return float(np.mean(values) + 3 * np.std(values)), exact


def hand_segf1(maps, masks, threshold):
    """Pooled and per-image F1 of ``score > threshold``, counted pixel by pixel (Fractions)."""
    total = [0, 0, 0]
    per_image = []
    for m, k in zip(maps, masks):
        tp = fp = fn = 0
        for s, y in zip(m.ravel().tolist(), k.ravel().tolist()):
            tp += s > threshold and y
            fp += s > threshold and not y
            fn += not s > threshold and y
        total = [total[0] + tp, total[1] + fp, total[2] + fn]
        per_image.append(Fraction(2 * tp, 2 * tp + fp + fn) if tp + fp + fn else Fraction(0))
    tp, fp, fn = total
    return Fraction(2 * tp, 2 * tp + fp + fn) if tp + fp + fn else Fraction(0), sum(per_image) / len(per_image), total


def check_category(entry, t, float16=False):
    """Every number of one object's results.json entry against the functional API and the oracle."""
    maps, masks, labels, val = t["maps"], t["masks"], t["labels"], t["validation"]
    if float16:  # as the server receives them, cast by hand
        maps = maps.astype(np.float16).astype(np.float32)
        val = val.astype(np.float16).astype(np.float32)
    got, counts = entry["metrics"], entry["counts"]
    scores = maps.reshape(len(maps), -1).max(axis=1).astype(np.float64)
    threshold = F.validation_threshold(val)
    seg = F.segmentation_scores(maps, masks, threshold)
    want = {"AUPRO@0.05": F.aupro(maps, masks, fpr_limit=0.05), "AUPRO@0.3": F.aupro(maps, masks, fpr_limit=0.3),
            "SegF1": seg["f1"],
            "SegF1 (per image)": F.segmentation_scores(maps, masks, threshold, average="samplewise")["mean_f1"],
            "image AUROC": F.auroc(scores, labels), "image AP": F.average_precision(scores, labels)}
    assert got == want  # bit for bit
    assert close(got["AUPRO@0.05"], naive.aupro(maps, masks, 0.05))
    assert close(got["AUPRO@0.3"], naive.aupro(maps, masks, 0.3))
    assert close(got["image AUROC"], naive.auroc(scores, labels))
    assert close(got["image AP"], naive.average_precision(scores, labels))
    # the threshold: the functional API's, bit for bit; mean + 3 std by hand in float64 and exactly
    assert counts["validation threshold"] == threshold
    in_float64, exact = hand_threshold(val)
    assert close(threshold, exact)
    assert abs(threshold - in_float64) <= 1e-12
    assert counts["validation images"] == len(val) and counts["validation pixels"] == val.size
    pooled, per_image, (tp, fp, fn) = hand_segf1(maps, masks, threshold)
    assert close(got["SegF1"], pooled) and close(got["SegF1 (per image)"], per_image)
    assert close(got["SegF1"], naive.segmentation_scores(maps, masks, threshold)["f1"])
    assert (counts["SegF1 TP"], counts["SegF1 FP"], counts["SegF1 FN"]) == (tp, fp, fn)
    assert counts["SegF1 TN"] == maps.size - tp - fp - fn
    assert counts["images"] == len(maps) and counts["defective images"] == int(labels.sum())
    assert counts["defect pixels"] == int(masks.sum())
    assert counts["regions"] == F.label_regions(masks, return_num=True)[1]
    assert any(repr(threshold) in n for n in entry["notes"])
    return threshold


def test_tree_end_to_end(tree, capsys):
    root, truth = tree
    out = root / "out"
    assert run("--maps", root / "maps", "--gt", root / "gt", "--out", out) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert results["protocol"]["name"] == "mvtec-ad-2" and results["protocol"]["official"] == ""
    assert [c["key"] for c in results["columns"]] == ["AUPRO@0.05", "AUPRO@0.3", "SegF1", "SegF1 (per image)",
                                                       "image AUROC", "image AP"]
    assert not any(c["official"] for c in results["columns"])
    assert list(results["categories"]) == list(OBJECTS)
    for obj, t in truth.items():
        check_category(results["categories"][obj], t)
        assert "defects" not in results["categories"][obj]  # one defect type ("bad"): no breakdown
        # no official column: the MVTec AD script's model (which MVTec AD 2 points to) gives the exact value,
        # up to its float64 running sums
        for limit in (0.05, 0.3):
            official = published.mvtec_ad_aupro(t["maps"], t["masks"], fpr_limit=limit)
            assert abs(official - results["categories"][obj]["metrics"][f"AUPRO@{limit:g}"]) <= 1e-12
    for metric, value in results["mean"].items():
        assert value == np.mean([results["categories"][c]["metrics"][metric] for c in truth])
    settings = results["settings"]
    assert settings["protocol"] == "mvtec-ad-2" and settings["fpr_limits"] == [0.05, 0.3]
    assert settings["segf1_server_aggregation"].startswith("not public")
    assert "mean + 3 std" in settings["segmentation_threshold"]
    # the private maps: counted, named, left out
    private = [n for n in results["notes"] if "test_private" in n]
    assert len(private) == 2 and all("2 in test_private/ and 1 in test_private_mixed/ not evaluated" in n
                                     for n in private)
    assert "not public" in printed and "not evaluated" in printed and "AUPRO@0.05" in printed
    md = (out / "results.md").read_text()
    assert "AUPRO@0.05" in md and "SegF1 (per image)" in md and "| can |" in md
    figures = sorted(p.name for p in (out / "figures").iterdir())
    assert figures == sorted(f"{c}_{k}.png" for c in OBJECTS for k in ("roc", "pr", "scores", "pro", "pro0.3"))


def test_float16_rounds_test_and_validation_maps(tree):
    root, truth = tree
    plain, half = root / "plain", root / "half"
    assert run("--maps", root / "maps", "--gt", root / "gt", "--out", plain, "--no-figures") == 0
    assert run("--maps", root / "maps", "--gt", root / "gt", "--out", half, "--no-figures", "--float16") == 0
    r_plain = json.loads((plain / "results.json").read_text())
    r_half = json.loads((half / "results.json").read_text())
    assert r_half["settings"]["float16"] is True
    for obj, t in truth.items():
        t16 = check_category(r_half["categories"][obj], t, float16=True)  # = the same cast done by hand
        t32 = r_plain["categories"][obj]["counts"]["validation threshold"]
        assert t16 != t32  # the validation maps were rounded too
        assert t16 == F.validation_threshold(t["validation"].astype(np.float16))
        assert any("rounded to float16" in n for n in r_half["categories"][obj]["notes"])


def test_fpr_limit_replaces_both_limits(tree):
    root, truth = tree
    out = root / "out"
    assert run("--maps", root / "maps", "--gt", root / "gt", "--out", out, "--fpr-limit", 0.1) == 0
    results = json.loads((out / "results.json").read_text())
    assert [c["key"] for c in results["columns"]][:2] == ["AUPRO@0.1", "SegF1"]
    t = truth["rice"]
    assert results["categories"]["rice"]["metrics"]["AUPRO@0.1"] == F.aupro(t["maps"], t["masks"], fpr_limit=0.1)
    assert "rice_pro.png" in {p.name for p in (out / "figures").iterdir()}


def test_infinite_validation_pixel_gives_nan_segf1_with_a_note(tree):
    root, truth = tree
    v = truth["rice"]["validation"][0].copy()
    v[0, 0] = np.inf
    np.save(root / "maps" / "rice" / "validation" / "good" / "000_regular.npy", v)
    out = root / "out"
    assert run("--maps", root / "maps", "--gt", root / "gt", "--out", out, "--no-figures") == 0
    entry = json.loads((out / "results.json").read_text())["categories"]["rice"]
    assert entry["metrics"]["SegF1"] is None and entry["metrics"]["SegF1 (per image)"] is None
    assert entry["counts"]["validation threshold"] is None
    assert any("threshold" in n and "infinite" in n for n in entry["notes"])
    assert entry["metrics"]["AUPRO@0.05"] is not None


def test_demo(tmp_path, capsys):
    from refmetrics.evaluate import get_protocol
    from refmetrics.evaluate.readers import mvtec_ad2 as reader

    out = tmp_path / "demo"
    assert cli.main(["evaluate", "--protocol", "mvtec-ad-2", "--demo", "--quiet", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "MVTec AD 2" in printed and "not public" in printed
    assert "not evaluated" in printed and "test_private" in printed
    results = json.loads((out / "results.json").read_text())
    root = get_protocol("mvtec-ad-2").demo_root()
    samples, validation, notes = reader.discover(root / "maps", root / "gt")
    assert len(notes) == 2 and results["notes"] == notes
    for obj in ("can", "walnuts"):
        group = [s for s in samples if s.category == obj]
        t = {"maps": np.stack([tifffile.imread(s.map) for s in group]),
             "masks": np.stack([np.asarray(Image.open(s.mask)) > 0 if s.mask else np.zeros((48, 48), bool)
                                for s in group]),
             "labels": np.array([int(s.defective) for s in group], np.uint8),
             "validation": np.stack([tifffile.imread(s.map) for s in validation[obj]])}
        check_category(results["categories"][obj], t)
    assert not any(math.isnan(v) for v in results["mean"].values() if v is not None)


# -- malformed trees: the file named, what was expected, what was found; nothing written ------------------------

@pytest.mark.parametrize("fault, words", [
    ("no_validation", ["rice/validation/good", "missing directory", "validation/good"]),
    ("empty_validation", ["rice/validation/good", "expected the validation/good anomaly maps", "found none"]),
    ("missing_mask", ["rice/test_public/bad/001_regular.tiff", "missing mask", "001_regular_mask.png"]),
    ("mask_without_map", ["rice/test_public/ground_truth/bad/007_regular_mask.png", "missing map",
                          "test_public/bad/007_regular"]),
    ("image_without_map", ["can/test_public/good/001_regular.png", "missing map", "test_public/good/001_regular"]),
    ("validation_image_without_map", ["can/validation/good/002_regular.png", "missing map"]),
    ("defect_dir", ["rice/test_public/crack", "unexpected directory", "good/ and test_public/bad/"]),
    ("jpeg_map", ["000_regular.jpg", "unsupported map file type"]),
    ("size", ["can/test_public/bad/000_regular.tiff", "map of size 8x10", "8x9"]),
])
def test_malformed_tree_names_the_file_and_writes_nothing(tree, capsys, fault, words):
    root, _ = tree
    maps, gt = root / "maps", root / "gt"
    if fault == "no_validation":
        for p in (maps / "rice" / "validation" / "good").iterdir():
            p.unlink()
        (maps / "rice" / "validation" / "good").rmdir()
    elif fault == "empty_validation":
        for p in (maps / "rice" / "validation" / "good").iterdir():
            p.unlink()
    elif fault == "missing_mask":
        (gt / "rice" / "test_public" / "ground_truth" / "bad" / "001_regular_mask.png").unlink()
    elif fault == "mask_without_map":
        Image.fromarray(np.zeros((H, W), np.uint8)).save(
            gt / "rice" / "test_public" / "ground_truth" / "bad" / "007_regular_mask.png")
    elif fault == "image_without_map":
        (maps / "can" / "test_public" / "good" / "001_regular.tiff").unlink()
    elif fault == "validation_image_without_map":
        (maps / "can" / "validation" / "good" / "002_regular.tiff").unlink()
    elif fault == "defect_dir":
        (maps / "rice" / "test_public" / "crack").mkdir()
    elif fault == "jpeg_map":
        Image.fromarray(np.zeros((H, W), np.uint8)).save(maps / "rice" / "test_public" / "good" / "000_regular.jpg")
    elif fault == "size":
        tifffile.imwrite(maps / "can" / "test_public" / "bad" / "000_regular.tiff", np.zeros((H, W + 1), np.float32))
    out = root / "never"
    rc, err = _errors(capsys, "--maps", maps, "--gt", gt, "--out", out)
    assert rc == 2, err
    for w in words:
        assert w in err, (w, err)
    assert not (out / "results.json").exists()


def test_argument_errors(tree, capsys):
    root, _ = tree
    rc, err = _errors(capsys, "--maps", root / "maps", "--out", root / "never")
    assert rc == 2 and "--maps and --gt" in err
    rc, err = _errors(capsys, "--maps", root / "nothing", "--gt", root / "gt", "--out", root / "never")
    assert rc == 2 and "--maps" in err and "is not a directory" in err
    rc, err = _errors(capsys, "--maps", root / "gt", "--gt", root / "gt", "--out", root / "never")
    assert rc == 2 and "test_public" in err
    rc, err = _errors(capsys, "--maps", root / "maps", "--gt", root / "gt", "--categories", "vial",
                      "--out", root / "never")
    assert rc == 2 and "vial" in err and "test_public" in err
    assert not (root / "never" / "results.json").exists()


def test_object_with_private_maps_only_is_noted(tree):
    root, _ = tree
    d = root / "maps" / "vial" / "test_private"
    d.mkdir(parents=True)
    tifffile.imwrite(d / "000_regular.tiff", np.zeros((H, W), np.float16))
    out = root / "out"
    assert run("--maps", root / "maps", "--gt", root / "gt", "--out", out, "--no-figures") == 0
    results = json.loads((out / "results.json").read_text())
    assert list(results["categories"]) == list(OBJECTS)
    assert any(n.startswith("vial: maps for test_private") and "not evaluated" in n for n in results["notes"])


# -- check-submission --------------------------------------------------------------------------------------------

SUB_NAMES = {"can": 3, "rice": 2}


def build_submission(root, thresholded=True):
    """A dataset copy (test_private / test_private_mixed images) and a valid submission for it."""
    for obj, n in SUB_NAMES.items():
        for split, suffix in submission.SPLITS.items():
            (root / "ds" / obj / split).mkdir(parents=True)
            for i in range(n):
                name = f"{i:03d}_{suffix}"
                Image.fromarray(np.zeros((H, W), np.uint8)).save(root / "ds" / obj / split / f"{name}.png")
                d = root / "sub" / "anomaly_images" / obj / split
                d.mkdir(parents=True, exist_ok=True)
                tifffile.imwrite(d / f"{name}.tiff", np.full((H, W), 0.5 + i, np.float16))
                if thresholded:
                    d = root / "sub" / "anomaly_images_thresholded" / obj / split
                    d.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(np.where(np.eye(H, W) > 0, 255, 0).astype(np.uint8)).save(d / f"{name}.png")
    return root / "sub", root / "ds"


def check_sub(capsys, *args):
    rc = cli.main(["check-submission", *map(str, args)])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_check_submission_valid(tmp_path, capsys):
    sub, ds = build_submission(tmp_path)
    rc, out, _ = check_sub(capsys, sub, "--dataset", ds)
    assert rc == 0, out
    out = " ".join(out.split())
    assert "a valid MVTec AD 2 submission" in out and "10 in anomaly_images/" in out
    assert "10 in anomaly_images_thresholded/" in out
    # without the thresholded maps: still valid, with a note
    sub2, ds2 = build_submission(tmp_path / "b", thresholded=False)
    rc, out, _ = check_sub(capsys, sub2, "--dataset", ds2)
    out = " ".join(out.split())
    assert rc == 0 and "note:" in out and "anomaly_images_thresholded: not found" in out


def test_check_submission_lists_every_fault(tmp_path, capsys):
    sub, ds = build_submission(tmp_path)
    tp = sub / "anomaly_images" / "can" / "test_private"
    tifffile.imwrite(tp / "000_regular.tiff", np.zeros((H, W), np.float32))            # dtype
    tifffile.imwrite(tp / "001_regular.tiff", np.zeros((2, H, W), np.float16))         # not 2-D
    (tp / "002_regular.tiff").rename(tp / "002_regular.tif")                           # suffix
    mixed = sub / "anomaly_images" / "rice" / "test_private_mixed"
    tifffile.imwrite(mixed / "007_mixed.tiff", np.zeros((H, W), np.float16))           # names no image
    (sub / "anomaly_images" / "rice" / "test_private" / "001_regular.tiff").unlink()   # missing
    th = sub / "anomaly_images_thresholded" / "rice" / "test_private"
    Image.fromarray(np.full((H, W + 1), 255, np.uint8)).save(th / "000_regular.png")   # size
    Image.fromarray(np.full((H, W), 128, np.uint8)).save(th / "001_regular.png")       # values
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(
        sub / "anomaly_images_thresholded" / "can" / "test_private_mixed" / "000_mixed.png")  # colour
    (sub / "README.txt").write_text("hello")                                           # superfluous file
    (sub / "anomaly_images" / "fabric").mkdir()                                        # superfluous object
    rc, out, _ = check_sub(capsys, sub, "--dataset", ds)
    assert rc == 1
    text = " ".join(out.split())  # unwrapped
    expected = [
        f"{tp / '000_regular.tiff'}: expected float16 pixels, found float32",
        f"{tp / '001_regular.tiff'}: expected a single-channel 2-D image (height x width), found shape 2x{H}x{W}",
        f"{tp / '002_regular.tif'}: expected the suffix .tiff (002_regular.tiff), found .tif",
        f"{mixed}: expected 2 files (rice, test_private_mixed), found 3",
        (f"{mixed / '007_mixed.tiff'}: expected only the files 000_mixed.tiff ... 001_mixed.tiff, found a file "
        "'007_mixed.tiff' that names no image of test_private_mixed"),
        (f"{sub / 'anomaly_images' / 'rice' / 'test_private' / '001_regular.tiff'}: expected the anomaly image of "
        "rice/test_private/001_regular.png, found no such file"),
        (f"{th / '000_regular.png'}: expected the size of its anomaly image, {H}x{W} (height x width), "
        f"found {H}x{W + 1}"),
        (f"{th / '001_regular.png'}: expected pixel values 0 (good) and 255 (anomalous) only, found 1 distinct "
        "value (128; dtype uint8)"),
        (f"{sub / 'anomaly_images_thresholded' / 'can' / 'test_private_mixed' / '000_mixed.png'}: expected a "
        f"single-channel 2-D image, found shape {H}x{W}x3"),
        (f"{sub / 'README.txt'}: expected only anomaly_images/ and anomaly_images_thresholded/ in {sub}, found a "
        "file 'README.txt'"),
        (f"{sub / 'anomaly_images' / 'fabric'}: expected only the object directories (can, rice) in "
        f"{sub / 'anomaly_images'}, found a directory 'fabric'"),
    ]
    for line in expected:
        assert line in text, (line, out)
    report = submission.check(sub, submission.dataset_names(ds))
    assert len(report.problems) == len(expected) + 1  # and rice/test_private's count (1 of 2 files)
    assert f"{len(report.problems)} problems" in text


def test_check_submission_bool_png_is_not_0_255(tmp_path):
    sub, ds = build_submission(tmp_path)
    png = sub / "anomaly_images_thresholded" / "can" / "test_private" / "000_regular.png"
    Image.fromarray(np.eye(H, W) > 0).save(png)  # a 1-bit PNG: values False/True
    report = submission.check(sub, submission.dataset_names(ds))
    assert [str(p.path) for p in report.problems] == [str(png)]
    assert "0 (good) and 255" in str(report.problems[0]) and "bool" in str(report.problems[0])


def test_check_submission_official_table(tmp_path, capsys):
    assert submission.OBJECT_FILE_COUNTS == {"can": 321, "fabric": 314, "fruit_jelly": 255, "rice": 277,
                                             "sheet_metal": 142, "vial": 276, "wallplugs": 232, "walnuts": 228}
    names = submission.official_names()
    assert names["vial"]["test_private"][0] == "000_regular" and names["vial"]["test_private"][-1] == "275_regular"
    assert names["can"]["test_private_mixed"][-1] == "320_mixed"
    d = tmp_path / "sub" / "anomaly_images" / "can" / "test_private"
    d.mkdir(parents=True)
    tifffile.imwrite(d / "000_regular.tiff", np.zeros((H, W), np.float16))
    rc, out, _ = check_sub(capsys, tmp_path / "sub")
    text = " ".join(out.split())
    assert rc == 1
    assert f"{d}: expected 321 files (can, test_private), found 1" in text
    assert f"{d}: expected the anomaly images of 321 images of can/test_private, found no file for 320 of them " \
           "(001_regular.tiff" in text and "320_regular.tiff)" in text
    for obj in submission.OBJECT_FILE_COUNTS:
        if obj != "can":
            assert f"{tmp_path / 'sub' / 'anomaly_images' / obj}: expected the directory of object '{obj}', found " \
                   "none" in text
    assert "can/test_private_mixed: expected the directory of can's test_private_mixed (321 files), found none" \
        in text


def test_check_submission_usage_errors(tmp_path, capsys):
    rc, _, err = check_sub(capsys, tmp_path / "nothing")
    assert rc == 2 and f"DIR: expected a submission directory, found nothing at {tmp_path / 'nothing'}" in err
    (tmp_path / "file").write_text("")
    rc, _, err = check_sub(capsys, tmp_path / "file")
    assert rc == 2 and f"DIR: expected a submission directory, found a file at {tmp_path / 'file'}" in err
    (tmp_path / "sub").mkdir()
    rc, _, err = check_sub(capsys, tmp_path / "sub", "--dataset", tmp_path / "nope")
    assert rc == 2 and "--dataset" in err and "nope" in err
    (tmp_path / "empty").mkdir()
    rc, _, err = check_sub(capsys, tmp_path / "sub", "--dataset", tmp_path / "empty")
    assert rc == 2 and "--dataset" in err and "test_private" in err
    rc, out, _ = check_sub(capsys, tmp_path / "sub")
    assert rc == 1 and "anomaly_images: expected the directory of the anomaly images" in " ".join(out.split())


def test_pixels_at_the_threshold_are_not_predicted_defective(tree):
    """Constant validation maps give the threshold exactly (std 0); test pixels equal to it are not
    predicted defective (score > threshold)."""
    root, truth = tree
    val_dir = root / "maps" / "rice" / "validation" / "good"
    for p in val_dir.iterdir():
        p.unlink()
    for i in range(2):
        np.save(val_dir / f"{i:03d}_regular.npy", np.full((H, W), 5.5, np.float32))
    t = truth["rice"]
    bad = sorted((root / "maps" / "rice" / "test_public" / "bad").iterdir())
    for i, path in enumerate(bad):
        m = t["maps"][2 + i]
        m[t["masks"][2 + i]] = 5.5  # every defect pixel exactly at the threshold
        m[0, 0] = 5.5 + 2 ** -20   # one just above it
        tifffile.imwrite(path, m)
    out = root / "out"
    assert run("--maps", root / "maps", "--gt", root / "gt", "--out", out, "--no-figures") == 0
    entry = json.loads((out / "results.json").read_text())["categories"]["rice"]
    assert entry["counts"]["validation threshold"] == 5.5
    pooled, per_image, (tp, fp, fn) = hand_segf1(t["maps"], t["masks"], 5.5)
    assert tp == sum(int(k[0, 0]) for k in t["masks"][2:])  # only the pixel above the threshold, where defective
    assert (entry["counts"]["SegF1 TP"], entry["counts"]["SegF1 FP"], entry["counts"]["SegF1 FN"]) == (tp, fp, fn)
    assert close(entry["metrics"]["SegF1"], pooled) and close(entry["metrics"]["SegF1 (per image)"], per_image)
