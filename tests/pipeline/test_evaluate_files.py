"""bratseg evaluate: pairing by BraTS id, the JSON and CSV outputs, one line per bad file, label sets."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from bratseg.cli import main
from bratseg.config import MetricsParams
from bratseg.errors import ConfigError
from bratseg.pipeline.evaluate_files import FIELDS, case_id, evaluate_files, pair_files, resolve_labels

SHAPE = (21, 19, 17)
AFFINE = np.diag([1.0, 1.0, 1.0, 1.0])


def seg(shift: int = 0, cavity: bool = False) -> np.ndarray:
    out = np.zeros(SHAPE, np.uint8)
    out[5 + shift : 14 + shift, 5:14, 4:12] = 2
    out[7 + shift : 12 + shift, 7:12, 6:10] = 3
    out[9 + shift : 10 + shift, 9:10, 7:9] = 1
    if cavity:
        out[1:3, 1:3, 1:3] = 4
    return out


def save(path, data, affine=AFFINE):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


@pytest.fixture
def metrics(raw_params) -> MetricsParams:
    return MetricsParams.from_dict(raw_params["metrics"])


def test_ids_pair_the_way_the_official_tool_does(tmp_path):
    assert case_id(tmp_path / "BraTS-GLI-00042-000-seg.nii.gz") == "00042-000"
    assert case_id(tmp_path / "my_pred_00042-000.nii.gz") == "00042-000"
    assert case_id(tmp_path / "BraTS2021_00017_seg.nii.gz") == "BraTS2021_00017"
    save(tmp_path / "p" / "x_00001-000.nii.gz", seg())
    save(tmp_path / "p" / "x_00002-000.nii.gz", seg())
    save(tmp_path / "r" / "BraTS-GLI-00001-000-seg.nii.gz", seg())
    save(tmp_path / "r" / "BraTS-GLI-00003-000-seg.nii.gz", seg())
    pairing = pair_files(tmp_path / "p", tmp_path / "r")
    assert [c for c, _, _ in pairing.pairs] == ["00001-000"]
    assert [p.name for p in pairing.unpaired_predictions] == ["x_00002-000.nii.gz"]
    assert [p.name for p in pairing.unpaired_references] == ["BraTS-GLI-00003-000-seg.nii.gz"]


def test_folders_are_scored_with_one_entry_per_case_and_a_summary(tmp_path, metrics):
    for i in range(3):
        save(tmp_path / "ref" / f"BraTS-GLI-{i:05d}-000-seg.nii.gz", seg())
        save(tmp_path / "pred" / f"BraTS-GLI-{i:05d}-000.nii.gz", seg(shift=i))
    doc, errors = evaluate_files(
        tmp_path / "pred", tmp_path / "ref", metrics, output=tmp_path / "o.json", csv=tmp_path / "o.csv"
    )
    assert errors == [] and doc["labels"] == "brats2023" and doc["preset"] == "gli"
    assert [c["case"] for c in doc["cases"]] == ["00000-000", "00001-000", "00002-000"]
    first = doc["cases"][0]["regions"]
    assert set(first) == {"WT", "TC", "ET"} and set(first["WT"]) == set(FIELDS)
    assert first["WT"]["dice"] == 1.0 and first["WT"]["lesion_dice"] == 1.0 and first["ET"]["tp"] == 1
    assert set(doc["summary"]["dice"]["WT"]) == {"mean", "median", "std"}
    assert doc["summary"]["dice"]["WT"]["mean"] < 1.0
    assert json.loads((tmp_path / "o.json").read_text())["cases"] == doc["cases"]
    assert (tmp_path / "o.csv").read_text().splitlines()[0].startswith("case_id,dice_WT")


def test_a_bad_pair_is_one_line_and_the_others_are_scored(tmp_path, metrics, capsys):
    save(tmp_path / "ref" / "BraTS-GLI-00000-000-seg.nii.gz", seg())
    save(tmp_path / "pred" / "BraTS-GLI-00000-000.nii.gz", seg())
    save(tmp_path / "ref" / "BraTS-GLI-00001-000-seg.nii.gz", seg())
    bad = save(tmp_path / "pred" / "BraTS-GLI-00001-000.nii.gz", seg()[:-1])
    save(tmp_path / "ref" / "BraTS-GLI-00002-000-seg.nii.gz", seg())
    save(tmp_path / "pred" / "BraTS-GLI-00002-000.nii.gz", np.full(SHAPE, 7, np.uint8))
    doc, errors = evaluate_files(tmp_path / "pred", tmp_path / "ref", metrics)
    assert [c["case"] for c in doc["cases"]] == ["00000-000"]
    assert len(errors) == 2 and str(bad) in errors[0] and "shape" in errors[0]
    assert "unknown label value(s) [7]" in errors[1]
    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref")])
    assert exit_.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") for line in err)


def test_label_sets_come_from_names_and_values(tmp_path):
    gli = save(tmp_path / "BraTS-GLI-00000-000-seg.nii.gz", seg())
    rc = save(tmp_path / "BraTS-GLI-00001-000-seg.nii.gz", seg(cavity=True))
    old = save(tmp_path / "BraTS2021_00000_seg.nii.gz", np.where(seg() == 3, 4, seg()).astype(np.uint8))
    assert resolve_labels("auto", [gli], [gli]).name == "brats2023"
    assert resolve_labels("auto", [gli, rc], [gli, rc]).name == "brats2024"
    assert resolve_labels("auto", [old], [old]).name == "brats2021"
    assert resolve_labels("brats2024_ped", [gli], [gli]).name == "brats2024_ped"
    ped = save(tmp_path / "BraTS-PED-00001-000-seg.nii.gz", seg())
    with pytest.raises(ConfigError, match=r"BraTS-PED.*--labels"):
        resolve_labels("auto", [ped], [ped])
    other = save(tmp_path / "case7.nii.gz", seg())
    with pytest.raises(ConfigError, match=r"\[0, 1, 2, 3\] do not tell.*--labels"):
        resolve_labels("auto", [other], [other])


def test_two_files_and_voxel_units(tmp_path, metrics):
    anisotropic = np.diag([1.0, 1.0, 3.0, 1.0])
    ref = save(tmp_path / "r.nii.gz", seg(), anisotropic)
    pred = save(tmp_path / "p.nii.gz", seg(shift=2), anisotropic)
    mm, _ = evaluate_files(pred, ref, metrics, labels="brats2023", hd95_units="mm")
    vox, _ = evaluate_files(pred, ref, metrics, labels="brats2023", hd95_units="voxel")
    assert mm["hd95_units"] == "mm" and vox["hd95_units"] == "voxel"
    assert mm["cases"][0]["regions"]["WT"]["hd95"] == pytest.approx(2.0)
    assert vox["cases"][0]["regions"]["WT"]["hd95"] == pytest.approx(2.0)  # the shift is along x (1 mm)
    with pytest.raises(ConfigError, match="two files or two folders"):
        evaluate_files(pred, tmp_path, metrics)
