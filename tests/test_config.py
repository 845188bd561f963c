import copy
from pathlib import Path

import pytest

from bratseg.config import CohortParams, Params, deep_merge, params_hash, parse_params
from bratseg.errors import ConfigError


def test_repository_params_are_valid(raw_params, schema):
    params = parse_params(raw_params, schema)
    assert isinstance(params, Params)
    assert params.net is getattr(params, params.model)
    other = "resunet" if params.model == "unet" else "unet"
    switched = parse_params({**raw_params, "model": other}, schema)
    assert switched.net is getattr(switched, other) and switched.net is not getattr(switched, params.model)
    assert params.cohort.field_of_view_mm == (240.0, 240.0, 155.0)
    assert isinstance(params.train.patch_size, tuple)


def test_round_trip_to_dict(raw_params, schema):
    params = parse_params(raw_params, schema)
    assert Params.from_dict(params.to_dict()) == params


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("train", "lr"), -1, r"params.yaml: train.lr: -1 is less than or equal to the minimum of 0"),
        (("model",), "vnet", r"params.yaml: model: 'vnet' is not one of"),
        (("train", "patch_size"), [64, 64], r"train.patch_size"),
        (("preprocess", "n4", "shrink_factor"), 0, r"preprocess.n4.shrink_factor"),
        (("cohort", "n_cases"), "ten", r"cohort.n_cases: 'ten' is not of type 'integer'"),
    ],
)
def test_bad_values_name_the_key(raw_params, schema, path, value, message):
    raw = copy.deepcopy(raw_params)
    node = raw
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ConfigError, match=message):
        parse_params(raw, schema)


def test_unknown_and_missing_keys_are_errors(raw_params, schema):
    raw = copy.deepcopy(raw_params)
    raw["train"]["learning_rate"] = 0.1
    with pytest.raises(ConfigError, match=r"train: Additional properties are not allowed \('learning_rate'"):
        parse_params(raw, schema)
    raw = copy.deepcopy(raw_params)
    del raw["split"]["seed"]
    with pytest.raises(ConfigError, match=r"split: 'seed' is a required property"):
        parse_params(raw, schema)


def test_cross_key_constraints(raw_params, schema):
    raw = copy.deepcopy(raw_params)
    raw["train"]["patch_size"] = [60, 64, 64]
    with pytest.raises(
        ConfigError, match=r"patch_size\[0\]: 60 is not divisible by 2\*\*\(unet.depth - 1\) = 8"
    ):
        parse_params(raw, schema)
    raw = copy.deepcopy(raw_params)
    raw["cohort"]["core_radius_mm"] = [20, 10]
    with pytest.raises(ConfigError, match="lower bound 20"):
        parse_params(raw, schema)
    raw = copy.deepcopy(raw_params)
    raw["split"].update(val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(ConfigError, match="val_fraction \\+ test_fraction"):
        parse_params(raw, schema)


def test_cohort_geometry_follows_one_param(raw_params):
    cohort = dict(raw_params["cohort"])
    assert CohortParams.from_dict({**cohort, "voxel_mm": 1.0}).shape == (240, 240, 155)
    assert CohortParams.from_dict({**cohort, "voxel_mm": 2.0}).shape == (120, 120, 78)
    ids = CohortParams.from_dict({**cohort, "n_cases": 3}).case_ids()
    assert ids == ["BraTS2021_00000", "BraTS2021_00001", "BraTS2021_00002"]


def test_section_from_dict_rejects_wrong_keys(raw_params):
    with pytest.raises(ConfigError, match=r"unknown keys \['extra'\]"):
        CohortParams.from_dict({**raw_params["cohort"], "extra": 1})


def test_params_hash_is_stable_and_sensitive(raw_params, schema):
    a = parse_params(raw_params, schema)
    raw = copy.deepcopy(raw_params)
    raw["train"]["lr"] = 0.001
    b = parse_params(raw, schema)
    assert params_hash(a) == params_hash(parse_params(copy.deepcopy(raw_params), schema))
    assert params_hash(a) != params_hash(b)
    assert params_hash(a.cohort) == params_hash(b.cohort)


def test_deep_merge_overrides_nested_keys_and_rejects_typos(raw_params, schema):
    from bratseg.config import deep_merge

    merged = deep_merge(raw_params, {"train": {"epochs": 2, "augment": {"flip": False}}, "model": "resunet"})
    params = parse_params(merged, schema)
    assert (params.train.epochs, params.train.augment.flip, params.model) == (2, False, "resunet")
    assert params.train.lr == raw_params["train"]["lr"]
    assert raw_params["train"]["epochs"] != 2  # the base is not modified
    with pytest.raises(ConfigError, match=r"profile: train.epoch: no such key"):
        deep_merge(raw_params, {"train": {"epoch": 2}})


def test_tiny_profile_is_valid(raw_params, schema):
    import yaml

    from bratseg.config import deep_merge

    tiny = yaml.safe_load((Path(__file__).parent / "profiles" / "tiny.yaml").read_text())
    params = parse_params(deep_merge(raw_params, tiny), schema)
    assert params.cohort.shape == (60, 60, 39)


def test_cv_fold_names_must_match_the_number_of_folds(raw_params, schema):
    two = parse_params(deep_merge(raw_params, {"cv": {"folds": 2, "fold_names": ["fold0", "fold1"]}}), schema)
    assert two.cv.fold_names == ("fold0", "fold1")
    with pytest.raises(ConfigError, match=r"cv.fold_names: \[fold0\] does not match cv.folds = 2"):
        parse_params(deep_merge(raw_params, {"cv": {"folds": 2}}), schema)
    with pytest.raises(ConfigError, match=r"cv\.fold_names"):
        parse_params(deep_merge(raw_params, {"cv": {"folds": 2, "fold_names": ["fold1", "fold0"]}}), schema)
