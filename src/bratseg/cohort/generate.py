"""Generate and write synthetic BraTS-like cases (BraTS 2021 layout and labels).

One case is a pure function of ``(params, index)``: every random draw comes from generators spawned from
``np.random.SeedSequence([params.seed, index])``, one per stage (anatomy, tumour, contrast, artefacts, bias,
acquisition, noise), so the same parameters give byte-identical files and changing one stage's parameter
leaves the draws of the others alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import numpy.typing as npt

from bratseg.cohort import acquisition as acq
from bratseg.cohort.anatomy import VENTRICLE_CENTRES_MM, load_templates, widen_csf
from bratseg.cohort.contrast import (
    add_gaussian_noise,
    add_rician_noise,
    bias_fields,
    clean_images,
    draw_contrast,
)
from bratseg.cohort.tumour import (
    CYST_RATIO,
    EDEMA_GM_REACH,
    NET_ENHANCING_MM,
    NET_ENHANCING_SHARE,
    Focus,
    TumourSpec,
    draw_kind,
    draw_lobes,
    pick_centre,
    pick_satellites,
    tumour_maps,
)
from bratseg.cohort.warp import MassEffect, grid_affine, random_warp, resample, template_to_grid
from bratseg.config import CohortParams
from bratseg.io import atomic_path
from bratseg.labels import BRATS_2021
from bratseg.layouts import LAYOUTS, MODALITIES

#: Largest mass-effect displacement relative to the core radius (keeps the warp free of folds).
MAX_MASS_EFFECT_RATIO = 0.5
#: Radius (mm) of the ventricle enlargement around each lateral ventricle's centre, and its draw range
#: relative to ``ventricle_mm`` (negative: narrower ventricles).
VENTRICLE_RADIUS_MM, VENTRICLE_DRAW = 10.0, (-0.3, 1.0)
#: White-matter fraction above which a voxel counts as white matter for bias-quality measures.
WM_THRESHOLD = 0.8
#: Lower end of the per-case bias half-range and noise level, relative to ``bias_field`` and ``noise``.
BIAS_LOW, NOISE_LOW = 0.25, 0.2
STAGES = ("anatomy", "tumour", "contrast", "artefacts", "bias", "acquisition", "noise")


@dataclass(frozen=True)
class SyntheticCase:
    """One synthetic case. Every array is ``params.shape`` (``(n0, n1, n2)``) unless stated otherwise."""

    case_id: str
    images: dict[str, npt.NDArray[np.float32]]  # per modality (MODALITIES), >= 1 inside, 0 outside the brain
    seg: npt.NDArray[np.uint8]  # BraTS 2021 values {0, 1, 2, 4}
    affine: npt.NDArray[np.float64]  # (4, 4) RAS voxel -> mm
    bias_fields: dict[str, npt.NDArray[np.float32]]  # true multiplicative bias field per modality
    brain_mask: npt.NDArray[np.bool_]
    white_matter: npt.NDArray[np.bool_]  # deformed white matter away from the tumour and the artefacts
    tumour_type: str  # one of bratseg.cohort.tumour.TUMOUR_TYPES
    provenance: dict[str, Any]  # what was drawn: foci, lobes, gamma, slice profile, noise level per modality


def _draw_spec(
    rng: np.random.Generator, params: CohortParams, kind: str, foci: list[Focus], core_mm: float
) -> TumourSpec:
    non_enhancing = kind == "non_enhancing"
    edema = float(rng.uniform(*(params.non_enhancing_edema_ratio if non_enhancing else params.edema_ratio)))
    inner = float(rng.uniform(*(CYST_RATIO if kind == "cystic" else params.necrosis_ratio)))
    focus_mm = float(rng.uniform(*NET_ENHANCING_MM)) if rng.random() < NET_ENHANCING_SHARE else 0.0
    return TumourSpec(
        kind=kind,
        shape_model="field" if params.variant == "heldout" else "lobes",
        foci=tuple(foci),
        core_mm=core_mm,
        inner_ratio=inner,
        edema_ratio=edema,
        gm_reach=float(rng.uniform(*EDEMA_GM_REACH)),
        enhancing_focus_mm=focus_mm if non_enhancing else 0.0,
    )


def generate_case(index: int, params: CohortParams) -> SyntheticCase:
    """Generate case ``index`` of the cohort ``params`` (pure: no I/O besides reading the cached templates).

    ``params`` are those of a validated ``params.yaml`` (ranges are checked by the schema only).

    Raises:
        ValueError: if ``index`` is not in ``range(params.n_cases)``.
    """
    if not 0 <= index < params.n_cases:
        raise ValueError(f"index must lie in [0, {params.n_cases}) (params.n_cases), got {index}")
    seeds = np.random.SeedSequence([params.seed, index]).spawn(len(STAGES))
    rngs = {name: np.random.default_rng(s) for name, s in zip(STAGES, seeds, strict=True)}
    templates = load_templates()
    shape, voxel = params.shape, float(params.voxel_mm)
    affine = grid_affine(shape, voxel, templates.centre_mm)
    heldout = params.variant == "heldout"

    # anatomy and tumour placement
    rng = rngs["anatomy"]
    kind = draw_kind(rng, params.tumour_mix.to_dict())
    core_mm = float(rng.uniform(*params.core_radius_mm))
    warp = random_warp(rng, shape, voxel, params.rotation_deg, params.scale_jitter, params.deformation_mm)

    def to_grid(point: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return template_to_grid(point, warp, templates.centre_mm, shape, voxel)

    main = pick_centre(rng, templates, core_mm)
    n_satellites = int(rng.integers(1, 3)) if rng.random() < params.multifocal_fraction else 0
    satellites = pick_satellites(rng, templates, main, core_mm, n_satellites)
    lo, hi = params.lobes
    lobes = int(rng.integers(lo, hi + 1))
    foci = [Focus(to_grid(main), draw_lobes(rng, core_mm, lobes))]
    foci += [Focus(to_grid(c), draw_lobes(rng, r, int(rng.integers(1, lobes + 1)))) for c, r in satellites]
    push = min(params.mass_effect_mm * rng.uniform(0.6, 1.0), MAX_MASS_EFFECT_RATIO * core_mm)
    if kind == "non_enhancing":
        push *= 0.5
    masses = [MassEffect(foci[0].centre_mm, core_mm, push)]
    amp = params.ventricle_mm * float(rng.uniform(*VENTRICLE_DRAW))  # one atrophy (or youth) for all
    amp = float(np.clip(amp, -0.25 * VENTRICLE_RADIUS_MM, 0.4 * VENTRICLE_RADIUS_MM))
    for centre in VENTRICLE_CENTRES_MM:
        masses.append(MassEffect(to_grid(np.asarray(centre)), VENTRICLE_RADIUS_MM, amp))
    anatomy = resample(templates, warp, shape, voxel, masses)
    anatomy = widen_csf(anatomy, params.atrophy * float(rng.random()))

    spec = _draw_spec(rngs["tumour"], params, kind, foci, core_mm)
    maps = tumour_maps(rngs["tumour"], spec, anatomy, affine)
    classes = np.zeros(shape, dtype=np.uint8)
    classes[maps.box] = maps.classes

    contrast = draw_contrast(rngs["contrast"], params.contrast_jitter, params.variant)
    clean = clean_images(anatomy, maps, contrast)
    wm_gain = {m: contrast.wm(m) for m in MODALITIES}
    images = {m: anatomy.full(clean[m]) for m in MODALITIES}

    # unlabelled look-alikes and skull-stripping artefacts
    rng = rngs["artefacts"]
    white_matter = anatomy.full(anatomy.wm) >= WM_THRESHOLD
    white_matter[maps.box] = False  # away from the tumour (the box holds it with its margin)
    blobs = acq.distractors(rng, white_matter, voxel, params.distractors)
    images = acq.apply_distractors(rng, images, blobs)
    for box, soft in blobs:
        white_matter[box] &= soft == 0
    brain = anatomy.brain
    stripped = bool(rng.random() < params.skull_strip)
    if stripped:
        strip = acq.skull_strip(rng, brain, voxel)
        images = acq.apply_stripping(rng, images, strip, wm_gain)
        brain = strip.brain
        white_matter &= brain & ~strip.rim
    classes[~brain] = 0
    for m in MODALITIES:
        images[m] *= acq.texture_field(rng, shape, voxel, params.texture)

    half_range = params.bias_field * float(rngs["bias"].uniform(BIAS_LOW, 1.0))
    fields = bias_fields(rngs["bias"], brain, half_range)

    rng = rngs["acquisition"]
    gammas, sigmas = {}, {}
    for m in MODALITIES:
        gammas[m] = float(np.exp(rng.uniform(-params.gamma, params.gamma)))
        sigmas[m] = acq.psf_sigmas(rng, voxel, params.slice_thickness_mm)
    rng = rngs["noise"]
    noise = {m: params.noise * float(rng.uniform(NOISE_LOW, 1.0)) for m in MODALITIES}
    for m in MODALITIES:
        img = images[m]
        if gammas[m] != 1.0:
            ref = np.float32(wm_gain[m])
            img[brain] = ref * np.power(img[brain] / ref, np.float32(gammas[m]))
        img *= fields[m]
        img = acq.blur_inside(img, brain, sigmas[m], box=heldout)
        add = add_gaussian_noise if heldout else add_rician_noise
        img[brain] = np.maximum(add(rng, img[brain], noise[m] * wm_gain[m]), np.float32(1.0))
        images[m] = img
    return SyntheticCase(
        case_id=params.case_ids()[index],
        images=images,
        seg=BRATS_2021.from_classes(classes),
        affine=affine,
        bias_fields=fields,
        brain_mask=brain,
        white_matter=white_matter,
        tumour_type=kind,
        provenance={
            "tumour_type": kind,
            "shape_model": spec.shape_model,
            "foci": len(spec.foci),
            "lobes": [len(f.lobes) for f in spec.foci],
            "core_mm": round(core_mm, 3),
            "ventricle_push_mm": amp,
            "distractors": len(blobs),
            "skull_strip": stripped,
            "bias_half_range": half_range,
            "gamma": gammas,
            "psf_sigma_vox": {m: list(s) for m, s in sigmas.items()},
            "noise": noise,
        },
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
