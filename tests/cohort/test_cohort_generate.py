"""The synthetic cohort: determinism, geometry, labels, tumour placement, files on disk."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from bratseg.cohort.generate import generate_case, write_case
from bratseg.config import TumourMix
from bratseg.layouts import MODALITIES, case_files


def _template_brain_centre() -> np.ndarray:
    """Centre (mm) of the bounding box of ``T1 > 0`` in nilearn's ICBM152 2009a T1, read independently."""
    spec = importlib.util.find_spec("nilearn")
    assert spec is not None and spec.submodule_search_locations
    folder = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    img = nib.load(folder / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")
    idx = np.argwhere(np.asarray(img.dataobj) > 0)
    centre_vox = (idx.min(0) + idx.max(0)) / 2.0
    return img.affine[:3, :3] @ centre_vox + img.affine[:3, 3]


def test_same_index_same_case_and_other_index_differs(params, case_of):
    a = generate_case(1, params)
    b = generate_case(1, params)
    for m in MODALITIES:
        np.testing.assert_array_equal(a.images[m], b.images[m])
        np.testing.assert_array_equal(a.bias_fields[m], b.bias_fields[m])
    np.testing.assert_array_equal(a.seg, b.seg)
    np.testing.assert_array_equal(a.affine, b.affine)
    np.testing.assert_array_equal(a.white_matter, b.white_matter)
    other = case_of(2)
    assert not np.array_equal(a.seg, other.seg)
    assert not np.array_equal(a.images["t1"], other.images["t1"])
    assert not np.array_equal(a.brain_mask, other.brain_mask)  # each case has its own anatomy


def test_case_does_not_depend_on_cohort_size(params, make_params):
    small = make_params(n_cases=2)
    np.testing.assert_array_equal(
        generate_case(1, small).images["flair"], generate_case(1, params).images["flair"]
    )


def test_shapes_dtypes_and_geometry(params, case_of):
    case = case_of(0)
    assert case.case_id == "BraTS2021_00000"
    assert params.shape == (60, 60, 39)
    assert set(case.images) == set(MODALITIES) and set(case.bias_fields) == set(MODALITIES)
    for m in MODALITIES:
        assert case.images[m].shape == params.shape and case.images[m].dtype == np.float32
        assert case.bias_fields[m].shape == params.shape and case.bias_fields[m].dtype == np.float32
    assert case.seg.shape == params.shape and case.seg.dtype == np.uint8
    assert case.brain_mask.dtype == bool and case.white_matter.dtype == bool
    assert case.affine.shape == (4, 4) and case.affine.dtype == np.float64
    np.testing.assert_allclose(case.affine[:3, :3], np.diag([4.0, 4.0, 4.0]))
    grid_centre = case.affine[:3, :3] @ ((np.array(params.shape) - 1) / 2.0) + case.affine[:3, 3]
    np.testing.assert_allclose(grid_centre, _template_brain_centre(), atol=1e-6)


def test_full_resolution_grid_is_the_brats_grid(make_params):
    p = make_params(voxel_mm=1.0)
    assert p.shape == (240, 240, 155)


def test_labels_brain_and_background(case_of):
    for index in range(3):
        case = case_of(index)
        assert set(np.unique(case.seg).tolist()) <= {0, 1, 2, 4}
        assert not np.any((case.seg > 0) & ~case.brain_mask), "tumour outside the brain"
        assert 1000 < case.brain_mask.sum() < case.seg.size // 2
        assert not np.any(case.white_matter & ~case.brain_mask)
        assert not np.any(case.white_matter & (case.seg > 0))
        for m in MODALITIES:
            image = case.images[m]
            assert np.all(image[~case.brain_mask] == 0), "background must be exactly 0"
            assert image.min() >= 0 and np.all(image[case.brain_mask] > 0)


def test_tumour_core_lies_deep_in_the_cerebrum(params, case_of):
    for index in range(params.n_cases):
        case = case_of(index)
        core = np.isin(case.seg, (1, 4))
        centre = np.round(np.argwhere(core).mean(0)).astype(int)
        depth_mm = ndimage.distance_transform_edt(case.brain_mask, sampling=params.voxel_mm)
        assert depth_mm[tuple(centre)] >= params.core_radius_mm[0], (
            f"case {index}: core too close to the edge"
        )
        x, y, z = case.affine[:3, :3] @ centre + case.affine[:3, 3]
        assert not (y < -50 and z < -20), (
            f"case {index}: tumour in the cerebellum ({x:.0f}, {y:.0f}, {z:.0f})"
        )
        assert z > -45, f"case {index}: tumour in the brainstem ({x:.0f}, {y:.0f}, {z:.0f})"


def test_enhancing_cases_have_all_three_labels(params, case_of):
    for index in range(params.n_cases):
        case = case_of(index)
        assert case.tumour_type == "enhancing"
        assert set(np.unique(case.seg).tolist()) == {0, 1, 2, 4}, f"case {index}"
        # nested regions: the necrosis is surrounded by enhancing tumour, the core by edema (mostly)
        assert (case.seg == 4).sum() > (case.seg == 1).sum() * 0.5


NON_ENHANCING = TumourMix(enhancing=0.0, cystic=0.0, non_enhancing=1.0)


def test_non_enhancing_cases_have_a_labelled_core(case_of):
    for index in range(4):
        case = case_of(index, tumour_mix=NON_ENHANCING)
        assert case.tumour_type == "non_enhancing"
        counts = {int(v): int(n) for v, n in zip(*np.unique(case.seg, return_counts=True), strict=True)}
        assert counts.get(1, 0) > 100, f"case {index}: the non-enhancing core is labelled 1"
        assert counts.get(4, 0) < 0.2 * counts[1], f"case {index}: at most a small enhancing focus"
        assert counts.get(2, 0) > 0


def test_cystic_cases_have_a_thin_rim_around_a_labelled_cyst(case_of):
    for index in range(3):
        case = case_of(index, tumour_mix=TumourMix(enhancing=0.0, cystic=1.0, non_enhancing=0.0))
        assert case.tumour_type == "cystic"
        inner, rim = (case.seg == 1).sum(), (case.seg == 4).sum()
        assert inner > 0 and rim > 0
        enhancing = case_of(index)
        ratio_cyst = inner / (inner + rim)
        ratio_nec = (enhancing.seg == 1).sum() / np.isin(enhancing.seg, (1, 4)).sum()
        assert ratio_cyst > ratio_nec, f"case {index}: a cyst fills more of the core than necrosis does"


def test_tumour_types_follow_the_mix(make_params):
    mix = TumourMix(enhancing=0.5, cystic=0.25, non_enhancing=0.25)
    p = make_params(n_cases=40, tumour_mix=mix, voxel_mm=8.0)
    kinds = [generate_case(i, p).tumour_type for i in range(p.n_cases)]
    assert 12 <= kinds.count("enhancing") <= 28
    assert 3 <= kinds.count("cystic") <= 17 and 3 <= kinds.count("non_enhancing") <= 17


def test_lobes_and_satellites(case_of):
    lobed = [case_of(i, lobes=(3, 4), multifocal_fraction=1.0) for i in range(3)]
    for case in lobed:
        assert case.provenance["lobes"][0] in (3, 4)
        assert 2 <= case.provenance["foci"] <= 3
    plain = case_of(0)
    assert plain.provenance["lobes"] == [1] and plain.provenance["foci"] == 1
    # lobes make the core less compact: a lower volume-to-bounding-sphere ratio than single-lobed cores
    def compactness(seg: np.ndarray) -> float:
        core = np.argwhere(np.isin(seg, (1, 4)))
        radius = np.linalg.norm(core - core.mean(0), axis=1).max() + 0.5
        return len(core) / (4 / 3 * np.pi * radius**3)

    singles = [compactness(case_of(i, multifocal_fraction=0.0).seg) for i in range(3)]
    multi = [compactness(case_of(i, lobes=(4, 4), multifocal_fraction=0.0).seg) for i in range(3)]
    assert np.mean(multi) < np.mean(singles)


def test_mass_effect_moves_tissue_near_the_tumour_only(case_of):
    pushed, still = case_of(0, noise=0.0), case_of(0, noise=0.0, mass_effect_mm=0.0)
    for m in MODALITIES:  # the same draws everywhere else
        np.testing.assert_array_equal(pushed.bias_fields[m], still.bias_fields[m])
    diff = np.abs(pushed.images["t2"] - still.images["t2"]) * (pushed.brain_mask & still.brain_mask)
    assert diff.max() > 0.2 * pushed.images["t2"][pushed.white_matter].mean(), "mass effect changed nothing"
    centre = np.argwhere(np.isin(pushed.seg, (1, 4))).mean(0)
    dist_mm = np.linalg.norm((np.indices(diff.shape).T - centre).T * 4.0, axis=0)
    # cut off at 4 core radii (at most 20 mm); felt mostly within 3 (tissue and, through it, edema shift)
    assert dist_mm[diff > 0].max() < 4 * 20.0 + 8.0
    assert diff[dist_mm < 3 * 20.0].sum() > 0.9 * diff.sum()


def test_bad_index_names_the_argument(params):
    with pytest.raises(ValueError, match="index"):
        generate_case(params.n_cases, params)
    with pytest.raises(ValueError, match="index"):
        generate_case(-1, params)


def test_written_files_are_brats_2021_and_byte_identical(tmp_path, params, case_of):
    case = case_of(3)
    first = write_case(case, tmp_path / "a")
    second = write_case(generate_case(3, params), tmp_path / "b")
    assert [p.name for p in first] == [f"BraTS2021_00003_{k}.nii.gz" for k in (*MODALITIES, "seg")]
    for p, q in zip(first, second, strict=True):
        assert p.read_bytes() == q.read_bytes(), f"{p.name} differs between two runs"
    assert sorted(p.name for p in (tmp_path / "a" / case.case_id).iterdir()) == sorted(p.name for p in first)
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".tmp")], "no half-written file left"

    files = case_files(tmp_path / "a" / case.case_id)
    assert files.layout == "brats2021" and files.seg == first[-1]
    for m in MODALITIES:
        img = nib.load(files.images[m])
        assert img.get_data_dtype() == np.int16 and img.shape == params.shape
        np.testing.assert_allclose(img.affine, case.affine)
        np.testing.assert_allclose(img.header.get_zooms(), (4.0, 4.0, 4.0))
        assert img.header.get_xyzt_units()[0] == "mm"
        assert int(img.header["qform_code"]) == 1 and int(img.header["sform_code"]) == 1
        np.testing.assert_allclose(img.get_qform(), case.affine)
        data = np.asarray(img.dataobj)
        np.testing.assert_array_equal(data, np.clip(np.rint(case.images[m]), 0, 32767).astype(np.int16))
    seg = nib.load(files.seg)
    assert seg.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asarray(seg.dataobj), case.seg)
