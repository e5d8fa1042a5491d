"""``refmetrics evaluate --ci``: every interval against a naive loop over the resamples.

The oracle draws the resamples itself, from the definition (``numpy.random.default_rng(seed)``: all the
normal images' draws, then all the anomalous images'), repeats each group's maps, masks and image scores
by the multiplicities (``np.repeat``), calls refmetrics' ordinary functions on each resample and takes
``numpy.nanquantile`` of the values; the run's intervals must be the same floats.
"""

import importlib
import importlib.util
import json
import math
import warnings

import numpy as np
import pytest

import refmetrics as rm
from refmetrics import cli
from refmetrics import functional as F
from refmetrics.evaluate.options import Options
from refmetrics.evaluate.protocols import get as get_protocol
from refmetrics.evaluate.state import GroupState

from . import naive

run_module = importlib.import_module("refmetrics.evaluate.run")  # the module (the package exports run())

B = 40
SEED = 20261128
LEVEL = 0.9


def run(*args):
    return cli.main(["evaluate", "--quiet", *map(str, args)])


def interval(values, level=LEVEL):
    values = np.asarray(values, np.float64)
    if np.isnan(values).all():
        return None
    low, high = np.nanquantile(values, [(1 - level) / 2, (1 + level) / 2])
    return [float(low), float(high)]


class Keep:
    """An accumulator keeping every image as read (the oracle's input)."""

    def __init__(self, samples, options):
        self.maps, self.masks, self.truth = [], [], []

    def add(self, image):
        self.truth.append(image.truth or [])  # MVTec LOCO's defects
        self.maps.append(np.asarray(image.values, np.float64))
        self.masks.append(image.mask if image.mask is not None else np.zeros(image.values.shape, bool))


def groups_of(name, per_defect=True, **extra):
    """``{category: {group name: (maps, masks, scores, labels, context)}}`` of the protocol's demo, each
    group read by the run's own reader and streaming state (the input side, not the metrics); ``context``:
    the protocol's, with each image's ``defects`` (type), ``groups`` (multi-view sample key) and ``truth``
    (MVTec LOCO's defect list)."""
    from importlib import resources

    protocol = get_protocol(name)
    options = Options(**extra)
    options.connectivity = 2
    with resources.as_file(protocol.demo_root()) as demo:
        from pathlib import Path

        for key, value in protocol.demo_options(Path(demo)).items():
            setattr(options, key, value)
        dataset = protocol.read(options)
        run_module.check_headers(dataset.samples, options.resize)
        for group in dataset.validation.values():
            run_module.check_headers(group, options.resize)
        out = {}
        for category, samples in run_module.by_category(dataset.samples).items():
            context = protocol.prepare(dataset, category, options)
            groups = {category: samples}
            if per_defect:
                groups.update(run_module.defect_groups(samples))
            out[category] = {}
            for gname, group in groups.items():
                state = GroupState(group, options, {"keep": Keep}, protocol.score_rule(options))
                for s in group:
                    state.add(s)
                scores, labels = state["images"].arrays()
                keep = state["keep"]
                context = dict(context, defects=np.array(state["images"].defects, dtype=object),
                               groups=np.array(state["images"].groups, dtype=object), truth=keep.truth)
                out[category][gname] = (np.array(keep.maps), np.array(keep.masks), scores, labels, context)
    return out


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rm.UndefinedMetricWarning)
        return fn(*args, **kwargs)


def stream(category, gname):
    """The name a group's resamples are drawn under: the category, or ``category/defect type``."""
    return category if gname == category else f"{category}/{gname}"


def naive_replicates(group, metrics, name, n_resamples=B, seed=SEED, by_sample=False):
    """``{key: (B,) values}``: ``metrics[key](maps, masks, scores, labels, context)`` on each resample of the
    group drawn under ``name``; ``by_sample`` (Real-IAD): the samples are drawn (stratified by their labels,
    the maximum over their views) and each view enters as often as its sample."""
    maps, masks, scores, labels, context = group
    if by_sample:
        keys = list(dict.fromkeys(context["groups"]))
        unit_of = np.array([keys.index(k) for k in context["groups"]])
        sample_labels = np.array([max(labels[unit_of == u]) for u in range(len(keys))])
        W = naive.resample_counts(sample_labels, n_resamples, seed, name)[:, unit_of]
    else:
        W = naive.resample_counts(labels, n_resamples, seed, name)
    out = {key: np.empty(n_resamples) for key in metrics}
    for b, w in enumerate(W):
        data = (np.repeat(maps, w, axis=0), np.repeat(masks, w, axis=0), np.repeat(scores, w),
                np.repeat(labels, w), dict(context, defects=np.repeat(context["defects"], w),
                                           groups=np.repeat(context["groups"], w),
                                           truth=[context["truth"][i] for i in np.repeat(np.arange(w.size), w)]))
        for key, metric in metrics.items():
            out[key][b] = quiet(metric, *data)
    return out


def image_metrics():
    return {"image AUROC": lambda m, k, s, y, c: F.auroc(s, y),
            "image AP": lambda m, k, s, y, c: F.average_precision(s, y),
            "image F1-max": lambda m, k, s, y, c: F.f1_max(s, y)}


def pixel_metrics(limit=0.3, aupro_key="AUPRO"):
    return {"pixel AUROC": lambda m, k, s, y, c: F.auroc(m, k),
            "pixel AP": lambda m, k, s, y, c: F.average_precision(m, k),
            "pixel F1-max": lambda m, k, s, y, c: F.f1_max(m, k),
            aupro_key: lambda m, k, s, y, c: F.aupro(m, k, fpr_limit=limit, connectivity=2)}


def check_intervals(results, groups, metrics, expect_none=(), by_sample=False):
    """Every interval of ``results`` (categories, defect types, the mean) against the naive loop."""
    reps = {}
    for category, by_group in groups.items():
        entry = results["categories"][category]
        for gname, group in by_group.items():
            block = entry if gname == category else entry["defects"][gname]
            looped = naive_replicates(group, {k: f for k, f in metrics.items() if k in block["metrics"]},
                                      stream(category, gname), by_sample=by_sample)
            if gname == category:
                reps[category] = looped
            for key, values in looped.items():
                expected = interval(values) if block["metrics"][key] is not None else None
                assert block["intervals"][key] == expected, (category, gname, key)
            for key in expect_none:
                if key in block["intervals"]:
                    assert block["intervals"][key] is None, (category, gname, key)
    for key in metrics:
        if key not in results["mean"]:
            continue
        per_b = [float(np.mean([reps[c][key][b] for c in groups])) for b in range(B)]
        expected = interval(per_b) if results["mean"][key] is not None else None
        assert results["mean_intervals"][key] == expected, key
        assert results["mean"][key] == float(np.mean([results["categories"][c]["metrics"][key] for c in groups]))


def ci_run(tmp_path, protocol, *args, seed=SEED, out="out"):
    assert run("--protocol", protocol, "--demo", "--ci", "--bootstrap", B, "--seed", seed, "--level", LEVEL,
               "--out", tmp_path / out, *args) == 0
    return json.loads((tmp_path / out / "results.json").read_text())


# -- mvtec-ad: every column, every group, the mean -------------------------------------------------------

def test_mvtec_ad_intervals_equal_the_naive_loop(tmp_path):
    results = ci_run(tmp_path, "mvtec-ad", "--no-figures")
    assert results["schema"] == 3
    assert results["settings"]["ci"]["method"] == "stratified image bootstrap, percentile"
    assert {k: results["settings"]["ci"][k] for k in ("resamples", "seed", "level")} == \
        {"resamples": B, "seed": SEED, "level": LEVEL}
    groups = groups_of("mvtec-ad")
    assert sum(len(g) for g in groups.values()) > len(groups)  # per-defect groups are checked too
    check_intervals(results, groups, {**image_metrics(), **pixel_metrics()})
    # the tables: value +- half the interval's width, at the value's precision
    md = (tmp_path / "out" / "results.md").read_text()
    tex = (tmp_path / "out" / "results.tex").read_text()
    for entry in results["categories"].values():
        for key in ("image AUROC", "pixel AUROC", "AUPRO"):
            low, high = entry["intervals"][key]
            assert f"{entry['metrics'][key]:.4f} \u00b1{(high - low) / 2:.4f}" in md
            assert f"{entry['metrics'][key]:.4f}{{\\scriptsize$\\pm${(high - low) / 2:.4f}}}" in tex
    assert "90% percentile interval of a stratified image bootstrap, 40 resamples" in md


def test_mvtec_ad_reproducible_and_seeded(tmp_path):
    a = ci_run(tmp_path, "mvtec-ad", "--no-figures", "--no-per-defect", "--categories", "stripe", out="a")
    b = ci_run(tmp_path, "mvtec-ad", "--no-figures", "--no-per-defect", "--categories", "stripe", out="b")
    c = ci_run(tmp_path, "mvtec-ad", "--no-figures", "--no-per-defect", "--categories", "stripe", seed=SEED + 1,
               out="c")
    assert a["categories"] == b["categories"] and a["mean_intervals"] == b["mean_intervals"]
    assert a["categories"]["stripe"]["metrics"] == c["categories"]["stripe"]["metrics"]
    ia, ic = a["categories"]["stripe"]["intervals"], c["categories"]["stripe"]["intervals"]
    assert ia != ic and ia["pixel AUROC"] != ic["pixel AUROC"]
    # each category draws its own resamples: its intervals do not depend on the other categories of the run
    d = ci_run(tmp_path, "mvtec-ad", "--no-figures", "--no-per-defect", out="d")
    assert set(d["categories"]) == {"disc", "stripe"} and d["categories"]["stripe"] == a["categories"]["stripe"]


def test_without_ci_nothing_changes_but_the_schema(tmp_path):
    assert run("--demo", "--no-figures", "--out", tmp_path / "plain") == 0
    plain = json.loads((tmp_path / "plain" / "results.json").read_text())
    assert "mean_intervals" not in plain and plain["settings"]["ci"] is None
    assert all("intervals" not in e for e in plain["categories"].values())
    assert "\u00b1" not in (tmp_path / "plain" / "results.md").read_text()


def test_roc_band_equals_the_naive_loop():
    rng = np.random.default_rng(20261128)
    scores = np.round(rng.standard_normal(30), 1)  # ties
    labels = (rng.random(30) < 0.4).astype(np.uint8)
    W = naive.resample_counts(labels, 60, 3)
    grid, low, high = run_module.roc_band(scores, labels, W, 0.8, points=41)
    curves = []
    for w in W:
        fpr, tpr, _ = F.roc_curve(np.repeat(scores, w), np.repeat(labels, w))
        curves.append(np.interp(grid, fpr, tpr))
    assert np.array_equal(grid, np.linspace(0, 1, 41))
    expected = np.quantile(np.array(curves), [0.1, 0.9], axis=0)
    np.testing.assert_allclose(low, expected[0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(high, expected[1], rtol=0, atol=1e-15)
    assert run_module.roc_band(scores, np.zeros(30), W, 0.8) is None


def test_figures_draw_the_band(tmp_path):
    assert run("--demo", "--ci", "--bootstrap", 20, "--categories", "stripe", "--no-per-defect",
               "--out", tmp_path / "f") == 0
    assert (tmp_path / "f" / "figures" / "stripe_roc.png").stat().st_size > 0


# -- the flags -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, words", [
    (("--ci", "--bootstrap", "5"), ("--bootstrap", "at least 10", "5")),
    (("--ci", "--bootstrap", "many"), ("--bootstrap", "whole number", "'many'")),
    (("--ci", "--seed", "-1"), ("--seed", "at least 0", "-1")),
    (("--ci", "--seed", "1.5"), ("--seed", "whole number", "'1.5'")),
    (("--ci", "--level", "1"), ("--level", "strictly between 0 and 1", "1.0")),
    (("--ci", "--level", "0"), ("--level", "strictly between 0 and 1", "0.0")),
    (("--ci", "--level", "95%"), ("--level", "strictly between 0 and 1", "'95%'")),
    (("--bootstrap", "100"), ("--bootstrap", "add --ci", "100")),
    (("--seed", "3"), ("--seed", "add --ci")),
    (("--level", "0.9"), ("--level", "add --ci")),
])
def test_bad_flags_name_the_flag_and_write_nothing(tmp_path, capsys, args, words):
    out = tmp_path / "never"
    assert run("--demo", "--out", out, *args) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words), err
    assert not out.exists()


# -- the protocols whose own columns have replicates ---------------------------------------------------------

def test_ader_intervals_equal_the_naive_loop(tmp_path):
    from refmetrics.evaluate.protocols import ader

    results = ci_run(tmp_path, "ader", "--no-figures")
    seg = {name: (lambda m, k, s, y, c, name=name: F.ader_segmentation(m, k)[name]) for name in ader.SEGMENTATION}
    metrics = {**image_metrics(), **pixel_metrics(), **seg}

    def mad(m, k, s, y, c):
        return math.fsum(quiet(metrics[p], m, k, s, y, c) for p in ader.MAD_PARTS) / len(ader.MAD_PARTS)

    official = [c["key"] for c in results["columns"] if c["official"]]
    assert official  # the ADEval columns are there, without interval
    check_intervals(results, groups_of("ader"), {**metrics, "mAD": mad}, expect_none=official)
    assert any("no interval for " + ", ".join(official) in n for n in results["notes"])


def test_mvtec_ad2_intervals_equal_the_naive_loop(tmp_path):
    results = ci_run(tmp_path, "mvtec-ad-2", "--no-figures")

    def segf1(m, k, s, y, c):
        return F.segmentation_scores(m, k, c["threshold"], average="global")["f1"]

    def segf1_per_image(m, k, s, y, c):
        return F.segmentation_scores(m, k, c["threshold"], average="samplewise")["mean_f1"]

    metrics = {"SegF1": segf1, "SegF1 (per image)": segf1_per_image,
               "image AUROC": image_metrics()["image AUROC"], "image AP": image_metrics()["image AP"]}
    for limit in (0.05, 0.3):
        metrics[f"AUPRO@{limit:g}"] = lambda m, k, s, y, c, limit=limit: F.aupro(m, k, fpr_limit=limit,
                                                                                 connectivity=2)
    groups = groups_of("mvtec-ad-2")
    check_intervals(results, groups, metrics)
    for category in groups:  # SegF1's intervals are not degenerate on the demo
        low, high = results["categories"][category]["intervals"]["SegF1"]
        assert low < high


def test_visa_and_mvtec_3d_ad_intervals_equal_the_naive_loop(tmp_path):
    results = ci_run(tmp_path, "visa", "--no-figures")
    official = [c["key"] for c in results["columns"] if c["official"]]
    assert official
    check_intervals(results, groups_of("visa"), {**image_metrics(), **pixel_metrics()}, expect_none=official)
    results = ci_run(tmp_path, "mvtec-3d-ad", "--no-figures", out="3d")
    metrics = {"image AUROC": image_metrics()["image AUROC"], "pixel AUROC": pixel_metrics()["pixel AUROC"]}
    for limit in (0.3, 0.01):
        metrics[f"AUPRO@{limit:g}"] = lambda m, k, s, y, c, limit=limit: F.aupro(m, k, fpr_limit=limit,
                                                                                 connectivity=2)
    official = [c["key"] for c in results["columns"] if c["official"]]
    assert official
    check_intervals(results, groups_of("mvtec-3d-ad"), metrics, expect_none=official)


def test_mvtec_loco_image_intervals_equal_the_naive_loop(tmp_path):
    results = ci_run(tmp_path, "mvtec-loco", "--no-figures")

    def subset_auroc(subset):
        def metric(m, k, s, y, c):
            keep = (c["defects"] == "good") | (c["defects"] == subset)
            return F.auroc(s[keep], y[keep]) if (c["defects"] == subset).any() else math.nan
        return metric

    logical, structural = subset_auroc("logical_anomalies"), subset_auroc("structural_anomalies")

    def mean(m, k, s, y, c):  # over the subsets the group holds (a resample without one of them: nan)
        return float(np.mean([f(m, k, s, y, c) for subset, f in (("logical_anomalies", logical),
                                                                   ("structural_anomalies", structural))
                              if subset in c["held"]]))

    groups = groups_of("mvtec-loco")
    for by_group in groups.values():
        for group in by_group.values():
            group[4]["held"] = set(group[4]["defects"])
    check_intervals(results, groups, {"image AUROC (logical)": logical, "image AUROC (structural)": structural,
                                      "image AUROC": mean})
    spro = [c["key"] for c in results["columns"] if c["key"].startswith("AU-sPRO") and not c["official"]]
    if importlib.util.find_spec("refmetrics.functional._resample_images") is None:  # no engine: no interval
        for entry in results["categories"].values():
            assert all(entry["intervals"][k] is None for k in spro)
        assert any("no interval for AU-sPRO@0.01, " in n for n in results["notes"])
        return

    def au_spro(limit):  # the mean over the subsets the group holds of au_spro on each (with the good images)
        def metric(m, k, s, y, c):
            values = []
            for subset in ("logical_anomalies", "structural_anomalies"):
                if subset in c["held"]:
                    keep = np.flatnonzero((c["defects"] == "good") | (c["defects"] == subset))
                    values.append(F.au_spro(m[keep], [c["truth"][i] for i in keep], fpr_limit=limit))
            return float(np.mean(values))
        return metric

    limits = [float(k.split("@")[1]) for k in spro]
    check_intervals(results, groups, {k: au_spro(limit) for k, limit in zip(spro, limits)})
    assert not any("no interval for AU-sPRO@0.01, " in n for n in results["notes"])


def test_real_iad_intervals_equal_the_naive_loop(tmp_path):
    results = ci_run(tmp_path, "real-iad", "--no-figures")
    groups = groups_of("real-iad")
    official = [c["key"] for c in results["columns"] if c["official"]]
    # the views of a sample are drawn together: the image and pixel columns on the samples' resamples
    check_intervals(results, groups, {**image_metrics(), **pixel_metrics()}, expect_none=official, by_sample=True)
    # the sample columns: the samples resampled (stratified by sample label), each sample the max of its views
    reps = {}
    for category, by_group in groups.items():
        for gname, (maps, masks, scores, labels, context) in by_group.items():
            keys = list(dict.fromkeys(context["groups"]))
            s_scores = np.array([max(scores[context["groups"] == k]) for k in keys])
            s_labels = np.array([max(labels[context["groups"] == k]) for k in keys])
            W = naive.resample_counts(s_labels, B, SEED, stream(category, gname))
            looped = {"sample AUROC": [quiet(F.auroc, np.repeat(s_scores, w), np.repeat(s_labels, w)) for w in W],
                      "sample AP": [quiet(F.average_precision, np.repeat(s_scores, w), np.repeat(s_labels, w))
                                    for w in W]}
            entry = results["categories"][category]
            block = entry if gname == category else entry["defects"][gname]
            for key, values in looped.items():
                assert block["intervals"][key] == interval(values), (category, gname, key)
            if gname == category:
                reps[category] = looped
    for key in ("sample AUROC", "sample AP"):
        per_b = [float(np.mean([reps[c][key][b] for c in groups])) for b in range(B)]
        assert results["mean_intervals"][key] == interval(per_b)
