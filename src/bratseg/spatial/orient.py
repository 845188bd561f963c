"""Reorientation to one canonical voxel order (RAS+), and back.

Every case is brought to the voxel axis order closest to RAS+ (the first axis pointing right, the second
anterior, the third superior) by permuting and flipping voxel axes only: no interpolation, so it is exact and
exactly undone. An oblique affine stays oblique (the rotation that no axis permutation removes is kept in the
affine), as ``nibabel.as_closest_canonical`` does. The record is the orientation transform of
:mod:`nibabel.orientations` (``(axis, flip)`` per output axis), kept in the case's ``properties.json``.
"""

from __future__ import annotations

from typing import Any

import nibabel as nib
import numpy as np
import numpy.typing as npt

Ornt = npt.NDArray[np.float64]  # (3, 2): per input axis, (output axis, +1 or -1)


def to_canonical(affine: npt.NDArray[np.floating]) -> Ornt:
    """The orientation transform that brings voxel axes of ``affine`` to RAS+."""
    return np.asarray(nib.orientations.io_orientation(np.asarray(affine, dtype=np.float64)), dtype=np.float64)


def is_identity(ornt: Ornt) -> bool:
    return bool(np.array_equal(ornt, [[0, 1], [1, 1], [2, 1]]))


def apply(array: npt.NDArray[Any], ornt: Ornt) -> npt.NDArray[Any]:
    """``array`` (``(..., X, Y, Z)``) with its trailing three axes reoriented by ``ornt`` (C-contiguous)."""
    array = np.asarray(array)
    if is_identity(ornt):
        return array
    lead = array.ndim - 3
    if lead == 0:
        return np.ascontiguousarray(nib.orientations.apply_orientation(array, ornt))
    flat = array.reshape(-1, *array.shape[-3:])
    out = np.stack([nib.orientations.apply_orientation(a, ornt) for a in flat])
    return np.ascontiguousarray(out.reshape(*array.shape[:lead], *out.shape[1:]))


def inverse(ornt: Ornt) -> Ornt:
    """The transform that undoes ``ornt``: from RAS+ (the identity orientation) back to the orientation
    ``ornt`` describes. (``ornt_transform(ornt, identity)`` would be ``ornt`` itself: equal to the inverse
    only for flips and axis swaps, wrong for a cyclic permutation such as ``IRA``.)"""
    identity = np.array([[0, 1], [1, 1], [2, 1]], dtype=np.float64)
    return np.asarray(nib.orientations.ornt_transform(identity, ornt), dtype=np.float64)


def reoriented_affine(
    affine: npt.NDArray[np.floating], ornt: Ornt, shape: tuple[int, ...]
) -> npt.NDArray[np.float64]:
    """The voxel-to-world affine of the reoriented array (the same world positions)."""
    return np.asarray(affine, dtype=np.float64) @ nib.orientations.inv_ornt_aff(ornt, shape[:3])


def reorient(
    image: npt.NDArray[np.floating],
    classes: npt.NDArray[np.uint8] | None,
    affine: npt.NDArray[np.floating],
) -> tuple[npt.NDArray[np.floating], npt.NDArray[np.uint8] | None, npt.NDArray[np.float64], dict[str, Any]]:
    """Image ``(C, X, Y, Z)`` and classes ``(X, Y, Z)`` in RAS+ voxel order.

    Returns:
        ``(image, classes, affine, record)``: the record holds ``ornt`` (a list, for JSON) and the native
        axis codes, and :func:`undo` with it gives back the native voxel order exactly.
    """
    ornt = to_canonical(affine)
    new_affine = reoriented_affine(affine, ornt, image.shape[1:])
    record = {
        "ornt": ornt.tolist(),
        "native_axcodes": "".join(str(c) for c in nib.aff2axcodes(np.asarray(affine, dtype=np.float64))),
    }
    out_classes = None if classes is None else apply(classes, ornt)
    return apply(image, ornt), out_classes, new_affine, record


def undo(array: npt.NDArray[Any], record: dict[str, Any]) -> npt.NDArray[Any]:
    """Back to the native voxel order of the case that ``record`` (from :func:`reorient`) describes."""
    return apply(array, inverse(np.asarray(record["ornt"], dtype=np.float64)))
