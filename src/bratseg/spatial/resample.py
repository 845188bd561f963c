"""Resampling to a target voxel spacing, and back, as nnU-Net does it.

The resampled grid covers the same physical extent: ``n_new = round(n * spacing / target)`` voxels per axis,
voxel *areas* aligned (``scipy.ndimage.zoom(..., grid_mode=True)``), so the voxel spacing actually reached is
``spacing * n / n_new`` (within half a voxel of the target) and the affine follows exactly.

- Images: B-spline of ``order`` (3 by default), then zero outside the resampled brain mask (the background of
  a skull-stripped case stays exactly zero; ringing cannot grow the brain). Orders >= 2 run axis by axis as
  small dense matrix products, equal to ``ndimage.zoom`` up to float32 rounding and about 5x faster for a
  1 mm -> 2 mm case (``benchmarks/bench_preprocess.py``).
- Labels: per class, the class indicator resampled linearly, then the class of the largest value (nnU-Net's
  ``resample_segmentation``): no class is invented and thin structures do not vanish as with nearest.
- Probabilities (the way back, in inference): linear per channel.
- Strongly anisotropic grids (largest spacing over smallest above :data:`ANISOTROPY`, e.g. a clinical
  0.5 x 0.5 x 5 mm scan) are resampled in-plane first and along the thick-slice axis on its own with nearest
  (order 0), as nnU-Net does: interpolating across 5 mm slices invents structure.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

#: Spacing ratio above which the thick axis is resampled separately with nearest.
ANISOTROPY = 3.0

Shape = tuple[int, int, int]


def target_shape(shape: Sequence[int], spacing: Sequence[float], target: Sequence[float]) -> Shape:
    """Voxels per axis of the resampled grid (at least 1)."""
    out = [
        max(1, round(int(n) * float(s) / float(t))) for n, s, t in zip(shape, spacing, target, strict=True)
    ]
    return (out[0], out[1], out[2])


def thick_axis(spacing: Sequence[float]) -> int | None:
    """The axis to resample on its own (the largest spacing) when the grid is strongly anisotropic."""
    spacing = [float(s) for s in spacing]
    return int(np.argmax(spacing)) if max(spacing) / min(spacing) > ANISOTROPY else None


def _zoom(
    volume: npt.NDArray[np.float32], shape: Shape, order: int, thick: int | None
) -> npt.NDArray[np.float32]:
    """``volume`` on a grid of ``shape`` (voxel areas aligned); spline ``order``, nearest along ``thick``."""
    if tuple(volume.shape) == shape:
        return volume
    orders = [0 if a == thick else order for a in range(3)]
    if order >= 2:  # separable: the same tensor-product spline as ndimage.zoom, several times faster
        return _zoom_separable(volume, shape, orders)
    factors = [n / o for n, o in zip(shape, volume.shape, strict=True)]
    if thick is None:
        return np.asarray(
            ndimage.zoom(volume, factors, order=order, mode="nearest", grid_mode=True), np.float32
        )
    in_plane = [1.0 if a == thick else f for a, f in enumerate(factors)]
    out = ndimage.zoom(volume, in_plane, order=order, mode="nearest", grid_mode=True)
    along = [factors[a] if a == thick else 1.0 for a in range(3)]
    return np.asarray(ndimage.zoom(out, along, order=0, mode="nearest", grid_mode=True), np.float32)


@functools.lru_cache(maxsize=32)
def _weights(n: int, m: int, order: int) -> npt.NDArray[np.float32]:
    """``(m, n)``: the 1D resampling of ``n`` samples to ``m`` as a matrix (column ``j``: ``ndimage.zoom`` of
    the unit impulse ``e_j``, so the spline prefilter and the boundary mode are scipy's own)."""
    eye = np.eye(n, dtype=np.float64)
    cols = [ndimage.zoom(eye[j], m / n, order=order, mode="nearest", grid_mode=True) for j in range(n)]
    matrix = np.ascontiguousarray(np.stack(cols, axis=1), dtype=np.float32)
    matrix.flags.writeable = False  # shared by the cache
    return matrix


def _zoom_separable(
    volume: npt.NDArray[np.float32], shape: Shape, orders: Sequence[int]
) -> npt.NDArray[np.float32]:
    """Axis by axis, each a small dense matrix product: a tensor-product B-spline is separable (prefilter
    and kernel), so this equals ``ndimage.zoom`` up to float32 rounding (tested), at a fraction of its
    cost for order 3 (``benchmarks/bench_preprocess.py``)."""
    out = np.asarray(volume, dtype=np.float32)
    for axis, (n, m) in enumerate(zip(volume.shape, shape, strict=True)):
        if n != m:
            out = np.moveaxis(np.tensordot(_weights(n, m, orders[axis]), out, axes=([1], [axis])), 0, axis)
    return np.ascontiguousarray(out, dtype=np.float32)


def resampled_affine(
    affine: npt.NDArray[np.floating], shape: Sequence[int], new_shape: Sequence[int]
) -> npt.NDArray[np.float64]:
    """The affine of the resampled grid: voxel areas aligned with the original grid's."""
    scale = np.eye(4)
    for axis, (n, m) in enumerate(zip(shape, new_shape, strict=True)):
        s = int(n) / int(m)
        scale[axis, axis] = s
        scale[axis, 3] = (s - 1.0) / 2.0
    return np.asarray(affine, dtype=np.float64) @ scale


def resample_image(
    image: npt.NDArray[np.floating],
    mask: npt.NDArray[np.bool_],
    shape: Shape,
    spacing: Sequence[float],
    order: int = 3,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """``(C, X, Y, Z)`` image and its brain mask on a grid of ``shape``.

    Args:
        image: intensities, channel first.
        mask: ``(X, Y, Z)`` brain mask on the image's grid.
        shape: the new grid (see :func:`target_shape`).
        spacing: the *source* spacing in mm (for the anisotropy rule).
        order: spline order for the images (0..5).

    Returns:
        The resampled image (float32, exactly 0 outside the resampled mask) and mask.
    """
    if not 0 <= order <= 5:
        raise ValueError(f"order must lie in 0..5, got {order}")
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 4 or mask.shape != image.shape[1:]:
        raise ValueError(
            f"image must be (C, X, Y, Z) with mask (X, Y, Z), got {image.shape} and {mask.shape}"
        )
    thick = thick_axis(spacing)
    new_mask = _zoom(mask.astype(np.float32), shape, 1, thick) >= 0.5
    out = np.zeros((image.shape[0], *shape), dtype=np.float32)
    for c in range(image.shape[0]):
        out[c] = np.where(new_mask, _zoom(image[c], shape, order, thick), np.float32(0))
    return out, new_mask


def resample_classes(
    classes: npt.NDArray[np.integer], shape: Shape, spacing: Sequence[float]
) -> npt.NDArray[np.uint8]:
    """A class volume on a grid of ``shape``: per-class linear interpolation, then the most likely class."""
    classes = np.asarray(classes)
    if tuple(classes.shape) == shape:
        return classes.astype(np.uint8, copy=True)
    present = [int(c) for c in np.unique(classes) if c != 0]
    if not present:
        return np.zeros(shape, dtype=np.uint8)
    thick = thick_axis(spacing)
    best = _zoom((classes == 0).astype(np.float32), shape, 1, thick)
    out = np.zeros(shape, dtype=np.uint8)
    for cls in present:
        score = _zoom((classes == cls).astype(np.float32), shape, 1, thick)
        wins = score > best
        out[wins] = cls
        best = np.where(wins, score, best)
    return out


def resample_probabilities(
    probs: npt.NDArray[np.floating], shape: Shape, spacing: Sequence[float]
) -> npt.NDArray[np.float32]:
    """``(K, X, Y, Z)`` probabilities on a grid of ``shape`` (linear per channel; the way back)."""
    probs = np.asarray(probs, dtype=np.float32)
    if tuple(probs.shape[1:]) == shape:
        return probs
    thick = thick_axis(spacing)
    return np.stack([_zoom(p, shape, 1, thick) for p in probs])


def plan(shape: Sequence[int], spacing: Sequence[float], target: Sequence[float] | None) -> dict[str, Any]:
    """The resampling record of a case: native and resampled shape and spacing (``target=None``: none)."""
    native = (int(shape[0]), int(shape[1]), int(shape[2]))
    spacing = [float(s) for s in spacing]
    new = native if target is None else target_shape(native, spacing, target)
    reached = [s * n / m for s, n, m in zip(spacing, native, new, strict=True)]
    return {
        "native_shape": list(native),
        "native_spacing": spacing,
        "target_spacing": None if target is None else [float(t) for t in target],
        "shape": list(new),
        "spacing": reached,
        "resampled": new != native,
        "thick_axis": thick_axis(spacing) if new != native else None,
        "anisotropy": max(spacing) / min(spacing),
    }


def isclose_spacing(a: Sequence[float], b: Sequence[float], rel: float = 1e-3) -> bool:
    return all(math.isclose(float(x), float(y), rel_tol=rel) for x, y in zip(a, b, strict=True))
