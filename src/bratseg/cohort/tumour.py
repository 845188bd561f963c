"""Tumour geometry: families, multi-lobed and multifocal cores, edema spreading along white matter.

A tumour is one or more *foci* (multifocal cases add satellites). Each focus is a union of *lobes*; every lobe
boundary is a star-shaped surface around its centre whose radius is modulated by smooth noise on the sphere
and roughened by a little smooth 3D noise (shape model ``"lobes"``). The held-out shape model ``"field"``
thresholds a smooth random field under a radial envelope instead, which gives shapes that are not star-shaped.

Families (``TUMOUR_TYPES``), as tissues of the intensity model and their BraTS labels:

- ``enhancing``: necrosis (label 1, with fluid pockets: ``cyst``) inside an enhancing rim (4), edema (2).
- ``cystic``: a fluid cyst (``cyst``, label 1) inside a thin enhancing rim (4), edema (2).
- ``non_enhancing``: a solid non-enhancing core (``net``, label 1, with microcysts), little edema (2), now
  and then a small enhancing focus (4).

Labels are built in a box around the tumour only; tissue fractions are blurred label masks (partial volume).
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

TUMOUR_TYPES: tuple[str, ...] = ("enhancing", "cystic", "non_enhancing")
SHAPE_MODELS: tuple[str, ...] = ("lobes", "field")
#: Tissues of the tumour and the class each is labelled with.
TUMOUR_TISSUES: dict[str, int] = {
    "edema": EDEMA, "enhancing": ENHANCING, "necrosis": NECROSIS, "net": NECROSIS, "cyst": NECROSIS
}
#: Relative amplitude of the angular modulation of each lobe radius.
SHAPE_AMPLITUDE = 0.3
#: Relative amplitude of the 3D roughness added to the normalised radius (lobes); of the field (field model).
ROUGHNESS, FIELD_AMPLITUDE = 0.08, 0.3
#: White-matter dependence of the edema extent: reach factor ``gm_reach + (1.2 - gm_reach) * wm``.
EDEMA_GM_REACH = (0.3, 0.6)
#: Scale (mm, Gaussian sigma) of the white-matter map that steers the edema: edema follows tracts, not voxels.
WM_SMOOTH_MM = 3.0
#: Minimum edema rim around the core (mm), inside the brain (enhancing and cystic tumours).
EDEMA_RIM_MM = 2.5
#: Sigma (voxels) of the blur turning label masks into partial-volume fractions for the intensity model.
PARTIAL_VOLUME_SIGMA = 0.6
#: Satellite foci: distance from the main centre and radius, relative to the main core radius.
SATELLITE_DISTANCE, SATELLITE_RADIUS = (1.6, 3.0), (0.3, 0.6)
#: Share of non-enhancing tumours with a small enhancing focus, and its radius range (mm).
NET_ENHANCING_SHARE, NET_ENHANCING_MM = 0.2, (2.0, 5.0)
#: Cystic tumours: the cyst fills this share of the core radius (a thin rim).
CYST_RATIO = (0.6, 0.85)


@dataclass(frozen=True)
class Lobe:
    offset_mm: F64  # (3,) from the focus centre
    radius_mm: float
    shape: SphereNoise
    edema_shape: SphereNoise


@dataclass(frozen=True)
class Focus:
    centre_mm: F64  # (3,) output-grid world coordinates
    lobes: tuple[Lobe, ...]


@dataclass(frozen=True)
class TumourSpec:
    """The random description of one tumour (radii in mm)."""

    kind: str  # one of TUMOUR_TYPES
    shape_model: str  # one of SHAPE_MODELS
    foci: tuple[Focus, ...]
    core_mm: float  # main lobe radius of the main focus
    inner_ratio: float  # necrosis / cyst radius relative to the core
    edema_ratio: float
    gm_reach: float  # edema reach in grey matter (white matter reaches 1.2)
    enhancing_focus_mm: float  # non-enhancing tumours: radius of a small enhancing focus (0: none)

    @property
    def reach_mm(self) -> float:
        """Upper bound of the distance from the main centre of any tumour voxel."""
        if self.shape_model == "lobes":
            grow = (1 + SHAPE_AMPLITUDE) / (1 - 3 * ROUGHNESS)
        else:
            grow = 1 + 3 * FIELD_AMPLITUDE
        main = self.foci[0].centre_mm
        reach = 0.0
        for focus in self.foci:
            for lobe in focus.lobes:
                centre = float(np.linalg.norm(focus.centre_mm + lobe.offset_mm - main))
                edema = lobe.radius_mm * self.edema_ratio * 1.2 * grow
                core = lobe.radius_mm * grow + EDEMA_RIM_MM
                reach = max(reach, centre + max(edema, core))
        return reach


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


def pick_satellites(
    rng: np.random.Generator, templates: Templates, main_mm: F64, core_mm: float, count: int
) -> list[tuple[F64, float]]:
    """Up to ``count`` satellite centres (template mm) and radii around the main centre ``main_mm``."""
    out: list[tuple[F64, float]] = []
    dist = np.linalg.norm(templates.candidates_mm - main_mm, axis=1)
    for _ in range(count):
        radius = core_mm * float(rng.uniform(*SATELLITE_RADIUS))
        lo, hi = (core_mm * f for f in SATELLITE_DISTANCE)
        ok = np.flatnonzero((dist >= lo) & (dist <= hi) & (templates.depth_mm >= 1.3 * radius + 3.0))
        if ok.size == 0:
            continue
        out.append((np.asarray(templates.candidates_mm[ok[rng.integers(ok.size)]], dtype=np.float64), radius))
    return out


def draw_lobes(rng: np.random.Generator, radius_mm: float, n_lobes: int) -> tuple[Lobe, ...]:
    """A main lobe of ``radius_mm`` at the focus centre and ``n_lobes - 1`` smaller ones around it."""
    lobes = []
    for k in range(n_lobes):
        if k == 0:
            offset, radius = np.zeros(3), radius_mm
        else:
            direction = rng.standard_normal(3)
            direction /= max(float(np.linalg.norm(direction)), 1e-9)
            offset = direction * radius_mm * rng.uniform(0.35, 0.8)
            radius = radius_mm * float(rng.uniform(0.4, 0.8))
        lobes.append(
            Lobe(offset, radius, spherical_noise(rng, 6, (1.0, 4.5)), spherical_noise(rng, 6, (1.0, 4.5)))
        )
    return tuple(lobes)


def draw_kind(rng: np.random.Generator, mix: dict[str, float]) -> str:
    """A tumour family drawn with the relative weights ``mix`` (keys: ``TUMOUR_TYPES``)."""
    weights = np.array([mix[k] for k in TUMOUR_TYPES], dtype=np.float64)
    if not weights.sum() > 0:
        raise ValueError(f"tumour_mix needs a positive weight, got {mix}")
    return TUMOUR_TYPES[int(np.searchsorted(np.cumsum(weights / weights.sum()), rng.random(), side="right"))]


def _box(shape: tuple[int, ...], centre_vox: F64, half: int) -> tuple[slice, slice, slice]:
    lo = np.clip(np.round(centre_vox).astype(int) - half, 0, shape)
    hi = np.clip(np.round(centre_vox).astype(int) + half + 1, 0, shape)
    return (slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2]))


@dataclass(frozen=True)
class TumourMaps:
    """Tumour labels and partial-volume tissue fractions inside ``box`` (three slices of the grid)."""

    box: tuple[slice, slice, slice]
    classes: npt.NDArray[np.uint8]  # box-shaped consecutive classes 0..3 (see bratseg.labels)
    fractions: dict[str, F32]  # per TUMOUR_TISSUES name: box-shaped fractions in [0, 1], summing to <= 1
    heterogeneity: F32  # box-shaped smooth noise, zero mean, unit std: intensity texture of the tumour


class _Grid:
    """Coordinates of the box voxels relative to a point, and smooth noise on the box."""

    def __init__(self, rng: np.random.Generator, box: tuple[slice, slice, slice], affine: F64) -> None:
        self.voxel = float(affine[0, 0])
        self.first = np.array([s.start for s in box], dtype=np.float64) * self.voxel + affine[:3, 3]
        self.shape = tuple(int(s.stop - s.start) for s in box)
        self.rng = rng

    def rel(self, centre_mm: F64) -> tuple[F32, tuple[F32, F32, F32]]:
        """Distance (mm) of each voxel from ``centre_mm`` and the unit vectors towards it."""
        axes = [
            (self.first[i] - centre_mm[i] + self.voxel * np.arange(n)).astype(np.float32)
            for i, n in enumerate(self.shape)
        ]
        g = np.broadcast_arrays(axes[0][:, None, None], axes[1][None, :, None], axes[2][None, None, :])
        r = np.sqrt(g[0] ** 2 + g[1] ** 2 + g[2] ** 2) + np.float32(1e-3)
        return r, (g[0] / r, g[1] / r, g[2] / r)

    def noise(self, scale_mm: float) -> F32:
        coarse = tuple(max(2, int(np.ceil(n * self.voxel / scale_mm)) + 1) for n in self.shape)
        return smooth_noise(self.rng, self.shape, (coarse[0], coarse[1], coarse[2]), 1.0)  # type: ignore[arg-type]


def _distances(spec: TumourSpec, grid: _Grid, reach: F32) -> tuple[F32, F32, F32]:
    """Normalised distances (< 1 inside) to the core and the edema surfaces, and the core's roughness.

    Each is the minimum over the lobes of all foci. The core's distance is returned without its roughness
    (the third array, already scaled), so that inner surfaces (necrosis, cyst) can be drawn at any ratio of it
    with proportionate roughness.
    """
    q_core = np.full(grid.shape, np.inf, dtype=np.float32)
    q_edema = np.full(grid.shape, np.inf, dtype=np.float32)
    lobes = spec.shape_model == "lobes"
    amp = np.float32(ROUGHNESS if lobes else FIELD_AMPLITUDE)
    scale = 5.0 if lobes else max(spec.core_mm / 2.0, 2.0 * grid.voxel)
    rough, rough_ed = grid.noise(scale), grid.noise(scale)
    for focus in spec.foci:
        for lobe in focus.lobes:
            r, unit = grid.rel(focus.centre_mm + lobe.offset_mm)
            core: F32 | np.float32 = np.float32(lobe.radius_mm)
            edema: F32 | np.float32 = np.float32(lobe.radius_mm * spec.edema_ratio)
            if lobes:
                shape_amp = np.float32(SHAPE_AMPLITUDE)
                core = core * (np.float32(1.0) + shape_amp * eval_spherical(lobe.shape, unit))
                edema = edema * (np.float32(1.0) + shape_amp * eval_spherical(lobe.edema_shape, unit))
            np.minimum(q_core, r / core, out=q_core)
            np.minimum(q_edema, r / (edema * reach), out=q_edema)
    q_edema += amp * rough_ed
    return q_core, q_edema, amp * rough


def _keep_connected(mask: npt.NDArray[np.bool_], seed: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    labels, _ = ndimage.label(mask)
    keep = np.unique(labels[seed])
    out: npt.NDArray[np.bool_] = np.isin(labels, keep[keep > 0])
    return out


def tumour_maps(rng: np.random.Generator, spec: TumourSpec, anatomy: Anatomy, grid_affine: F64) -> TumourMaps:
    """Rasterise ``spec`` on the output grid (only within a box around it) using the warped anatomy."""
    shape = anatomy.brain.shape
    voxel = float(grid_affine[0, 0])
    main_vox = (np.asarray(spec.foci[0].centre_mm) - grid_affine[:3, 3]) / voxel
    box = _box(shape, main_vox, int(np.ceil(spec.reach_mm / voxel)) + 1)
    if any(s.stop <= s.start for s in box):
        raise ValueError(f"tumour centre {spec.foci[0].centre_mm} lies outside the grid")
    grid = _Grid(rng, box, grid_affine)
    brain = anatomy.brain[box]
    sel = anatomy.in_box(box)
    wm_smooth = ndimage.gaussian_filter(anatomy.box_values(anatomy.wm, box, sel), WM_SMOOTH_MM / voxel)
    reach = np.float32(spec.gm_reach) + np.float32(1.2 - spec.gm_reach) * wm_smooth
    base, q_edema, rough = _distances(spec, grid, reach)
    q_core = base + rough

    core = (q_core < 1.0) & brain
    for focus in spec.foci:  # a tiny core on a coarse grid: keep its centre voxel
        c = np.round((focus.centre_mm - grid.first) / voxel).astype(int)
        if np.all(c >= 0) and np.all(c < grid.shape) and brain[tuple(c)] and not core.any():
            core[tuple(c)] = True
    fluid = anatomy.box_values(anatomy.csf, box, sel) > 0.6
    edema = (q_edema < 1.0) & brain & ~fluid
    if spec.kind != "non_enhancing":
        edema |= (q_core < 1.0 + EDEMA_RIM_MM / spec.core_mm) & brain
    whole = _keep_connected(edema | core, core)

    tissue = np.zeros(grid.shape, dtype=np.uint8)  # 0 none, 1.. index into names + 1
    names = tuple(TUMOUR_TISSUES)
    code = {n: np.uint8(i + 1) for i, n in enumerate(names)}
    tissue[whole] = code["edema"]
    pockets = grid.noise(4.0)
    if spec.kind == "non_enhancing":
        tissue[core] = code["net"]
        tissue[core & (pockets > rng.uniform(1.6, 3.0))] = code["cyst"]  # microcysts
        if spec.enhancing_focus_mm > 0:
            c = np.round((spec.foci[0].centre_mm - grid.first) / voxel + rng.uniform(-1, 1, 3)).astype(int)
            r, _ = grid.rel(grid.first + c * voxel)
            tissue[(r < spec.enhancing_focus_mm) & core] = code["enhancing"]
    else:
        inner = (base + np.float32(spec.inner_ratio) * rough < spec.inner_ratio) & core
        if not (core & ~inner).any():  # no room for a rim on a coarse grid: the core is all enhancing
            inner[:] = False
        tissue[core] = code["enhancing"]
        if spec.kind == "cystic":
            tissue[inner] = code["cyst"]
        else:
            tissue[inner] = code["necrosis"]
            tissue[inner & (pockets > rng.uniform(0.8, 2.5))] = code["cyst"]  # fluid pockets in the necrosis

    classes = np.zeros(grid.shape, dtype=np.uint8)
    for name, label in TUMOUR_TISSUES.items():
        classes[tissue == code[name]] = label

    def soft(mask: npt.NDArray[np.bool_]) -> F32:
        return ndimage.gaussian_filter(mask.astype(np.float32), PARTIAL_VOLUME_SIGMA, mode="nearest")

    fractions = {n: soft(tissue == code[n]) for n in names}
    return TumourMaps(box, classes, fractions, grid.noise(5.0))
