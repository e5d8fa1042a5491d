"""``refmetrics evaluate --protocol real-iad`` end to end: a Real-IAD tree on disk -> tables.

Every number in results.json is checked against the functional API on the same
arrays (bit for bit), against the exact oracle (1e-12), and the sample level
(S-AUROC/S-AP: score and label the maximum over a sample's views) against the
oracle on naively grouped views. The ADEval columns are checked against the
conformance model called directly (and against ADEval itself where installed).
"""

import json
import math
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image
from skimage.transform import resize

from refmetrics import cli
from refmetrics import functional as F
from refmetrics.conformance import causes

from . import naive
from .checks import close

H, W = 8, 9
VIEWS = 5
TIME = "20240101000000"
# category -> [(state, defect, map suffix)], one entry per sample of five views
SPEC = {"audiojack": [("OK", None, ".npy"), ("OK", None, ".tiff"), ("NG", "AK", ".npy"), ("NG", "AK", ".tiff"),
                      ("NG", "HS", ".npy")],
        "pcb": [("OK", None, ".tiff"), ("OK", None, ".tiff"), ("NG", "QS", ".npy"), ("NG", "ZW", ".npy")]}


class View:
    """One view as the test built it: its map, its mask (bool, > 127), its sample and defect type."""

    def __init__(self, values, mask, sample, defect, name):
        self.values, self.mask, self.sample, self.defect, self.name = values, mask, sample, defect, name


def build_tree(root, rng, suffix_of=None):
    """Two categories of multi-view samples; masks 0/255 PNGs, some with pixels of 100 (background under
    Real-IAD's > 127 rule) or 200; one view of each NG sample clean (a mask of 100s), one without a mask
    (the image alone, as the dataset has for views that show no defect).

    Returns ``{category: [View, ...]}`` in the reader's order (OK then NG/<defect>, sample, view).
    """
    truth = {}
    for category, samples in SPEC.items():
        views = []
        for i, (state, defect, suffix) in enumerate(samples, start=1):
            rel = f"OK/S{i:04d}" if state == "OK" else f"NG/{defect}/S{i:04d}"
            tag = "OK" if state == "OK" else "NG"
            (root / "maps" / category / rel).mkdir(parents=True)
            (root / "gt" / category / rel).mkdir(parents=True)
            for view in range(1, VIEWS + 1):
                name = f"{category}_{i:04d}_{tag}_C{view}_{TIME}"
                raw = np.zeros((H, W), np.uint8)
                if state == "NG" and view in (1, 2, 4):
                    y, x = rng.integers(0, H - 2), rng.integers(0, W - 3)
                    raw[y:y + 2, x:x + rng.integers(1, 4)] = 255 if view != 2 else 200
                    raw[0, 0] = 100  # below the threshold: background
                if state == "NG" and view == 3:
                    raw[2:4, 2:5] = 100  # only 100s: a clean view
                mask = raw > 127
                values = (rng.standard_normal((H, W)) + 1.5 * mask + 5).astype(np.float32)
                if suffix == ".npy":
                    np.save(root / "maps" / category / rel / f"{name}.npy", values)
                else:
                    tifffile.imwrite(root / "maps" / category / rel / f"{name}.tiff", values)
                gt = root / "gt" / category / rel / name
                if state == "NG" and view == 5:
                    Image.fromarray(np.full((H, W), 90, np.uint8)).save(gt.with_suffix(".jpg"))
                elif state == "NG":
                    Image.fromarray(raw).save(gt.with_suffix(".png"))
                views.append(View(values, mask, f"{category}/{rel}", defect or "OK", name))
        # the reader's order: OK samples, then NG/<defect> sorted
        truth[category] = sorted(views, key=lambda v: (v.defect != "OK", v.sample, v.name))
    return truth


@pytest.fixture
def tree(tmp_path):
    return tmp_path, build_tree(tmp_path, np.random.default_rng(20261128))


def run(*args):
    return cli.main(["evaluate", "--quiet", "--protocol", "real-iad", *map(str, args)])


def arrays(views):
    maps = np.stack([v.values for v in views])
    masks = np.stack([v.mask for v in views])
    scores = maps.reshape(len(maps), -1).max(axis=1).astype(np.float64)
    labels = masks.reshape(len(masks), -1).max(axis=1).astype(np.uint8)
    return maps, masks, scores, labels


def naive_samples(views, scores, labels):
    """Scores and labels per sample, grouped by the sample directory the test wrote (no regex)."""
    by = {}
    for v, s, y in zip(views, scores, labels):
        old = by.get(v.sample, (-math.inf, 0))
        by[v.sample] = (max(old[0], float(s)), max(old[1], int(y)))
    return np.array([s for s, _ in by.values()]), np.array([y for _, y in by.values()], np.uint8)


def expected(views, fpr_limit=0.3):
    maps, masks, scores, labels = arrays(views)
    s_scores, s_labels = naive_samples(views, scores, labels)
    return {
        "sample AUROC": F.auroc(s_scores, s_labels), "sample AP": F.average_precision(s_scores, s_labels),
        "image AUROC": F.auroc(scores, labels), "image AP": F.average_precision(scores, labels),
        "image F1-max": F.f1_max(scores, labels), "pixel AUROC": F.auroc(maps, masks),
        "pixel AP": F.average_precision(maps, masks), "pixel F1-max": F.f1_max(maps, masks),
        "AUPRO": F.aupro(maps, masks, fpr_limit=fpr_limit),
    }


class Case:
    """What the ADEval model reads: one level's scores and labels, and the maps and masks."""

    def __init__(self, scores, labels, maps=None, masks=None):
        self.scores, self.labels, self.maps, self.masks = scores, labels, maps, masks

    def image_level(self):
        return self.scores, self.labels


def adeval_expected(views, fpr_limit=0.3):
    maps, masks, scores, labels = arrays(views)
    s_scores, s_labels = naive_samples(views, scores, labels)
    sample, image = Case(s_scores, s_labels), Case(scores, labels, maps, masks)
    return {"sample AUROC (ADEval)": causes.adeval_model(sample, "image_auroc"),
            "sample AP (ADEval)": causes.adeval_model(sample, "image_ap"),
            "image AUROC (ADEval)": causes.adeval_model(image, "image_auroc"),
            "image AP (ADEval)": causes.adeval_model(image, "image_ap"),
            "pixel AUROC (ADEval)": causes.adeval_model(image, "pixel_auroc"),
            "pixel AP (ADEval)": causes.adeval_model(image, "pixel_ap"),
            "AUPRO (ADEval)": causes.adeval_model(image, "aupro", fpr_limit=0.3)}  # ADEval's own limit


def test_real_iad_tree_end_to_end(tree, capsys):
    root, truth = tree
    out = root / "out"
    assert run("--maps", root / "maps", "--gt", root / "gt", "--out", out) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert results["protocol"]["name"] == "real-iad" and list(results["categories"]) == list(SPEC)
    keys = [c["key"] for c in results["columns"]]
    assert keys[:4] == ["sample AUROC", "sample AUROC (ADEval)", "sample AP", "sample AP (ADEval)"]
    assert {c["level"] for c in results["columns"] if c["key"].startswith("sample")} == {"sample"}
    for category, views in truth.items():
        entry = results["categories"][category]
        got = entry["metrics"]
        exact = {k: v for k, v in got.items() if not k.endswith("(ADEval)")}
        assert exact == expected(views), category  # bit for bit: the same arrays give the same floats
        maps, masks, scores, labels = arrays(views)
        s_scores, s_labels = naive_samples(views, scores, labels)
        assert close(got["sample AUROC"], naive.auroc(s_scores, s_labels))
        assert close(got["sample AP"], naive.average_precision(s_scores, s_labels))
        assert close(got["image AUROC"], naive.auroc(scores, labels))
        assert close(got["image AP"], naive.average_precision(scores, labels))
        assert close(got["image F1-max"], naive.f1_adaptive(scores, labels)[1])
        assert close(got["pixel AUROC"], naive.auroc(maps, masks))
        assert close(got["pixel AP"], naive.average_precision(maps, masks))
        assert close(got["pixel F1-max"], naive.f1_adaptive(maps, masks)[1])
        assert close(got["AUPRO"], naive.aupro(maps, masks, 0.3))
        counts = entry["counts"]
        n_ng = sum(1 for state, _, _ in SPEC[category] if state == "NG")
        assert counts["samples"] == len(SPEC[category]) and counts["defective samples"] == n_ng
        # three views of each NG sample show a defect; the view of 100s and the view without a mask do not
        assert counts["images"] == VIEWS * len(SPEC[category]) and counts["defective images"] == 3 * n_ng
        assert counts["defect pixels"] == int(masks.sum())
        # per defect type: its views and every OK view, the same numbers as computed on that subset
        types = sorted({v.defect for v in views} - {"OK"})
        assert sorted(entry["defects"]) == types
        for defect in types:
            subset = [v for v in views if v.defect in ("OK", defect)]
            assert entry["defects"][defect]["metrics"] == dict(expected(subset), **adeval_expected(subset))
    assert "sample" in printed and "AUROC*" in printed and "masks binarised > 127" in printed
    assert results["settings"]["mask_threshold"] == "> 127"
    assert results["settings"]["sample_key"] == "_C[1-5](?:_[0-9]+)?$"
    md = (out / "results.md").read_text()
    assert "S-AUROC" in md and "S-AUROC ADEval (official)" in md and "| audiojack |" in md
    assert sorted(p.name for p in (out / "figures").iterdir()) == sorted(
        f"{c}_{k}.png" for c in SPEC for k in ("roc", "pr", "pro", "scores"))


def test_mask_threshold_is_above_127(tree):
    """A mask pixel of 100 is background, one of 128 a defect pixel (ADEval's ``> 127``)."""
    root, truth = tree
    view = next(v for v in truth["pcb"] if v.defect == "QS" and "_C3_" in v.name)  # a mask of 100s: clean
    path = root / "gt" / "pcb" / "NG" / "QS" / view.sample.split("/")[-1] / f"{view.name}.png"
    assert np.asarray(Image.open(path)).max() == 100
    out = root / "out"
    assert run("--maps", root / "maps", "--gt", root / "gt", "--out", out, "--no-figures",
               "--categories", "pcb") == 0
    before = json.loads((out / "results.json").read_text())["categories"]["pcb"]
    raw = np.asarray(Image.open(path)).copy()
    raw[raw == 100] = 128
    Image.fromarray(raw).save(path)
    assert run("--maps", root / "maps", "--gt", root / "gt", "--out", out, "--no-figures",
               "--categories", "pcb") == 0
    after = json.loads((out / "results.json").read_text())["categories"]["pcb"]
    assert after["counts"]["defective images"] == before["counts"]["defective images"] + 1
    assert after["counts"]["defect pixels"] == before["counts"]["defect pixels"] + int((raw == 128).sum())
    view.mask = raw > 127
    assert {k: v for k, v in after["metrics"].items() if not k.endswith("(ADEval)")} == expected(truth["pcb"])


def test_official_columns_are_adevals_convention(tree):
    root, truth = tree
    out = root / "out"
    assert run("--maps", root / "maps", "--gt", root / "gt", "--out", out, "--no-figures",
               "--fpr-limit", 0.2) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["adeval_nstrips"] == 1000
    for category, views in truth.items():
        got = results["categories"][category]["metrics"]
        want = adeval_expected(views, fpr_limit=0.2)
        assert all(isinstance(v, float) and not math.isnan(v) for v in want.values())
        assert {k: v for k, v in got.items() if k.endswith("(ADEval)")} == want
        assert got["AUPRO"] == F.aupro(*arrays(views)[:2], fpr_limit=0.2)
    # the binned convention differs from the exact value here (ADEval's PR curve has no recall-0 end)
    assert any(results["categories"][c]["metrics"]["sample AP (ADEval)"] != results["categories"][c]["metrics"]
               ["sample AP"] for c in truth)
    out2 = root / "out2"
    assert run("--maps", root / "maps", "--gt", root / "gt", "--out", out2, "--no-figures", "--no-official") == 0
    plain = json.loads((out2 / "results.json").read_text())
    assert not any(c["official"] for c in plain["columns"]) and len(plain["columns"]) == 9
    assert plain["categories"]["pcb"]["metrics"] == expected(truth["pcb"])


def test_official_columns_match_adeval_itself(tree):
    """The model reproduces ADEval's own routines (python -m adeval's) on this tree."""
    adeval = pytest.importorskip("adeval")
    pytest.importorskip("cv2")
    root, truth = tree
    out = root / "out"
    assert run("--maps", root / "maps", "--gt", root / "gt", "--out", out, "--no-figures") == 0
    got = json.loads((out / "results.json").read_text())["categories"]["audiojack"]["metrics"]
    maps, masks, scores, labels = arrays(truth["audiojack"])
    s_scores, s_labels = naive_samples(truth["audiojack"], scores, labels)
    restore = not hasattr(np, "trapz")
    if restore:  # ADEval 1.1.0 calls np.trapz, which NumPy 2.4 removed; np.trapezoid is the same function
        np.trapz = np.trapezoid
    try:
        s = adeval.auroc_and_aupr(s_scores, s_labels, nstrips=1000)
        i = adeval.auroc_and_aupr(scores, labels, nstrips=1000)
        p = adeval.auroc_aupr_aupro(list(maps), list(masks.astype(np.uint8) * 255))
    finally:
        if restore:
            del np.trapz
    want = dict(zip(["sample AUROC", "sample AP", "image AUROC", "image AP", "pixel AUROC", "pixel AP", "AUPRO"],
                    [*s, *i, *p]))
    for key, value in want.items():
        assert got[f"{key} (ADEval)"] == pytest.approx(value, abs=1e-12), key


def test_maps_resized_bilinearly_as_adeval(tmp_path):
    """Maps smaller than their masks are resized bilinearly with the edges clamped (OpenCV's INTER_LINEAR,
    which ADEval calls); image scores come from the maps as stored."""
    rng = np.random.default_rng(7)
    truth = build_tree(tmp_path, rng)
    views = truth["pcb"]
    small = []
    for v in views:
        path = next((tmp_path / "maps").glob(f"pcb/**/{v.name}.*"))
        values = rng.random((5, 6)).astype(np.float32)
        (np.save if path.suffix == ".npy" else tifffile.imwrite)(path, values)
        small.append(values)
    out = tmp_path / "out"
    assert run("--maps", tmp_path / "maps", "--gt", tmp_path / "gt", "--out", out, "--no-figures",
               "--categories", "pcb") == 0
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["resize"] == "bilinear" and results["settings"]["resize_mode"] == "edge"
    entry = results["categories"]["pcb"]
    assert any("resized to their masks' size" in n and "INTER_LINEAR" in n for n in entry["notes"])
    big = [resize(m.astype(np.float64), (H, W), order=1, mode="edge", preserve_range=True, anti_aliasing=False)
           for m in small]
    for v, m in zip(views, big):
        v.values = m
    want = expected(views)
    scores = np.array([m.max() for m in small], np.float64)  # image scores: the maps as stored
    labels = arrays(views)[3]
    s_scores, s_labels = naive_samples(views, scores, labels)
    want.update({"image AUROC": F.auroc(scores, labels), "image AP": F.average_precision(scores, labels),
                 "image F1-max": F.f1_max(scores, labels), "sample AUROC": F.auroc(s_scores, s_labels),
                 "sample AP": F.average_precision(s_scores, s_labels)})
    assert {k: v for k, v in entry["metrics"].items() if not k.endswith("(ADEval)")} == want
    cv2 = pytest.importorskip("cv2")
    for m, b in zip(small, big):  # OpenCV computes in float32: equal to its rounding
        assert np.abs(cv2.resize(m, (W, H), interpolation=cv2.INTER_LINEAR) - b).max() < 1e-6


def test_sample_key_custom_regex_and_its_errors(tmp_path, capsys):
    rng = np.random.default_rng(11)
    truth = build_tree(tmp_path, rng)
    # rename every map "<cat>_<id>_<state>_C<k>_<time>" -> "cam<k>-<cat>_<id>_<state>": the view first
    for path in sorted((tmp_path / "maps").rglob("*_C?_*.*")):
        stem = path.stem
        view = stem.split("_C")[-1].split("_")[0]
        sample = stem[:stem.index(f"_C{view}_")]
        path.rename(path.with_name(f"cam{view}-{sample}{path.suffix}"))
        for gt in (tmp_path / "gt").glob(f"*/**/{stem}.*"):
            gt.rename(gt.with_name(f"cam{view}-{sample}{gt.suffix}"))
    out = tmp_path / "out"
    base = ("--maps", tmp_path / "maps", "--gt", tmp_path / "gt", "--no-figures")
    rc = run(*base, "--out", out)
    err = capsys.readouterr().err
    assert rc == 2 and "--sample-key '_C[1-5](?:_[0-9]+)?$' does not match the file name 'cam1-" in err
    assert "OK/S0001/cam1-audiojack_0001_OK" in err and not out.exists()
    assert run(*base, "--out", out, "--sample-key", "^cam[1-5]-") == 0
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["sample_key"] == "^cam[1-5]-"
    for category, views in truth.items():
        views.sort(key=lambda v: (v.defect != "OK", v.sample, "cam" + v.name.split("_C")[-1]))
        got = results["categories"][category]["metrics"]
        assert {k: v for k, v in got.items() if not k.endswith("(ADEval)")} == expected(views)
        assert results["categories"][category]["counts"]["samples"] == len(SPEC[category])
    for bad, message in (("cam[", "--sample-key: expected a regular expression"),
                         ("^", "--sample-key '^' does not match"),
                         (".*", "matches the whole file name")):
        rc = run(*base, "--out", tmp_path / "never", "--sample-key", bad)
        err = capsys.readouterr().err
        assert rc == 2 and message in err, (bad, err)
    assert not (tmp_path / "never").exists()


def test_malformed_trees_name_the_file_and_write_nothing(tree, capsys):
    root, truth = tree
    out = root / "out"
    base = ("--maps", root / "maps", "--gt", root / "gt", "--out", out)

    def fails(*extra):
        rc = run(*base, *extra)
        err = capsys.readouterr().err
        assert rc == 2 and not out.exists(), err
        return err

    ng = root / "gt" / "pcb" / "NG" / "QS" / "S0003"
    mask = ng / "pcb_0003_NG_C1_20240101000000.png"
    mask.rename(mask.with_suffix(".bak"))  # neither its mask nor its image
    err = fails()
    assert f"{root / 'maps' / 'pcb' / 'NG' / 'QS' / 'S0003' / 'pcb_0003_NG_C1_20240101000000.npy'}" in err
    assert f"expected its mask {mask}" in err and "found neither" in err
    mask.with_suffix(".bak").rename(mask)

    ok_mask = root / "gt" / "pcb" / "OK" / "S0001" / "pcb_0001_OK_C2_20240101000000.png"
    Image.fromarray(np.full((H, W), 255, np.uint8)).save(ok_mask)  # a mask of an OK view must be empty
    err = fails()
    assert f"{ok_mask}: the mask of a good image holds {H * W} defect pixels" in err
    ok_mask.unlink()

    bad = root / "maps" / "audiojack" / "OK" / "S0001" / "audiojack_0001_OK_C3_20240101000000.npy"
    np.save(bad, np.ones((H, W, 3), np.float32))
    err = fails()
    assert f"{bad}: expected a single-channel 2-D anomaly map" in err
    np.save(bad, np.full((H, W), np.nan, np.float32))
    err = fails()
    assert f"{bad}: the anomaly map holds {H * W} NaN values" in err
    bad.unlink()
    jpg = bad.with_suffix(".jpg")
    Image.fromarray(np.zeros((H, W), np.uint8)).save(jpg)
    err = fails()
    assert f"{jpg}: unsupported map file type '.jpg'" in err
    jpg.unlink()

    err = fails("--categories", "nope")
    assert "--categories: no" in err and "nope" in err
    gt_pcb = root / "gt" / "pcb"
    gt_pcb.rename(root / "gt" / "pcb-moved")
    err = fails()
    assert f"--gt: no directory {gt_pcb} for category 'pcb'" in err
    (root / "gt" / "pcb-moved").rename(gt_pcb)
    err = fails("--manifest", root / "m.csv")
    assert "--protocol real-iad: takes --maps, --gt" in err
    rc = run("--maps", root / "gt" / "nowhere", "--gt", root / "gt", "--out", out)
    assert rc == 2 and "--maps:" in capsys.readouterr().err and not out.exists()
    assert run(*base, "--no-figures") == 0  # the tree restored evaluates


def test_demo(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["evaluate", "--protocol", "real-iad", "--demo", "--quiet", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Real-IAD" in printed and "plug" in printed and "nut" in printed
    results = json.loads((out / "results.json").read_text())
    assert list(results["categories"]) == ["nut", "plug"] and results["settings"]["resize"] == "bilinear"
    root = Path(str(resources.files("refmetrics").joinpath("data/demo/real-iad")))
    for category, entry in results["categories"].items():
        maps_dir = root / "maps" / category
        paths = sorted(maps_dir.rglob("*_C?_*.*"), key=lambda p: (p.parts[-3] != "OK", str(p)))
        views, stored = [], []
        for p in paths:
            values = np.load(p) if p.suffix == ".npy" else tifffile.imread(p)
            stored.append(values)
            rel = p.relative_to(maps_dir)
            mask_path = root / "gt" / category / rel.with_suffix(".png")
            mask = np.asarray(Image.open(mask_path)) > 127 if mask_path.is_file() else np.zeros((24, 24), bool)
            if values.shape != mask.shape:
                values = resize(values.astype(np.float64), mask.shape, order=1, mode="edge", preserve_range=True,
                                anti_aliasing=False)
            views.append(View(values, mask, str(rel.parent), rel.parts[1] if rel.parts[0] == "NG" else "OK",
                              p.name))
        want = expected(views)
        scores = np.array([s.max() for s in stored], np.float64)
        labels = arrays(views)[3]
        s_scores, s_labels = naive_samples(views, scores, labels)
        want.update({"image AUROC": F.auroc(scores, labels), "image AP": F.average_precision(scores, labels),
                     "image F1-max": F.f1_max(scores, labels), "sample AUROC": F.auroc(s_scores, s_labels),
                     "sample AP": F.average_precision(s_scores, s_labels)})
        assert {k: v for k, v in entry["metrics"].items() if not k.endswith("(ADEval)")} == want, category
        assert close(entry["metrics"]["sample AUROC"], naive.auroc(s_scores, s_labels))
        assert entry["counts"]["samples"] == 4 and entry["counts"]["defective samples"] == 2
        assert sorted(entry["defects"]) == ["AK", "HS"]



def write_split(root, truth, drop=()):
    """``root/jsons/<category>.json`` as the Real-IAD release writes them: a train list (ignored) and a test
    list of every view's image and mask (null for a view without one), relative to the category."""
    split = root / "jsons"
    split.mkdir(exist_ok=True)
    for category, views in truth.items():
        test = []
        for v in views:
            if v.name in drop:
                continue
            rel = v.sample.split("/", 1)[1]
            mask = root / "gt" / category / rel / f"{v.name}.png"
            test.append({"category": category, "anomaly_class": v.defect,
                         "image_path": f"{rel}/{v.name}.jpg",
                         "mask_path": f"{rel}/{v.name}.png" if mask.is_file() else None})
        doc = {"meta": {"prefix": "", "normal_class": "OK"},
               "train": [{"category": category, "anomaly_class": "OK", "image_path": "OK/S9999/x_C1.jpg",
                          "mask_path": None}], "test": test}
        (split / f"{category}.json").write_text(json.dumps(doc), encoding="utf-8")
    return split


def test_split_json_names_the_test_views(tree, capsys):
    root, truth = tree
    dropped = next(v for v in truth["pcb"] if v.defect == "OK").name  # a view the split does not list
    split = write_split(root, truth, drop={dropped})
    out = root / "out"
    assert run("--maps", root / "maps", "--gt", root / "gt", "--split-json", split, "--out", out,
               "--no-figures") == 0
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["split_json"] == str(split)
    pcb = [v for v in truth["pcb"] if v.name != dropped]
    for category, views in (("audiojack", truth["audiojack"]), ("pcb", pcb)):
        got = results["categories"][category]["metrics"]
        assert {k: v for k, v in got.items() if not k.endswith("(ADEval)")} == expected(views), category
        assert {k: v for k, v in got.items() if k.endswith("(ADEval)")} == adeval_expected(views), category
    assert any("1 map under" in n and "left out" in n for n in results["notes"])
    assert any("another number of views than the usual 5" in n for n in results["notes"])

    def fails(message, *extra):
        rc = run("--maps", root / "maps", "--gt", root / "gt", "--split-json", split, "--out", root / "never",
                 *extra)
        err = capsys.readouterr().err
        assert rc == 2 and message in err, err
        assert not (root / "never").exists()

    listed = next(v for v in truth["audiojack"] if v.defect == "HS")
    map_path = next((root / "maps" / "audiojack").rglob(f"{listed.name}.*"))
    map_path.rename(map_path.with_suffix(".bak"))
    fails(f"{split / 'audiojack.json'}: test image NG/HS/S0005/{listed.name}.jpg: missing map, expected "
          f"{map_path.with_suffix('')}")
    map_path.with_suffix(".bak").rename(map_path)
    (split / "pcb.json").write_text("{\"test\": [{\"mask_path\": 3}]}", encoding="utf-8")
    fails(f"{split / 'pcb.json'}: test entry 0: expected an object with \"image_path\"")
    (split / "pcb.json").write_text("not json", encoding="utf-8")
    fails(f"{split / 'pcb.json'}: could not read the split file")
    (split / "pcb.json").unlink()
    fails(f"--split-json: no split file {split / 'pcb.json'} for category 'pcb'")
