"""make_split and build_manifest."""

from __future__ import annotations

import dataclasses

import pytest

from bratseg.config import SplitParams
from bratseg.preprocess.split import (
    assign_folds,
    build_manifest,
    fold_key,
    held_out,
    make_cv_split,
    make_split,
)

IDS = [f"BraTS2021_{i:05d}" for i in range(40)]


def _where(split):
    return {c: name for name, ids in split.items() for c in ids}


def test_split_is_deterministic_disjoint_and_complete(split_params):
    a = make_split(IDS, split_params)
    b = make_split(list(reversed(IDS)), split_params)
    assert a == b
    assert set(a) == {"train", "val", "test"}
    everything = a["train"] + a["val"] + a["test"]
    assert sorted(everything) == IDS and len(set(everything)) == len(IDS)
    assert len(a["test"]) == round(0.25 * 40) and len(a["val"]) == round(0.15 * 40)
    assert all(v == sorted(v) for v in a.values())


def test_split_depends_on_the_seed(split_params):
    a = make_split(IDS, split_params)
    b = make_split(IDS, dataclasses.replace(split_params, seed=1))
    assert a["test"] != b["test"]


def test_split_is_stable_when_a_case_is_added(split_params):
    before = _where(make_split(IDS, split_params))
    for new in ("BraTS2021_99999", "BraTS2021_00040", "BraTS2021_12345"):
        after = _where(make_split([*IDS, new], split_params))
        moved = [c for c in IDS if before[c] != after[c]]
        assert len(moved) <= 2, moved


def test_small_cohorts(split_params):
    three = make_split(IDS[:3], split_params)
    assert [len(three[k]) for k in ("train", "val", "test")] == [1, 1, 1]
    with pytest.raises(ValueError, match="at least 3"):
        make_split(IDS[:2], split_params)
    none = dataclasses.replace(split_params, val_fraction=0.0, test_fraction=0.0)
    assert make_split(IDS[:2], none) == {"train": IDS[:2], "val": [], "test": []}


def test_split_bad_arguments(split_params):
    with pytest.raises(ValueError, match="duplicates"):
        make_split([IDS[0], *IDS[:5]], split_params)
    with pytest.raises(ValueError, match="val_fraction"):
        make_split(IDS, dataclasses.replace(split_params, val_fraction=-0.1))
    with pytest.raises(ValueError, match="below 1"):
        make_split(IDS, dataclasses.replace(split_params, val_fraction=0.5, test_fraction=0.5))
    with pytest.raises(ValueError, match="none for training"):
        make_split(IDS[:3], dataclasses.replace(split_params, val_fraction=0.3, test_fraction=0.6))


def _props(case_id, has_label=True):
    return {
        "case_id": case_id,
        "has_label": has_label,
        "layout": "brats2021",
        "convention": "brats2021",
        "geometry": {"shape": [23, 27, 19], "spacing": [2.0, 2.0, 2.0]},
        "cropped_shape": [20, 22, 17],
        "bbox": [[1, 21], [2, 24], [1, 18]],
        "volumes_ml": {"WT": 1.5, "TC": 0.5, "ET": 0.25} if has_label else None,
        "normalisation": {"t1": {"raw_mean": 800.0, "raw_std": 100.0, "mean": 799.0, "std": 98.0}},
    }


def test_build_manifest():
    split = {"train": ["b"], "val": ["a"], "test": ["c"], "unlabelled": ["d"]}
    props = [_props("c"), _props("a"), _props("d", False), _props("b")]
    frame = build_manifest(props, split)
    assert list(frame["case_id"]) == ["a", "b", "c", "d"]
    assert list(frame["split"]) == ["val", "train", "test", "unlabelled"]
    row = frame.iloc[0]
    assert (row["shape_x"], row["spacing_z"], row["cropped_y"], row["bbox_y1"]) == (23, 2.0, 22, 24)
    assert row["volume_ml_WT"] == 1.5 and row["t1_raw_mean"] == 800.0 and row["t1_std"] == 98.0
    assert frame.iloc[3]["has_label"] == False  # noqa: E712
    with pytest.raises(ValueError, match="no split"):
        build_manifest([_props("x")], split)
    with pytest.raises(ValueError, match="both"):
        build_manifest(props, {"train": ["a"], "val": ["a"]})


# --- cross-validation folds ---------------------------------------------------------------------------------


def test_folds_partition_the_non_test_labelled_cases(split_params):
    split = make_cv_split(IDS, split_params, folds=5)
    assert split["val"] == [] and split["test"] == make_split(IDS, split_params)["test"]
    folds = [split[f"fold{i}"] for i in range(5)]
    assert sorted(c for fold in folds for c in fold) == sorted(split["train"])  # cover the non-test cases
    assert sum(len(f) for f in folds) == len(set().union(*map(set, folds)))  # disjoint
    assert all(folds) and not set(split["test"]) & set(split["train"])
    assert all(fold == sorted(fold) for fold in folds)


def test_folds_are_deterministic_seeded_and_stable_when_a_case_is_added():
    a = assign_folds(IDS, seed=0, folds=3)
    assert assign_folds(list(reversed(IDS)), seed=0, folds=3) == a
    assert assign_folds(IDS, seed=1, folds=3) != a
    grown = assign_folds([*IDS, "BraTS2021_99999"], seed=0, folds=3)
    moved = {c for name in a for c in set(a[name]) ^ set(grown[name])}
    assert moved == {"BraTS2021_99999"}  # no existing case changes fold
    assert fold_key(0, "x") == fold_key(0, "x") != fold_key(1, "x")


def test_one_fold_is_the_plain_split_and_held_out_names_its_validation(split_params):
    assert make_cv_split(IDS, split_params, folds=1) == make_split(IDS, split_params)
    plain = make_split(IDS, split_params)
    assert held_out(plain) == {"fold0": plain["val"]}
    split = make_cv_split(IDS, split_params, folds=2)
    assert held_out(split) == {"fold0": split["fold0"], "fold1": split["fold1"]}


def test_fold_errors_name_the_argument():
    with pytest.raises(ValueError, match="folds must be >= 2"):
        assign_folds(IDS, 0, 1)
    with pytest.raises(ValueError, match="duplicates"):
        assign_folds(["a", "a", "b"], 0, 2)
    with pytest.raises(ValueError, match="empty"):
        assign_folds(["a"], 0, 2)  # one case cannot fill two folds
    with pytest.raises(ValueError, match="folds must be >= 1"):
        make_cv_split(IDS, SplitParams(0, 0.1, 0.2), folds=0)


def test_manifest_names_the_fold_holding_a_case_out():
    split = {"train": ["a", "b"], "val": [], "test": ["c"]}
    props = [_props("a"), _props("b"), _props("c")]
    frame = build_manifest(props, split, folds={"fold0": ["b"], "fold1": ["a"]})
    assert list(frame["fold"]) == ["fold1", "fold0", ""]
