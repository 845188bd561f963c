"""The brain mask of a skull-stripped case: where any modality is nonzero, enclosed holes filled."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage


def brain_mask(image: npt.NDArray[np.floating]) -> npt.NDArray[np.bool_]:
    """Union of the nonzero voxels over channels, with enclosed holes filled.

    Args:
        image: ``(C, X, Y, Z)`` intensities.

    Returns:
        ``(X, Y, Z)`` bool mask.
    """
    image = np.asarray(image)
    if image.ndim != 4:
        raise ValueError(f"image must have shape (C, X, Y, Z), got {image.shape}")
    mask = np.any(image != 0, axis=0)
    filled: npt.NDArray[np.bool_] = ndimage.binary_fill_holes(mask)
    return filled
