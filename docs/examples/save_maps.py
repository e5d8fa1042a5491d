"""Save each anomaly map during a test loop where `refmetrics evaluate` reads it, then evaluate the folder."""
from pathlib import Path

import numpy as np


def save_map(maps_root, dataset_root, image_path, anomaly_map):
    """One map at the image's own path under the dataset, with the maps' root in place of the dataset's
    (``mvtec_ad/bottle/test/broken_large/000.png`` -> ``maps/bottle/test/broken_large/000.npy``)."""
    out = Path(maps_root, Path(image_path).relative_to(dataset_root)).with_suffix(".npy")
    out.parent.mkdir(parents=True, exist_ok=True)
    if hasattr(anomaly_map, "detach"):  # a torch tensor, on any device, with or without grad
        anomaly_map = anomaly_map.detach().cpu().numpy()
    np.save(out, np.asarray(anomaly_map, np.float32))  # float32 as computed: no rounding to 8-bit PNG


def save_test_maps(model, test_loader, maps_root, dataset_root):
    for batch in test_loader:  # any loader that yields the images and their paths
        maps = model(batch["image"])  # (B, H, W) anomaly maps
        for path, anomaly_map in zip(batch["image_path"], maps):
            save_map(maps_root, dataset_root, path, anomaly_map)

# then:  refmetrics evaluate --maps MAPS_ROOT --gt DATASET_ROOT --out results/eval
