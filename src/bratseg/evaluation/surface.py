"""Surface distances between two binary masks, as medpy defines them, computed on a bounding box.

Definitions (identical to ``medpy.metric.binary``, and to MONAI's ``get_mask_edges``):

- The *surface* of a mask is the mask XOR its binary erosion with connectivity 1 (the 2·ndim face
  neighbours). Outside the array counts as background, so foreground voxels on the array border are
  surface voxels.
- The directed surface distances from A to B are, for every surface voxel of A, the Euclidean distance in
  mm (anisotropic ``spacing`` honoured) to the nearest surface voxel of B.

Why the bounding box gives the same numbers as the whole volume:

1. Every surface voxel lies in the masks, so inside the bounding box of their union.
2. The erosion of a box voxel only looks at its face neighbours. Those lie in the box or in a one-voxel ring
   around it; the ring holds only background (it lies outside the union's box, or outside the array, which
   erosion also treats as background). Eroding the box padded by one background voxel therefore gives the
   same surface as eroding the whole volume.
3. ``scipy.ndimage.distance_transform_edt`` is exact: the value at a voxel is the minimum over *all* feature
   voxels of the array. With every feature (surface) voxel and every queried (surface) voxel inside the box,
   the minimum ranges over the same set, so the transform on the box alone (no padding needed there) gives
   the same distances, bit for bit, as on the whole volume.

Only the feature transform runs over the box; the distances themselves are evaluated at surface voxels only.

Reductions of the two directed distance arrays (shared by :mod:`bratseg.evaluation.metrics` and
:mod:`bratseg.evaluation.lesionwise`):

- :func:`hd95_from_distances`: ``"pooled"`` (medpy, the BraTS tools, panoptica) is the 95th percentile of
  both directions pooled; ``"max_directed"`` (MONAI) the larger of the two directed 95th percentiles.
- :func:`surface_dice`: the normalised surface Dice (NSD) at a tolerance ``τ`` in mm, as panoptica and the
  ``brats-evaluation`` package compute it (after GaNDLF): the mean of the two directed fractions of surface
  voxels lying within ``τ`` of the other surface, ``(|{d_PR ≤ τ}| / |S_P| + |{d_RP ≤ τ}| / |S_R|) / 2``.
  Nikolov et al. (and DeepMind's ``surface-distance``) instead pool both directions weighted by surface
  element area; the two agree when both surfaces have the same number of voxels.

The cost is set by the size of the box, not of the volume: a tumour of 30-80 ml in a 240×240×155 grid has a
box of about 1-3 % of the voxels. A small false positive far from the tumour, though, stretches the box over
most of the head while adding only a few surface voxels. When the box holds more than ``KDTREE_BOX_RATIO``
voxels per surface voxel, the nearest surface voxel is found with a k-d tree over the surface voxels instead
(cost set by their number, not by the box). Both paths evaluate the distance of a (source, nearest target)
pair with the same floating-point operations, so they agree bit for bit whenever the squared distances are
exact in float64 (integer offsets times spacings such as 1, 0.5, 0.9375 or 2.5 mm: every BraTS release);
with other spacings two voxels at the same distance can round apart, and the values may differ in the last
bit (measured: at most 9e-16 mm).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from scipy.spatial import cKDTree

from bratseg.errors import check_choice

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.intp]

SURFACE_METHODS: tuple[str, ...] = ("auto", "box", "kdtree")
HD95_MODES: tuple[str, ...] = ("pooled", "max_directed")
KDTREE_BOX_RATIO = 8.0
"""Box voxels per surface voxel (both masks) above which ``auto`` uses the k-d tree.

Measured on a 2-core machine: scipy's feature transform costs about 50 ns per box voxel and direction, a k-d
tree query about 750 ns per surface voxel, so the tree pays off from about 8 box voxels per surface voxel
(``benchmarks/bench_metrics.py``)."""


def bounding_box(mask: BoolArray) -> tuple[slice, ...] | None:
    """Smallest box holding every foreground voxel of ``mask``.

    Args:
        mask: ``(*spatial)`` boolean array, ``ndim >= 1``.

    Returns:
        One ``slice`` per axis, or ``None`` if ``mask`` is empty.
    """
    box: list[slice] = [slice(None)] * mask.ndim
    # Reduce the whole array once (over the last axis), then the others on ever smaller crops.
    view = mask
    for axis in range(mask.ndim - 1, -1, -1):
        others = tuple(a for a in range(view.ndim) if a != axis)
        hits = np.flatnonzero(np.any(view, axis=others)) if others else np.flatnonzero(view)
        if hits.size == 0:
            return None
        box[axis] = slice(int(hits[0]), int(hits[-1]) + 1)
        crop = [slice(None)] * view.ndim
        crop[axis] = box[axis]
        view = view[tuple(crop)]
    return tuple(box)


def _surfaces(stack: BoolArray) -> BoolArray:
    """Surfaces of a stack of masks, each padded by one background voxel on every spatial side.

    Args:
        stack: ``(n, *padded)`` boolean array whose outer spatial ring is background.

    Returns:
        ``(n, *inner)`` boolean surfaces, ``inner = padded - 2`` on each spatial axis.
    """
    ndim = stack.ndim - 1
    inner = (slice(None),) + (slice(1, -1),) * ndim
    core = stack[inner]
    eroded = core.copy()
    for axis in range(1, ndim + 1):
        for shifted in (slice(None, -2), slice(2, None)):
            index = list(inner)
            index[axis] = shifted
            eroded &= stack[tuple(index)]
    return core & ~eroded


def surface(mask: BoolArray) -> BoolArray:
    """Surface voxels of ``mask`` (mask XOR its erosion with connectivity 1, outside = background).

    Args:
        mask: ``(*spatial)`` boolean array.

    Returns:
        ``(*spatial)`` boolean array, equal to ``mask ^ scipy.ndimage.binary_erosion(mask)``.
    """
    padded = np.pad(mask[np.newaxis], [(0, 0)] + [(1, 1)] * mask.ndim)
    return _surfaces(padded)[0]


def surface_distances(
    pred: BoolArray, ref: BoolArray, spacing: Sequence[float], method: str = "auto"
) -> tuple[FloatArray, FloatArray]:
    """Directed surface distances in both directions, from one bounding box and one surface extraction.

    Args:
        pred: ``(*spatial)`` boolean mask, not empty.
        ref: ``(*spatial)`` boolean mask of the same shape, not empty.
        spacing: voxel size in mm, one positive entry per axis (already validated).
        method: how the nearest surface voxel is found: ``box`` (feature transform over the bounding box),
            ``kdtree`` (k-d tree over the surface voxels) or ``auto`` (``kdtree`` when the box holds more than
            ``KDTREE_BOX_RATIO`` voxels per surface voxel, else ``box``). See the module docstring.

    Returns:
        ``(pred_to_ref, ref_to_pred)``: 1-D float64 arrays with one distance (mm) per surface voxel of
        ``pred`` (to the nearest surface voxel of ``ref``), and one per surface voxel of ``ref``. Their
        values are exactly those of medpy's ``__surface_distances(pred, ref)`` and
        ``__surface_distances(ref, pred)``, in the same (C) order.

    Raises:
        ValueError: if either mask is empty (the distances are undefined), or ``method`` is unknown.
    """
    check_choice("method", method, SURFACE_METHODS)
    box = bounding_box(pred | ref)
    if box is None or not pred[box].any() or not ref[box].any():
        raise ValueError("surface distances need two non-empty masks")
    pred_box, ref_box = pred[box], ref[box]
    stack = np.zeros((2, *(n + 2 for n in pred_box.shape)), dtype=bool)
    inner = (slice(1, -1),) * pred_box.ndim
    stack[0][inner] = pred_box
    stack[1][inner] = ref_box
    pred_surface, ref_surface = _surfaces(stack)
    sampling = np.asarray(spacing, dtype=np.float64)
    if method == "auto":
        n_surface = np.count_nonzero(pred_surface) + np.count_nonzero(ref_surface)
        method = "kdtree" if pred_surface.size > KDTREE_BOX_RATIO * n_surface else "box"
    if method == "kdtree":
        pred_points, ref_points = np.argwhere(pred_surface), np.argwhere(ref_surface)
        return _nearest(pred_points, ref_points, sampling), _nearest(ref_points, pred_points, sampling)
    return _directed(pred_surface, ref_surface, sampling), _directed(ref_surface, pred_surface, sampling)


def _directed(source: BoolArray, target: BoolArray, sampling: FloatArray) -> FloatArray:
    """Distance from each ``source`` voxel to the nearest ``target`` voxel, in mm.

    Only the feature transform (index of the nearest ``target`` voxel) is computed over the box; the distances
    are then evaluated at the ``source`` voxels alone, with the operations of
    ``scipy.ndimage.distance_transform_edt`` in the same order, so the values are the same bit for bit.

    Args:
        source: ``(*box)`` boolean surface whose voxels are measured.
        target: ``(*box)`` boolean surface, not empty.
        sampling: ``(ndim,)`` voxel size in mm.

    Returns:
        ``(n_source,)`` float64 distances, in C order of the ``source`` voxels.
    """
    nearest = ndimage.distance_transform_edt(
        ~target, sampling=sampling, return_distances=False, return_indices=True
    )
    points = np.nonzero(source)
    return _length(np.stack([nearest[axis][points] - points[axis] for axis in range(source.ndim)]), sampling)


def _nearest(source: IntArray, target: IntArray, sampling: FloatArray) -> FloatArray:
    """Distance from each ``source`` voxel to the nearest ``target`` voxel, in mm, with a k-d tree.

    Args:
        source: ``(n_source, ndim)`` voxel indices, in the order the distances are returned.
        target: ``(n_target, ndim)`` voxel indices, ``n_target >= 1``.
        sampling: ``(ndim,)`` voxel size in mm.

    Returns:
        ``(n_source,)`` float64 distances, evaluated like :func:`_directed` from the nearest voxel's offset.
    """
    tree = cKDTree(target * sampling)
    _, nearest = tree.query(source * sampling, k=1)
    return _length((target[nearest] - source).T, sampling)


def _length(offsets: IntArray, sampling: FloatArray) -> FloatArray:
    """Euclidean length in mm of ``(ndim, n)`` voxel offsets, in the operation order of scipy's transform."""
    dist = offsets.astype(np.float64)
    dist *= sampling[:, np.newaxis]
    np.multiply(dist, dist, dist)
    return np.asarray(np.sqrt(np.add.reduce(dist, axis=0)), dtype=np.float64)


def hd95_from_distances(pred_to_ref: FloatArray, ref_to_pred: FloatArray, mode: str) -> float:
    """95th-percentile Hausdorff distance from the directed surface distances (numpy's linear percentile).

    Args:
        pred_to_ref: ``(n_pred_surface,)`` distances, not empty (see :func:`surface_distances`).
        ref_to_pred: ``(n_ref_surface,)`` distances, not empty.
        mode: ``"pooled"`` (both directions together: medpy, BraTS, panoptica) or ``"max_directed"`` (MONAI).

    Raises:
        ValueError: unknown ``mode``.
    """
    check_choice("mode", mode, HD95_MODES)
    if mode == "pooled":
        return float(np.percentile(np.concatenate((pred_to_ref, ref_to_pred)), 95))
    return float(max(np.percentile(pred_to_ref, 95), np.percentile(ref_to_pred, 95)))


def surface_dice(pred_to_ref: FloatArray, ref_to_pred: FloatArray, tolerance_mm: float) -> float:
    """Normalised surface Dice: the mean of the two directed fractions of distances ``<= tolerance_mm``.

    Args:
        pred_to_ref: ``(n_pred_surface,)`` distances in mm, not empty (see :func:`surface_distances`).
        ref_to_pred: ``(n_ref_surface,)`` distances in mm, not empty.
        tolerance_mm: the largest distance still counted as agreement, ``>= 0``.

    Returns:
        A value in [0, 1]; 1 when every surface voxel lies within ``tolerance_mm`` of the other surface.
    """
    within_pred = np.count_nonzero(pred_to_ref <= tolerance_mm) / pred_to_ref.size
    within_ref = np.count_nonzero(ref_to_pred <= tolerance_mm) / ref_to_pred.size
    return float((within_pred + within_ref) / 2.0)
