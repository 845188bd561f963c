"""MR contrast of the synthetic cases as measurable facts; bias field and noise as specified."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from bratseg.cohort.anatomy import load_templates
from bratseg.cohort.contrast import (
    FLAIR_EDEMA_CONTRAST,
    clean_images,
    draw_contrast,
    relative_contrast,
    visible_flair_edema,
)
from bratseg.cohort.generate import BIAS_LOW, NOISE_LOW
from bratseg.cohort.warp import random_warp, resample
from bratseg.config import TumourMix
from bratseg.layouts import MODALITIES


def _mean(image: np.ndarray, mask: np.ndarray) -> float:
    assert mask.sum() >= 5, "too few voxels to compare"
    return float(image[mask].mean())


@pytest.fixture(scope="module")
def pure_tissue():
    """Noise-free, bias-free images of a warped healthy brain and its pure WM / GM / CSF voxels."""
    rng = np.random.default_rng(3)
    shape, voxel = (60, 60, 39), 4.0
    warp = random_warp(rng, shape, voxel, rotation_deg=5.0, scale_jitter=0.05, deformation_mm=3.0)
    anatomy = resample(load_templates(), warp, shape, voxel)
    images = clean_images(anatomy, None, draw_contrast(rng, jitter=0.0))
    masks = {t: getattr(anatomy, t) > 0.9 for t in ("wm", "gm", "csf")}
    return images, masks


def test_tissue_contrast_of_the_healthy_brain(pure_tissue):
    images, masks = pure_tissue
    mean = {(m, t): _mean(images[m], masks[t]) for m in MODALITIES for t in masks}
    for m in ("t1", "t1ce"):
        assert mean[m, "wm"] > 1.15 * mean[m, "gm"] > 1.15 * 1.15 * mean[m, "csf"], m
    assert mean["t2", "csf"] > 1.5 * mean["t2", "gm"] and mean["t2", "gm"] > 1.1 * mean["t2", "wm"]
    assert mean["flair", "csf"] < 0.6 * mean["flair", "wm"], "CSF must be suppressed on FLAIR"
    assert mean["flair", "gm"] > 1.05 * mean["flair", "wm"]


def test_tumour_contrast(case_of):
    for index in range(3):
        case = case_of(index, bias_field=0.0)
        img, wm = case.images, case.white_matter
        edema, enh, nec = case.seg == 2, case.seg == 4, case.seg == 1

        def ratio(m: str, mask: np.ndarray, img=img, wm=wm) -> float:
            return _mean(img[m], mask) / _mean(img[m], wm)

        assert ratio("flair", edema) > 1.4, f"case {index}: edema must be bright on FLAIR"
        assert ratio("t2", edema) > 1.5 and ratio("t2", nec) > 1.5
        assert ratio("t1ce", enh) > 1.25, f"case {index}: enhancing rim must be brighter than WM on T1ce"
        assert ratio("t1ce", enh) > 1.5 * ratio("t1", enh), "contrast uptake: rim far brighter after contrast"
        assert ratio("t1", edema) < 0.92 and ratio("t1", nec) < 0.7
        # at 4 mm the necrosis is small, and partial volume with the rim lifts it: still below WM and the rim
        assert ratio("t1ce", nec) < 0.9 and ratio("t1ce", nec) < 0.6 * ratio("t1ce", enh)
        assert 1.1 < ratio("flair", enh) < ratio("t2", nec)


def test_random_contrast_keeps_the_orderings_of_each_sequence():
    rng = np.random.default_rng(11)
    draws = [relative_contrast(rng, 1.0) for _ in range(300)]
    for c in draws:
        t1, t1ce, t2, flair = c["t1"], c["t1ce"], c["t2"], c["flair"]
        assert all(v["wm"] == 1.0 for v in c.values())
        for seq in (t1, t1ce):
            assert 1.0 > seq["gm"] > seq["csf"] and seq["necrosis"] < seq["edema"] < 1.0
        assert t1ce["enhancing"] > 1.1 > t1["enhancing"], "enhancement only after contrast"
        assert 0.9 < t1ce["net"] / t1["net"] < 1.2, "a non-enhancing core does not enhance"
        assert t2["csf"] > t2["gm"] >= 1.0 and t2["net"] >= t2["edema"] > 1.4
        assert flair["csf"] < 0.75 < 1.4 < flair["edema"] and flair["cyst"] < flair["edema"]
        assert flair["net"] > 1.0 and t2["cyst"] > t2["edema"]
    spread = np.std([c["t2"]["edema"] for c in draws])
    assert spread > 0.2, "intensities must vary between cases"
    fixed = [relative_contrast(rng, 0.0) for _ in range(3)]
    assert fixed[0] == fixed[1] == fixed[2], "jitter 0: the middle of every range"


def test_flair_edema_is_visibly_brighter_than_the_tissue_it_replaces():
    rng = np.random.default_rng(5)
    raised = 0
    for _ in range(300):
        contrast = draw_contrast(rng, 1.0)
        flair, share = contrast.intensity["flair"], contrast.edema_share
        normal = max(flair["gm"], flair["wm"])
        mixed = (1 - share) * flair["edema"] + share * normal
        assert mixed >= FLAIR_EDEMA_CONTRAST * normal * (1 - 1e-9)
        raised += bool(np.isclose(mixed, FLAIR_EDEMA_CONTRAST * normal))
    assert 0 < raised < 300, "the floor applies to the faint draws only"
    faint = {"wm": 1.0, "gm": 1.4, "edema": 1.5, "net": 1.5}
    visible_flair_edema(faint, 0.5)
    assert faint["edema"] == pytest.approx(1.4 * 0.8 / 0.5) and faint["net"] == pytest.approx(faint["edema"])


def test_non_enhancing_and_cystic_tumour_contrast(case_of):
    for kind, mix in (
        ("non_enhancing", TumourMix(enhancing=0.0, cystic=0.0, non_enhancing=1.0)),
        ("cystic", TumourMix(enhancing=0.0, cystic=1.0, non_enhancing=0.0)),
    ):
        for index in range(3):
            case = case_of(index, bias_field=0.0, tumour_mix=mix)
            assert case.tumour_type == kind
            img, wm, core, edema = case.images, case.white_matter, case.seg == 1, case.seg == 2

            def ratio(m: str, mask: np.ndarray, img=img, wm=wm) -> float:
                return _mean(img[m], mask) / _mean(img[m], wm)

            assert ratio("t2", core) > 1.5, f"{kind} {index}: the core is bright on T2"
            assert ratio("t1", core) < 0.85
            if kind == "non_enhancing":
                assert ratio("flair", core) > 1.3, f"{index}: a non-enhancing core is bright on FLAIR"
                assert ratio("t1ce", core) < 1.2 * ratio("t1", core), "no contrast uptake in the core"
                assert ratio("t2", core) > 0.95 * ratio("t2", edema)
            else:
                assert ratio("flair", core) < ratio("flair", edema), f"{index}: cyst fluid is suppressed"
                assert ratio("t1ce", case.seg == 4) > 1.25


def test_scanner_gain_varies_between_cases(params, case_of):
    wm_t1 = [_mean(case_of(i).images["t1"], case_of(i).white_matter) for i in range(params.n_cases)]
    assert max(wm_t1) / min(wm_t1) > 1.3, "intensity scale must vary between cases"
    assert min(wm_t1) > 200 and max(wm_t1) < 5000


def test_bias_field_half_range_and_smoothness(params, case_of):
    case = case_of(0)
    half = case.provenance["bias_half_range"]
    assert BIAS_LOW * params.bias_field <= half <= params.bias_field
    assert half != case_of(1).provenance["bias_half_range"], "the bias strength varies between cases"
    fields = [np.log(case.bias_fields[m]) for m in MODALITIES]
    for log in fields:
        inside = log[case.brain_mask]
        assert (inside.max() - inside.min()) / 2 == pytest.approx(half, rel=1e-3)
        assert abs(inside.max() + inside.min()) / 2 < 1e-3
        smoothed = ndimage.gaussian_filter(log, 2.0, mode="nearest")
        residual = np.abs(smoothed - log)[case.brain_mask].max()
        assert residual < 0.15 * half, "bias field must be low-frequency"
    assert not np.allclose(fields[0], fields[1]), "each modality has its own field"


def test_bias_field_raises_white_matter_variation(case_of):
    for index in range(2):
        biased, flat = case_of(index, bias_field=1.0), case_of(index, bias_field=0.0)
        np.testing.assert_array_equal(biased.seg, flat.seg)
        wm = biased.white_matter

        def cov(x: np.ndarray, wm=wm) -> float:
            return float(x[wm].std() / x[wm].mean())

        for m in MODALITIES:
            assert np.all(flat.bias_fields[m] == 1.0)
            assert cov(biased.images[m]) > 1.8 * cov(flat.images[m]), f"case {index} {m}"
            corrected = biased.images[m] / biased.bias_fields[m]  # the true field undoes the bias
            rise, left = cov(biased.images[m]) - cov(flat.images[m]), cov(corrected) - cov(flat.images[m])
            assert left < 0.25 * rise, f"case {index} {m}"


def test_rician_noise_level(params, case_of):
    noisy, clean = case_of(1, bias_field=0.0), case_of(1, bias_field=0.0, noise=0.0)
    for m in MODALITIES:
        wm = clean.white_matter
        residual = (noisy.images[m] - clean.images[m])[wm]
        level = noisy.provenance["noise"][m]
        assert NOISE_LOW * params.noise <= level <= params.noise
        sigma = level * clean.images[m][wm].mean()
        assert residual.std() == pytest.approx(sigma, rel=0.15), m
        assert abs(residual.mean()) < 0.2 * sigma  # high SNR: Rician is nearly unbiased
        outside = ~clean.brain_mask
        assert np.all(noisy.images[m][outside] == 0)
