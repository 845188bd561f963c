"""Crop a volume to the brain's bounding box, and put a cropped volume back on the full grid.

A :data:`BBox` is half-open, ``((x0, x1), (y0, y1), (z0, z1))`` with ``lo <= index < hi`` per axis, in voxels
of the full grid. :func:`crop` and :func:`uncrop` act on the trailing three axes, so they serve ``(X, Y, Z)``
volumes and channel-first ``(C, X, Y, Z)`` arrays alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

BBox = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]

ScalarT = TypeVar("ScalarT", bound=np.generic)


def as_bbox(value: Sequence[Sequence[int]]) -> BBox:
    """A bbox from any nested sequence (e.g. the lists read back from JSON), checked for form."""
    pairs = [tuple(int(v) for v in pair) for pair in value]
    if len(pairs) != 3 or any(len(p) != 2 for p in pairs):
        raise ValueError(f"bbox must be three (lo, hi) pairs, got {value!r}")
    if any(lo < 0 or hi < lo for lo, hi in pairs):
        raise ValueError(f"bbox must satisfy 0 <= lo <= hi on every axis, got {value!r}")
    (a, b), (c, d), (e, f) = pairs
    return ((a, b), (c, d), (e, f))


def bbox_shape(bbox: BBox) -> tuple[int, int, int]:
    """The ``(X, Y, Z)`` size of the box."""
    (x0, x1), (y0, y1), (z0, z1) = bbox
    return (x1 - x0, y1 - y0, z1 - z0)


def brain_bbox(mask: npt.NDArray[np.bool_], margin: int) -> BBox:
    """The bounding box of the true voxels of ``mask``, grown by ``margin`` voxels, clipped to the volume.

    Args:
        mask: ``(X, Y, Z)`` bool.
        margin: voxels added on each side (``>= 0``).

    Raises:
        ValueError: if ``mask`` is not 3D, is empty, or ``margin`` is negative.
    """
    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise ValueError(f"mask must be 3D (X, Y, Z), got shape {mask.shape}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hits = np.flatnonzero(np.any(mask, axis=other))
        if hits.size == 0:
            raise ValueError("mask is empty: no bounding box")
        lo = max(0, int(hits[0]) - margin)
        hi = min(mask.shape[axis], int(hits[-1]) + 1 + margin)
        box.append((lo, hi))
    return (box[0], box[1], box[2])


def _slices(bbox: BBox) -> tuple[slice, slice, slice]:
    return (slice(*bbox[0]), slice(*bbox[1]), slice(*bbox[2]))


def crop(array: npt.NDArray[ScalarT], bbox: BBox) -> npt.NDArray[ScalarT]:
    """The part of ``array`` inside ``bbox`` on its trailing three axes (a view; copy it to keep it).

    Args:
        array: ``(..., X, Y, Z)``.
        bbox: a box inside ``(X, Y, Z)``.

    Returns:
        ``(..., x1 - x0, y1 - y0, z1 - z0)``.
    """
    array = np.asarray(array)
    if array.ndim < 3:
        raise ValueError(f"array must have at least 3 dimensions, got shape {array.shape}")
    bbox = as_bbox(bbox)
    spatial = array.shape[-3:]
    if any(hi > n for (_, hi), n in zip(bbox, spatial, strict=True)):
        raise ValueError(f"bbox {bbox} exceeds the array's spatial shape {spatial}")
    return array[(Ellipsis, *_slices(bbox))]


def uncrop(
    array: npt.NDArray[ScalarT], bbox: BBox, full_shape: Sequence[int], fill: Any = 0
) -> npt.NDArray[ScalarT]:
    """Inverse of :func:`crop`: place ``array`` at ``bbox`` in a new array filled with ``fill``.

    Args:
        array: ``(..., x1 - x0, y1 - y0, z1 - z0)``.
        bbox: where ``array`` came from.
        full_shape: the full spatial shape ``(X, Y, Z)``, or the complete output shape ``(..., X, Y, Z)``
            (its leading dimensions must then match ``array``'s).
        fill: value outside the box.

    Returns:
        ``(..., X, Y, Z)`` of ``array``'s dtype; ``crop(uncrop(a, b, s), b)`` equals ``a`` bit for bit.
    """
    array = np.asarray(array)
    bbox = as_bbox(bbox)
    full = tuple(int(s) for s in full_shape)
    if array.ndim < 3:
        raise ValueError(f"array must have at least 3 dimensions, got shape {array.shape}")
    lead = array.shape[:-3]
    if len(full) == 3:
        full = (*lead, *full)
    elif full[:-3] != lead:
        raise ValueError(f"full_shape {tuple(full_shape)} does not match the array's leading dims {lead}")
    if tuple(array.shape[-3:]) != bbox_shape(bbox):
        raise ValueError(f"array spatial shape {array.shape[-3:]} differs from the bbox's {bbox_shape(bbox)}")
    if any(hi > n for (_, hi), n in zip(bbox, full[-3:], strict=True)):
        raise ValueError(f"bbox {bbox} exceeds full_shape {tuple(full_shape)}")
    out = np.full(full, fill, dtype=array.dtype)
    out[(Ellipsis, *_slices(bbox))] = array
    return out
