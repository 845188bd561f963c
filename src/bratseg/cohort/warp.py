"""The random spatial transform of a case, and the resampling of the templates through it.

Each case pulls the templates back through one composed coordinate map (output grid → template):

    y = C + M (x − C + d(x) − m(x)) + t

with ``C`` the centre of the brain's bounding box (also the centre of the output grid), ``M`` a random
rotation-and-scaling, ``t`` a translation, ``d`` a smooth random displacement field and ``m`` the mass
effect of the tumour (tissue pushed away from it). The templates are resampled once, linearly, from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from bratseg.cohort.anatomy import F64, Anatomy, Templates
from bratseg.cohort.fields import F32, upsample_linear

#: Spacing of the coarse grid on which the random displacement field is drawn (mm).
DEFORMATION_SPACING_MM = 8.0


def grid_affine(shape: tuple[int, int, int], voxel_mm: float, centre_mm: F64) -> F64:
    """RAS affine ``(4, 4)`` of a grid of ``shape`` voxels of ``voxel_mm`` whose centre is ``centre_mm``."""
    if voxel_mm <= 0:
        raise ValueError(f"voxel_mm must be positive, got {voxel_mm}")
    affine = np.diag([voxel_mm, voxel_mm, voxel_mm, 1.0])
    affine[:3, 3] = np.asarray(centre_mm, dtype=np.float64) - voxel_mm * (np.asarray(shape) - 1) / 2.0
    return affine


def _rotation(angles_rad: F64) -> F64:
    ax, ay, az = angles_rad
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return np.asarray(rz @ ry @ rx, dtype=np.float64)


@dataclass(frozen=True)
class Warp:
    """The random part of the coordinate map (see the module docstring)."""

    matrix: F64  # (3, 3) M: rotation times scaling
    shift_mm: F64  # (3,) t
    coarse: F32  # (3, a, b, c) displacement d in mm on coarse nodes spanning the output grid edge to edge


def random_warp(
    rng: np.random.Generator,
    shape: tuple[int, int, int],
    voxel_mm: float,
    rotation_deg: float,
    scale_jitter: float,
    deformation_mm: float,
) -> Warp:
    """Draw a small random affine and a smooth displacement field of RMS magnitude ``deformation_mm``.

    Rotation: up to ``rotation_deg`` about each axis. Scaling: a common factor plus a smaller one per axis,
    each axis within ``1 ± scale_jitter``. Translation: up to 3 mm along each axis.
    """
    angles = np.deg2rad(rng.uniform(-rotation_deg, rotation_deg, 3))
    common = rng.uniform(-scale_jitter, scale_jitter)
    scale = 1.0 + 0.7 * common + 0.3 * rng.uniform(-scale_jitter, scale_jitter, 3)
    shift = rng.uniform(-3.0, 3.0, 3)
    coarse_shape = tuple(max(2, int(np.ceil(n * voxel_mm / DEFORMATION_SPACING_MM)) + 1) for n in shape)
    noise = rng.standard_normal((3, *coarse_shape)).astype(np.float32)
    field = np.stack([ndimage.gaussian_filter(c, 1.5, mode="nearest") for c in noise])
    rms = float(np.sqrt((field**2).sum(0).mean()))
    field *= np.float32(deformation_mm / max(rms, 1e-6))
    return Warp(_rotation(angles) @ np.diag(scale), shift, field)


def template_to_grid(
    point_mm: F64, warp: Warp, centre_mm: F64, shape: tuple[int, int, int], voxel_mm: float
) -> F64:
    """Output-grid position (mm) whose pull-back is the template point ``point_mm`` (mass effect excluded).

    Solves ``y = C + M (x − C + d(x)) + t`` for ``x`` by fixed-point iteration (``d`` is small and smooth).
    """
    target = np.linalg.solve(warp.matrix, np.asarray(point_mm) - centre_mm - warp.shift_mm) + centre_mm
    first = centre_mm - voxel_mm * (np.asarray(shape) - 1) / 2.0
    scale = (np.array(warp.coarse.shape[1:]) - 1.0) / np.maximum(np.asarray(shape) - 1.0, 1.0)
    x = target.copy()
    for _ in range(8):
        node = (x - first) / voxel_mm * scale
        d = np.array(
            [ndimage.map_coordinates(c, node[:, None], order=1, mode="nearest")[0] for c in warp.coarse]
        )
        x = target - d
    return np.asarray(x, dtype=np.float64)


@dataclass(frozen=True)
class MassEffect:
    """Tissue pushed radially away from ``centre_mm``: displacement ``a ρ exp((1 − ρ²) / 2)``, ``ρ = r / R``.

    The displacement peaks at ``a`` on the sphere of radius ``R`` and vanishes at the centre and far away; it
    stays invertible (no folding) while ``|a| < R / √e``. A negative ``a`` pulls tissue in (the content of the
    sphere shrinks).
    """

    centre_mm: F64  # (3,) in output-grid world coordinates
    radius_mm: float  # R
    amplitude_mm: float  # a


def _brain_box(
    templates: Templates, warp: Warp, shape: tuple[int, int, int], voxel_mm: float, margin_mm: float
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Voxel range ``[lo, hi)`` of the output grid that can contain brain (the template box mapped back)."""
    corners = np.array([[templates.bbox_mm[(c >> i) & 1, i] for i in range(3)] for c in range(8)])
    offsets = np.linalg.solve(warp.matrix, (corners - templates.centre_mm - warp.shift_mm).T).T
    centre_vox = (np.asarray(shape) - 1) / 2.0
    lo = np.floor((offsets.min(0) - margin_mm) / voxel_mm + centre_vox).astype(np.intp)
    hi = np.ceil((offsets.max(0) + margin_mm) / voxel_mm + centre_vox).astype(np.intp) + 1
    return np.clip(lo, 0, shape), np.clip(hi, 0, shape)


def _subtract_mass_effect(
    coords: F32,
    lin: F64,
    lo: npt.NDArray[np.intp],
    shape: tuple[int, int, int],
    voxel_mm: float,
    centre_mm: F64,
    mass: MassEffect,
) -> None:
    """Apply the mass effect to the template coordinates ``coords`` ``(3, *sub)`` of a sub-grid at ``lo``.

    ``centre_mm`` is the grid centre; the effect is computed within ``4 R`` of the tumour (beyond, < 0.002 a).
    """
    a, r0 = mass.amplitude_mm, mass.radius_mm
    if a == 0 or r0 <= 0:
        return
    centre_vox = (np.asarray(mass.centre_mm) - centre_mm) / voxel_mm + (np.asarray(shape) - 1) / 2.0
    half = int(np.ceil(4.0 * r0 / voxel_mm))
    sub = np.array(coords.shape[1:])
    start = np.clip(np.floor(centre_vox).astype(np.intp) - half - lo, 0, sub)
    stop = np.clip(np.floor(centre_vox).astype(np.intp) + half + 1 - lo, 0, sub)
    if np.any(stop <= start):
        return
    rel = [
        np.float32(voxel_mm)
        * (np.arange(start[i], stop[i], dtype=np.float32) + np.float32(lo[i] - centre_vox[i]))
        for i in range(3)
    ]
    rho2 = rel[0][:, None, None] ** 2 + rel[1][None, :, None] ** 2 + rel[2][None, None, :] ** 2
    factor = np.float32(a / r0) * np.exp(np.float32(0.5) - rho2 * np.float32(0.5 / (r0 * r0)))
    factor[rho2 > np.float32(16.0 * r0 * r0)] = 0.0  # a sphere of radius 4 R, not the corners of the box
    box = (slice(start[0], stop[0]), slice(start[1], stop[1]), slice(start[2], stop[2]))
    for k in range(3):
        w = [np.float32(lin[k, j]) * rel[j] for j in range(3)]
        coords[k][box] -= factor * (w[0][:, None, None] + w[1][None, :, None] + w[2][None, None, :])


def resample(
    templates: Templates,
    warp: Warp,
    shape: tuple[int, int, int],
    voxel_mm: float,
    mass: Sequence[MassEffect] = (),
) -> Anatomy:
    """Pull the templates back onto the output grid through one composed coordinate map (linear sampling).

    Only the part of the grid that can hold brain is mapped. The brain mask is sampled there; grey matter,
    white matter and texture only inside the brain.
    """
    centre = templates.centre_mm
    inv = np.linalg.inv(templates.vox_to_mm)
    lin = inv[:3, :3] @ warp.matrix  # output offsets (mm) -> template voxels
    const = inv[:3, :3] @ (centre + warp.shift_mm) + inv[:3, 3]
    push = sum(abs(m.amplitude_mm) for m in mass)
    reach = float(np.sqrt((warp.coarse**2).sum(0)).max()) + push + 2 * voxel_mm
    lo, hi = _brain_box(templates, warp, shape, voxel_mm, reach)
    brain = np.zeros(shape, dtype=bool)
    if np.any(hi <= lo):
        empty = np.zeros(0, dtype=np.float32)
        return Anatomy(brain, np.zeros(0, dtype=np.intp), empty, empty, empty, empty)

    disp = np.einsum("kj,j...->k...", lin, warp.coarse.astype(np.float64)).astype(np.float32)
    spans = ((int(lo[0]), int(hi[0])), (int(lo[1]), int(hi[1])), (int(lo[2]), int(hi[2])))
    offsets = [o[a:b] for o, a, b in zip(_axis_offsets(shape, voxel_mm), lo, hi, strict=True)]
    coords = np.empty((3, *(int(n) for n in hi - lo)), dtype=np.float32)
    for k in range(3):
        coords[k] = upsample_linear(disp[k], shape, spans)
        coords[k] += (np.float32(lin[k, 0]) * offsets[0])[:, None, None]
        coords[k] += (np.float32(lin[k, 1]) * offsets[1])[None, :, None]
        coords[k] += (np.float32(lin[k, 2]) * offsets[2] + np.float32(const[k]))[None, None, :]
    for effect in mass:
        _subtract_mass_effect(coords, lin, lo, shape, voxel_mm, centre, effect)

    mask = ndimage.map_coordinates(templates.mask, coords, order=1, output=np.float32, prefilter=False)
    inside = mask >= 0.5
    points = coords.reshape(3, -1)[:, inside.reshape(-1)]
    del coords
    box = (slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2]))
    brain[box] = inside
    flat = np.flatnonzero(brain)

    def sample(volume: F32) -> F32:
        return ndimage.map_coordinates(volume, points, order=1, output=np.float32, prefilter=False)

    gm, wm, texture = sample(templates.gm), sample(templates.wm), sample(templates.texture)
    csf = np.clip(mask[inside] - gm - wm, 0.0, 1.0)
    total = np.maximum(gm + wm + csf, np.float32(1e-3))
    gm /= total
    wm /= total
    csf = np.float32(1.0) - gm - wm
    return Anatomy(brain, flat, wm, gm, np.maximum(csf, np.float32(0.0)), texture)


def _axis_offsets(shape: tuple[int, int, int], voxel_mm: float) -> list[F32]:
    """Per axis, the position of each voxel relative to the grid centre (mm)."""
    return [np.float32(voxel_mm) * (np.arange(n, dtype=np.float32) - np.float32((n - 1) / 2)) for n in shape]
