"""Patch augmentation in the style of nnU-Net: pure numpy functions driven by an explicit random generator.

Every function takes the patch ``image`` (C, X, Y, Z) float32 and, where geometry changes, the ``label``
(X, Y, Z) uint8 classes, and returns new arrays (inputs are never modified). Voxels that are exactly 0
(outside the brain after normalisation, or padding) stay 0 under every intensity transform.

Each transform is applied with its own probability (``*_p``), per patch for the spatial one and per channel
for the intensity ones, so most patches get only a few cheap transforms: the cost stays small next to a CPU
training step (``benchmarks/bench_training_speed.py`` measures it).
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
    """Per channel: ``x * U(1-scale, 1+scale) + U(-shift, shift)``, applied inside the brain only."""
    if scale == 0 and shift == 0:
        return image
    c = image.shape[0]
    factors = rng.uniform(1 - scale, 1 + scale, size=(c, 1, 1, 1)).astype(np.float32)
    offsets = rng.uniform(-shift, shift, size=(c, 1, 1, 1)).astype(np.float32)
    out = image * factors + offsets
    return np.where(image != 0, out, np.float32(0)).astype(np.float32)


def _rotation(angles: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    return np.asarray(
        np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
        @ np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
        @ np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    )


def random_spatial(
    image: FloatArray, label: LabelArray, max_deg: float, scale: float, rng: np.random.Generator
) -> tuple[FloatArray, LabelArray]:
    """Rotate by up to ``max_deg`` about each axis and zoom by ``U(1 - scale, 1 + scale)`` about the centre.

    One coordinate map serves every channel (linear) and the label (nearest); what comes from outside the
    patch is mirrored in (``reflect``), so no artificial empty corners appear.
    """
    if max_deg == 0 and scale == 0:
        return image, label
    angles = np.deg2rad(rng.uniform(-max_deg, max_deg, size=3))
    zoom = float(rng.uniform(1 - scale, 1 + scale))
    matrix = _rotation(angles) / zoom  # output -> input coordinates
    shape = np.array(label.shape)
    centre = (shape - 1) / 2.0
    grid = np.indices(label.shape, dtype=np.float32).reshape(3, -1) - centre[:, None].astype(np.float32)
    coords = (matrix.astype(np.float32) @ grid + centre[:, None].astype(np.float32)).reshape(3, *label.shape)
    out = np.empty_like(image)
    for c in range(image.shape[0]):
        ndimage.map_coordinates(image[c], coords, output=out[c], order=1, mode="reflect", prefilter=False)
    lab = ndimage.map_coordinates(label, coords, order=0, mode="reflect", prefilter=False).astype(np.uint8)
    return out, lab


def random_rotation(
    image: FloatArray, label: LabelArray, max_deg: float, rng: np.random.Generator
) -> tuple[FloatArray, LabelArray]:
    """Rotate by up to ``max_deg`` about each axis (:func:`random_spatial` without zoom)."""
    return random_spatial(image, label, max_deg, 0.0, rng)


def random_contrast(image: FloatArray, strength: float, p: float, rng: np.random.Generator) -> FloatArray:
    """Per channel with probability ``p``: scale the brain's intensities about their mean by ``U(1 ± s)``.

    As nnU-Net, the result is clipped to the channel's original range inside the brain.
    """
    if strength == 0 or p == 0:
        return image
    out = image.copy()
    for c in range(image.shape[0]):
        factor, apply = rng.uniform(1 - strength, 1 + strength), rng.random() < p
        inside = image[c] != 0
        if not apply or not inside.any():
            continue
        values = image[c][inside]
        mean = values.mean()
        out[c][inside] = np.clip((values - mean) * np.float32(factor) + mean, values.min(), values.max())
    return out


def random_gamma(image: FloatArray, log_range: float, p: float, rng: np.random.Generator) -> FloatArray:
    """Per channel with probability ``p``: ``gamma = exp(U(±log_range))`` on the brain rescaled to [0, 1].

    The channel's minimum and maximum inside the brain are kept (nnU-Net's gamma transform); half of the
    transformed channels are inverted first (a gamma on the mirrored intensity curve), retaining the mean and
    standard deviation as nnU-Net does.
    """
    if log_range == 0 or p == 0:
        return image
    out = image.copy()
    for c in range(image.shape[0]):
        gamma = np.exp(rng.uniform(-log_range, log_range))
        invert, apply = rng.random() < 0.5, rng.random() < p
        inside = image[c] != 0
        if not apply or not inside.any():
            continue
        x = -image[c][inside] if invert else image[c][inside]
        lo, hi = x.min(), x.max()
        if hi <= lo:
            continue
        mean, std = x.mean(), x.std()
        y = np.power((x - lo) / (hi - lo), np.float32(gamma)) * (hi - lo) + lo
        y = (y - y.mean()) / max(float(y.std()), 1e-6) * std + mean
        out[c][inside] = -y if invert else y
    return out


def random_low_resolution(
    image: FloatArray, max_factor: float, p: float, rng: np.random.Generator
) -> FloatArray:
    """Per channel with probability ``p``: downsample by ``U(1, 1 + max_factor)`` (nearest), upsample back.

    The upsampling is linear on the exact original grid; the brain's edge is kept (zeros stay zero).
    """
    if max_factor == 0 or p == 0:
        return image
    out = image.copy()
    shape = np.array(image.shape[1:])
    for c in range(image.shape[0]):
        factor, apply = rng.uniform(1.0, 1.0 + max_factor), rng.random() < p
        if not apply:
            continue
        small_shape = np.maximum(np.round(shape / factor).astype(int), 2)
        pairs = list(zip(small_shape, shape, strict=True))
        idx = [np.minimum((np.arange(s) * n / s).astype(int), n - 1) for s, n in pairs]
        small = image[c][np.ix_(*idx)]
        pos = [np.linspace(0, s - 1, n, dtype=np.float32) for s, n in pairs]
        coords = np.stack(np.meshgrid(*pos, indexing="ij"))
        up = ndimage.map_coordinates(small, coords, order=1, mode="nearest", prefilter=False)
        out[c] = np.where(image[c] != 0, up, np.float32(0))
    return out


def random_blur(image: FloatArray, max_sigma: float, p: float, rng: np.random.Generator) -> FloatArray:
    """Per channel with probability ``p``: Gaussian blur with sigma ``U(0.5, max_sigma)`` voxels."""
    if max_sigma == 0 or p == 0:
        return image
    out = image.copy()
    for c in range(image.shape[0]):
        sigma, apply = rng.uniform(min(0.5, max_sigma), max_sigma), rng.random() < p
        if apply:
            blurred = ndimage.gaussian_filter(image[c], sigma, mode="nearest", truncate=3.0)
            out[c] = np.where(image[c] != 0, blurred, np.float32(0))
    return out


def random_noise(image: FloatArray, max_std: float, p: float, rng: np.random.Generator) -> FloatArray:
    """Per channel with probability ``p``: additive Gaussian noise of std ``U(0, max_std)`` in the brain."""
    if max_std == 0 or p == 0:
        return image
    out = image.copy()
    for c in range(image.shape[0]):
        std, apply = rng.uniform(0.0, max_std), rng.random() < p
        if apply:
            noise = rng.standard_normal(image.shape[1:], dtype=np.float32) * np.float32(std)
            out[c] = np.where(image[c] != 0, image[c] + noise, np.float32(0))
    return out


def augment(
    image: FloatArray, label: LabelArray, params: AugmentParams, rng: np.random.Generator
) -> tuple[FloatArray, LabelArray]:
    """Apply the augmentations of ``params`` in a fixed order.

    Spatial (rotation and zoom, with probability ``spatial_p``), flips, brightness (scale and shift),
    contrast, gamma, simulated low resolution, blur, noise. The draws depend only on ``rng`` and ``params``.
    """
    if rng.random() < params.spatial_p:
        image, label = random_spatial(image, label, params.rotation_deg, params.scale, rng)
    if params.flip:
        image, label = random_flip(image, label, rng)
    image = random_intensity(image, params.intensity_scale, params.intensity_shift, rng)
    image = random_contrast(image, params.contrast, params.contrast_p, rng)
    image = random_gamma(image, params.gamma, params.gamma_p, rng)
    image = random_low_resolution(image, params.low_res, params.low_res_p, rng)
    image = random_blur(image, params.blur_sigma, params.blur_p, rng)
    image = random_noise(image, params.noise_std, params.noise_p, rng)
    return image, label
