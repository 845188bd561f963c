"""read_case: a good case is read correctly; every bad input is a CaseError naming the case and the file."""

from __future__ import annotations

import gzip
import shutil

import nibabel as nib
import numpy as np
import pytest

from bratseg.errors import CaseError
from bratseg.io import Geometry
from bratseg.labels import BRATS_2021, UnknownLabelError
from bratseg.layouts import MODALITIES, case_files
from bratseg.preprocess.mask import brain_mask
from bratseg.rawcase import affine_mismatch, read_case, reference_classes

CASE = "BraTS2021_00001"


def test_good_case(tmp_path, write_case, make_phantom):
    ph = make_phantom()
    files = write_case(tmp_path, CASE, ph)
    case = read_case(files)
    assert case.case_id == CASE and case.layout == "brats2021" and case.convention == "brats2021"
    assert case.image.shape == (4, *ph.seg.shape) and case.image.dtype == np.float32
    for i, m in enumerate(MODALITIES):
        np.testing.assert_array_equal(case.image[i], np.rint(ph.images[m]))
    np.testing.assert_array_equal(brain_mask(case.image), ph.brain)
    assert case.classes is not None and case.classes.dtype == np.uint8
    np.testing.assert_array_equal(case.classes, BRATS_2021.to_classes(ph.seg))
    assert case.geometry.shape == ph.seg.shape
    np.testing.assert_allclose(case.geometry.affine_array, ph.affine)
    assert case.geometry.spacing == (2.0, 2.0, 2.0)
    assert set(case.sources) == {*MODALITIES, "seg"}


def test_unlabelled_case(tmp_path, write_case):
    case = read_case(write_case(tmp_path, CASE, with_seg=False))
    assert case.classes is None and not case.has_label and "seg" not in case.sources


def test_trailing_singleton_dimension_is_accepted(tmp_path, write_case, make_phantom):
    ph = make_phantom()
    files = write_case(
        tmp_path, CASE, ph, arrays={"t2": np.rint(ph.images["t2"])[..., None].astype(np.int16)}
    )
    case = read_case(files)
    np.testing.assert_array_equal(case.image[2], np.rint(ph.images["t2"]))


def test_float_segmentation_with_integral_values_is_accepted(tmp_path, write_case, make_phantom):
    ph = make_phantom()
    case = read_case(write_case(tmp_path, CASE, ph, arrays={"seg": ph.seg.astype(np.float32)}))
    np.testing.assert_array_equal(case.classes, BRATS_2021.to_classes(ph.seg))


def test_to_classes_raises_on_unknown_label():
    with pytest.raises(UnknownLabelError, match=r"\[3\]"):
        BRATS_2021.to_classes(np.array([0, 1, 2, 3]))


def test_affine_mismatch_tolerance():
    a = np.diag([1.0, 1.0, 1.0, 1.0])
    b = a.copy()
    b[:3, 3] += 5e-4
    assert affine_mismatch(a, b) is None
    b[0, 3] += 0.01
    assert "origin" in affine_mismatch(a, b)
    c = a.copy()
    c[0, 0] = 1.01
    assert "voxel size" in affine_mismatch(a, c)
    theta = 1e-3
    d = a.copy()
    d[:2, :2] = [[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]
    assert "orientation" in affine_mismatch(a, d)


def _bad_cases(ph):
    """(name, file key, arrays override, affines override, expected message part)."""
    shifted = ph.affine.copy()
    shifted[:3, 3] += [0.5, 0.0, 0.0]
    nan = ph.images["t1ce"].copy()
    nan[5, 5, 5] = np.nan
    bad_seg = ph.seg.copy()
    bad_seg[ph.seg == 4] = 3  # BraTS 2023 enhancing value in a BraTS 2021 case
    frac_seg = ph.seg.astype(np.float32)
    frac_seg[3, 3, 3] = 0.5
    return [
        ("4d", "t2", {"t2": np.stack([np.rint(ph.images["t2"])] * 2, -1).astype(np.int16)}, {}, "4D"),
        ("nan", "t1ce", {"t1ce": nan}, {}, "non-finite"),
        ("shape", "seg", {"seg": ph.seg[:-1]}, {}, "shape"),
        (
            "shape_image",
            "flair",
            {"flair": np.rint(ph.images["flair"][:, :-2]).astype(np.int16)},
            {},
            "shape",
        ),
        ("affine", "t2", {}, {"t2": shifted}, "affine"),
        ("label", "seg", {"seg": bad_seg}, {}, "unknown label"),
        ("fraction", "seg", {"seg": frac_seg}, {}, "non-integral"),
        ("zero", "flair", {"flair": np.zeros(ph.seg.shape, np.int16)}, {}, "all zero"),
        ("2d", "t1", {"t1": np.rint(ph.images["t1"][:, :, 0]).astype(np.int16)}, {}, "3D"),
    ]


@pytest.mark.parametrize("index", range(9))
def test_bad_inputs_raise_case_error(tmp_path, write_case, make_phantom, index):
    ph = make_phantom()
    name, key, arrays, affines, expected = _bad_cases(ph)[index]
    files = write_case(tmp_path, CASE, ph, arrays=arrays, affines=affines)
    bad_file = files.seg if key == "seg" else files.images[key]
    with pytest.raises(CaseError) as info:
        read_case(files)
    message = str(info.value)
    assert CASE in message and str(bad_file) in message, (name, message)
    assert expected in message, (name, message)
    assert info.value.path == bad_file and "\n" not in message


def test_missing_modality(tmp_path, write_case):
    files = write_case(tmp_path, CASE)
    files.images["t1ce"].unlink()
    files = case_files(files.folder, "brats2021")
    with pytest.raises(CaseError, match="missing modality t1ce") as info:
        read_case(files)
    assert CASE in str(info.value) and str(files.images["t1ce"]) in str(info.value)


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_gzip(tmp_path, write_case, damage):
    files = write_case(tmp_path, CASE)
    path = files.images["t2"]
    raw = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    else:
        path.write_bytes(raw[:10] + bytes(range(256)) * 8)
    with pytest.raises(CaseError) as info:
        read_case(files)
    assert CASE in str(info.value) and str(path) in str(info.value)
    if damage == "truncated":
        assert "corrupt or truncated gzip data" in str(info.value)


def test_not_a_nifti(tmp_path, write_case):
    files = write_case(tmp_path, CASE)
    path = files.images["flair"]
    with gzip.open(path, "wb") as f:
        f.write(b"this is no image" * 40)
    with pytest.raises(CaseError) as info:
        read_case(files)
    assert CASE in str(info.value) and str(path) in str(info.value)


def test_uncompressed_files(tmp_path, write_case):
    files = write_case(tmp_path, CASE)
    for path in [*files.images.values(), files.seg]:
        with gzip.open(path, "rb") as src, open(str(path)[: -len(".gz")], "wb") as dst:
            shutil.copyfileobj(src, dst)
        path.unlink()
    case = read_case(case_files(files.folder, "brats2021"))
    assert case.sources["t1"].endswith(".nii") and case.classes is not None


def test_reference_is_read_from_the_raw_segmentation_with_ingest_checks(tmp_path):
    seg = np.zeros((5, 6, 7), np.uint8)
    seg[1, 2, 3] = 4
    seg[2, 2, 3] = 1
    affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    nib.save(nib.Nifti1Image(seg[..., None].astype(np.float32), affine), tmp_path / "seg.nii.gz")  # X*Y*Z*1
    geometry = Geometry.from_image(nib.Nifti1Image(seg, affine))
    props = {"case_id": "C0", "convention": "brats2021", "sources": {"seg": str(tmp_path / "seg.nii.gz")},
             "geometry": geometry.to_dict()}
    classes = reference_classes(props)
    assert classes.shape == (5, 6, 7)
    assert classes[1, 2, 3] == 3 and classes[2, 2, 3] == 1 and classes.sum() == 4
    seg[0, 0, 0] = 7
    nib.save(nib.Nifti1Image(seg, affine), tmp_path / "seg.nii.gz")
    with pytest.raises(CaseError, match=r"^C0: .*seg.nii.gz: unknown label value\(s\) \[7\]"):
        reference_classes(props)
