"""read_case: a good case is read correctly; every bad input is a CaseError naming the case and the file."""

from __future__ import annotations

import gzip
import json
import shutil

import nibabel as nib
import numpy as np
import pytest

from bratseg.errors import CaseError
from bratseg.io import Geometry
from bratseg.labels import BRATS_2021, ET, RC, SNFH, UnknownLabelError
from bratseg.layouts import MODALITIES, case_files, discover_cases
from bratseg.preprocess.mask import brain_mask
from bratseg.preprocess.steps.ingest import IngestOptions, ingest
from bratseg.preprocess.steps.interim import read_npz
from bratseg.rawcase import affine_mismatch, read_case, read_images, reference_classes

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
    props = {
        "case_id": "C0",
        "convention": "brats2021",
        "sources": {"seg": str(tmp_path / "seg.nii.gz")},
        "geometry": geometry.to_dict(),
    }
    classes = reference_classes(props)
    assert classes.shape == (5, 6, 7)
    assert classes[1, 2, 3] == 3 and classes[2, 2, 3] == 1 and classes.sum() == 4
    seg[0, 0, 0] = 7
    nib.save(nib.Nifti1Image(seg, affine), tmp_path / "seg.nii.gz")
    with pytest.raises(CaseError, match=r"^C0: .*seg.nii.gz: unknown label value\(s\) \[7\]"):
        reference_classes(props)


# --- the Decathlon's 4D images, release label sets, skull stripping, grids (data.resample_to) ----------

MSD_JSON = {
    "modality": {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"},
    "labels": {"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"},
}
MSD_ORDER = ("flair", "t1", "t1ce", "t2")  # the Decathlon's channel order


def _save(path, data, affine):
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    nib.save(img, path)


def write_msd(root, ph, case_id="BRATS_007", channels=MSD_ORDER):
    for sub in ("imagesTr", "labelsTr"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "dataset.json").write_text(json.dumps(MSD_JSON))
    stack = np.stack([np.rint(ph.images[m]) for m in channels], axis=-1).astype(np.float32)
    _save(root / "imagesTr" / f"{case_id}.nii.gz", stack, ph.affine)
    msd = np.select([ph.seg == 2, ph.seg == 1, ph.seg == 4], [1, 2, 3], 0).astype(np.uint8)  # 2021 -> MSD
    _save(root / "labelsTr" / f"{case_id}.nii.gz", msd, ph.affine)
    return discover_cases(root)[0]


def test_msd_4d_image_is_split_in_dataset_json_order(tmp_path, make_phantom):
    ph = make_phantom()
    files = write_msd(tmp_path / "Task01_BrainTumour", ph)
    case = read_case(files)
    assert case.layout == "msd_task01" and case.convention == "msd_task01"
    assert case.image.shape == (4, *ph.seg.shape) and case.geometry.shape == ph.seg.shape
    for i, m in enumerate(MODALITIES):
        np.testing.assert_array_equal(case.image[i], np.rint(ph.images[m]))
    # the same tumour classes as the BraTS 2021 file of the phantom
    np.testing.assert_array_equal(case.classes, BRATS_2021.to_classes(ph.seg))
    props = {"case_id": case.case_id, "sources": case.sources, "channels": files.channels}
    again = read_images(props)
    for i, m in enumerate(MODALITIES):
        np.testing.assert_array_equal(again[m], case.image[i])


def test_msd_4d_image_with_too_few_channels(tmp_path, make_phantom):
    ph = make_phantom()
    files = write_msd(tmp_path / "Task01_BrainTumour", ph)
    path = files.images["t1"]
    nib.save(nib.Nifti1Image(np.stack([ph.images["t1"]] * 3, -1), ph.affine), path)
    with pytest.raises(
        CaseError, match=r"expected a 4D image with 4 channels, got shape \(23, 27, 19, 3\)"
    ) as info:
        read_case(files)
    assert str(info.value).startswith(f"BRATS_007: {path}: ")


def test_brats2024_cavity_and_ped_values_are_read_as_their_classes(tmp_path, make_phantom):
    ph = make_phantom()
    seg = np.select([ph.seg == 1, ph.seg == 2, ph.seg == 4], [1, 2, 3], 0).astype(np.uint8)  # 2023 values
    seg[2:4, 2:4, 2:4] = 4
    cid = "BraTS-GLI-00009-000"
    folder = tmp_path / cid
    folder.mkdir()
    for m, suffix in zip(MODALITIES, ("t1n", "t1c", "t2w", "t2f"), strict=True):
        _save(folder / f"{cid}-{suffix}.nii.gz", np.rint(ph.images[m]).astype(np.int16), ph.affine)
    _save(folder / f"{cid}-seg.nii.gz", seg, ph.affine)
    case = read_case(case_files(folder))
    assert case.convention == "brats2024" and np.count_nonzero(case.classes == RC) == 8
    with pytest.raises(CaseError, match=r"unknown label value\(s\) \[4\] for label set brats2023"):
        read_case(case_files(folder, labels="brats2023"))
    ped = read_case(case_files(folder, labels="brats2024_ped"))  # the same values, the PED meanings
    assert np.count_nonzero(ped.classes == SNFH) == 8
    assert np.count_nonzero(ped.classes == ET) == np.count_nonzero(seg == 1)


def test_not_skull_stripped_is_refused_naming_the_file(tmp_path, write_case, make_phantom):
    ph = make_phantom()
    head = {m: (np.rint(ph.images[m]) + 50).astype(np.int16) for m in MODALITIES}  # no zero background
    files = write_case(tmp_path, CASE, ph, arrays=head)
    with pytest.raises(CaseError) as info:
        read_case(files)
    message = str(info.value)
    assert message.startswith(f"{CASE}: {files.images['t1']}: ") and "0.0% of the voxels are 0" in message
    assert "skull-stripped" in message and "\n" not in message
    # a real skull-stripped case: background exactly zero on most of the grid
    assert read_case(write_case(tmp_path / "ok", CASE, ph)).image.shape[0] == 4


def shifted(affine, voxels):
    """The affine of a grid whose voxel (0, 0, 0) lies at ``voxels`` (voxel units) of ``affine``'s grid."""
    out = affine.copy()
    out[:3, 3] = affine[:3, :3] @ np.asarray(voxels, float) + affine[:3, 3]
    return out


def test_resample_to_puts_a_modality_with_another_grid_onto_the_reference(tmp_path, write_case, make_phantom):
    ph = make_phantom()
    t2 = np.rint(ph.images["t2"]).astype(np.int16)
    # t2 on a grid two voxels shorter in x, starting one voxel further: the same world content
    moved = {"t2": t2[1:-1], "seg": ph.seg[:, 2:]}
    affines = {"t2": shifted(ph.affine, (1, 0, 0)), "seg": shifted(ph.affine, (0, 2, 0))}
    files = write_case(tmp_path, CASE, ph, arrays=moved, affines=affines)
    with pytest.raises(CaseError, match=r"shape 21x27x19 differs .* \(or set data\.resample_to\)") as info:
        read_case(files)
    assert str(files.images["t2"]) in str(info.value)
    case = read_case(files, resample_to="t1ce")
    assert case.geometry.shape == ph.seg.shape
    np.testing.assert_allclose(case.geometry.affine_array, ph.affine)
    got = case.image[MODALITIES.index("t2")]
    np.testing.assert_array_equal(got[1:-1], t2[1:-1])  # integer shift: linear interpolation is exact
    assert not got[0].any() and not got[-1].any()  # outside the t2 grid: zero
    np.testing.assert_array_equal(case.image[MODALITIES.index("t1")], np.rint(ph.images["t1"]))
    expected = BRATS_2021.to_classes(ph.seg)
    np.testing.assert_array_equal(case.classes[:, 2:], expected[:, 2:])
    assert not case.classes[:, :2].any()


def test_missing_segmentation_with_unexpected_files_names_the_folder_and_lists_them(tmp_path, write_case):
    files = write_case(tmp_path, CASE)
    files.seg.rename(files.folder / "W39_1998.09.19_Segm.nii.gz")
    (files.folder / "notes.nii").write_bytes(b"x")
    again = case_files(files.folder, "brats2021")
    with pytest.raises(CaseError) as info:
        read_case(again)
    message = str(info.value)
    assert message.startswith(f"{CASE}: {files.folder}: ")
    assert "holds W39_1998.09.19_Segm.nii.gz, notes.nii:" in message
    assert f"data.overrides.{CASE}.seg" in message
    assert "\n" not in message
    fixed = case_files(files.folder, "brats2021", overrides={"seg": "W39_1998.09.19_Segm.nii.gz"})
    assert fixed.unexpected == (files.folder / "notes.nii",)
    # an override names the segmentation: leftover files do not matter, and its classes are read
    assert read_case(fixed).classes is not None


def test_override_naming_a_missing_segmentation_is_an_error(tmp_path, write_case):
    files = write_case(tmp_path, CASE, with_seg=False)
    wrong = case_files(files.folder, "brats2021", overrides={"seg": "W39_Segm.nii"})
    with pytest.raises(CaseError, match="file not found") as info:
        read_case(wrong)
    assert str(info.value).startswith(f"{CASE}: {files.folder / 'W39_Segm.nii'}: ")


def test_report_and_evaluation_read_a_resample_to_case_on_its_grid(tmp_path, write_case, make_phantom):
    """read_images and reference_classes put the files onto the case's grid as ingest did (resample_to)."""
    ph = make_phantom()
    t2 = np.rint(ph.images["t2"]).astype(np.int16)
    moved = {"t2": t2[1:-1], "seg": ph.seg[:, 2:]}
    affines = {"t2": shifted(ph.affine, (1, 0, 0)), "seg": shifted(ph.affine, (0, 2, 0))}
    files = write_case(tmp_path, CASE, ph, arrays=moved, affines=affines)
    ingest(files, tmp_path / "ingested.npz", IngestOptions(resample_to="t1ce"))
    arrays, meta = read_npz(tmp_path / "ingested.npz")
    assert meta["transforms"]["resample_to"] == "t1ce"
    images = read_images(meta)
    for i, m in enumerate(MODALITIES):
        np.testing.assert_array_equal(images[m], arrays["image"][i])
    np.testing.assert_array_equal(reference_classes(meta), arrays["classes"])
    meta["transforms"]["resample_to"] = None  # without the record: the grid mismatch is named
    with pytest.raises(CaseError, match=r"data\.resample_to"):
        reference_classes(meta)
