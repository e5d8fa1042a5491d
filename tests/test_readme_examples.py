"""The README's two plain-NumPy examples (docs/examples/*.py, shown verbatim in the README) run as written.

save_maps.py: maps saved during a test loop land where ``refmetrics evaluate`` reads them, and evaluate's
numbers are refmetrics.functional's on the same maps. merge_processes.py: AUPRO map-reduced over worker
processes with ``merge()`` equals the functional value on all the files.
"""

import importlib
import json
from pathlib import Path

import numpy as np
from PIL import Image

from refmetrics import cli
from refmetrics import functional as F

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "docs" / "examples"


def load(name, monkeypatch):
    """The example as a module importable by name (worker processes unpickle its functions by name)."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    return importlib.import_module(name)


def test_the_readme_shows_the_examples_verbatim():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in ("save_maps", "merge_processes"):
        assert (EXAMPLES / f"{name}.py").read_text(encoding="utf-8").strip() in readme, name


def test_maps_saved_in_a_test_loop_are_what_evaluate_reads(tmp_path, monkeypatch):
    example = load("save_maps", monkeypatch)
    rng = np.random.default_rng(11)
    dataset = tmp_path / "mvtec_ad"
    images, truth = [], {}
    for defect, n in (("good", 3), ("crack", 3)):
        for i in range(n):
            path = dataset / "bottle" / "test" / defect / f"{i:03d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(path)
            mask = np.zeros((16, 16), bool)
            if defect != "good":
                mask[3 + i:9 + i, 4:10] = True
                gt = dataset / "bottle" / "ground_truth" / defect / f"{i:03d}_mask.png"
                gt.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(mask.astype(np.uint8) * 255).save(gt)
            images.append(str(path))
            truth[str(path)] = mask

    class Model:  # maps that see the defects, with noise
        def __call__(self, paths):
            return [rng.random((16, 16)).astype(np.float32) + 0.5 * truth[p] for p in paths]

    loader = [{"image": images[:4], "image_path": images[:4]}, {"image": images[4:], "image_path": images[4:]}]
    example.save_test_maps(Model(), loader, tmp_path / "maps", dataset)
    assert cli.main(["evaluate", "--quiet", "--maps", str(tmp_path / "maps"), "--gt", str(dataset), "--out",
                     str(tmp_path / "eval"), "--no-figures"]) == 0
    metrics = json.loads((tmp_path / "eval" / "results.json").read_text())["categories"]["bottle"]["metrics"]
    maps = np.stack([np.load(tmp_path / "maps" / Path(p).relative_to(dataset).with_suffix(".npy")) for p in images])
    masks = np.stack([truth[p] for p in images])
    assert metrics["pixel AUROC"] == F.auroc(maps.ravel(), masks.ravel())
    assert metrics["AUPRO"] == F.aupro(maps, masks, fpr_limit=0.3)


def test_merge_over_processes_equals_one_pass(tmp_path, monkeypatch):
    example = load("merge_processes", monkeypatch)
    rng = np.random.default_rng(12)
    maps = np.round(rng.random((10, 12, 12)), 2).astype(np.float32)
    masks = np.zeros(maps.shape, bool)
    masks[1::2, 3:8, 4:9] = True
    pairs = []
    for i, (m, t) in enumerate(zip(maps, masks)):
        np.save(tmp_path / f"map{i}.npy", m)
        np.save(tmp_path / f"mask{i}.npy", t)
        pairs.append((str(tmp_path / f"map{i}.npy"), str(tmp_path / f"mask{i}.npy")))
    assert example.aupro_of(pairs, processes=2) == F.aupro(maps, masks, fpr_limit=0.3)
