"""The crossval stage's parts: the out-of-fold post-processing choice and the per-fold statistics."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bratseg.config import deep_merge, parse_params
from bratseg.errors import ConfigError
from bratseg.evaluation.summary import METRICS
from bratseg.inference.postprocess import PostprocessPlan
from bratseg.labels import BRATS_2021, EDEMA, ENHANCING, NECROSIS
from bratseg.pipeline.crossval import OutOfFold, choose_plan, fold_statistics, out_of_fold_cases
from bratseg.pipeline.cv_predict import INDEX, load_classes, read_index, save_classes


@dataclass(frozen=True)
class FakeCase:
    """What the selection reads of a cached case: its id and label."""

    case_id: str
    truth: np.ndarray

    def label(self) -> np.ndarray:
        return self.truth


def tumour(shape=(15, 13, 11), enhancing=True) -> np.ndarray:
    classes = np.zeros(shape, dtype=np.uint8)
    classes[2:8, 2:8, 2:8] = EDEMA
    classes[3:7, 3:7, 3:7] = NECROSIS
    if enhancing:
        classes[4:6, 4:6, 4:6] = ENHANCING  # 8 voxels
    return classes


def entries(tmp_path: Path) -> list[OutOfFold]:
    """Three out-of-fold cases: a stray whole-tumour blob (A), a perfect one (B), a spurious 4-voxel enhancing
    tumour where the reference has none (C)."""
    stray = tumour()
    stray[11:14, 9:12, 7:10] = EDEMA
    spurious = tumour(enhancing=False)
    spurious[4:6, 4:6, 4] = ENHANCING
    cases = [("A", tumour(), stray), ("B", tumour(), tumour()), ("C", tumour(enhancing=False), spurious)]
    out = []
    for i, (case_id, truth, pred) in enumerate(cases):
        save_classes(tmp_path / f"{case_id}.npy.gz", pred)
        out.append(OutOfFold(f"fold{i % 2}", FakeCase(case_id, truth), tmp_path / f"{case_id}.npy.gz"))  # type: ignore[arg-type]
    return out


def params(raw_params, schema, **post):
    """The repository params with ``postprocess`` overridden (threshold 0.5 and no component size filter
    unless given: the plans below do not follow the repository's defaults)."""
    post = {
        "threshold": 0.5,
        "et_min_mean_probability": 0.0,
        "min_component_voxels": 0,
        "min_core_voxels": 0,
        **post,
    }
    return parse_params(deep_merge(raw_params, {"postprocess": post}), schema)


def test_selection_keeps_the_largest_whole_tumour_and_the_smallest_helpful_et_threshold(
    tmp_path, raw_params, schema
):
    p = params(raw_params, schema, select=True, et_min_voxels_candidates=[25, 5])
    plan, selection = choose_plan(entries(tmp_path), p, BRATS_2021)
    # WT's largest component removes A's stray blob; TC and ET have one component everywhere (no change);
    # ET below 5 voxels -> necrosis fixes C (4 voxels), 25 would also relabel A's and B's real 8-voxel ET
    assert plan == PostprocessPlan(0.5, 0, ("WT",), 5)
    assert selection is not None
    # the coreless-component filter is a fixed part: a selected plan carries the params' value
    cored = params(raw_params, schema, select=True, et_min_voxels_candidates=[25, 5], min_core_voxels=1)
    assert choose_plan(entries(tmp_path), cored, BRATS_2021)[0].min_core_voxels == 1
    assert [s.get("adopted") for s in selection.steps[:3]] == [True, False, False]
    assert selection.before["ET"] == pytest.approx(2 / 3) and selection.after["ET"] == 1.0
    assert selection.after["mean"] == 1.0 and selection.before["mean"] < 1.0


def test_without_selection_the_params_fix_the_plan(tmp_path, raw_params, schema):
    p = params(raw_params, schema, select=False, largest_component=["TC"], et_min_voxels=7)
    plan, selection = choose_plan(entries(tmp_path), p, BRATS_2021)
    assert (plan, selection) == (PostprocessPlan(0.5, 0, ("TC",), 7), None)
    bad = params(raw_params, schema, select=False, largest_component=["RC"])
    with pytest.raises(ConfigError, match="RC not among the regions"):
        choose_plan([], bad, BRATS_2021)
    nothing = params(raw_params, schema, select=True)
    assert choose_plan([], nothing, BRATS_2021) == (PostprocessPlan.from_params(nothing.postprocess), None)


def test_fold_statistics_are_over_the_fold_means():
    frame = pd.DataFrame(
        {
            "case_id": ["a", "b", "c"],
            "fold": ["fold0", "fold0", "fold1"],
            **{f"{m}_{r}": [0.6, 0.8, 0.5] for m in METRICS for r in BRATS_2021.region_names},
        }
    )
    stats = fold_statistics(frame, ("fold0", "fold1"), BRATS_2021.region_names)
    assert stats["per_fold"]["fold0"]["n_cases"] == 2
    assert stats["per_fold"]["fold0"]["dice"]["WT"] == pytest.approx(0.7)
    assert stats["over_folds"]["dice"]["WT"] == {"mean": 0.6, "std": 0.1}  # of 0.7 and 0.5, not of the cases
    assert stats["over_folds"]["dice"]["mean"]["mean"] == pytest.approx(0.6)
    assert stats["over_folds"]["hd95"]["ET"] == {"mean": 0.6, "std": 0.1}
    assert "lesion_dice" not in stats["over_folds"]  # only the metrics the table holds


def test_predictions_are_byte_stable_and_indexed_by_fold(tmp_path):
    classes = tumour(shape=(7, 9, 5))
    save_classes(tmp_path / "a.npy.gz", classes)
    save_classes(tmp_path / "b.npy.gz", classes.copy())
    assert (tmp_path / "a.npy.gz").read_bytes() == (tmp_path / "b.npy.gz").read_bytes()
    np.testing.assert_array_equal(load_classes(tmp_path / "a.npy.gz"), classes)
    with pytest.raises(ConfigError, match="cv_predict@fold0"):
        read_index(tmp_path, "fold0", ())
    (tmp_path / INDEX).write_text(json.dumps({"fold": "fold0", "cases": ["x"], "model_sha256": "0"}))
    assert read_index(tmp_path, "fold0", ("x",))["model_sha256"] == "0"
    with pytest.raises(ConfigError, match="not the predictions of fold fold1"):
        read_index(tmp_path, "fold1", ("x",))
    with pytest.raises(ConfigError, match="not the predictions"):
        read_index(tmp_path, "fold0", ("x", "y"))


def test_out_of_fold_cases_follow_the_split_and_the_index(tmp_path, raw_params, schema):
    from bratseg.cache import PreprocessedCohort

    for case_id in ("a", "b"):  # (a cached case is opened lazily: its properties only)
        (tmp_path / "cases" / case_id).mkdir(parents=True)
        (tmp_path / "cases" / case_id / "properties.json").write_text(json.dumps({"case_id": case_id}))
    split = {"train": ["a", "b"], "val": [], "test": ["c"], "fold0": ["a"], "fold1": ["b"]}
    (tmp_path / "splits.json").write_text(json.dumps(split))
    cohort = PreprocessedCohort(tmp_path / "cases", tmp_path / "splits.json", tmp_path / "m", tmp_path / "f")
    p = parse_params(deep_merge(raw_params, {"cv": {"folds": 2, "fold_names": ["fold0", "fold1"]}}), schema)
    for fold, case in (("fold0", "a"), ("fold1", "b")):
        (tmp_path / "cv" / fold).mkdir(parents=True)
        index = {"fold": fold, "cases": [case], "model_sha256": f"sha-{fold}"}
        (tmp_path / "cv" / fold / INDEX).write_text(json.dumps(index))
    found, digests = out_of_fold_cases(p, cohort, tmp_path / "cv")
    assert [(e.fold, e.case.case_id, e.prediction.name) for e in found] == [
        ("fold0", "a", "a.npy.gz"),
        ("fold1", "b", "b.npy.gz"),
    ]
    assert digests == {"fold0": "sha-fold0", "fold1": "sha-fold1"}
