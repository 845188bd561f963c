"""Dataset layouts: every release's folders and names, label-set candidates, the Decathlon, release quirks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bratseg.labels import ET
from bratseg.layouts import MODALITIES, CaseFiles, case_files, detect_layout, discover_cases

CLASSIC = ("t1", "t1ce", "t2", "flair", "seg")
NEW = ("t1n", "t1c", "t2w", "t2f", "seg")
MSD_JSON = {
    "name": "BRATS",
    "modality": {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"},
    "labels": {"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"},
}


def make_case(root: Path, case_id: str, names: list[str] | tuple[str, ...], ext: str = ".nii.gz") -> Path:
    """A case folder with empty stand-ins for its files (layouts look at names only)."""
    folder = root / case_id
    folder.mkdir(parents=True)
    for n in names:
        (folder / f"{n}{ext}").write_bytes(b"x")
    return folder


def classic(root: Path, case_id: str, kinds=CLASSIC, ext: str = ".nii.gz") -> Path:
    return make_case(root, case_id, [f"{case_id}_{k}" for k in kinds], ext)


def new_style(root: Path, case_id: str, kinds=NEW) -> Path:
    return make_case(root, case_id, [f"{case_id}-{k}" for k in kinds])


def make_msd(
    root: Path, spec: dict | None = None, train=("BRATS_001", "BRATS_002"), test=("BRATS_485",)
) -> Path:
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        (root / sub).mkdir(parents=True)
    for cid in train:
        (root / "imagesTr" / f"{cid}.nii.gz").write_bytes(b"x")
        (root / "labelsTr" / f"{cid}.nii.gz").write_bytes(b"x")
        (root / "imagesTr" / f"._{cid}.nii.gz").write_bytes(b"x")  # macOS resource forks ship in the tar
        (root / "labelsTr" / f"._{cid}.nii.gz").write_bytes(b"x")
    for cid in test:
        (root / "imagesTs" / f"{cid}.nii.gz").write_bytes(b"x")
    (root / "dataset.json").write_text(json.dumps(MSD_JSON if spec is None else spec))
    return root


@pytest.mark.parametrize(
    ("case_id", "layout"),
    [
        ("Brats18_2013_2_1", "brats2018"),
        ("Brats18_CBICA_AAM_1", "brats2018"),
        ("BraTS19_CBICA_AAB_1", "brats2019"),
        ("BraTS19_TCIA01_131_1", "brats2019"),
        ("BraTS20_Training_001", "brats2020"),
        ("BraTS20_Validation_125", "brats2020"),
        ("BraTS2021_00000", "brats2021"),
        ("BraTS-GLI-00000-000", "brats2023"),
        ("BraTS-MEN-01234-001", "brats2023"),
        ("BraTS-MET-00001-000", "brats2023"),
        ("BraTS-SSA-00002-000", "brats2023"),
        ("BraTS-PED-00003-000", "brats2023"),
    ],
)
def test_detect_layout(case_id, layout):
    assert detect_layout(case_id) == layout


def test_unknown_folder_name_is_explained():
    with pytest.raises(ValueError, match=r"'patient_7' matches no BraTS layout.*msd_task01.*data.layout"):
        detect_layout("patient_7")


@pytest.mark.parametrize(("year", "prefix"), [("2018", "Brats18_2013_2_1"), ("2019", "BraTS19_2013_0_1")])
def test_brats2018_2019_grade_folders_are_read_and_kept_as_metadata(tmp_path, year, prefix):
    hgg = classic(tmp_path / "HGG", prefix)
    lgg = classic(tmp_path / "LGG", prefix.replace("_1", "_7"))
    classic(tmp_path, prefix.replace("_1", "_9"))  # a case outside the grade folders (validation data)
    (tmp_path / "survival_data.csv").write_text("id,age\n")
    cases = discover_cases(tmp_path)
    by_id = {c.case_id: c for c in cases}
    assert set(by_id) == {hgg.name, lgg.name, prefix.replace("_1", "_9")}
    assert by_id[hgg.name].meta == {"grade": "HGG"} and by_id[lgg.name].meta == {"grade": "LGG"}
    assert by_id[prefix.replace("_1", "_9")].meta == {}
    for c in cases:
        assert c.layout == f"brats{year}" and c.labels == "brats2021" and c.candidates == ("brats2021",)
        assert c.seg is not None and c.images["t1ce"].name == f"{c.case_id}_t1ce.nii.gz"
    assert [c.case_id for c in discover_cases(tmp_path, layout=f"brats{year}")] == [c.case_id for c in cases]


def test_the_same_case_in_both_grade_folders_is_an_error(tmp_path):
    classic(tmp_path / "HGG", "BraTS19_CBICA_AAB_1")
    classic(tmp_path / "LGG", "BraTS19_CBICA_AAB_1")
    with pytest.raises(ValueError, match=r"\['BraTS19_CBICA_AAB_1'\] appear more than once"):
        discover_cases(tmp_path)


def test_brats2020_uncompressed_files(tmp_path):
    cid = "BraTS20_Training_001"
    folder = classic(tmp_path, cid, ext=".nii")
    files = case_files(folder)
    assert files.layout == "brats2020"
    assert files.images["t1ce"] == folder / f"{cid}_t1ce.nii"
    assert files.seg == folder / f"{cid}_seg.nii"
    assert files.convention.values[4] == ET and files.labels == "brats2021"


def test_brats2021(tmp_path):
    cid = "BraTS2021_00000"
    files = case_files(classic(tmp_path, cid))
    assert files.layout == "brats2021" and files.labels == "brats2021" and files.meta == {}
    assert [files.images[m].name for m in MODALITIES] == [f"{cid}_{m}.nii.gz" for m in MODALITIES]
    assert files.unexpected == () and files.channels == {}


@pytest.mark.parametrize(
    ("challenge", "labels", "candidates"),
    [
        ("GLI", "brats2024", ("brats2023", "brats2024")),
        ("MET", "brats2024", ("brats2023", "brats2024")),
        ("MEN", "brats2023", ("brats2023",)),
        ("SSA", "brats2023", ("brats2023",)),
    ],
)
def test_brats2023_names_and_label_candidates(tmp_path, challenge, labels, candidates):
    cid = f"BraTS-{challenge}-00001-000"
    files = case_files(new_style(tmp_path, cid))
    assert [files.images[m].name for m in MODALITIES] == [f"{cid}-{s}.nii.gz" for s in NEW[:4]]
    assert files.seg is not None and files.seg.name == f"{cid}-seg.nii.gz"
    assert files.labels == labels and files.candidates == candidates and files.convention.values[3] == ET


def test_ped_under_auto_is_one_line_naming_data_labels(tmp_path):
    cid = "BraTS-PED-00003-000"
    folder = new_style(tmp_path, cid)
    with pytest.raises(ValueError) as info:
        case_files(folder)
    message = str(info.value)
    assert message.startswith(cid) and "data.labels" in message and "brats2024_ped" in message
    assert "\n" not in message
    with pytest.raises(ValueError, match=r"data\.labels"):
        discover_cases(tmp_path)
    files = case_files(folder, labels="brats2024_ped")
    assert files.labels == "brats2024_ped" and files.candidates == ("brats2024_ped",)
    assert discover_cases(tmp_path, labels="brats2023")[0].labels == "brats2023"


def test_explicit_labels_read_every_case_with_that_set(tmp_path):
    new_style(tmp_path, "BraTS-GLI-00001-000")
    new_style(tmp_path, "BraTS-MEN-00002-000")
    cases = discover_cases(tmp_path, labels="brats2024")
    assert {c.labels for c in cases} == {"brats2024"} and {c.candidates for c in cases} == {("brats2024",)}
    with pytest.raises(ValueError, match=r"labels must be 'auto' or one of"):
        discover_cases(tmp_path, labels="brats2030")


def test_msd_channel_order_comes_from_dataset_json(tmp_path):
    root = make_msd(tmp_path / "Task01_BrainTumour")
    cases = discover_cases(root)
    assert [c.case_id for c in cases] == ["BRATS_001", "BRATS_002", "BRATS_485"]
    first = cases[0]
    assert first.layout == "msd_task01" and first.labels == "msd_task01"
    assert first.channels == {"flair": 0, "t1": 1, "t1ce": 2, "t2": 3}
    assert set(first.images.values()) == {root / "imagesTr" / "BRATS_001.nii.gz"}
    assert first.seg == root / "labelsTr" / "BRATS_001.nii.gz"
    assert cases[2].seg is None and cases[2].folder == root / "imagesTs"  # test images: unlabelled
    # another channel order in dataset.json is followed, not guessed
    spec = {**MSD_JSON, "modality": {"0": "T2w", "1": "FLAIR", "2": "T1w", "3": "t1gd"}}
    other = make_msd(tmp_path / "reordered", spec)
    assert discover_cases(other, layout="msd_task01")[0].channels == {"t2": 0, "flair": 1, "t1": 2, "t1ce": 3}


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (
            {**MSD_JSON, "labels": {"0": "background", "1": "necrosis", "2": "edema", "3": "enhancing"}},
            "labels",
        ),
        ({**MSD_JSON, "modality": {"0": "FLAIR", "1": "T1w", "2": "PD", "3": "T2w"}}, "'PD'"),
        ({**MSD_JSON, "modality": {"0": "FLAIR", "1": "T1w", "2": "T2w"}}, "four BraTS modalities"),
        ({"name": "BRATS"}, "not a Decathlon dataset.json"),
    ],
)
def test_msd_dataset_json_that_does_not_fit_is_an_error(tmp_path, spec, match):
    root = make_msd(tmp_path / "Task01_BrainTumour", spec)
    with pytest.raises(ValueError, match=match) as info:
        discover_cases(root)
    assert str(root / "dataset.json") in str(info.value) and "\n" not in str(info.value)


def test_msd_other_labels_accepted_when_set_explicitly(tmp_path):
    spec = {**MSD_JSON, "labels": {"0": "background", "1": "necrosis", "2": "edema", "3": "enhancing"}}
    root = make_msd(tmp_path / "Task01_BrainTumour", spec)
    assert discover_cases(root, labels="brats2023")[0].labels == "brats2023"


def test_brats2020_case_355_segmentation_name_through_an_override(tmp_path):
    cid = "BraTS20_Training_355"
    folder = classic(tmp_path, cid, kinds=MODALITIES, ext=".nii")
    (folder / "W39_1998.09.19_Segm.nii").write_bytes(b"x")
    plain = case_files(folder)
    assert plain.seg is None and plain.unexpected == (folder / "W39_1998.09.19_Segm.nii",)
    fixed = discover_cases(tmp_path, overrides={cid: {"seg": "W39_1998.09.19_Segm.nii"}})[0]
    assert fixed.seg == folder / "W39_1998.09.19_Segm.nii" and fixed.unexpected == ()
    with pytest.raises(ValueError, match=r"data.overrides names case\(s\) not found.*BraTS20_Training_356"):
        discover_cases(tmp_path, overrides={"BraTS20_Training_356": {"seg": "x.nii"}})
    with pytest.raises(
        ValueError, match=r"data.overrides.BraTS20_Training_355: unknown file kind\(s\) \['mask'\]"
    ):
        case_files(folder, overrides={"mask": "x.nii"})


def test_an_override_naming_a_missing_file_is_not_silently_unlabelled(tmp_path):
    cid = "BraTS20_Training_355"
    folder = classic(tmp_path, cid, kinds=MODALITIES, ext=".nii")
    files = case_files(folder, overrides={"seg": "W39_Segm.nii"})
    assert files.seg == folder / "W39_Segm.nii"  # read_case then names the missing file
    assert files.existing_files() == [folder / f"{cid}_{m}.nii" for m in MODALITIES]


def test_hidden_files_and_folders_are_ignored(tmp_path):
    cid = "BraTS2021_00005"
    folder = classic(tmp_path, cid)
    (folder / f"._{cid}_seg.nii.gz").write_bytes(b"x")
    (folder / ".DS_Store").write_bytes(b"x")
    (tmp_path / ".BraTS2021_00006").mkdir()
    (tmp_path / "HGG").mkdir()
    cases = discover_cases(tmp_path)
    assert [c.case_id for c in cases] == [cid] and cases[0].unexpected == ()


def test_case_without_segmentation_is_unlabelled(tmp_path):
    cid = "BraTS2021_00042"
    folder = classic(tmp_path, cid, kinds=MODALITIES)
    assert case_files(folder).seg is None and case_files(folder).unexpected == ()


def test_missing_modality_keeps_its_expected_path(tmp_path):
    cid = "BraTS2021_00007"
    folder = classic(tmp_path, cid, kinds=("t1", "t2", "flair", "seg"))
    files = case_files(folder)
    assert not files.images["t1ce"].exists()
    assert files.images["t1ce"].name == f"{cid}_t1ce.nii.gz"
    assert len(files.existing_files()) == 4


def test_record_round_trip(tmp_path):
    folder = classic(tmp_path / "LGG", "BraTS19_2013_0_1")
    files = case_files(folder)
    again = CaseFiles.from_record(json.loads(json.dumps(files.to_record())))
    assert again == files
    msd = discover_cases(make_msd(tmp_path / "msd"))[0]
    assert CaseFiles.from_record(json.loads(json.dumps(msd.to_record()))) == msd


def test_discover_sorts_skips_foreign_folders_and_excludes(tmp_path):
    for cid in ("BraTS2021_00002", "BraTS2021_00001", "BraTS2021_00003"):
        classic(tmp_path, cid, kinds=MODALITIES)
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
    with pytest.raises(ValueError, match="layout must be"):
        discover_cases(tmp_path, layout="brats2017")
