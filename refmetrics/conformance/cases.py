"""The golden fixtures: cases, their data and their exact expected values."""

import hashlib
import json
from fractions import Fraction
from importlib import resources

import numpy as np

from ..registry import conformance_metrics

METRICS = conformance_metrics()  # from the registry (refmetrics/registry.py): each metric checks an entry
METRIC_DOCS = {
    "image_auroc": "AUROC of image scores (max of each map) against image labels (any defect pixel)",
    "image_ap": "average precision (step-wise, scikit-learn's) of the image scores",
    "pixel_auroc": "AUROC over every pixel",
    "pixel_ap": "average precision over every pixel",
    "pixel_f1max": "largest pixel F1 over all thresholds",
    "aupro": "area under the PRO curve to FPR 0.3, divided by 0.3 (8-connected regions)",
    "pro": "per-region overlap at score > 0.5",
    "pixel_f1_threshold": "F1AdaptiveThreshold: the pixel threshold of largest F1 (ties to the lowest)",
    "pixel_f1_score": "F1Score at 0.5, torchmetrics' per-update sigmoid rule, fed batch by batch",
    "min_score": "MinMax: the smallest score",
    "max_score": "MinMax: the largest score",
    "au_spro": "AU-sPRO to FPR 0.05 (MVTec LOCO AD), one defect per image with a defect: its whole mask "
               "(every component, any dimension: sPRO does not label regions), relative saturation 1.0",
}

# --- PIMO / AUPIMO (issue 13, section 1) ---
# The cases are small: their normal images reach no shared FPR below ~2e-3, so the default bounds
# (1e-5, 1e-4) would make AUPIMO undefined on every case. The suite integrates from 1e-2 to 1e-1.
AUPIMO_BOUNDS = (1e-2, 1e-1)
METRIC_DOCS["aupimo"] = ("mean AUPIMO over anomalous images (images = first axis), fpr_bounds=(1e-2, 1e-1); "
                         "its expected value is the float64 of the oracle's log-space area (irrational)")


class Case:
    """One fixture: maps ``(B, ...)``, {0, 1} masks, batch split points and expected values."""

    def __init__(self, name, entry, maps, masks, batches):
        self.name = name
        self.probes = entry["probes"]
        self.seed = entry["seed"]
        self.maps, self.masks = maps, masks
        self.split = [int(b) for b in batches]
        self.expected = {m: (None if v is None else Fraction(v["fraction"])) for m, v in entry["expected"].items()}
        self.spatial_dims = masks.ndim - 1

    def batches(self):
        """``[(maps, masks), ...]`` as the case feeds stateful implementations."""
        bounds = [0] + self.split + [self.maps.shape[0]]
        return [(self.maps[a:b], self.masks[a:b]) for a, b in zip(bounds, bounds[1:]) if b > a]

    def image_level(self):
        scores = self.maps.reshape(self.maps.shape[0], -1).max(axis=1)
        labels = self.masks.reshape(self.masks.shape[0], -1).max(axis=1)
        return scores, labels

    def expected_float(self, metric):
        value = self.expected[metric]
        return float("nan") if value is None else float(value)


def _fixtures():
    return resources.files("refmetrics.conformance").joinpath("fixtures")


def manifest():
    return json.loads(_fixtures().joinpath("manifest.json").read_text())


def load_cases(names=None):
    """The bundled cases (all, or those named), each checked against its sha256."""
    man = manifest()["cases"]
    unknown = sorted(set(names or ()) - set(man))
    if unknown:
        raise ValueError(f"case: expected one of {', '.join(man)}, received {', '.join(unknown)}")
    out = []
    for name, entry in man.items():
        if names and name not in names:
            continue
        data = _fixtures().joinpath(entry["file"]).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != entry["sha256"]:
            raise RuntimeError(f"fixture {entry['file']}: sha256 {digest} does not match the manifest")
        import io

        with np.load(io.BytesIO(data)) as npz:
            out.append(Case(name, entry, npz["maps"], npz["masks"], npz["batches"]))
    return out


# --- sPRO / AU-sPRO (MVTec LOCO AD) ---------------------------------------------------

def spro_data(maps, masks):
    """A case as sPRO data: ``(maps (B, 1, N), defects)``, one defect per image that has a defect
    pixel (its whole mask, flattened, relative saturation 1.0, so ``S`` is its area), none otherwise."""
    n = maps.shape[0]
    flat = np.asarray(maps).reshape(n, 1, -1)
    defects = [[(m.reshape(1, -1) > 0, 1.0, True)] if m.any() else [] for m in np.asarray(masks)]
    return flat, defects


# --- issue 13, section 3: PBn / PGn (image level, anomalib's defaults) ---
METRIC_DOCS.update({
    "image_pbn": "PBn at fpr 0.05: the fraction of defective images scored above the 0.95 quantile (np.quantile, "
                 "linear) of the good images' scores",
    "image_pgn": "PGn at fnr 0.05: the fraction of good images scored below the 0.05 quantile of the defective "
                 "images' scores",
})
