"""Acquisition and post-processing artefacts of real skull-stripped scans, on full output grids.

- Skull stripping: the mask cuts into the cortex in places, leaves a little extra tissue (dura, vessels,
  fat) elsewhere, and the brain's outer shell is brighter or darker in patches.
- Resolution: a thick-slice acquisition along one axis (blur with the slice profile) and a little in-plane
  blur, applied as a normalised convolution inside the mask (the scan was acquired before skull stripping, so
  the brain's edge does not darken).
- Distractors: small unlabelled white-matter hyperintensities (bright on FLAIR and T2) away from the tumour.
- Tissue texture: a smooth multiplicative field within the brain.

Every function is pure; randomness comes from the generator passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from bratseg.cohort.fields import F32, smooth_noise
from bratseg.layouts import MODALITIES

Mask = npt.NDArray[np.bool_]
#: Patch scale (mm) of the skull-stripping artefacts, and their depth (mm).
STRIP_PATCH_MM, CUT_DEPTH_MM = 25.0, (1.0, 4.0)
#: Intensity (relative to WM) of the tissue left outside the brain, per modality.
EXTRA_TISSUE: dict[str, tuple[float, float]] = {
    "t1": (0.3, 1.3), "t1ce": (0.5, 2.0), "t2": (0.8, 3.0), "flair": (0.5, 1.8)
}
#: Multiplier of the outer shell of the mask, per modality.
RIM_FACTOR: dict[str, tuple[float, float]] = {
    "t1": (0.7, 1.6), "t1ce": (0.8, 2.2), "t2": (0.7, 1.8), "flair": (0.8, 1.8)
}
#: Distractor radius (mm) and intensity multipliers per modality.
DISTRACTOR_MM = (1.5, 4.5)
DISTRACTOR_FACTOR: dict[str, tuple[float, float]] = {
    "t1": (0.8, 0.97), "t1ce": (0.8, 0.97), "t2": (1.2, 1.8), "flair": (1.3, 2.0)
}
#: Share of the modalities acquired with thick slices, and the chance that the slice axis is the last one.
THICK_SHARE, AXIAL_SHARE = 0.6, 0.6
#: Scale (mm) of the tissue texture field.
TEXTURE_MM = 6.0
FWHM = 2.0 * np.sqrt(2.0 * np.log(2.0))


def _patches(rng: np.random.Generator, shape: tuple[int, int, int], voxel_mm: float, cover: float) -> Mask:
    """Random blobs of about ``STRIP_PATCH_MM`` covering roughly the share ``cover`` of the grid."""
    coarse = tuple(max(2, int(np.ceil(n * voxel_mm / STRIP_PATCH_MM)) + 1) for n in shape)
    field = smooth_noise(rng, shape, (coarse[0], coarse[1], coarse[2]), 0.7)
    threshold = float(np.quantile(field[:: 4, :: 4, :: 4], 1.0 - cover))
    out: Mask = field > threshold
    return out


@dataclass(frozen=True)
class Stripping:
    brain: Mask  # the new mask
    extra: Mask  # voxels outside the anatomy's brain kept by the mask
    rim: Mask  # voxels of the mask's outer shell brightened or darkened


def skull_strip(rng: np.random.Generator, brain: Mask, voxel_mm: float) -> Stripping:
    """Cut edges, leftover tissue and a patchy rim for the brain mask ``brain`` ``(n0, n1, n2)``."""
    shape = (brain.shape[0], brain.shape[1], brain.shape[2])
    depth = max(1, round(rng.uniform(*CUT_DEPTH_MM) / voxel_mm))
    shell = brain & ~ndimage.binary_erosion(brain, iterations=depth)
    new = brain & ~(shell & _patches(rng, shape, voxel_mm, float(rng.uniform(0.1, 0.4))))
    grown = ndimage.binary_dilation(new, iterations=1 if voxel_mm >= 1.5 else 2)
    extra = grown & ~new & _patches(rng, shape, voxel_mm, float(rng.uniform(0.1, 0.5)))
    new = new | extra
    rim = new & ~ndimage.binary_erosion(new) & _patches(rng, shape, voxel_mm, float(rng.uniform(0.2, 0.7)))
    return Stripping(new, extra & ~brain, rim)


def apply_stripping(
    rng: np.random.Generator, images: dict[str, F32], strip: Stripping, wm: dict[str, float]
) -> dict[str, F32]:
    """Images with the leftover tissue painted in, the rim scaled, and zero outside the new mask."""
    out = {}
    for m in MODALITIES:
        img = images[m].copy()
        img[strip.extra] = np.float32(wm[m] * rng.uniform(*EXTRA_TISSUE[m]))
        img[strip.rim] *= np.float32(rng.uniform(*RIM_FACTOR[m]))
        img[~strip.brain] = 0.0
        out[m] = img
    return out


def psf_sigmas(
    rng: np.random.Generator, voxel_mm: float, thickness_mm: tuple[float, float]
) -> tuple[float, ...]:
    """Gaussian sigmas (voxels) per axis of one acquisition: thick slices along one axis, or none."""
    in_plane = float(rng.uniform(0.0, 0.4))
    sigmas = [in_plane] * 3
    thick = float(rng.uniform(*thickness_mm))
    if rng.random() < THICK_SHARE and thick > voxel_mm:
        axis = 2 if rng.random() < AXIAL_SHARE else int(rng.integers(2))
        sigmas[axis] = float(np.sqrt(thick**2 - voxel_mm**2) / FWHM / voxel_mm)
    return tuple(sigmas)


def blur_inside(image: F32, brain: Mask, sigmas: tuple[float, ...], box: bool = False) -> F32:
    """Normalised convolution of ``image`` inside ``brain``: Gaussian PSF, or a box of ``FWHM * sigma``."""
    if max(sigmas) < 0.05:
        return image
    weight = brain.astype(np.float32)
    if box:
        num, den = image * weight, weight
        for axis, s in enumerate(sigmas):
            size = round(FWHM * s)
            if size >= 2:
                num = ndimage.uniform_filter1d(num, size, axis=axis, mode="constant")
                den = ndimage.uniform_filter1d(den, size, axis=axis, mode="constant")
    else:
        num = ndimage.gaussian_filter(image * weight, sigmas, mode="constant", truncate=3.0)
        den = ndimage.gaussian_filter(weight, sigmas, mode="constant", truncate=3.0)
    out = np.zeros_like(image)
    out[brain] = num[brain] / np.maximum(den[brain], np.float32(1e-3))
    return out


def distractors(
    rng: np.random.Generator, white_matter: Mask, voxel_mm: float, mean_count: float
) -> list[tuple[tuple[slice, slice, slice], F32]]:
    """Small blobs in ``white_matter``: per blob a box and its soft mask (0..1) inside the box."""
    n = int(rng.poisson(mean_count)) if mean_count > 0 else 0
    where = np.flatnonzero(white_matter)
    out = []
    for _ in range(n if where.size else 0):
        centre = np.array(np.unravel_index(where[rng.integers(where.size)], white_matter.shape))
        radius = float(rng.uniform(*DISTRACTOR_MM)) / voxel_mm
        half = int(np.ceil(radius)) + 1
        lo = np.maximum(centre - half, 0)
        hi = np.minimum(centre + half + 1, white_matter.shape)
        axes = [
            np.arange(a, b, dtype=np.float32) - np.float32(c) for a, b, c in zip(lo, hi, centre, strict=True)
        ]
        r = np.sqrt(axes[0][:, None, None] ** 2 + axes[1][None, :, None] ** 2 + axes[2][None, None, :] ** 2)
        soft = np.clip(np.float32(radius + 0.5) - r, 0.0, 1.0).astype(np.float32)
        out.append(((slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2])), soft))
    return out


def apply_distractors(
    rng: np.random.Generator, images: dict[str, F32], blobs: list[tuple[tuple[slice, slice, slice], F32]]
) -> dict[str, F32]:
    """Scale the images by ``1 + (f - 1) * soft`` inside each blob, ``f`` per modality and blob."""
    out = {m: images[m].copy() for m in MODALITIES} if blobs else images
    for box, soft in blobs:
        for m in MODALITIES:
            factor = np.float32(rng.uniform(*DISTRACTOR_FACTOR[m]))
            out[m][box] *= np.float32(1.0) + (factor - np.float32(1.0)) * soft
    return out


def texture_field(
    rng: np.random.Generator, shape: tuple[int, int, int], voxel_mm: float, amplitude: float
) -> F32:
    """Smooth multiplicative field ``1 + a * noise`` (``a`` drawn in ``[0, amplitude]``), ``shape``."""
    a = float(rng.uniform(0.0, amplitude))
    coarse = tuple(max(2, int(np.ceil(n * voxel_mm / TEXTURE_MM)) + 1) for n in shape)
    field = smooth_noise(rng, shape, (coarse[0], coarse[1], coarse[2]), 0.6)
    field *= np.float32(a)
    field += np.float32(1.0)
    return np.maximum(field, np.float32(0.2))
