"""Generate and write synthetic BraTS-like cases (BraTS 2021 layout and labels).

One case is a pure function of ``(params, index)``: every random draw comes from
``np.random.default_rng([params.seed, index])``, so the same parameters give byte-identical files.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import numpy.typing as npt

from bratseg.cohort.anatomy import load_templates
from bratseg.cohort.contrast import add_rician_noise, bias_fields, clean_images, draw_contrast
from bratseg.cohort.tumour import draw_spec, pick_centre, tumour_maps
from bratseg.cohort.warp import MassEffect, grid_affine, random_warp, resample, template_to_grid
from bratseg.config import CohortParams
from bratseg.io import atomic_path
from bratseg.labels import BRATS_2021
from bratseg.layouts import LAYOUTS, MODALITIES

log = logging.getLogger(__name__)

#: Largest mass-effect displacement relative to the core radius (keeps the warp free of folds).
MAX_MASS_EFFECT_RATIO = 0.5
#: White-matter fraction above which a voxel counts as white matter for bias-quality measures.
WM_THRESHOLD = 0.8


@dataclass(frozen=True)
class SyntheticCase:
    """One synthetic case. Every array is ``params.shape`` (``(n0, n1, n2)``) unless stated otherwise."""

    case_id: str
    images: dict[str, npt.NDArray[np.float32]]  # per modality (MODALITIES), ≥ 0, exactly 0 outside the brain
    seg: npt.NDArray[np.uint8]  # BraTS 2021 values {0, 1, 2, 4}
    affine: npt.NDArray[np.float64]  # (4, 4) RAS voxel -> mm
    bias_fields: dict[str, npt.NDArray[np.float32]]  # true multiplicative bias field per modality
    brain_mask: npt.NDArray[np.bool_]
    white_matter: npt.NDArray[np.bool_]  # deformed white matter away from the tumour
    tumour_type: str  # "enhancing" or "no_enhancing"


def _check_range(name: str, value: tuple[float, float], low: float, high: float = np.inf) -> None:
    lo, hi = value
    if not (low <= lo <= hi <= high):
        raise ValueError(f"params.{name} must satisfy {low} <= lower <= upper <= {high}, got {list(value)}")


def check_params(params: CohortParams) -> None:
    """Raise ``ValueError`` naming the first cohort parameter that cannot generate a case."""
    if params.n_cases < 1:
        raise ValueError(f"params.n_cases must be >= 1, got {params.n_cases}")
    if params.voxel_mm <= 0:
        raise ValueError(f"params.voxel_mm must be positive, got {params.voxel_mm}")
    if min(params.field_of_view_mm) <= 0:
        raise ValueError(f"params.field_of_view_mm must be positive, got {list(params.field_of_view_mm)}")
    if not 0 <= params.no_enhancing_fraction <= 1:
        raise ValueError(
            f"params.no_enhancing_fraction must lie in [0, 1], got {params.no_enhancing_fraction}"
        )
    _check_range("core_radius_mm", params.core_radius_mm, 1e-3)
    _check_range("edema_ratio", params.edema_ratio, 1.0)
    _check_range("necrosis_ratio", params.necrosis_ratio, 0.0, 0.95)
    if not 0 <= params.scale_jitter < 0.5:
        raise ValueError(f"params.scale_jitter must lie in [0, 0.5), got {params.scale_jitter}")
    for name in ("deformation_mm", "rotation_deg", "mass_effect_mm", "bias_field", "noise"):
        if getattr(params, name) < 0:
            raise ValueError(f"params.{name} must be >= 0, got {getattr(params, name)}")


def generate_case(index: int, params: CohortParams) -> SyntheticCase:
    """Generate case ``index`` of the cohort ``params`` (pure: no I/O besides reading the cached templates).

    Raises:
        ValueError: if ``index`` is not in ``range(params.n_cases)`` or a parameter is out of range.
    """
    check_params(params)
    if not 0 <= index < params.n_cases:
        raise ValueError(f"index must lie in [0, {params.n_cases}) (params.n_cases), got {index}")
    rng = np.random.default_rng([params.seed, index])
    templates = load_templates()
    shape, voxel = params.shape, float(params.voxel_mm)
    affine = grid_affine(shape, voxel, templates.centre_mm)

    enhancing = bool(rng.random() >= params.no_enhancing_fraction)
    core_mm = float(rng.uniform(*params.core_radius_mm))
    warp = random_warp(rng, shape, voxel, params.rotation_deg, params.scale_jitter, params.deformation_mm)
    centre_template = pick_centre(rng, templates, core_mm)
    centre = template_to_grid(centre_template, warp, templates.centre_mm, shape, voxel)
    spec = draw_spec(rng, centre, core_mm, params.necrosis_ratio, params.edema_ratio, enhancing)
    push = min(params.mass_effect_mm * rng.uniform(0.6, 1.0), MAX_MASS_EFFECT_RATIO * core_mm)
    anatomy = resample(templates, warp, shape, voxel, MassEffect(centre, core_mm, push))

    maps = tumour_maps(rng, spec, anatomy, affine)
    classes = np.zeros(shape, dtype=np.uint8)
    classes[maps.box] = maps.classes
    sel = anatomy.in_box(maps.box)
    lesion = anatomy.from_box(maps.necrosis + maps.enhancing + maps.edema, maps.box, sel)

    contrast = draw_contrast(rng)
    clean = clean_images(anatomy, maps, contrast)
    fields = bias_fields(rng, anatomy.brain, params.bias_field)
    images = {}
    for m in MODALITIES:
        biased = clean[m] * fields[m].reshape(-1)[anatomy.flat]
        images[m] = anatomy.full(add_rician_noise(rng, biased, params.noise * contrast.wm(m)))
    white_matter = np.zeros(shape, dtype=bool)
    white_matter.reshape(-1)[anatomy.flat] = (anatomy.wm >= WM_THRESHOLD) & (lesion < 1e-3)
    return SyntheticCase(
        case_id=params.case_ids()[index],
        images=images,
        seg=BRATS_2021.from_classes(classes),
        affine=affine,
        bias_fields=fields,
        brain_mask=anatomy.brain,
        white_matter=white_matter,
        tumour_type="enhancing" if enhancing else "no_enhancing",
    )


def _nifti(data: npt.NDArray[np.generic], affine: npt.NDArray[np.float64]) -> nib.Nifti1Image:
    img = nib.Nifti1Image(data, affine)
    header = img.header
    header.set_data_dtype(data.dtype)
    header.set_zooms(tuple(float(z) for z in np.linalg.norm(affine[:3, :3], axis=0)))
    header.set_xyzt_units("mm")
    header.set_slope_inter(1.0, 0.0)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    return img


def write_case(case: SyntheticCase, root: Path) -> list[Path]:
    """Write ``root/<case_id>/<case_id>_{t1,t1ce,t2,flair,seg}.nii.gz`` (images int16, seg uint8), atomically.

    Returns:
        The written paths: the images in the order of ``MODALITIES``, then the segmentation.
    """
    layout = LAYOUTS["brats2021"]
    folder = Path(root) / case.case_id
    arrays: dict[str, npt.NDArray[np.generic]] = {
        m: np.clip(np.rint(case.images[m]), 0, np.iinfo(np.int16).max).astype(np.int16) for m in MODALITIES
    }
    arrays["seg"] = np.asarray(case.seg, dtype=np.uint8)
    paths = []
    for key, data in arrays.items():
        path = folder / f"{case.case_id}{layout.separator}{layout.suffixes[key]}.nii.gz"
        with atomic_path(path) as tmp:
            nib.save(_nifti(data, case.affine), tmp)
        paths.append(path)
    return paths


def generate_cohort(params: CohortParams, root: Path, indices: Sequence[int] | None = None) -> list[Path]:
    """Generate and write the cases ``indices`` (default: all ``params.n_cases``); one log line per case.

    Returns:
        Every written path, case after case (five per case, see :func:`write_case`).
    """
    check_params(params)
    chosen = list(range(params.n_cases)) if indices is None else [int(i) for i in indices]
    bad = [i for i in chosen if not 0 <= i < params.n_cases]
    if bad:
        raise ValueError(f"indices must lie in [0, {params.n_cases}) (params.n_cases), got {bad}")
    paths: list[Path] = []
    for i in chosen:
        start = time.perf_counter()
        case = generate_case(i, params)
        paths += write_case(case, Path(root))
        counts = {int(v): int(n) for v, n in zip(*np.unique(case.seg, return_counts=True), strict=True)}
        log.info(
            "cohort case %s (%d/%d): %s tumour, label voxels %s, %.2f s",
            case.case_id,
            chosen.index(i) + 1,
            len(chosen),
            case.tumour_type,
            {k: v for k, v in counts.items() if k},
            time.perf_counter() - start,
        )
    return paths
