"""``refmetrics compare`` end to end: two methods' maps on one test set -> compare.json/.md/.tex.

Every number of compare.json is checked against a naive loop written here from the definition: the
resamples drawn as docs/definitions.md defines them (``numpy.random.default_rng(seed)``, all normal draws,
then all anomalous draws), each resample's images repeated by their multiplicities (``np.repeat``) and
measured by refmetrics' ordinary functions, the differences summarised by ``np.nanquantile`` and the
p-value formula, and Holm's correction done by hand.
"""

import csv
import json
import shutil
import warnings
import weakref
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

import refmetrics as rm
from refmetrics import cli
from refmetrics import functional as F
from refmetrics.evaluate import compare as compare_module
from refmetrics.functional._resample import (ImageResampler, PixelResampler, paired_p_value, percentile_interval,
                                             resample_counts)

from . import naive

H, W = 10, 12
METRICS = ("image AUROC", "image AP", "image F1-max", "pixel AUROC", "pixel AP", "pixel F1-max", "AUPRO")
PIXEL = {"pixel AUROC": F.auroc, "pixel AP": F.average_precision, "pixel F1-max": F.f1_max}
IMAGE = {"image AUROC": F.auroc, "image AP": F.average_precision, "image F1-max": F.f1_max}


# -- the naive side ------------------------------------------------------------------------------------


def load(maps_root, gt_root, category):
    """``(maps (N,H,W), masks (N,H,W) bool, labels)`` of one category, read in the MVTec layout's order
    (defect directories sorted, then names) without refmetrics' reader."""
    maps, masks, labels = [], [], []
    test = Path(maps_root) / category / "test"
    for defect in sorted(p.name for p in test.iterdir() if p.is_dir()):
        for path in sorted((test / defect).iterdir()):
            values = np.load(path) if path.suffix == ".npy" else tifffile.imread(path)
            maps.append(values)
            mask_path = Path(gt_root) / category / "ground_truth" / defect / f"{path.stem}_mask.png"
            mask = np.asarray(Image.open(mask_path)) > 0 if mask_path.is_file() else np.zeros(values.shape, bool)
            masks.append(mask)
            labels.append(int(defect != "good"))
    return np.stack(maps), np.stack(masks), np.array(labels, np.uint8)


def metrics_of(maps, masks, labels):
    """Every column of the mvtec-ad protocol, by refmetrics' ordinary functions."""
    scores = maps.reshape(len(maps), -1).max(axis=1).astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rm.UndefinedMetricWarning)
        out = {k: f(scores, labels) for k, f in IMAGE.items()}
        out.update({k: f(maps, masks) for k, f in PIXEL.items()})
        out["AUPRO"] = F.aupro(maps, masks, fpr_limit=0.3)
    return out


def p_value(d):
    d = d[~np.isnan(d)]
    return min(1.0, 2 * min(1 + int(np.sum(d <= 0)), 1 + int(np.sum(d >= 0))) / (d.size + 1))


def holm_by_hand(p):
    """Holm's adjusted p-values: for each p_i, the largest min(1, (m - rank_j) p_j) over the p_j <= p_i
    that come before it in the sorted order (rank from 0)."""
    m = len(p)
    order = sorted(range(m), key=lambda i: (p[i], i))
    out = [0.0] * m
    for position, i in enumerate(order):
        out[i] = max(min(1.0, (m - k) * p[order[k]]) for k in range(position + 1))
    return out


def naive_compare(root_a, root_b, gt, categories, n_resamples, seed, level):
    """``{category: {metric: (a, b, difference, low, high, p)}}``, the per-category replicate differences
    and the mean row, from the naive loop."""
    table, differences = {}, {}
    for category in categories:
        (maps_a, masks, labels), (maps_b, masks_b, labels_b) = load(root_a, gt, category), load(root_b, gt, category)
        assert np.array_equal(masks, masks_b) and np.array_equal(labels, labels_b)
        values = [metrics_of(maps_a, masks, labels), metrics_of(maps_b, masks, labels)]
        counts = naive.resample_counts(labels, n_resamples, seed, category)
        reps = {m: np.empty((2, n_resamples)) for m in METRICS}
        for b, w in enumerate(counts):
            for k, maps in enumerate((maps_a, maps_b)):
                got = metrics_of(np.repeat(maps, w, axis=0), np.repeat(masks, w, axis=0), np.repeat(labels, w))
                for m in METRICS:
                    reps[m][k, b] = got[m]
        table[category], differences[category] = {}, {}
        for m in METRICS:
            d = reps[m][0] - reps[m][1]
            low, high = np.nanquantile(d, [(1 - level) / 2, (1 + level) / 2])
            table[category][m] = (values[0][m], values[1][m], values[0][m] - values[1][m], low, high, p_value(d))
            differences[category][m] = d
    mean = {}
    for m in METRICS:
        d = np.mean([differences[c][m] for c in categories], axis=0)
        low, high = np.nanquantile(d, [(1 - level) / 2, (1 + level) / 2])
        mean[m] = tuple(float(np.mean([table[c][m][i] for c in categories])) for i in range(3)) + \
            (low, high, p_value(d))
    return table, mean


def eq(got, expected):
    """compare.json's number (None for NaN) is the naive float, bit for bit."""
    expected = float(expected)
    return got is None if np.isnan(expected) else got == expected


def check_json(result, table, mean, categories):
    """Every number of compare.json equals the naive loop's (bit for bit: the same arithmetic)."""
    assert list(result["categories"]) == list(categories)
    for m in METRICS:
        holm = holm_by_hand([table[c][m][5] for c in categories])
        for c, adjusted in zip(categories, holm):
            got = result["categories"][c]["metrics"][m]
            shown = (got["a"], got["b"], got["difference"], *got["interval"], got["p"], got["p_holm"])
            assert all(eq(g, e) for g, e in zip(shown, (*table[c][m], adjusted))), (c, m, shown, table[c][m])
        got = result["mean"]["metrics"][m]
        shown = (got["a"], got["b"], got["difference"], *got["interval"], got["p"])
        assert all(eq(g, e) for g, e in zip(shown, mean[m])), (m, shown, mean[m])
        assert "p_holm" not in got


# -- the trees -----------------------------------------------------------------------------------------


def build_pair(root, rng):
    """A test set of three categories (3 good and 3 defective images each) and two methods' maps of it:

    - ``dominated``: B finds every defect pixel above every background pixel (pixel AUROC 1), A has one
      background pixel above the defects in each defective image (pixel AUROC < 1 on every resample);
    - ``same``: B's maps are A's (every difference 0);
    - ``noisy``: B is A plus independent noise.
    A's maps are float32 TIFFs, B's .npy (a test image is named without its suffix).
    """
    for category in ("dominated", "noisy", "same"):
        for defect, count in (("crack", 3), ("good", 3)):
            a_dir, b_dir = (root / m / category / "test" / defect for m in ("a", "b"))
            a_dir.mkdir(parents=True)
            b_dir.mkdir(parents=True)
            for i in range(count):
                mask = np.zeros((H, W), bool)
                if defect == "crack":
                    y, x = rng.integers(0, H - 3), rng.integers(0, W - 4)
                    mask[y:y + 2, x:x + rng.integers(2, 4)] = True
                    g = root / "gt" / category / "ground_truth" / defect
                    g.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(mask.astype(np.uint8) * 255).save(g / f"{i:03d}_mask.png")
                a = (rng.standard_normal((H, W)) + 1.5 * mask + 5).astype(np.float32)
                if category == "dominated":
                    b = a.copy()
                    b[mask] = 200
                    if defect == "crack":
                        spot = np.argwhere(~mask)[rng.integers(0, (~mask).sum())]
                        a[tuple(spot)] = 100
                elif category == "same":
                    b = a.copy()
                else:
                    b = (a + rng.standard_normal((H, W)) * 0.7).astype(np.float32)
                tifffile.imwrite(a_dir / f"{i:03d}.tiff", a)
                np.save(b_dir / f"{i:03d}.npy", b.astype(np.float32))


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    build_pair(root, np.random.default_rng(20261128))
    return root


def run(*args):
    return cli.main(["compare", "--quiet", *map(str, args)])


def read_json(out):
    return json.loads((out / "compare.json").read_text(encoding="utf-8"))


# -- end to end ----------------------------------------------------------------------------------------


def test_compare_tree_every_number_against_the_naive_loop(pair, tmp_path, capsys):
    out = tmp_path / "out"
    assert run("--maps", pair / "a", "--maps", pair / "b", "--gt", pair / "gt", "--bootstrap", 30, "--seed", 7,
               "--level", 0.9, "--out", out) == 0
    result = read_json(out)
    categories = ("dominated", "noisy", "same")
    table, mean = naive_compare(pair / "a", pair / "b", pair / "gt", categories, 30, 7, 0.9)
    check_json(result, table, mean, categories)
    s = result["settings"]
    assert (s["names"], s["resamples"], s["seed"], s["level"], s["protocol"]) == (["a", "b"], 30, 7, 0.9, "mvtec-ad")
    assert s["maps_a"] == str(pair / "a") and s["maps_b"] == str(pair / "b") and s["gt"] == str(pair / "gt")
    assert s["method"] == compare_module.METHOD
    assert result["files"] == ["compare.json", "compare.md", "compare.tex"]
    assert sorted(p.name for p in out.iterdir()) == ["compare.json", "compare.md", "compare.tex"]
    # the known answers: B dominates on "dominated" (every difference < 0), "same" differs nowhere
    dominated = result["categories"]["dominated"]["metrics"]["pixel AUROC"]
    same = result["categories"]["same"]["metrics"]["pixel AUROC"]
    assert dominated["difference"] < 0 and dominated["interval"][1] < 0
    assert dominated["p"] == 2 / 31 and dominated["p_holm"] == 6 / 31  # the smallest of three: times 3
    assert same["difference"] == 0 and same["interval"] == [0.0, 0.0] and same["p"] == 1.0 and same["p_holm"] == 1.0
    md = (out / "compare.md").read_text(encoding="utf-8")
    assert "| category | a | b | a \\- b | 90% interval | p | p \\(Holm\\) |" in md
    row = dominated
    assert (f"| dominated | {row['a']:.4f} | {row['b']:.4f} | {row['difference']:.4f} | "
            f"[{row['interval'][0]:.4f}, {row['interval'][1]:.4f}] | {row['p']:.4f} | {row['p_holm']:.4f} |") in md
    tex = (out / "compare.tex").read_text(encoding="utf-8")
    assert tex.count(r"\begin{tabular}") == len(METRICS)
    assert r"Category & a & b & a $-$ b & 90\% interval & p & p (Holm) \\" in tex
    assert (f"dominated & {row['a']:.4f} & {row['b']:.4f} & $-${-row['difference']:.4f} & "
            f"[$-${-row['interval'][0]:.4f}, $-${-row['interval'][1]:.4f}] & ") in tex
    printed = capsys.readouterr().out
    assert "a vs b" in printed and "wrote 3 files" in printed


def test_compare_manifests_give_the_same_numbers(pair, tmp_path):
    """Two manifests of the same test set: the numbers of the two trees, bit for bit."""
    manifests = []
    for method in ("a", "b"):
        path = tmp_path / f"{method}.csv"
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["map", "mask", "category", "defect"])
            for category in ("dominated", "noisy", "same"):
                test = pair / method / category / "test"
                for defect in ("crack", "good"):
                    for p in sorted((test / defect).iterdir()):
                        mask = pair / "gt" / category / "ground_truth" / defect / f"{p.stem}_mask.png"
                        writer.writerow([p, mask if mask.is_file() else "", category, defect])
        manifests.append(path)
    assert run("--maps", pair / "a", "--maps", pair / "b", "--gt", pair / "gt", "--bootstrap", 12,
               "--out", tmp_path / "trees") == 0
    assert run("--manifest", manifests[0], "--manifest", manifests[1], "--bootstrap", 12, "--names", "A", "B",
               "--out", tmp_path / "manifests") == 0
    trees, listed = read_json(tmp_path / "trees"), read_json(tmp_path / "manifests")
    assert listed["categories"] == trees["categories"] and listed["mean"] == trees["mean"]
    assert listed["settings"]["manifest_a"] == str(manifests[0]) and listed["settings"]["names"] == ["A", "B"]


def test_compare_demo_against_the_naive_loop(tmp_path, capsys):
    out = tmp_path / "demo"
    assert run("--demo", "--bootstrap", 20, "--out", out) == 0
    result = read_json(out)
    root = Path(str(resources.files("refmetrics").joinpath("data/demo/compare")))
    categories = ("disc", "stripe")
    table, mean = naive_compare(root / "maps_a", root / "maps_b", root / "gt", categories, 20, 0, 0.95)
    check_json(result, table, mean, categories)
    assert result["settings"]["names"] == ["A", "B"]
    assert result["settings"]["dataset"] == "refmetrics demo of compare (bundled)"


def test_compare_demo_shows_a_significant_and_an_insignificant_difference(tmp_path):
    """The demo's point, at the default 1000 resamples: B is better on disc, not on stripe."""
    out = tmp_path / "demo"
    assert run("--demo", "--out", out) == 0
    metrics = {c: v["metrics"] for c, v in read_json(out)["categories"].items()}
    assert any(m["p_holm"] < 0.05 and m["difference"] < 0 for m in metrics["disc"].values())
    assert all(m["p_holm"] > 0.05 for m in metrics["stripe"].values())


def test_compare_demo_default_out(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run("--demo", "--bootstrap", 10) == 0
    assert (tmp_path / "refmetrics-compare-demo" / "compare.json").is_file()


def test_compare_holds_at_most_two_states(pair, tmp_path, monkeypatch):
    """Streaming: one category's two states at a time, never more."""
    alive, peak = weakref.WeakSet(), [0]

    class Counted(compare_module.GroupState):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            alive.add(self)
            peak[0] = max(peak[0], len(alive))

    monkeypatch.setattr(compare_module, "GroupState", Counted)
    assert run("--maps", pair / "a", "--maps", pair / "b", "--gt", pair / "gt", "--bootstrap", 10,
               "--out", tmp_path / "out") == 0
    assert peak[0] == 2


def test_holm_known_answers():
    assert compare_module.holm([0.01, 0.04, 0.03]).tolist() == [0.03, 0.06, 0.06]
    assert compare_module.holm([0.01, 0.04, 0.03]).tolist() == holm_by_hand([0.01, 0.04, 0.03])
    assert compare_module.holm([0.01, 0.02, 0.025]).tolist() == [0.03, 0.04, 0.04]  # monotone: not 0.025
    assert compare_module.holm([0.9, 0.4, 0.6]).tolist() == [1.0, 1.0, 1.0]  # capped at 1
    got = compare_module.holm([0.02, float("nan"), 0.01])
    assert got[0] == 0.02 and np.isnan(got[1]) and got[2] == 0.02  # NaN does not count in m
    rng = np.random.default_rng(20261128)
    for _ in range(20):
        p = rng.uniform(0, 0.2, rng.integers(1, 8)).round(3).tolist()
        assert compare_module.holm(p).tolist() == holm_by_hand(p)


# -- mismatched datasets -------------------------------------------------------------------------------


def copy_pair(pair, tmp_path):
    root = tmp_path / "pair"
    shutil.copytree(pair, root)
    return root


def refused(capsys, out, *args):
    assert run(*args, "--out", out) == 2
    assert not out.exists()  # nothing written
    return capsys.readouterr().err


def test_compare_missing_image(pair, tmp_path, capsys):
    root = copy_pair(pair, tmp_path)
    (root / "b" / "noisy" / "test" / "good" / "001.npy").unlink()
    err = refused(capsys, tmp_path / "out", "--maps", root / "a", "--maps", root / "b", "--gt", root / "gt")
    assert f"--maps {root / 'b'}: no map for the test image noisy/test/good/001 of category 'noisy'" in err
    assert str(root / "a" / "noisy" / "test" / "good" / "001.tiff") in err


def test_compare_extra_image(pair, tmp_path, capsys):
    root = copy_pair(pair, tmp_path)
    shutil.copy(root / "b" / "same" / "test" / "good" / "000.npy", root / "b" / "same" / "test" / "good" / "007.npy")
    err = refused(capsys, tmp_path / "out", "--maps", root / "a", "--maps", root / "b", "--gt", root / "gt")
    assert f"{root / 'b' / 'same' / 'test' / 'good' / '007.npy'}: a test image (same/test/good/007) that --maps " \
           f"{root / 'a'} does not have" in err


def test_compare_other_categories(pair, tmp_path, capsys):
    root = copy_pair(pair, tmp_path)
    shutil.rmtree(root / "b" / "same")
    err = refused(capsys, tmp_path / "out", "--maps", root / "a", "--maps", root / "b", "--gt", root / "gt")
    assert f"--maps {root / 'b'}: categories dominated, noisy; expected dominated, noisy, same as in --maps " \
           f"{root / 'a'}" in err


def test_compare_map_size_differs(pair, tmp_path, capsys):
    root = copy_pair(pair, tmp_path)
    np.save(root / "b" / "noisy" / "test" / "good" / "000.npy", np.zeros((H, W + 1), np.float32))
    err = refused(capsys, tmp_path / "out", "--maps", root / "a", "--maps", root / "b", "--gt", root / "gt")
    assert str(root / "b" / "noisy" / "test" / "good" / "000.npy") in err and f"{H}x{W + 1}" in err


def write_manifest(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["map", "mask", "label"])
        writer.writerows(rows)


def test_compare_manifests_that_differ(pair, tmp_path, capsys):
    a, b = pair / "a" / "noisy" / "test", pair / "b" / "noisy" / "test"
    mask = pair / "gt" / "noisy" / "ground_truth" / "crack"
    rows_a = [(a / "crack" / "000.tiff", mask / "000_mask.png", 1), (a / "good" / "000.tiff", "", 0),
              (a / "good" / "001.tiff", "", 0)]
    write_manifest(tmp_path / "a.csv", rows_a)
    # another mask for the same image
    write_manifest(tmp_path / "b.csv", [(b / "crack" / "000.npy", mask / "001_mask.png", 1), *[
        (b / "good" / f"{i:03d}.npy", "", 0) for i in range(2)]])
    err = refused(capsys, tmp_path / "out", "--manifest", tmp_path / "a.csv", "--manifest", tmp_path / "b.csv")
    assert f"--manifest {tmp_path / 'b.csv'}: {b / 'crack' / '000.npy'}: ground truth " \
           f"{(mask / '001_mask.png').resolve()}; expected {(mask / '000_mask.png').resolve()}" in err
    # another order
    write_manifest(tmp_path / "b.csv", [(b / "crack" / "000.npy", mask / "000_mask.png", 1), *[
        (b / "good" / f"{i:03d}.npy", "", 0) for i in (1, 0)]])
    err = refused(capsys, tmp_path / "out", "--manifest", tmp_path / "a.csv", "--manifest", tmp_path / "b.csv")
    assert f"{b / 'good' / '001.npy'}: test image 2 is 001; expected 000 ({a / 'good' / '000.tiff'} in --manifest " \
           f"{tmp_path / 'a.csv'}): the images must come in the same order" in err
    # another label
    write_manifest(tmp_path / "b.csv", [(b / "crack" / "000.npy", mask / "000_mask.png", 1),
                                        (b / "good" / "000.npy", "", 1), (b / "good" / "001.npy", "", 0)])
    err = refused(capsys, tmp_path / "out", "--manifest", tmp_path / "a.csv", "--manifest", tmp_path / "b.csv")
    assert f"{b / 'good' / '000.npy'}: label defective; expected good" in err


# -- bad flags -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (("--maps", "A"), "--maps: expected two (method A's, then B's) with one --gt, or --demo; received 1"),
    (("--maps", "A", "--maps", "B"), "--gt: expected the test set's ground-truth tree"),
    ((), "--maps: expected two (method A's, then B's) with one --gt, or --demo; received 0"),
    (("--manifest", "a.csv"), "--manifest: expected two (method A's, then B's), received 1"),
    (("--manifest", "a.csv", "--manifest", "b.csv", "--maps", "A"), "--manifest: give either two --manifest"),
    (("--demo", "--maps", "A"), "--demo compares the two bundled methods: leave out --maps"),
    (("--demo", "--protocol", "visa"), "--protocol: the compare demo is laid out for mvtec-ad, received 'visa'"),
    (("--protocol", "visa", "--maps", "A", "--maps", "B", "--gt", "G"),
     "--protocol: compare reads datasets named by --maps and --gt (or --manifest), expected one of mvtec-ad, "
     "mvtec-ad-2, mvtec-loco, mvtec-3d-ad, real-iad, ader; received 'visa', whose test set is named by --split-csv"),
    (("--protocol", "nope"), "--protocol: expected one of"),
    (("--protocol", "mvtec-3d-ad", "--manifest", "a.csv", "--manifest", "b.csv"),
     "--manifest: --protocol mvtec-3d-ad reads --maps and --gt only"),
    (("--demo", "--names", "x", "x"), "--names: expected two different non-empty names, received 'x' 'x'"),
    (("--demo", "--top-k", "0.1"), "--top-k: applies to the top_k_mean image score"),
])
def test_compare_bad_flags(tmp_path, capsys, args, message):
    assert run(*args, "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err.startswith("refmetrics compare: ") and message in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flag, value, message", [
    ("--bootstrap", "0", "--bootstrap: expected a whole number of resamples of at least 10, received 0"),
    ("--bootstrap", "x", "--bootstrap: expected a whole number, received 'x'"),
    ("--seed", "-1", "--seed: expected a whole number of at least 0, received -1"),
    ("--level", "1", "--level: expected a number strictly between 0 and 1 (0.95 for 95%), received 1.0"),
    ("--level", "x", "--level: expected a number strictly between 0 and 1, received 'x'"),
])
def test_compare_bad_numbers(tmp_path, capsys, flag, value, message):
    # the same checks and messages as evaluate --ci's
    assert run("--demo", flag, value, "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err.startswith("refmetrics compare: ") and message in err, err
    assert not (tmp_path / "out").exists()


def test_compare_missing_maps_dir(pair, tmp_path, capsys):
    err = refused(capsys, tmp_path / "out", "--maps", pair / "a", "--maps", tmp_path / "nowhere", "--gt", pair / "gt")
    assert f"--maps: {tmp_path / 'nowhere'} is not a directory" in err


def test_compare_values_are_evaluates(pair, tmp_path):
    """Each method's values are what ``refmetrics evaluate`` reports for its maps, bit for bit."""
    assert run("--maps", pair / "a", "--maps", pair / "b", "--gt", pair / "gt", "--bootstrap", 10,
               "--out", tmp_path / "cmp") == 0
    compared = read_json(tmp_path / "cmp")
    for method, side in (("a", "a"), ("b", "b")):
        assert cli.main(["evaluate", "--quiet", "--no-figures", "--no-per-defect", "--maps", str(pair / method),
                         "--gt", str(pair / "gt"), "--out", str(tmp_path / method)]) == 0
        evaluated = json.loads((tmp_path / method / "results.json").read_text(encoding="utf-8"))
        for category, entry in evaluated["categories"].items():
            for m, value in entry["metrics"].items():
                assert compared["categories"][category]["metrics"][m][side] == value, (method, category, m)
            assert compared["categories"][category]["counts"] == entry["counts"]


def test_compare_checks_the_protocols_resamples(pair, tmp_path, monkeypatch):
    """A protocol whose resamples do not reproduce its own value on the test set itself (row 0: every image
    once) gets no interval for that column, and a note says so."""
    from refmetrics.evaluate.protocols import mvtec_ad

    original = mvtec_ad.MVTecAD.replicates

    def off(self, state, options, context, counts):
        out = dict(original(self, state, options, context, counts))
        out["image AP"] = out["image AP"] * 0.5
        return out

    monkeypatch.setattr(mvtec_ad.MVTecAD, "replicates", off, raising=False)
    assert run("--maps", pair / "a", "--maps", pair / "b", "--gt", pair / "gt", "--bootstrap", 10,
               "--out", tmp_path / "out") == 0
    result = read_json(tmp_path / "out")
    for category, entry in result["categories"].items():
        assert "interval" not in entry["metrics"]["image AP"] and "interval" in entry["metrics"]["image AUROC"]
        assert any(n.startswith("image AP: a's resampling gives") for n in entry["notes"]), entry["notes"]
    assert "interval" not in result["mean"]["metrics"]["image AP"]
    assert [c["paired"] for c in result["columns"] if c["key"] == "image AP"] == [False]


def test_compare_demo_tree_is_what_tools_generates(tmp_path):
    """tools/make_demo_data.py compare regenerates the bundled demo byte for byte (a deterministic seed)."""
    import importlib
    import sys

    tools = Path(__file__).resolve().parents[1] / "tools"
    sys.path.insert(0, str(tools))
    try:
        make = importlib.import_module("make_demo_data")
        importlib.import_module(f"demos.{make.DEMOS['compare']}").main(tmp_path / "compare")
    finally:
        sys.path.remove(str(tools))
    with resources.as_file(compare_module.demo_root()) as bundled:
        want = {p.relative_to(bundled): p.read_bytes() for p in sorted(bundled.rglob("*")) if p.is_file()}
    got = {p.relative_to(tmp_path / "compare"): p.read_bytes() for p in sorted((tmp_path / "compare").rglob("*"))
           if p.is_file()}
    assert got.keys() == want.keys() and all(got[k] == want[k] for k in want)
    assert sum(len(v) for v in want.values()) < 100_000


def test_compare_demo_is_bootstrap_test_per_category(tmp_path):
    """Per category, compare's numbers are :func:`refmetrics.functional.bootstrap_test`'s on the same arrays
    (the public paired bootstrap: the same resamples, the same replicates)."""
    out = tmp_path / "demo"
    assert run("--demo", "--bootstrap", 40, "--seed", 3, "--level", 0.8, "--out", out) == 0
    result = read_json(out)
    root = Path(str(resources.files("refmetrics").joinpath("data/demo/compare")))
    names = {**{k: ("image", f) for k, f in zip(IMAGE, ("auroc", "average_precision", "f1_max"))},
             **{k: ("pixel", f) for k, f in zip(PIXEL, ("auroc", "average_precision", "f1_max"))},
             "AUPRO": ("pixel", "aupro")}
    for category in ("disc", "stripe"):
        (maps_a, masks, labels), (maps_b, _, _) = load(root / "maps_a", root / "gt", category), \
            load(root / "maps_b", root / "gt", category)
        for key, (level, metric) in names.items():
            if level == "image":
                args = (maps_a.reshape(len(maps_a), -1).max(axis=1).astype(np.float64),
                        maps_b.reshape(len(maps_b), -1).max(axis=1).astype(np.float64), labels)
            else:
                args = (maps_a, maps_b, masks)
            t = F.bootstrap_test(*args, metric=metric, n_resamples=40, seed=3, level=0.8)
            got = result["categories"][category]["metrics"][key]
            assert (got["a"], got["b"], got["difference"]) == (t.value_a, t.value_b, t.difference), (category, key)
            # the resamples: the category's own stream (bootstrap_test draws from the seed alone)
            w = resample_counts(labels, 40, 3, stream=category)
            make = (lambda p: ImageResampler(p, labels)) if level == "image" else \
                (lambda p: PixelResampler.from_maps(p, masks))
            d = make(args[0]).replicates(w, metric) - make(args[1]).replicates(w, metric)
            assert (*got["interval"], got["p"]) == (*percentile_interval(d, 0.8), paired_p_value(d)), (category, key)


@pytest.mark.parametrize("protocol", ["mvtec-ad-2", "mvtec-loco", "mvtec-3d-ad", "real-iad", "ader"])
def test_compare_other_protocols_on_their_demo(protocol, tmp_path):
    """Every protocol whose dataset is --maps/--gt: on its demo tree against itself, each value is
    ``evaluate``'s (without the official columns) and every paired difference is 0 with p = 1."""
    from refmetrics.evaluate import get_protocol

    with resources.as_file(get_protocol(protocol).demo_root()) as demo:
        demo = Path(demo)
        assert run("--protocol", protocol, "--maps", demo / "maps", "--maps", demo / "maps", "--gt", demo / "gt",
                   "--bootstrap", 10, "--out", tmp_path / "cmp") == 0
    assert cli.main(["evaluate", "--quiet", "--protocol", protocol, "--demo", "--no-official", "--no-per-defect",
                     "--no-figures", "--out", str(tmp_path / "ev")]) == 0
    compared = read_json(tmp_path / "cmp")
    evaluated = json.loads((tmp_path / "ev" / "results.json").read_text(encoding="utf-8"))
    assert list(compared["categories"]) == list(evaluated["categories"])
    assert [c["key"] for c in compared["columns"]] == [c["key"] for c in evaluated["columns"]]
    paired = 0
    for category, entry in evaluated["categories"].items():
        for key, value in entry["metrics"].items():
            got = compared["categories"][category]["metrics"][key]
            assert got["a"] == value and got["b"] == value, (category, key)
            if "interval" in got:
                paired += 1
                assert got["interval"] == [0.0, 0.0] and got["p"] == 1.0 and got["p_holm"] == 1.0
    # Real-IAD's columns are sample-level, MVTec LOCO's image AUROC the mean of its subsets': the default
    # replicates do not cover them (LOCO's "image AUROC" fails the check row, and a note says so)
    assert paired or protocol in ("real-iad", "mvtec-loco")
    for category, entry in compared["categories"].items():
        for key, got in entry["metrics"].items():
            if "interval" not in got and key == "image AUROC":
                assert any(n.startswith("image AUROC: A's resampling gives") for n in entry["notes"])


def test_compare_undefined_category(tmp_path):
    """A category without a defective image: every value, interval and p-value null, the mean's too, a note
    per metric said once for both methods, and the other category's Holm-adjusted p-values count it not."""
    root = tmp_path / "tree"
    shutil.copytree(compare_module.demo_root(), root)
    for method in ("maps_a", "maps_b"):
        for defect in ("scratch", "blob"):
            shutil.rmtree(root / method / "stripe" / "test" / defect)
    shutil.rmtree(root / "gt" / "stripe")
    assert run("--maps", root / "maps_a", "--maps", root / "maps_b", "--gt", root / "gt", "--bootstrap", 10,
               "--out", tmp_path / "out") == 0
    result = read_json(tmp_path / "out")
    stripe, disc = result["categories"]["stripe"], result["categories"]["disc"]
    for m in METRICS:
        assert stripe["metrics"][m] == {"a": None, "b": None, "difference": None, "interval": [None, None],
                                        "p": None, "resamples_defined": 0, "p_holm": None}
        assert result["mean"]["metrics"][m]["a"] is None and result["mean"]["metrics"][m]["p"] is None
        assert disc["metrics"][m]["p_holm"] == disc["metrics"][m]["p"]  # m = 1: the defined category alone
    assert len(stripe["notes"]) == len(METRICS) and stripe["notes"][0].startswith("image AUROC: AUROC is undefined")
    assert result["mean"]["notes"] == []


def test_compare_manifests_of_other_lengths(pair, tmp_path, capsys):
    a, b = pair / "a" / "noisy" / "test", pair / "b" / "noisy" / "test"
    write_manifest(tmp_path / "a.csv", [(a / "good" / f"{i:03d}.tiff", "", 0) for i in range(3)])
    write_manifest(tmp_path / "b.csv", [(b / "good" / f"{i:03d}.npy", "", 0) for i in range(2)])
    err = refused(capsys, tmp_path / "out", "--manifest", tmp_path / "a.csv", "--manifest", tmp_path / "b.csv")
    assert f"--manifest {tmp_path / 'b.csv'}: 2 test images in category 'all'; expected 3 as in --manifest " \
           f"{tmp_path / 'a.csv'}" in err
