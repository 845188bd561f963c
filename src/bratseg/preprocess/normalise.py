"""Per-modality intensity normalisation inside the brain: percentile clipping, then a z-score."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

#: A standard deviation at or below this fraction of the intensity range counts as zero.
RELATIVE_STD_FLOOR = 1e-6


def zscore(
    image: npt.NDArray[np.floating],
    mask: npt.NDArray[np.bool_],
    clip_percentiles: tuple[float, float],
) -> tuple[npt.NDArray[np.float32], dict[str, Any]]:
    """Clip to percentiles computed inside the mask, then z-score with the mask's mean and standard deviation.

    Args:
        image: ``(X, Y, Z)`` intensities of one modality.
        mask: ``(X, Y, Z)`` bool brain mask (must not be empty).
        clip_percentiles: ``(low, high)`` in percent, ``0 <= low < high <= 100``.

    Returns:
        ``(normalised, stats)``: ``(X, Y, Z)`` float32, exactly 0 outside the mask; ``stats`` holds the
        raw intensity statistics inside the mask (``raw_mean``, ``raw_std``, ``raw_min``, ``raw_max``,
        ``raw_median``), the clip values (``clip_low``, ``clip_high``), the fraction of voxels clipped,
        and the ``mean`` and ``std`` used for the z-score (after clipping).

    Raises:
        ValueError: on bad arguments, or when the clipped intensities inside the mask are (nearly) constant.
    """
    image = np.asarray(image)
    mask = np.asarray(mask)
    if image.ndim != 3:
        raise ValueError(f"image must be 3D (X, Y, Z), got shape {image.shape}")
    if mask.shape != image.shape:
        raise ValueError(f"mask shape {mask.shape} differs from image shape {image.shape}")
    if mask.dtype != np.bool_:
        raise ValueError(f"mask must be boolean, got dtype {mask.dtype}")
    low, high = (float(p) for p in clip_percentiles)
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f"clip_percentiles must satisfy 0 <= low < high <= 100, got {clip_percentiles}")
    values = image[mask].astype(np.float64)
    if values.size == 0:
        raise ValueError("mask is empty: no voxel to compute the normalisation statistics on")
    if not np.isfinite(values).all():
        raise ValueError("image holds non-finite values inside the mask")

    clip_low, median, clip_high = np.percentile(values, [low, 50.0, high])
    clipped = np.clip(values, clip_low, clip_high)
    mean, std = float(clipped.mean()), float(clipped.std())
    scale = max(abs(float(clip_low)), abs(float(clip_high)), float(np.finfo(np.float32).tiny))
    if not std > RELATIVE_STD_FLOOR * scale:
        raise ValueError(
            f"image is constant inside the mask after clipping (std {std:.3g}, range "
            f"[{clip_low:.6g}, {clip_high:.6g}]): cannot z-score it"
        )
    out = np.zeros(image.shape, dtype=np.float32)
    out[mask] = ((clipped - mean) / std).astype(np.float32)
    stats: dict[str, Any] = {
        "n_voxels": int(values.size),
        "raw_mean": float(values.mean()),
        "raw_std": float(values.std()),
        "raw_min": float(values.min()),
        "raw_max": float(values.max()),
        "raw_median": float(median),
        "clip_percentiles": [low, high],
        "clip_low": float(clip_low),
        "clip_high": float(clip_high),
        "clipped_fraction": float(np.mean((values < clip_low) | (values > clip_high))),
        "mean": mean,
        "std": std,
    }
    return out, stats
