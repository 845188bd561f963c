from pathlib import Path

import pytest

from bratseg.labels import ET
from bratseg.layouts import MODALITIES, case_files, detect_layout, discover_cases


def make_case(root: Path, case_id: str, names: list[str], ext: str = ".nii.gz") -> Path:
    folder = root / case_id
    folder.mkdir(parents=True)
    for n in names:
        (folder / f"{n}{ext}").write_bytes(b"x")
    return folder


@pytest.mark.parametrize(
    ("case_id", "layout"),
    [
        ("BraTS20_Training_001", "brats2020"),
        ("BraTS20_Validation_125", "brats2020"),
        ("BraTS2021_00000", "brats2021"),
        ("BraTS-GLI-00000-000", "brats2023"),
        ("BraTS-MEN-01234-001", "brats2023"),
    ],
)
def test_detect_layout(case_id, layout):
    assert detect_layout(case_id) == layout


def test_unknown_folder_name_is_explained():
    with pytest.raises(ValueError, match="matches no BraTS layout"):
        detect_layout("patient_7")


def test_brats2020_uncompressed_files(tmp_path):
    cid = "BraTS20_Training_001"
    folder = make_case(tmp_path, cid, [f"{cid}_{m}" for m in ("t1", "t1ce", "t2", "flair", "seg")], ".nii")
    files = case_files(folder)
    assert files.layout == "brats2020"
    assert files.images["t1ce"] == folder / f"{cid}_t1ce.nii"
    assert files.seg == folder / f"{cid}_seg.nii"
    assert files.convention.values[4] == ET and files.labels == "brats2021"


def test_brats2023_names_map_to_modalities_and_label_3(tmp_path):
    cid = "BraTS-GLI-00001-000"
    folder = make_case(tmp_path, cid, [f"{cid}-{s}" for s in ("t1n", "t1c", "t2w", "t2f", "seg")])
    files = case_files(folder)
    assert [files.images[m].name for m in MODALITIES] == [
        f"{cid}-t1n.nii.gz",
        f"{cid}-t1c.nii.gz",
        f"{cid}-t2w.nii.gz",
        f"{cid}-t2f.nii.gz",
    ]
    assert files.convention.values[3] == ET and files.candidates == ("brats2023", "brats2024")


def test_case_without_segmentation_is_unlabelled(tmp_path):
    cid = "BraTS2021_00042"
    folder = make_case(tmp_path, cid, [f"{cid}_{m}" for m in MODALITIES])
    assert case_files(folder).seg is None


def test_missing_modality_keeps_its_expected_path(tmp_path):
    cid = "BraTS2021_00007"
    folder = make_case(tmp_path, cid, [f"{cid}_{m}" for m in ("t1", "t2", "flair", "seg")])
    files = case_files(folder)
    assert not files.images["t1ce"].exists()
    assert files.images["t1ce"].name == f"{cid}_t1ce.nii.gz"
    assert len(files.existing_files()) == 4


def test_discover_sorts_skips_foreign_folders_and_excludes(tmp_path):
    for cid in ("BraTS2021_00002", "BraTS2021_00001", "BraTS2021_00003"):
        make_case(tmp_path, cid, [f"{cid}_{m}" for m in MODALITIES])
    (tmp_path / "notes").mkdir()
    cases = discover_cases(tmp_path, exclude=("BraTS2021_00003",))
    assert [c.case_id for c in cases] == ["BraTS2021_00001", "BraTS2021_00002"]
    with pytest.raises(ValueError, match="not found"):
        discover_cases(tmp_path, exclude=("BraTS2021_99999",))


def test_discover_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        discover_cases(tmp_path / "missing")
    with pytest.raises(ValueError, match="no BraTS case folder"):
        discover_cases(tmp_path)
