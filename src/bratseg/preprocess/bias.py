"""N4 bias-field correction (SimpleITK), fitted on a shrunk image and applied at full resolution.

The multiplicative field is fitted by ``N4BiasFieldCorrectionImageFilter`` on the image and the mask shrunk
by the shrink factors (``sitk.Shrink``; see :func:`shrink_factors`), then its B-spline is evaluated on the
full-resolution grid (``GetLogBiasFieldAsImage``) and the image is divided by ``exp(log_bias)``. Only voxels
inside the mask with a positive intensity take part in the fit (N4 works on log intensities); zeros stay
zeros.

The fit runs on the bounding box of the mask (plus the largest shrink factor in voxels), not on the whole
field of view: a BraTS brain fills about a third of the 240 x 240 x 155 grid, so this cuts the time of every
N4 iteration (which visits the whole fitted grid) and spends the B-spline control points on the brain.
Outside the box the log field repeats its boundary values.

The ITK thread count is set explicitly for every call (filter and global default, restored afterwards): the
fit is bit-reproducible for a given thread count, but the floating-point summation order, hence the last bits
of the result, depends on it. Keep ``threads`` fixed for reproducible outputs.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk

from bratseg.config import N4Params
from bratseg.spatial.crop import BBox, brain_bbox, crop

Spacing = tuple[float, float, float]


def _to_sitk(array: npt.NDArray[Any], spacing: Spacing) -> sitk.Image:
    """An ``(X, Y, Z)`` array as a SimpleITK image (SimpleITK arrays are ``(z, y, x)``)."""
    img = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
    img.SetSpacing(tuple(float(s) for s in spacing))
    return img


def _from_sitk(img: sitk.Image) -> npt.NDArray[np.float32]:
    """A SimpleITK image as an ``(X, Y, Z)`` float32 array (a copy)."""
    return np.ascontiguousarray(sitk.GetArrayViewFromImage(img).transpose(2, 1, 0), dtype=np.float32)


@contextlib.contextmanager
def itk_threads(threads: int) -> Iterator[None]:
    """Set ITK's global default thread count for the block, restoring the previous value afterwards.

    Sub-filters that N4 creates internally take their thread count from the global default, not from the
    outer filter, so both are set.
    """
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    previous = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(previous)


def _extend(inside: npt.NDArray[np.float32], box: BBox, shape: tuple[int, ...]) -> npt.NDArray[np.float32]:
    """The field on the box, extended to the full ``shape`` by repeating its boundary values."""
    pad = [(lo, n - hi) for (lo, hi), n in zip(box, shape, strict=True)]
    return np.ascontiguousarray(np.pad(inside, pad, mode="edge"), dtype=np.float32)


def shrink_factors(params: N4Params, spacing: tuple[float, float, float]) -> list[int]:
    """Per-axis shrink factors.

    An integer ``params.shrink_factor`` applies on every axis; ``"auto"`` takes per axis the factor that
    brings the voxel size closest to ``params.fit_spacing_mm`` (for 8 mm: 4 at 2 mm, 8 at 1 mm).
    """
    if params.shrink_factor == "auto":
        return [max(1, round(params.fit_spacing_mm / s)) for s in spacing]
    if not isinstance(params.shrink_factor, int) or params.shrink_factor < 1:
        got = params.shrink_factor
        raise ValueError(f"params.shrink_factor must be 'auto' or an integer >= 1, got {got!r}")
    return [params.shrink_factor] * 3


def _check_params(params: N4Params) -> None:
    if not params.iterations or any(i < 0 for i in params.iterations):
        raise ValueError(f"params.iterations must be non-empty, each >= 0, got {params.iterations}")
    if params.control_points < 4:
        raise ValueError(f"params.control_points must be >= 4, got {params.control_points}")
    if params.histogram_bins < 2:
        raise ValueError(f"params.histogram_bins must be >= 2, got {params.histogram_bins}")
    if params.convergence < 0:
        raise ValueError(f"params.convergence must be >= 0, got {params.convergence}")


def n4_correct(
    image: npt.NDArray[np.floating],
    mask: npt.NDArray[np.bool_],
    spacing: tuple[float, float, float],
    params: N4Params,
    threads: int = 1,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], dict[str, Any]]:
    """Remove a smooth multiplicative intensity bias from one modality.

    Args:
        image: ``(X, Y, Z)`` intensities (nonnegative; nonpositive voxels are left out of the fit).
        mask: ``(X, Y, Z)`` bool region the field is fitted on (the brain).
        spacing: voxel size in mm along ``(X, Y, Z)``; the B-spline lives in physical space.
        params: N4 settings; ``enabled=False`` returns the image unchanged and a zero field.
        threads: ITK threads (the result's last bits depend on it; see the module docstring).

    Returns:
        ``(corrected, log_bias, provenance)``: ``corrected = image / exp(log_bias)``, both ``(X, Y, Z)``
        float32, and a JSON-able dict of the settings, fitted grid, iterations and time.

    Raises:
        ValueError: on a bad argument, or when no voxel of the mask has a positive intensity.
    """
    image = np.asarray(image)
    mask = np.asarray(mask, dtype=bool)
    if image.ndim != 3:
        raise ValueError(f"image must be 3D (X, Y, Z), got shape {image.shape}")
    if mask.shape != image.shape:
        raise ValueError(f"mask shape {mask.shape} differs from image shape {image.shape}")
    if len(spacing) != 3 or any(not s > 0 for s in spacing):
        raise ValueError(f"spacing must be 3 positive voxel sizes, got {spacing}")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    image32 = np.asarray(image, dtype=np.float32)
    if not params.enabled:
        return image32.copy(), np.zeros(image.shape, np.float32), {"enabled": False}
    _check_params(params)
    fit_mask = mask & (image32 > 0)
    if not fit_mask.any():
        raise ValueError("mask: no voxel inside the mask has a positive intensity; N4 needs some")

    start = time.perf_counter()
    factors = shrink_factors(params, spacing)
    box = brain_bbox(fit_mask, margin=max(factors))
    full = _to_sitk(crop(image32, box), spacing)
    small, small_mask = full, _to_sitk(crop(fit_mask, box).astype(np.uint8), spacing)
    if max(factors) > 1:
        small, small_mask = sitk.Shrink(full, factors), sitk.Shrink(small_mask, factors)
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations([int(i) for i in params.iterations])
    n4.SetConvergenceThreshold(float(params.convergence))
    n4.SetNumberOfControlPoints([int(params.control_points)] * 3)
    n4.SetNumberOfHistogramBins(int(params.histogram_bins))
    n4.SetNumberOfThreads(threads)
    with itk_threads(threads):
        n4.Execute(small, small_mask)
        log_image = n4.GetLogBiasFieldAsImage(full)
    log_bias = _extend(_from_sitk(log_image), box, image32.shape)
    corrected = (image32 / np.exp(log_bias)).astype(np.float32)
    inside = log_bias[fit_mask]
    provenance: dict[str, Any] = {
        "enabled": True,
        "shrink_factor": params.shrink_factor,
        "shrink_factors": factors,
        "iterations": list(params.iterations),
        "convergence": params.convergence,
        "control_points": params.control_points,
        "histogram_bins": params.histogram_bins,
        "threads": threads,
        "fitted_bbox": [list(b) for b in box],
        "fitted_shape": list(small.GetSize()),
        "fitted_voxels": int(np.count_nonzero(sitk.GetArrayViewFromImage(small_mask))),
        "last_level_iterations": int(n4.GetElapsedIterations()),
        "last_convergence": float(n4.GetCurrentConvergenceMeasurement()),
        "log_bias_range": [float(inside.min()), float(inside.max())],
        "log_bias_std": float(inside.std()),
        "itk_version": sitk.Version.ITKVersionString(),
        "seconds": round(time.perf_counter() - start, 3),
    }
    return corrected, log_bias, provenance
