import math

import numpy as np
import pandas as pd
import pytest

from bratseg.evaluation.stage import METRICS, summarise
from bratseg.labels import REGIONS


def frame(values):
    rows = []
    for i, v in enumerate(values):
        row = {"case_id": f"C{i}"}
        for metric in METRICS:
            for region in REGIONS:
                row[f"{metric}_{region}"] = v
        rows.append(row)
    return pd.DataFrame(rows)


def test_summary_has_mean_and_median_per_metric_and_region():
    summary = summarise(frame([0.2, 0.4, 0.9]))
    assert summary["n_cases"] == 3
    for metric in METRICS:
        for region in REGIONS:
            assert summary[metric][region] == {"mean": pytest.approx(0.5), "median": pytest.approx(0.4)}
    assert summary["dice"]["mean"] == pytest.approx(0.5)


def test_nan_values_are_left_out_and_all_nan_is_none():
    summary = summarise(frame([0.2, math.nan, 0.6]))
    assert summary["hd95"]["ET"]["mean"] == pytest.approx(0.4)
    empty = summarise(frame([math.nan, math.nan]))
    assert empty["dice"]["WT"] == {"mean": None, "median": None}
    assert empty["dice"]["mean"] is None


def test_summary_is_json_stable():
    import json

    a = json.dumps(summarise(frame([0.123456789, 0.5])), sort_keys=True)
    assert a == json.dumps(summarise(frame([0.123456789, 0.5])), sort_keys=True)
    assert "0.311728" in a  # rounded to 6 decimals


def test_reference_is_read_from_the_raw_segmentation_with_ingest_checks(tmp_path):
    import nibabel as nib

    from bratseg.errors import CaseError
    from bratseg.io import Geometry
    from bratseg.preprocess.validate import reference_classes

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
