"""MR contrast: tissue intensities per modality, scanner gain, multiplicative bias field and Rician noise.

Intensities are relative to white matter (1.0) and follow the usual appearance of glioma on each sequence:

- T1: WM > GM > CSF; edema and tumour mildly hypointense, necrosis dark.
- T1ce: as T1, but the enhancing rim brighter than WM.
- T2: CSF brightest, necrosis and edema bright, WM darkest.
- FLAIR: CSF suppressed (dark), edema bright, enhancing rim moderately bright.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bratseg.cohort.anatomy import Anatomy
from bratseg.cohort.fields import F32, polynomial_field, random_polynomial_coefs
from bratseg.cohort.tumour import TumourMaps
from bratseg.layouts import MODALITIES

TISSUES: tuple[str, ...] = ("wm", "gm", "csf", "edema", "enhancing", "necrosis")
#: Mean intensity of each tissue relative to white matter, per modality.
BASE_CONTRAST: dict[str, dict[str, float]] = {
    "t1": {"wm": 1.0, "gm": 0.74, "csf": 0.32, "edema": 0.72, "enhancing": 0.74, "necrosis": 0.42},
    "t1ce": {"wm": 1.0, "gm": 0.76, "csf": 0.33, "edema": 0.73, "enhancing": 1.55, "necrosis": 0.40},
    "t2": {"wm": 1.0, "gm": 1.35, "csf": 3.2, "edema": 2.2, "enhancing": 1.75, "necrosis": 2.8},
    "flair": {"wm": 1.0, "gm": 1.25, "csf": 0.28, "edema": 2.0, "enhancing": 1.55, "necrosis": 1.1},
}
#: White-matter intensity before the scanner gain.
WM_SCALE = 1000.0
#: Relative per-case jitter of each tissue intensity (uniform, ±).
JITTER = 0.08
#: Range of the random global scanner gain (log-uniform).
GAIN = (0.5, 2.0)
#: Share of the underlying normal-tissue signal kept in edema (edema is water added to tissue).
EDEMA_TISSUE_SHARE = 0.35
#: Relative amplitude of the intensity heterogeneity inside the tumour.
HETEROGENEITY = 0.15
#: Degree of the polynomial log bias field.
BIAS_DEGREE = 3


@dataclass(frozen=True)
class Contrast:
    """Per-case intensities (already multiplied by the gain) of every tissue, per modality."""

    intensity: dict[str, dict[str, float]]

    def wm(self, modality: str) -> float:
        """White-matter intensity of ``modality`` (the reference of the noise level)."""
        return self.intensity[modality]["wm"]


def draw_contrast(rng: np.random.Generator) -> Contrast:
    """Jitter every tissue intensity by ±``JITTER`` and scale each modality by a random gain."""
    out: dict[str, dict[str, float]] = {}
    for m in MODALITIES:
        gain = WM_SCALE * float(np.exp(rng.uniform(np.log(GAIN[0]), np.log(GAIN[1]))))
        jitter = rng.uniform(1 - JITTER, 1 + JITTER, len(TISSUES))
        out[m] = {t: gain * BASE_CONTRAST[m][t] * float(j) for t, j in zip(TISSUES, jitter, strict=True)}
    return Contrast(out)


def clean_images(anatomy: Anatomy, tumour: TumourMaps | None, contrast: Contrast) -> dict[str, F32]:
    """Noise-free, bias-free signal per modality at the brain voxels: ``(n,)`` float32 (see ``Anatomy``)."""
    n = anatomy.flat.size
    wm, gm, csf, texture = anatomy.wm, anatomy.gm, anatomy.csf, anatomy.texture
    names = ("edema", "enhancing", "necrosis")
    if tumour is not None:
        sel = anatomy.in_box(tumour.box)
        fractions = {k: anatomy.from_box(getattr(tumour, k), tumour.box, sel) for k in names}
        hetero = anatomy.from_box(tumour.heterogeneity, tumour.box, sel)
    else:
        fractions = {k: np.zeros(n, dtype=np.float32) for k in names}
        hetero = np.zeros(n, dtype=np.float32)
    lesion = fractions["edema"] + fractions["enhancing"] + fractions["necrosis"]
    tex_t = np.float32(1.0) + np.float32(HETEROGENEITY) * hetero

    images: dict[str, F32] = {}
    for m in MODALITIES:
        c = {k: np.float32(v) for k, v in contrast.intensity[m].items()}
        normal = wm * c["wm"] + gm * c["gm"] + csf * c["csf"]
        if m in ("t1", "t1ce"):
            normal *= texture
        edema = (
            np.float32(1 - EDEMA_TISSUE_SHARE) * c["edema"] * tex_t + np.float32(EDEMA_TISSUE_SHARE) * normal
        )
        signal = (np.float32(1.0) - lesion) * normal + fractions["edema"] * edema
        signal += (fractions["enhancing"] * c["enhancing"] + fractions["necrosis"] * c["necrosis"]) * tex_t
        images[m] = signal
    return images


def bias_fields(rng: np.random.Generator, brain: npt.NDArray[np.bool_], half_range: float) -> dict[str, F32]:
    """Smooth multiplicative bias fields ``exp(b)`` per modality, ``(n0, n1, n2)`` float32.

    ``b`` is a random polynomial of degree ``BIAS_DEGREE`` (half shared by all modalities, half their own),
    shifted and scaled so that over the brain it spans exactly ``[-half_range, half_range]``.
    """
    if half_range < 0:
        raise ValueError(f"bias_field must be >= 0, got {half_range}")
    shape = brain.shape
    flat = np.flatnonzero(brain)
    shared = random_polynomial_coefs(rng, BIAS_DEGREE)
    fields: dict[str, F32] = {}
    for m in MODALITIES:
        own = random_polynomial_coefs(rng, BIAS_DEGREE)
        if half_range == 0 or flat.size == 0:
            fields[m] = np.ones(shape, dtype=np.float32)
            continue
        log = polynomial_field(shared + own, shape)
        inside = log.reshape(-1)[flat]
        lo, hi = float(inside.min()), float(inside.max())
        log -= np.float32((lo + hi) / 2)
        log *= np.float32(half_range / max((hi - lo) / 2, 1e-6))
        fields[m] = np.exp(log)
    return fields


def add_rician_noise(rng: np.random.Generator, signal: F32, sigma: float) -> F32:
    """Rician magnitude ``sqrt((s + n1)² + n2²)``, ``n1, n2 ~ N(0, sigma²)`` per voxel; same shape."""
    if sigma < 0:
        raise ValueError(f"noise sigma must be >= 0, got {sigma}")
    if sigma == 0:
        return signal.copy()
    n = rng.standard_normal((2, *signal.shape), dtype=np.float32)
    n *= np.float32(sigma)
    n[0] += signal
    n *= n
    return np.sqrt(n[0] + n[1])
