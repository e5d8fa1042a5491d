"""Region labelling: connected components of each sample's mask, by scikit-image.

Connectivity is scikit-image's: ``connectivity=k`` joins two pixels (voxels)
that differ by at most 1 along every axis and along at most ``k`` axes, so
``k`` runs from 1 to the number of spatial dimensions:

- 2-D: 1 = 4 neighbours (edges), 2 = 8 neighbours (edges and corners);
- 3-D: 1 = 6 neighbours (faces), 2 = 18 (faces and edges), 3 = 26 (faces,
  edges and corners).

``None`` means full connectivity (``k`` = the number of spatial dimensions: 8
in 2-D, 26 in 3-D), the MVTec AD and anomalib convention and the default of
every region metric.
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


def check_connectivity(connectivity, spatial_dims):
    """The connectivity as an int in ``1..spatial_dims`` (None: full, ``spatial_dims``)."""
    check_spatial_dims(spatial_dims)
    if connectivity is None:
        return spatial_dims
    if isinstance(connectivity, (bool, np.bool_)) or not isinstance(connectivity, numbers.Integral) \
            or not 1 <= connectivity <= spatial_dims:
        choices = {2: "1 (4 neighbours) or 2 (8 neighbours)",
                   3: "1 (6 neighbours), 2 (18 neighbours) or 3 (26 neighbours)"}[spatial_dims]
        raise ValueError(f"connectivity: expected None (full) or an int from 1 to {spatial_dims} for "
                         f"spatial_dims={spatial_dims}: {choices}, received {connectivity!r}")
    return int(connectivity)


def label_sample(mask, connectivity=None):
    """Region ids 1..n of one boolean sample (0 = background), and n.

    ``connectivity`` in ``1..mask.ndim`` as scikit-image defines it; None: full.
    """
    from skimage.measure import label  # imported on first use: keeps `import refmetrics` cheap

    regions, n = label(mask, connectivity=mask.ndim if connectivity is None else connectivity,
                       return_num=True)
    return regions, n
