"""Tumour geometry: an irregular necrotic core with an enhancing rim, and edema spreading along white matter.

Every boundary is a star-shaped surface around the tumour centre whose radius is modulated by smooth noise
on the sphere, roughened by a little smooth 3D noise. Labels are built in a box around the tumour only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from bratseg.cohort.anatomy import Anatomy, Templates
from bratseg.cohort.fields import F32, eval_spherical, smooth_noise, spherical_noise
from bratseg.labels import EDEMA, ENHANCING, NECROSIS

F64 = npt.NDArray[np.float64]
SphereNoise = tuple[F64, F64, F64, F64]

#: Relative amplitude of the angular modulation of each boundary radius.
SHAPE_AMPLITUDE = 0.3
#: Relative amplitude of the 3D roughness added to the normalised radius.
ROUGHNESS = 0.08
#: White-matter dependence of the edema extent: reach factor ``EDEMA_GM + EDEMA_WM * wm`` (pure WM → 1.2).
EDEMA_GM, EDEMA_WM = 0.45, 0.75
#: Scale (mm, Gaussian sigma) of the white-matter map that steers the edema: edema follows tracts, not voxels.
WM_SMOOTH_MM = 3.0
#: Minimum edema rim around the core (mm), inside the brain.
EDEMA_RIM_MM = 2.5
#: Sigma (voxels) of the blur turning label masks into partial-volume fractions for the intensity model.
PARTIAL_VOLUME_SIGMA = 0.6


@dataclass(frozen=True)
class TumourSpec:
    """The random description of one tumour (radii in mm, centre in output-grid world coordinates)."""

    centre_mm: F64
    core_mm: float
    necrosis_mm: float
    edema_mm: float
    enhancing: bool
    core_shape: SphereNoise
    necrosis_shape: SphereNoise
    edema_shape: SphereNoise

    @property
    def reach_mm(self) -> float:
        """Upper bound of the distance from the centre of any tumour voxel."""
        edema = self.edema_mm * (1 + SHAPE_AMPLITUDE) * (EDEMA_GM + EDEMA_WM) / (1 - 3 * ROUGHNESS)
        core = self.core_mm * (1 + SHAPE_AMPLITUDE) / (1 - 3 * ROUGHNESS) + EDEMA_RIM_MM
        return max(edema, core)


def pick_centre(
    rng: np.random.Generator, templates: Templates, core_mm: float, margin_mm: float = 4.0
) -> F64:
    """A template point (mm) in cerebral grey/white matter at least ``core_mm · 1.3 + margin_mm`` deep.

    If no candidate is deep enough, the deepest tenth of the candidates is used. Returns ``(3,)``.
    """
    depth = templates.depth_mm
    ok = np.flatnonzero(depth >= 1.3 * core_mm + margin_mm)
    if ok.size == 0:
        ok = np.flatnonzero(depth >= np.quantile(depth, 0.9))
    point = templates.candidates_mm[ok[rng.integers(ok.size)]] + rng.uniform(-1.0, 1.0, 3)
    return np.asarray(point, dtype=np.float64)


def draw_spec(
    rng: np.random.Generator,
    centre_mm: F64,
    core_radius_mm: float,
    necrosis_ratio: tuple[float, float],
    edema_ratio: tuple[float, float],
    enhancing: bool,
) -> TumourSpec:
    """Draw the radii and the boundary shapes of a tumour with core radius ``core_radius_mm``."""
    nec = core_radius_mm * rng.uniform(*necrosis_ratio)
    edema = core_radius_mm * rng.uniform(*edema_ratio)
    shapes = [spherical_noise(rng, 8, (1.0, 4.5)) for _ in range(3)]
    return TumourSpec(centre_mm, core_radius_mm, nec, edema, enhancing, shapes[0], shapes[1], shapes[2])


@dataclass(frozen=True)
class TumourMaps:
    """Tumour labels and partial-volume fractions inside ``box`` (a tuple of three slices of the grid)."""

    box: tuple[slice, slice, slice]
    classes: npt.NDArray[np.uint8]  # box-shaped consecutive classes 0..3 (see bratseg.labels)
    necrosis: F32  # box-shaped fractions in [0, 1], summing to at most 1
    enhancing: F32
    edema: F32
    heterogeneity: F32  # box-shaped smooth noise, zero mean, unit std: intensity texture of the tumour


def tumour_maps(rng: np.random.Generator, spec: TumourSpec, anatomy: Anatomy, grid_affine: F64) -> TumourMaps:
    """Rasterise ``spec`` on the output grid (only within a box around it) using the warped anatomy."""
    shape = anatomy.brain.shape
    voxel = float(grid_affine[0, 0])
    centre_vox = (np.asarray(spec.centre_mm) - grid_affine[:3, 3]) / voxel
    half = int(np.ceil(spec.reach_mm / voxel)) + 1
    lo = np.clip(np.round(centre_vox).astype(int) - half, 0, shape)
    hi = np.clip(np.round(centre_vox).astype(int) + half + 1, 0, shape)
    box = (slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2]))
    bshape = (int(hi[0] - lo[0]), int(hi[1] - lo[1]), int(hi[2] - lo[2]))
    if min(bshape) <= 0:
        raise ValueError(f"tumour centre {spec.centre_mm} lies outside the grid")

    rel = [
        np.float32(voxel) * (np.arange(lo[i], hi[i], dtype=np.float32) - np.float32(centre_vox[i]))
        for i in range(3)
    ]
    grids = np.broadcast_arrays(rel[0][:, None, None], rel[1][None, :, None], rel[2][None, None, :])
    r = np.sqrt(grids[0] ** 2 + grids[1] ** 2 + grids[2] ** 2) + np.float32(1e-3)
    unit = (grids[0] / r, grids[1] / r, grids[2] / r)
    coarse = tuple(max(2, int(np.ceil(n * voxel / 5.0)) + 1) for n in bshape)
    rough = smooth_noise(rng, bshape, (coarse[0], coarse[1], coarse[2]), 1.0)
    rough_ed = smooth_noise(rng, bshape, (coarse[0], coarse[1], coarse[2]), 1.0)
    hetero = smooth_noise(rng, bshape, (coarse[0], coarse[1], coarse[2]), 0.7)

    def inside(radius: float, shape_params: SphereNoise, noise: F32, reach: F32 | float = 1.0) -> F32:
        """Normalised radius: < 1 inside the surface."""
        bound = np.float32(radius) * (
            np.float32(1.0) + np.float32(SHAPE_AMPLITUDE) * eval_spherical(shape_params, unit)
        )
        return r / (bound * reach) + np.float32(ROUGHNESS) * noise

    brain = anatomy.brain[box]
    sel = anatomy.in_box(box)
    q_core = inside(spec.core_mm, spec.core_shape, rough)
    core = (q_core < 1.0) & brain
    centre_in_box = tuple(np.clip(np.round(centre_vox).astype(int) - lo, 0, np.array(bshape) - 1))
    if not core.any() and brain[centre_in_box]:  # a tiny core on a coarse grid: keep its centre voxel
        core[centre_in_box] = True
    wm_smooth = ndimage.gaussian_filter(anatomy.box_values(anatomy.wm, box, sel), WM_SMOOTH_MM / voxel)
    reach = np.float32(EDEMA_GM) + np.float32(EDEMA_WM) * wm_smooth
    fluid = anatomy.box_values(anatomy.csf, box, sel) > 0.6
    edema = (inside(spec.edema_mm, spec.edema_shape, rough_ed, reach) < 1.0) & brain & ~fluid
    edema |= (q_core < 1.0 + EDEMA_RIM_MM / spec.core_mm) & brain
    whole = edema | core
    # keep only the edema connected to the core
    labels, _ = ndimage.label(whole)
    keep = np.unique(labels[core])
    whole &= np.isin(labels, keep[keep > 0])

    classes = np.zeros(bshape, dtype=np.uint8)
    classes[whole] = EDEMA
    if spec.enhancing:
        nec = (inside(spec.necrosis_mm, spec.necrosis_shape, rough) < 1.0) & core
        if not (core & ~nec).any():  # no room for a rim on a coarse grid: the core is all enhancing
            nec[:] = False
        classes[core] = ENHANCING
        classes[nec] = NECROSIS

    def soft(mask: npt.NDArray[np.bool_]) -> F32:
        return ndimage.gaussian_filter(mask.astype(np.float32), PARTIAL_VOLUME_SIGMA, mode="nearest")

    return TumourMaps(
        box,
        classes,
        soft(classes == NECROSIS),
        soft(classes == ENHANCING),
        soft(classes == EDEMA),
        hetero,
    )
