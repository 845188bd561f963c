"""A BraTS 2024 cohort through the tiny pipeline, stored in LPS orientation and resampled.

What only an end-to-end run proves: the cohort's label set, settled by the split stage from the label values
found (RC = 4 appears), reaches training (four sigmoid outputs: WT, TC, ET, RC), evaluation (an RC region in
metrics.json, cases.csv and the report) and the written predictions (2024 values, on each case's own LPS grid
after the pipeline worked in RAS+ at another spacing).
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml

pytestmark = pytest.mark.e2e
NAMES = {"t1": "t1n", "t1ce": "t1c", "t2": "t2w", "flair": "t2f", "seg": "seg"}


def to_gli2024_lps(src: Path, dest_root: Path, index: int, with_cavity: bool) -> Path:
    """A BraTS 2021 case rewritten as ``BraTS-GLI-<index>-000`` (2024 values), its voxel axes flipped to LPS.

    With ``with_cavity`` the necrotic core becomes a resection cavity (label 4), so the cohort has RC.
    """
    case_id = f"BraTS-GLI-{index:05d}-000"
    dest = dest_root / case_id
    dest.mkdir(parents=True)
    for old, new in NAMES.items():
        img = nib.load(next(src.glob(f"*_{old}.nii.gz")))
        data = np.asarray(img.dataobj)[::-1, ::-1, :].copy()
        flip = np.diag([-1.0, -1.0, 1.0, 1.0])
        flip[:2, 3] = [data.shape[0] - 1, data.shape[1] - 1]
        affine = img.affine @ flip  # the same world positions, voxel axes pointing left and posterior
        if old == "seg":
            data = np.where(data == 4, 3, data)  # enhancing tumour is 3 from 2023 on
            if with_cavity:
                data = np.where(data == 1, 4, data)
            data = data.astype(np.uint8)
        out = nib.Nifti1Image(data, affine)
        out.set_qform(affine, code=1)
        out.set_sform(affine, code=1)
        nib.save(out, dest / f"{case_id}-{new}.nii.gz")
    return dest


@pytest.fixture(scope="module")
def repro_2024(project, run):
    run("snakemake", "--cores", "2", "cohort")
    raw = project / "data/raw/gli2024"
    cases = sorted((project / "data/raw/synthetic").iterdir())
    for i, case in enumerate(cases):
        to_gli2024_lps(case, raw, i, with_cavity=i % 2 == 0)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["data"]["raw_dir"] = "data/raw/gli2024"
    params["preprocess"]["target_spacing_mm"] = [5.0, 5.0, 5.0]
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run("dvc", "repro")
    return raw


def test_the_cohort_label_set_reaches_training_evaluation_and_the_report(project, repro_2024):
    fingerprint = json.loads((project / "data/preprocessed/fingerprint.json").read_text())
    assert fingerprint["labels"]["name"] == "brats2024"
    assert fingerprint["orientations"] == {"LPS": 6} and fingerprint["target_spacing_mm"] == [5.0, 5.0, 5.0]
    meta = torch.load(project / "models/fold0/best.pt", weights_only=True)["meta"]
    assert meta["labels"] == "brats2024" and meta["out_channels"] == 4  # WT, TC, ET, RC
    metrics = json.loads((project / "reports/eval/metrics.json").read_text())
    assert set(metrics["dice"]) == {"WT", "TC", "ET", "NETC", "SNFH", "RC", "mean"}
    assert set(metrics["lesion_dice"]) >= {"WT", "TC", "ET", "RC"}
    header = (project / "reports/eval/cases.csv").read_text().splitlines()[0].split(",")
    assert {"dice_RC", "hd95_RC", "lesion_dice_RC"} <= set(header)
    assert "RC" in (project / "reports/report.html").read_text()


def test_predictions_are_written_on_each_native_lps_grid_in_2024_values(project, repro_2024):
    split = json.loads((project / "data/preprocessed/splits.json").read_text())
    for case_id in split["test"]:
        pred = nib.load(project / "data/predictions" / f"{case_id}.nii.gz")
        ref = nib.load(repro_2024 / case_id / f"{case_id}-t2f.nii.gz")
        assert pred.shape == ref.shape
        np.testing.assert_allclose(pred.affine, ref.affine, atol=1e-6)
        assert nib.aff2axcodes(pred.affine) == ("L", "P", "S")
        assert set(np.unique(np.asarray(pred.dataobj)).tolist()) <= {0, 1, 2, 3, 4}
        props = json.loads((project / "data/preprocessed/cases" / case_id / "properties.json").read_text())
        assert props["transforms"]["resampling"]["resampled"]
        assert props["transforms"]["orientation"]["native_axcodes"] == "LPS"
