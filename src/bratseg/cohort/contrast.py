"""MR contrast: per-case random tissue intensities per modality, bias field and noise.

Intensities are relative to white matter (1.0). For the training variant every tissue intensity is drawn per
case and modality inside a realistic range (``RANGES``), keeping the orderings that make each sequence what it
is (domain randomisation in the spirit of SynthSeg, but never an implausible contrast):

- T1: WM > GM > CSF; edema and tumour mildly hypointense, necrosis and fluid dark.
- T1ce: T1 with small changes, and an enhancing rim brighter than WM; a non-enhancing core stays as on T1.
- T2: CSF and fluid brightest, a non-enhancing core at least as bright as edema, WM darkest.
- FLAIR: CSF suppressed (dark), edema bright (at least ``FLAIR_EDEMA_CONTRAST`` times the normal tissue it
  replaces, as BraTS annotates it), a non-enhancing core about as bright, cysts partly suppressed.

The held-out variant uses a fixed table (``HELDOUT_CONTRAST``) with a small jitter instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bratseg.cohort.anatomy import Anatomy
from bratseg.cohort.fields import F32, polynomial_field, power32, random_polynomial_coefs
from bratseg.cohort.tumour import TumourMaps
from bratseg.layouts import MODALITIES

TISSUES: tuple[str, ...] = ("wm", "gm", "csf", "edema", "enhancing", "necrosis", "net", "cyst")
Range = tuple[float, float]
#: Realistic ranges relative to white matter. ``*`` entries are relative to another tissue or modality.
RANGES: dict[str, dict[str, Range]] = {
    "t1": {"gm": (0.55, 0.88), "csf": (0.12, 0.5), "edema": (0.5, 0.95), "enhancing": (0.55, 0.9),
           "necrosis": (0.2, 0.6), "net": (0.3, 0.8), "cyst": (0.12, 0.55)},
    "t1ce": {"*t1": (0.92, 1.1), "enhancing": (1.15, 2.2), "*net": (0.95, 1.15)},
    "t2": {"gm": (1.0, 1.6), "csf": (2.2, 4.2), "edema": (1.5, 2.8), "enhancing": (1.2, 2.2),
           "necrosis": (1.8, 3.5), "*net": (1.0, 1.5), "*cyst": (0.8, 1.05)},
    "flair": {"gm": (0.95, 1.45), "csf": (0.15, 0.7), "edema": (1.5, 2.8), "enhancing": (1.1, 2.2),
              "necrosis": (0.5, 1.8), "*net": (0.7, 1.2), "*cyst": (1.0, 3.0)},
}
#: The held-out variant's contrast (the first generator of this project, extended to every tissue).
HELDOUT_CONTRAST: dict[str, dict[str, float]] = {
    "t1": {"wm": 1.0, "gm": 0.74, "csf": 0.32, "edema": 0.72, "enhancing": 0.74, "necrosis": 0.42,
           "net": 0.6, "cyst": 0.35},
    "t1ce": {"wm": 1.0, "gm": 0.76, "csf": 0.33, "edema": 0.73, "enhancing": 1.55, "necrosis": 0.40,
             "net": 0.62, "cyst": 0.36},
    "t2": {"wm": 1.0, "gm": 1.35, "csf": 3.2, "edema": 2.2, "enhancing": 1.75, "necrosis": 2.8,
           "net": 2.6, "cyst": 3.0},
    "flair": {"wm": 1.0, "gm": 1.25, "csf": 0.28, "edema": 2.0, "enhancing": 1.55, "necrosis": 1.1,
              "net": 1.8, "cyst": 0.6},
}
HELDOUT_JITTER = 0.08
#: White-matter intensity before the scanner gain, and the range of the gain (log-uniform).
WM_SCALE = 1000.0
GAIN = (0.5, 2.0)
#: Share of the underlying normal-tissue signal kept in edema and in a non-enhancing core.
EDEMA_TISSUE_SHARE, NET_TISSUE_SHARE = (0.2, 0.5), (0.0, 0.25)
#: Least FLAIR signal of edema relative to the brighter normal tissue it replaces (BraTS annotates edema as
#: the FLAIR hyperintensity: a label where the image shows nothing would teach the network to guess).
FLAIR_EDEMA_CONTRAST = 1.3
#: Relative amplitude of the intensity heterogeneity inside the tumour (necrosis gets the upper range).
HETEROGENEITY, NECROSIS_HETEROGENEITY = (0.05, 0.25), (0.1, 0.35)
#: Exponent range of the template texture on T2 and FLAIR (darker on T1 -> brighter on T2).
T2_TEXTURE = (0.0, 0.8)
#: Degree of the polynomial log bias field.
BIAS_DEGREE = 3


@dataclass(frozen=True)
class Contrast:
    """Per-case intensities (already multiplied by the gain) of every tissue, per modality, and textures."""

    intensity: dict[str, dict[str, float]]
    edema_share: float = 0.35
    net_share: float = 0.1
    heterogeneity: float = 0.15
    necrosis_heterogeneity: float = 0.15
    t2_texture: float = 0.0

    def wm(self, modality: str) -> float:
        """White-matter intensity of ``modality`` (the reference of the noise level)."""
        return self.intensity[modality]["wm"]


def _draw(rng: np.random.Generator, span: Range, jitter: float) -> float:
    lo, hi = span
    return float((lo + hi) / 2 + jitter * (rng.random() - 0.5) * (hi - lo))


def relative_contrast(rng: np.random.Generator, jitter: float) -> dict[str, dict[str, float]]:
    """Tissue intensities relative to WM per modality: ``jitter`` 0 gives the middle of every range."""
    if not 0 <= jitter <= 1:
        raise ValueError(f"contrast_jitter must lie in [0, 1], got {jitter}")
    out: dict[str, dict[str, float]] = {}
    t1 = {"wm": 1.0, **{t: _draw(rng, RANGES["t1"][t], jitter) for t in TISSUES[1:]}}
    t1["csf"] = min(t1["csf"], 0.8 * t1["gm"])
    t1["necrosis"] = min(t1["necrosis"], 0.9 * t1["edema"])
    out["t1"] = t1
    t1ce = {t: min(v * _draw(rng, RANGES["t1ce"]["*t1"], jitter), 0.97) for t, v in t1.items()}
    t1ce.update(wm=1.0, enhancing=_draw(rng, RANGES["t1ce"]["enhancing"], jitter))
    t1ce["net"] = t1["net"] * _draw(rng, RANGES["t1ce"]["*net"], jitter)
    t1ce["csf"] = min(t1ce["csf"], 0.8 * t1ce["gm"])
    t1ce["necrosis"] = min(t1ce["necrosis"], 0.9 * t1ce["edema"])
    out["t1ce"] = t1ce
    for m in ("t2", "flair"):
        r = RANGES[m]
        own = ("gm", "csf", "edema", "enhancing", "necrosis")
        c = {"wm": 1.0, **{t: _draw(rng, r[t], jitter) for t in own}}
        c["net"] = c["edema"] * _draw(rng, r["*net"], jitter)
        c["cyst"] = c["csf"] * _draw(rng, r["*cyst"], jitter)
        if m == "t2":  # fluid brightest: edema <= a solid core < CSF, cysts at least as bright as edema
            c["edema"] = min(c["edema"], 0.9 * c["csf"])
            c["net"] = float(np.clip(c["net"], c["edema"], 0.95 * c["csf"]))
            c["cyst"] = max(c["cyst"], 1.05 * c["edema"])
        else:
            c["cyst"] = min(c["cyst"], 0.8 * c["edema"])
        out[m] = c
    return out


def visible_flair_edema(flair: dict[str, float], edema_share: float) -> None:
    """Raise FLAIR edema (and the non-enhancing core drawn relative to it) in place so that edema, mixed
    with ``edema_share`` of the normal signal, is at least ``FLAIR_EDEMA_CONTRAST`` times as bright as grey
    or white matter, whichever is brighter."""
    normal = max(flair["gm"], flair["wm"])
    least = normal * (FLAIR_EDEMA_CONTRAST - edema_share) / (1.0 - edema_share)
    if flair["edema"] < least:
        flair["net"] *= least / flair["edema"]
        flair["edema"] = least


def draw_contrast(rng: np.random.Generator, jitter: float = 1.0, variant: str = "train") -> Contrast:
    """Tissue intensities of one case, each modality scaled by a random gain (see the module docstring)."""
    if variant == "heldout":
        rel = {
            m: {t: v * float(rng.uniform(1 - HELDOUT_JITTER, 1 + HELDOUT_JITTER)) for t, v in table.items()}
            for m, table in HELDOUT_CONTRAST.items()
        }
        for m in MODALITIES:
            rel[m]["wm"] = 1.0
        textures = (0.35, 0.35, 0.15, 0.15, 0.0)
    else:
        rel = relative_contrast(rng, jitter)
        textures = (
            float(rng.uniform(*EDEMA_TISSUE_SHARE)), float(rng.uniform(*NET_TISSUE_SHARE)),
            float(rng.uniform(*HETEROGENEITY)), float(rng.uniform(*NECROSIS_HETEROGENEITY)),
            float(rng.uniform(*T2_TEXTURE)),
        )
        visible_flair_edema(rel["flair"], textures[0])
    out: dict[str, dict[str, float]] = {}
    for m in MODALITIES:
        gain = WM_SCALE * math.exp(float(rng.uniform(math.log(GAIN[0]), math.log(GAIN[1]))))
        out[m] = {t: gain * rel[m][t] for t in TISSUES}
    return Contrast(out, *textures)


def clean_images(anatomy: Anatomy, tumour: TumourMaps | None, contrast: Contrast) -> dict[str, F32]:
    """Noise-free, bias-free signal per modality at the brain voxels: ``(n,)`` float32 (see ``Anatomy``)."""
    n = anatomy.flat.size
    wm, gm, csf, texture = anatomy.wm, anatomy.gm, anatomy.csf, anatomy.texture
    names = ("edema", "enhancing", "necrosis", "net", "cyst")
    if tumour is not None:
        sel = anatomy.in_box(tumour.box)
        fractions = {k: anatomy.from_box(tumour.fractions[k], tumour.box, sel) for k in names}
        hetero = anatomy.from_box(tumour.heterogeneity, tumour.box, sel)
    else:
        fractions = {k: np.zeros(n, dtype=np.float32) for k in names}
        hetero = np.zeros(n, dtype=np.float32)
    lesion = sum((fractions[k] for k in names), np.zeros(n, dtype=np.float32))
    tex_t = np.float32(1.0) + np.float32(contrast.heterogeneity) * hetero
    tex_n = np.float32(1.0) + np.float32(contrast.necrosis_heterogeneity) * hetero
    t2_texture = power32(texture, -contrast.t2_texture) if contrast.t2_texture else None

    images: dict[str, F32] = {}
    for m in MODALITIES:
        c = {k: np.float32(v) for k, v in contrast.intensity[m].items()}
        normal = wm * c["wm"] + gm * c["gm"] + csf * c["csf"]
        if m in ("t1", "t1ce"):
            normal *= texture
        elif t2_texture is not None:
            normal *= t2_texture
        es, ns = np.float32(contrast.edema_share), np.float32(contrast.net_share)
        signal = (np.float32(1.0) - lesion) * normal
        signal += fractions["edema"] * ((np.float32(1) - es) * c["edema"] * tex_t + es * normal)
        signal += fractions["net"] * ((np.float32(1) - ns) * c["net"] * tex_t + ns * normal)
        signal += fractions["enhancing"] * c["enhancing"] * tex_t
        signal += fractions["necrosis"] * c["necrosis"] * tex_n
        signal += fractions["cyst"] * c["cyst"]
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


def add_gaussian_noise(rng: np.random.Generator, signal: F32, sigma: float) -> F32:
    """``s + n``, ``n ~ N(0, sigma²)``, kept >= 1 (the held-out variant's noise); same shape."""
    if sigma < 0:
        raise ValueError(f"noise sigma must be >= 0, got {sigma}")
    noisy = signal + np.float32(sigma) * rng.standard_normal(signal.shape, dtype=np.float32)
    return np.maximum(noisy, np.float32(1.0))
