"""The ingest step: prepare() (reorient, resample, mask), its records, the per-case fingerprint, the file."""

from __future__ import annotations

import numpy as np
import pytest

from bratseg.labels import BRATS_2021, CANONICAL
from bratseg.layouts import MODALITIES
from bratseg.preprocess.mask import brain_mask
from bratseg.preprocess.steps.ingest import (
    PERCENTILES,
    IngestOptions,
    as_target,
    case_fingerprint,
    ingest,
    prepare,
)
from bratseg.preprocess.steps.interim import read_npz
from bratseg.rawcase import read_case
from bratseg.spatial import orient
from bratseg.spatial.resample import resampled_affine

CASE = "BraTS2021_00001"


def lps(affine: np.ndarray) -> np.ndarray:
    out = affine.copy()
    out[:2] *= -1  # x and y axes (and origin) mirrored: BraTS's own LPS-style headers
    out[3] = [0, 0, 0, 1]
    return out


def test_ras_at_the_target_spacing_is_a_plain_read(tmp_path, write_case, make_phantom):
    ph = make_phantom()
    case = read_case(write_case(tmp_path, CASE, ph))
    for options in (IngestOptions(), IngestOptions(target_spacing=(2.0, 2.0, 2.0))):
        arrays, transforms = prepare(case, options)
        assert arrays["image"].tobytes() == case.image.tobytes() and arrays["image"].dtype == case.image.dtype
        assert arrays["classes"].tobytes() == case.classes.tobytes()
        np.testing.assert_array_equal(arrays["mask"], brain_mask(case.image))
        assert orient.is_identity(np.asarray(transforms["orientation"]["ornt"]))
        assert transforms["orientation"]["native_axcodes"] == "RAS"
        assert not transforms["resampling"]["resampled"] and transforms["spacing"] == [2.0, 2.0, 2.0]
        np.testing.assert_array_equal(transforms["affine"], ph.affine)


def test_lps_case_is_flipped_exactly_without_resampling(tmp_path, write_case, make_phantom):
    ph = make_phantom()
    affine = lps(ph.affine)
    affines = {k: affine for k in (*MODALITIES, "seg")}
    case = read_case(write_case(tmp_path, CASE, ph, affines=affines))
    arrays, transforms = prepare(case, IngestOptions(target_spacing=(2.0, 2.0, 2.0)))
    np.testing.assert_array_equal(arrays["image"], case.image[:, ::-1, ::-1, :])
    np.testing.assert_array_equal(arrays["classes"], case.classes[::-1, ::-1, :])
    assert transforms["orientation"]["native_axcodes"] == "LPS" and not transforms["resampling"]["resampled"]
    ras = np.asarray(transforms["affine"])
    # voxel (0, 0, 0) of the RAS+ array is the native voxel (X-1, Y-1, 0): the same world point
    n = ph.seg.shape
    np.testing.assert_allclose(ras @ [0, 0, 0, 1], affine @ [n[0] - 1, n[1] - 1, 0, 1])


def test_resampling_is_recorded(tmp_path, write_case, make_phantom):
    ph = make_phantom()
    case = read_case(write_case(tmp_path, CASE, ph))
    arrays, transforms = prepare(case, IngestOptions(target_spacing=(1.0, 1.0, 1.0), image_order=1))
    plan = transforms["resampling"]
    assert plan["resampled"] and plan["native_shape"] == [23, 27, 19] and plan["shape"] == [46, 54, 38]
    assert plan["native_spacing"] == [2.0, 2.0, 2.0] and plan["target_spacing"] == [1.0, 1.0, 1.0]
    assert transforms["spacing"] == [1.0, 1.0, 1.0] and plan["thick_axis"] is None
    assert arrays["image"].shape == (4, 46, 54, 38) and arrays["classes"].shape == (46, 54, 38)
    assert arrays["mask"].shape == (46, 54, 38) and not arrays["image"][:, ~arrays["mask"]].any()
    np.testing.assert_allclose(transforms["affine"], resampled_affine(ph.affine, (23, 27, 19), (46, 54, 38)))
    assert set(np.unique(arrays["classes"]).tolist()) == set(np.unique(case.classes).tolist())


def test_anisotropic_case_is_resampled_with_the_thick_axis_apart(tmp_path, write_case, make_phantom):
    ph = make_phantom(shape=(31, 29, 7))
    ph.affine[:3, :3] = np.diag([0.5, 0.5, 5.0])
    case = read_case(write_case(tmp_path, CASE, ph))
    arrays, transforms = prepare(case, IngestOptions(target_spacing=(1.0, 1.0, 2.5)))
    plan = transforms["resampling"]
    assert plan["thick_axis"] == 2 and plan["anisotropy"] == pytest.approx(10.0)
    assert plan["shape"] == [16, 14, 14] and arrays["image"].shape == (4, 16, 14, 14)
    # along the thick axis each native slice is repeated (nearest), never blended with its neighbour
    np.testing.assert_array_equal(arrays["classes"][:, :, 0], arrays["classes"][:, :, 1])
    np.testing.assert_array_equal(arrays["image"][:, :, :, 2], arrays["image"][:, :, :, 3])


def test_fingerprint_content(tmp_path, write_case, make_phantom):
    ph = make_phantom()
    case = read_case(write_case(tmp_path, CASE, ph))
    fp = case_fingerprint(case, "RAS")
    assert fp["spacing"] == [2.0, 2.0, 2.0] and fp["shape"] == [23, 27, 19] and fp["axcodes"] == "RAS"
    assert fp["spacing_ras"] == [2.0, 2.0, 2.0]
    brain = np.any(case.image != 0, axis=0)
    assert fp["brain_ml"] == pytest.approx(np.count_nonzero(brain) * 8 / 1000)
    for i, m in enumerate(MODALITIES):
        values = case.image[i][brain]
        expected = np.percentile(values, PERCENTILES)
        assert [fp["intensity"][m][f"p{p:g}"] for p in PERCENTILES] == pytest.approx(expected.tolist())
        assert fp["intensity"][m]["mean"] == pytest.approx(float(values.mean()))
    classes = BRATS_2021.to_classes(ph.seg)
    assert fp["class_voxels"] == {CANONICAL[c]: int(np.count_nonzero(classes == c)) for c in (1, 2, 3)}
    assert fp["values_found"] == [0, 1, 2, 4]
    assert fp["volumes_ml"] == pytest.approx(BRATS_2021.volumes_ml(classes, (2.0, 2.0, 2.0)))
    unlabelled = case_fingerprint(read_case(write_case(tmp_path / "u", CASE, ph, with_seg=False)), "RAS")
    assert "class_voxels" not in unlabelled and "values_found" not in unlabelled


def test_fingerprint_values_found_lists_only_present_values(tmp_path, write_case, make_phantom):
    ph = make_phantom()
    seg = np.where(ph.seg == 4, 1, ph.seg).astype(np.uint8)  # no enhancing tumour
    case = read_case(write_case(tmp_path, CASE, ph, arrays={"seg": seg}))
    fp = case_fingerprint(case, "RAS")
    assert fp["values_found"] == [0, 1, 2] and fp["class_voxels"]["ET"] == 0


def test_ingest_writes_arrays_and_records(tmp_path, write_case, make_phantom):
    ph = make_phantom()
    affines = {k: lps(ph.affine) for k in (*MODALITIES, "seg")}
    files = write_case(tmp_path, CASE, ph, affines=affines)
    out = tmp_path / "interim" / "ingested.npz"
    ingest(files, out, IngestOptions(target_spacing=(2.0, 2.0, 2.0)))
    arrays, meta = read_npz(out)
    assert set(arrays) == {"image", "mask", "classes"}
    assert meta["case_id"] == CASE and meta["convention"] == "brats2021"
    assert meta["label_candidates"] == ["brats2021"] and meta["case_meta"] == {} and meta["channels"] == {}
    assert meta["geometry"]["shape"] == [23, 27, 19]
    np.testing.assert_allclose(meta["geometry"]["affine"], lps(ph.affine))
    assert meta["transforms"]["orientation"]["native_axcodes"] == "LPS"
    assert meta["fingerprint"]["axcodes"] == "LPS" and meta["spacing"] == [2.0, 2.0, 2.0]


def test_fingerprint_spacing_along_ras_axes_for_permuted_files(tmp_path, write_case, make_phantom):
    """A file stored with its axes permuted (axis 0 superior) has its spacing listed in RAS+ order too."""
    ph = make_phantom()
    affine = np.zeros((4, 4))
    affine[2, 0], affine[0, 1], affine[1, 2], affine[3, 3] = 3.0, 1.0, 2.0, 1.0  # voxel axes: S, R, A
    affines = {k: affine for k in (*MODALITIES, "seg")}
    case = read_case(write_case(tmp_path, CASE, ph, affines=affines))
    fp = case_fingerprint(case, "SRA")
    assert fp["spacing"] == [3.0, 1.0, 2.0] and fp["spacing_ras"] == [1.0, 2.0, 3.0]
    _, transforms = prepare(case, IngestOptions())
    assert transforms["spacing"] == fp["spacing_ras"]


def test_as_target():
    assert as_target(None) is None
    assert as_target([1, 2, 3]) == (1.0, 2.0, 3.0)
    with pytest.raises(ValueError, match="three positive numbers"):
        as_target([1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="three positive numbers"):
        as_target([1.0, 1.0])
