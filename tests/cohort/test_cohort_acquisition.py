"""Acquisition artefacts and domain randomisation: each as a measurable fact, each on its own."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from bratseg.cohort import acquisition as acq
from bratseg.cohort.anatomy import load_templates, widen_csf
from bratseg.cohort.warp import random_warp, resample
from bratseg.layouts import MODALITIES


def _ball(shape: tuple[int, int, int], radius: float) -> np.ndarray:
    grid = np.indices(shape) - (np.array(shape) - 1)[:, None, None, None] / 2
    return np.sqrt((grid**2).sum(0)) <= radius


def test_blur_inside_keeps_a_constant_image_constant_and_the_outside_zero():
    brain = _ball((21, 23, 19), 8.0)
    image = np.where(brain, np.float32(100.0), np.float32(0.0)).astype(np.float32)
    for box in (False, True):
        out = acq.blur_inside(image, brain, (0.3, 0.3, 2.0), box=box)
        np.testing.assert_allclose(out[brain], 100.0, rtol=1e-5)  # no dark edge: normalised convolution
        assert np.all(out[~brain] == 0)
    assert acq.blur_inside(image, brain, (0.0, 0.0, 0.0)) is image


def test_blur_inside_smooths_along_the_slice_axis_only_when_asked():
    rng = np.random.default_rng(0)
    brain = np.ones((15, 17, 19), dtype=bool)
    across, along = rng.normal(0, 10, 15), rng.normal(0, 10, 19)
    image = (100 + across[:, None, None] + along[None, None, :] + np.zeros(brain.shape)).astype(np.float32)
    out = acq.blur_inside(image, brain, (0.0, 0.0, 2.0))
    step = lambda x, a: float(np.abs(np.diff(x, axis=a)).mean())  # noqa: E731
    assert step(out, 2) < 0.3 * step(image, 2)
    np.testing.assert_allclose(np.diff(out, axis=0), np.diff(image, axis=0), atol=1e-3)


def test_psf_sigmas_follow_the_slice_thickness():
    rng = np.random.default_rng(1)
    draws = [acq.psf_sigmas(rng, 2.0, (6.0, 6.0)) for _ in range(200)]
    thick = [max(s) for s in draws if max(s) > 0.5]
    assert 0.4 < len(thick) / len(draws) < 0.8, "a share of the modalities is thick-sliced"
    assert thick[0] == pytest.approx(np.sqrt(6.0**2 - 2.0**2) / acq.FWHM / 2.0)
    assert all(max(acq.psf_sigmas(rng, 2.0, (0.0, 1.5))) <= 0.4 for _ in range(20)), "thinner than a voxel"


def test_skull_stripping_changes_the_mask_near_its_edge_only():
    brain = _ball((41, 43, 39), 17.0)
    rng = np.random.default_rng(2)
    strip = acq.skull_strip(rng, brain, 2.0)
    assert not np.array_equal(strip.brain, brain)
    inner = ndimage.binary_erosion(brain, iterations=3)
    outer = ndimage.binary_dilation(brain, iterations=1)
    assert strip.brain[inner].all(), "cuts stay within the outer few millimetres"
    assert not (strip.brain & ~outer).any()
    assert (brain & ~strip.brain).any(), "some cortex is cut away"
    assert strip.extra.any() and not (strip.extra & brain).any()
    assert strip.rim.any() and not (strip.rim & ~strip.brain).any()
    images = {m: np.where(brain, np.float32(500.0), np.float32(0.0)).astype(np.float32) for m in MODALITIES}
    out = acq.apply_stripping(rng, images, strip, {m: 500.0 for m in MODALITIES})
    for m in MODALITIES:
        assert np.all(out[m][~strip.brain] == 0) and np.all(out[m][strip.brain] > 0)
        assert not np.allclose(out[m][strip.rim], 500.0)


def test_distractors_lie_in_white_matter_and_brighten_flair():
    wm = np.zeros((30, 31, 29), dtype=bool)
    wm[8:22, 8:22, 8:20] = True
    rng = np.random.default_rng(3)
    blobs = acq.distractors(rng, wm, 2.0, 6.0)
    assert blobs
    images = {m: np.full(wm.shape, 100.0, dtype=np.float32) for m in MODALITIES}
    out = acq.apply_distractors(rng, images, blobs)
    for box, soft in blobs:
        centre = tuple(int(s.start + np.argmax(soft.max(axis=tuple(j for j in range(3) if j != i))))
                       for i, s in enumerate(box))
        assert wm[centre]
    assert out["flair"].max() > 125 and out["t1"].min() < 99
    assert acq.distractors(rng, wm, 2.0, 0.0) == []


def test_texture_field_is_smooth_around_one():
    field = acq.texture_field(np.random.default_rng(4), (40, 40, 30), 2.0, 0.1)
    assert abs(float(field.mean()) - 1.0) < 0.05 and float(field.std()) < 0.1
    flat = acq.texture_field(np.random.default_rng(4), (10, 10, 10), 2.0, 0.0)
    np.testing.assert_array_equal(flat, 1.0)


def test_widen_csf_widens_partial_volume_only():
    rng = np.random.default_rng(5)
    shape, voxel = (60, 60, 39), 4.0
    anatomy = resample(load_templates(), random_warp(rng, shape, voxel, 0.0, 0.0, 0.0), shape, voxel)
    wide = widen_csf(anatomy, 0.8)
    assert widen_csf(anatomy, 0.0) is anatomy
    np.testing.assert_allclose(wide.wm + wide.gm + wide.csf, 1.0, atol=1e-5)
    assert wide.csf.sum() > 1.05 * anatomy.csf.sum()
    pure = anatomy.csf < 1e-6
    np.testing.assert_allclose(wide.csf[pure], anatomy.csf[pure], atol=1e-6)
    assert np.all(wide.csf >= anatomy.csf - 1e-6)


def test_each_randomisation_changes_only_its_own_stage(case_of):
    plain = case_of(0)
    for key, value in (
        ("gamma", 0.5), ("texture", 0.2), ("slice_thickness_mm", (6.0, 8.0)), ("contrast_jitter", 1.0)
    ):
        other = case_of(0, **{key: value})
        np.testing.assert_array_equal(other.seg, plain.seg)
        np.testing.assert_array_equal(other.brain_mask, plain.brain_mask)
        assert not np.array_equal(other.images["flair"], plain.images["flair"]), key
    stripped = case_of(0, skull_strip=1.0)
    assert stripped.provenance["skull_strip"] and not np.array_equal(stripped.brain_mask, plain.brain_mask)
    assert not np.any((stripped.seg > 0) & ~stripped.brain_mask)


def test_ventricles_widen_or_narrow_with_the_drawn_push(case_of):
    def fluid(case) -> int:  # deep, CSF-bright voxels on T2 (the tumour is the same in both cases)
        return int((case.images["t2"] > 2.0 * case.images["t2"][case.white_matter].mean()).sum())

    for index in range(3):
        plain, moved = case_of(index), case_of(index, ventricle_mm=8.0)
        push = moved.provenance["ventricle_push_mm"]
        assert plain.provenance["ventricle_push_mm"] == 0.0 and push != 0.0
        assert (fluid(moved) - fluid(plain)) * push > 0, f"case {index}: push {push:.1f} mm"


def test_atrophy_widens_the_csf_spaces(case_of):
    def fluid(case) -> int:  # voxels far brighter than white matter on T2: CSF (and the tumour, unchanged)
        return int((case.images["t2"] > 2.0 * case.images["t2"][case.white_matter].mean()).sum())

    plain = sum(fluid(case_of(i)) for i in range(3))
    wide = sum(fluid(case_of(i, atrophy=1.0)) for i in range(3))
    assert wide > 1.05 * plain


def test_heldout_variant_draws_other_shapes_and_contrast(case_of):
    train, heldout = case_of(1), case_of(1, variant="heldout")
    assert train.provenance["shape_model"] == "lobes" and heldout.provenance["shape_model"] == "field"
    assert not np.array_equal(train.seg, heldout.seg)
    assert set(np.unique(heldout.seg).tolist()) == {0, 1, 2, 4}
    for m in MODALITIES:
        assert np.all(heldout.images[m][~heldout.brain_mask] == 0)
        assert np.all(heldout.images[m][heldout.brain_mask] >= 1)


def test_ventricle_centres_lie_in_the_templates_lateral_ventricles():
    from bratseg.cohort.anatomy import VENTRICLE_CENTRES_MM

    t = load_templates()
    inv = np.linalg.inv(t.vox_to_mm)
    csf = np.clip(t.mask - t.gm - t.wm, 0.0, 1.0)
    for centre in VENTRICLE_CENTRES_MM:
        vox = inv[:3, :3] @ np.asarray(centre) + inv[:3, 3]
        points = vox[:, None] + np.indices((5, 5, 5)).reshape(3, -1) - 2
        near = ndimage.map_coordinates(csf, points, order=1)
        assert near.mean() > 0.5, f"{centre}: not inside CSF"
