"""Patch augmentation: pure numpy functions driven by an explicit random generator.

Every function takes the patch ``image`` (C, X, Y, Z) float32 and, where geometry changes, the ``label``
(X, Y, Z) uint8 classes, and returns new arrays (inputs are never modified).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from bratseg.config import AugmentParams

FloatArray = npt.NDArray[np.float32]
LabelArray = npt.NDArray[np.uint8]


def random_flip(
    image: FloatArray, label: LabelArray, rng: np.random.Generator
) -> tuple[FloatArray, LabelArray]:
    """Mirror each spatial axis with probability 1/2 (tumours are not lateralised)."""
    axes = [ax for ax in range(3) if rng.random() < 0.5]
    if not axes:
        return image, label
    return (
        np.ascontiguousarray(np.flip(image, axis=tuple(a + 1 for a in axes))),
        np.ascontiguousarray(np.flip(label, axis=tuple(axes))),
    )


def random_intensity(image: FloatArray, scale: float, shift: float, rng: np.random.Generator) -> FloatArray:
    """Per channel: ``x * U(1-scale, 1+scale) + U(-shift, shift)``, applied inside the brain only.

    Voxels that are exactly 0 (outside the brain after normalisation, or padding) stay 0.
    """
    if scale == 0 and shift == 0:
        return image
    c = image.shape[0]
    factors = rng.uniform(1 - scale, 1 + scale, size=(c, 1, 1, 1)).astype(np.float32)
    offsets = rng.uniform(-shift, shift, size=(c, 1, 1, 1)).astype(np.float32)
    out = image * factors + offsets
    return np.where(image != 0, out, np.float32(0)).astype(np.float32)


def random_rotation(
    image: FloatArray, label: LabelArray, max_deg: float, rng: np.random.Generator
) -> tuple[FloatArray, LabelArray]:
    """Rotate by up to ``max_deg`` about each axis (linear for the image, nearest for the label)."""
    if max_deg == 0:
        return image, label
    angles = np.deg2rad(rng.uniform(-max_deg, max_deg, size=3))
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rot = (
        np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
        @ np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
        @ np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    )
    centre = (np.array(label.shape) - 1) / 2.0
    offset = centre - rot @ centre
    image = np.stack(
        [ndimage.affine_transform(ch, rot, offset=offset, order=1, mode="constant", cval=0.0) for ch in image]
    ).astype(np.float32)
    label = ndimage.affine_transform(label, rot, offset=offset, order=0, mode="constant", cval=0).astype(
        np.uint8
    )
    return image, label


def augment(
    image: FloatArray, label: LabelArray, params: AugmentParams, rng: np.random.Generator
) -> tuple[FloatArray, LabelArray]:
    """Apply the augmentations enabled in ``params`` in a fixed order: rotation, flips, intensity."""
    image, label = random_rotation(image, label, params.rotation_deg, rng)
    if params.flip:
        image, label = random_flip(image, label, rng)
    image = random_intensity(image, params.intensity_scale, params.intensity_shift, rng)
    return image, label
