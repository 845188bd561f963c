"""Anatomy: the ICBM152 2009a templates shipped with nilearn, and tissue maps on an output grid.

The templates (T1, grey-matter and white-matter probabilities; 197 × 233 × 189 voxels of 1 mm, RAS) are read
from nilearn's package data without importing nilearn (slow). The T1 is skull-stripped: ``T1 > 0`` is the
brain; the CSF probability is the brain mask minus grey and white matter.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import numpy.typing as npt
from scipy import ndimage

from bratseg.cohort.fields import F32, power32
from bratseg.cohort.template_cache import cache_dir, cached

F64 = npt.NDArray[np.float64]
TEMPLATE_NAME = "mni_icbm152_{}_tal_nlin_sym_09a_converted.nii.gz"
#: Points (template mm) inside the lateral ventricles, left and right: the most interior voxel (farthest from
#: the CSF boundary) of the deep (> 15 mm from the brain's edge) ventricle component, in front of and behind
#: y = -15 mm (the bodies near the frontal horns, and the atria), per hemisphere.
VENTRICLE_CENTRES_MM = ((-5.0, 1.0, 17.0), (5.0, 1.0, 17.0), (-21.0, -38.0, 17.0), (21.0, -38.0, 17.0))


def template_dir() -> Path:
    """Folder of nilearn's package data holding the ICBM152 2009a templates (nilearn is not imported)."""
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("nilearn is not installed: the cohort templates ship inside its wheel")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


@dataclass(frozen=True)
class Templates:
    """The template anatomy (arrays ``(197, 233, 189)`` float32, read-only) and derived data."""

    mask: F32  # 1 inside the brain (T1 > 0), else 0
    gm: F32  # grey-matter probability 0..1
    wm: F32  # white-matter probability 0..1
    texture: F32  # T1 divided by its fit from the tissue probabilities (about 0.85..1.15), 1 outside
    vox_to_mm: F64  # (4, 4) template affine
    centre_mm: F64  # (3,) centre of the brain's bounding box
    bbox_mm: F64  # (2, 3) lowest and highest brain voxel centres
    candidates_mm: F64  # (n, 3) possible tumour centres: cerebral grey/white matter, 2 mm apart
    depth_mm: F64  # (n,) distance of each candidate from the edge of the brain


def _read(name: str) -> tuple[F32, F64]:
    """A template as float32 in C order, values / 255 (the files hold uint8 probabilities and intensities).

    The uint8 voxels are put in C order before the conversion to float32 (four times less memory traffic).
    """
    path = template_dir() / TEMPLATE_NAME.format(name)
    if not path.exists():
        raise FileNotFoundError(f"template {path} not found (is nilearn installed with its package data?)")
    img = nib.Nifti1Image.from_filename(path)
    proxy = img.dataobj
    plain = getattr(proxy, "slope", 1.0) == 1.0 and getattr(proxy, "inter", 0.0) == 0.0
    raw = np.asanyarray(proxy.get_unscaled()) if plain else np.asarray(proxy, dtype=np.float32)  # type: ignore[attr-defined]
    data = np.ascontiguousarray(raw).astype(np.float32)
    data /= np.float32(255.0)
    return data, np.asarray(img.affine, dtype=np.float64)


@functools.lru_cache(maxsize=1)
def load_templates() -> Templates:
    """The derived templates, once per process, from the per-user cache when it holds them for these template
    files and this code (:mod:`bratseg.cohort.template_cache`), else derived (:func:`derive_templates`)."""
    sources = [template_dir() / TEMPLATE_NAME.format(name) for name in ("t1", "gm", "wm")]
    if not all(path.exists() for path in sources):
        return derive_templates()  # its error names the missing file
    return cached(derive_templates, Templates, [*sources, Path(__file__)], cache_dir())


def derive_templates() -> Templates:
    """Read the templates and derive texture and tumour-centre candidates."""
    t1, affine = _read("t1")
    gm, _ = _read("gm")
    wm, _ = _read("wm")
    brain = t1 > 0
    mask = brain.astype(np.float32)
    csf = np.clip(mask - gm - wm, 0.0, 1.0)
    design = np.stack([wm[brain], gm[brain], csf[brain]], axis=1).astype(np.float64)
    # least squares by the normal equations, summed without BLAS: identical bits whatever the thread count
    gram = np.einsum("ni,nj->ij", design, design)
    coef = np.linalg.solve(gram, np.einsum("ni,n->i", design, t1[brain].astype(np.float64)))
    fit = np.maximum(np.einsum("ni,i->n", design, coef), 0.05).astype(np.float32)
    texture = np.ones_like(t1)
    texture[brain] = np.clip(t1[brain] / fit, 0.7, 1.3)

    span = [np.flatnonzero(brain.any(axis=tuple(j for j in range(3) if j != i))) for i in range(3)]
    lo = np.array([s[0] for s in span], dtype=np.float64)
    hi = np.array([s[-1] for s in span], dtype=np.float64)
    bbox = np.stack([lo, hi]) @ affine[:3, :3].T + affine[:3, 3]
    centre = bbox.mean(0)

    # Candidates on a 2 mm lattice: cerebral grey/white matter (no cerebellum, no brainstem) and their depth.
    sub = (slice(None, None, 2),) * 3
    depth = ndimage.distance_transform_edt(brain[sub], sampling=2.0)
    tissue = (gm + wm)[sub]
    vox = np.argwhere((tissue >= 0.6) & (wm[sub] >= 0.2)) * 2
    mm = vox @ affine[:3, :3].T + affine[:3, 3]
    x, y, z = mm.T
    cerebral = ~((y < -35) & (z < -5)) & ~((np.abs(x) < 22) & (z < -2))
    vox, mm = vox[cerebral], mm[cerebral]
    cand_depth = np.asarray(depth[tuple((vox // 2).T)], dtype=np.float64)

    for a in (mask, gm, wm, texture, affine, centre, bbox, mm, cand_depth):
        a.setflags(write=False)
    return Templates(mask, gm, wm, texture, affine, centre, bbox, mm, cand_depth)


Box = tuple[slice, slice, slice]


@dataclass(frozen=True)
class Anatomy:
    """Tissue on the output grid, stored for the brain voxels only.

    ``brain`` is ``(n0, n1, n2)``; ``flat`` ``(n,)`` the flat (C-order) indices of its voxels, ascending; the
    tissue arrays are ``(n,)`` float32 with ``wm + gm + csf == 1``.
    """

    brain: npt.NDArray[np.bool_]
    flat: npt.NDArray[np.intp]
    wm: F32
    gm: F32
    csf: F32
    texture: F32  # multiplicative T1 texture of the template

    def full(self, values: F32, fill: float = 0.0) -> F32:
        """Scatter brain values ``(n,)`` onto the grid ``(n0, n1, n2)``, ``fill`` elsewhere."""
        out = np.full(self.brain.shape, fill, dtype=np.float32)
        out.reshape(-1)[self.flat] = values
        return out

    def in_box(self, box: Box) -> npt.NDArray[np.bool_]:
        """``(n,)`` mask of the brain voxels inside ``box``; their order is the C order of ``brain[box]``."""
        inside = np.zeros(self.brain.shape, dtype=bool)
        inside[box] = True
        return inside.reshape(-1)[self.flat]

    def box_values(self, values: F32, box: Box, sel: npt.NDArray[np.bool_] | None = None) -> F32:
        """Box-shaped array of brain ``values`` ``(n,)``, 0 outside the brain; ``sel`` from :meth:`in_box`."""
        sub = self.brain[box]
        out = np.zeros(sub.shape, dtype=np.float32)
        out[sub] = values[self.in_box(box) if sel is None else sel]
        return out

    def from_box(self, values: F32, box: Box, sel: npt.NDArray[np.bool_] | None = None) -> F32:
        """Inverse of :meth:`box_values`: brain values ``(n,)`` from a box-shaped array, 0 outside the box."""
        out = np.zeros(self.flat.size, dtype=np.float32)
        out[self.in_box(box) if sel is None else sel] = values[self.brain[box]]
        return out


def widen_csf(anatomy: Anatomy, amount: float) -> Anatomy:
    """Atrophy: CSF fraction ``c -> 1 - (1 - c) ** (1 + amount)``; grey and white matter share the rest.

    Voxels of pure tissue are unchanged; partial-volume voxels at sulci and ventricles gain CSF, which widens
    them. ``amount`` 0 returns ``anatomy`` itself.
    """
    if amount < 0:
        raise ValueError(f"amount must be >= 0, got {amount}")
    if amount == 0:
        return anatomy
    tissue = np.float32(1.0) - anatomy.csf
    new_tissue = power32(np.maximum(tissue, np.float32(0.0)), 1.0 + amount)
    scale = new_tissue / np.maximum(tissue, np.float32(1e-6))
    return Anatomy(
        anatomy.brain, anatomy.flat, anatomy.wm * scale, anatomy.gm * scale, np.float32(1.0) - new_tissue,
        anatomy.texture,
    )
