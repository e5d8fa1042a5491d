"""Region labelling: connected components of each sample's mask, by scikit-image.

Connectivity is explicit: ``connectivity=2`` is full connectivity (8
neighbours in 2D, 26 in 3D: the MVTec and anomalib convention), ``1`` is
face connectivity (4 neighbours in 2D, 6 in 3D).
"""

import numbers

import numpy as np



def check_spatial_dims(spatial_dims):
    if isinstance(spatial_dims, (bool, np.bool_)) or spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims: expected 2 or 3, received {spatial_dims!r}")


def sample_layout(shape, spatial_dims, name="target"):
    """``(B, spatial_shape)`` of a mask array: (H,W), (B,H,W), (B,1,H,W); +1 spatial axis for 3-D."""
    check_spatial_dims(spatial_dims)
    nd = len(shape)
    if nd == spatial_dims:
        return 1, tuple(shape)
    if nd == spatial_dims + 1:
        return shape[0], tuple(shape[1:])
    if nd == spatial_dims + 2 and shape[1] == 1:
        return shape[0], tuple(shape[2:])
    layouts = {2: "(H,W), (B,H,W) or (B,1,H,W)", 3: "(D,H,W), (B,D,H,W) or (B,1,D,H,W)"}[spatial_dims]
    raise ValueError(f"{name}: expected a mask of shape {layouts} for spatial_dims={spatial_dims}, "
                     f"received shape {tuple(shape)}")


def check_connectivity(connectivity):
    if isinstance(connectivity, (bool, np.bool_)) or not isinstance(connectivity, numbers.Integral) \
            or connectivity not in (1, 2):
        raise ValueError(f"connectivity: expected 1 (face neighbours) or 2 (full: 8 in 2D, 26 in 3D), "
                         f"received {connectivity!r}")


def label_sample(mask, connectivity):
    """Region ids 1..n of one boolean sample (0 = background), and n."""
    from skimage.measure import label  # imported on first use: keeps `import refmetrics` cheap

    full = mask.ndim if connectivity == 2 else 1
    regions, n = label(mask, connectivity=full, return_num=True)
    return regions, n
