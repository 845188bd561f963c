"""The architectures' params sections: each validates with the schema, and parse_params checks the patch
rules of the selected network and the constraints between keys of every section, naming the key."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bratseg.config import MODEL_SECTIONS, parse_params
from bratseg.errors import ConfigError


def parse(raw: dict[str, Any], schema: dict[str, Any], model: str, **changes: Any) -> Any:
    """``raw`` with ``model`` selected and dotted-key ``changes`` (``"train.patch_size"``) applied, parsed."""
    data = copy.deepcopy(raw)
    data["model"] = model
    for dotted, value in changes.items():
        *path, last = dotted.split("__")
        node = data
        for key in path:
            node = node[key]
        node[last] = value
    return parse_params(data, schema)


@pytest.mark.parametrize("model", sorted(set(MODEL_SECTIONS) - {"swinunetr"}))
def test_every_model_runs_on_the_default_patch(
    raw_params: dict[str, Any], schema: dict[str, Any], model: str
) -> None:
    params = parse(raw_params, schema, model)
    assert params.model == model
    assert params.net is getattr(params, model)
    assert isinstance(params.net, MODEL_SECTIONS[model])


def test_swinunetr_needs_multiples_of_32(raw_params: dict[str, Any], schema: dict[str, Any]) -> None:
    assert raw_params["train"]["patch_size"] == [48, 48, 48]
    with pytest.raises(
        ConfigError,
        match=r"^params.yaml: train.patch_size\[0\]: 48 is not divisible by 32 "
        r"\(swinunetr: patch embedding 2 x 4 patch mergings\)$",
    ):
        parse(raw_params, schema, "swinunetr")
    with pytest.raises(ConfigError, match=r"train.patch_size\[2\]: 80 is not divisible by 32"):
        parse(raw_params, schema, "swinunetr", train__patch_size=[64, 64, 80])
    assert parse(raw_params, schema, "swinunetr", train__patch_size=[64, 64, 64]).train.patch_size == (
        64,
        64,
        64,
    )


@pytest.mark.parametrize(
    ("model", "changes", "message"),
    [
        (
            "swinunetr",
            {"train__patch_size": [32, 32, 32]},
            r"train.patch_size: \[32, 32, 32\] leaves one voxel at the coarsest level of swinunetr "
            r".*swinunetr.norm: instance",
        ),
        (
            "unet",
            {"train__patch_size": [8, 8, 8]},
            r"leaves one voxel at the coarsest level of unet \(2\*\*\(unet.depth - 1\) = 8\)",
        ),
    ],
)
def test_instance_norm_needs_more_than_one_voxel(
    raw_params: dict[str, Any], schema: dict[str, Any], model: str, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(raw_params, schema, model, **changes)
    if model == "swinunetr":  # batch norm normalises over the batch as well: one voxel is fine
        raw = copy.deepcopy(raw_params)
        raw["swinunetr"]["norm"] = "batch"
        parse(raw, schema, model, **changes)


def test_unet2d_patch_rules_apply_to_x_and_y_only(raw_params: dict[str, Any], schema: dict[str, Any]) -> None:
    assert parse(raw_params, schema, "unet2d", train__patch_size=[48, 48, 9]).train.patch_size == (48, 48, 9)
    with pytest.raises(
        ConfigError,
        match=r"train.patch_size\[1\]: 44 is not divisible by 2\*\*\(unet2d.depth - 1\) = 8 \(X and Y; Z",
    ):
        parse(raw_params, schema, "unet2d", train__patch_size=[48, 44, 8])
    with pytest.raises(
        ConfigError, match=r"train.patch_size\[2\]: 9 is not divisible by 2\*\*\(unet.depth - 1\) = 8"
    ):
        parse(raw_params, schema, "unet", train__patch_size=[48, 48, 9])


@pytest.mark.parametrize(
    ("model", "changes", "message"),
    [
        (
            "segresnet",
            {"train__patch_size": [48, 48, 44]},
            r"train.patch_size\[2\]: 44 is not divisible by 2\*\*\(len\(segresnet.blocks_down\) - 1\) = 8",
        ),
        (
            "dynunet",
            {"train__patch_size": [48, 40, 36]},
            r"train.patch_size\[2\]: 36 is not divisible by 2\*\*\(dynunet.depth - 1\) = 8",
        ),
        (
            "attention_unet",
            {"attention_unet__depth": 6},
            r"train.patch_size\[0\]: 48 is not divisible by 2\*\*\(attention_unet.depth - 1\) = 32",
        ),
    ],
)
def test_patch_divisibility_names_the_rule(
    raw_params: dict[str, Any], schema: dict[str, Any], model: str, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(raw_params, schema, model, **changes)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"segresnet__deep_supervision": True},
            r"segresnet: Additional properties are not allowed \('deep_supervision'",
        ),
        (
            {"swinunetr__deep_supervision": False},
            r"swinunetr: Additional properties are not allowed \('deep_supervision'",
        ),
        (
            {"segresnet__blocks_up": [1, 1]},
            r"segresnet.blocks_up: needs len\(segresnet.blocks_down\) - 1 = 3 entries, got 2",
        ),
        (
            {"segresnet__num_groups": 3},
            r"segresnet.num_groups: 3 does not divide segresnet.init_filters \(8\)",
        ),
        ({"segresnet__norm": "layer"}, r"segresnet.norm: 'layer' is not one of"),
        ({"swinunetr__feature_size": 18}, r"swinunetr.feature_size: 18 is not a multiple of 12"),
        (
            {"swinunetr__num_heads": [3, 6, 12, 20]},
            r"swinunetr.num_heads\[3\]: 20 does not divide the stage width "
            r"swinunetr.feature_size \* 2\*\*3 = 96",
        ),
        ({"swinunetr__depths": [2, 2, 2]}, r"swinunetr.depths: \[2, 2, 2\] is too short"),
        ({"dynunet__depth": 2}, r"dynunet.depth: 2 is less than the minimum of 3"),
        ({"dynunet__max_width": 8}, r"dynunet.max_width: 8 is below dynunet.base_width \(16\)"),
        ({"attention_unet__max_width": 8}, r"attention_unet.max_width: 8 is below attention_unet.base_width"),
        ({"unet2d__norm": "group"}, r"unet2d.norm: 'group' is not one of"),
    ],
)
def test_bad_sections_name_the_key_whichever_model_is_selected(
    raw_params: dict[str, Any], schema: dict[str, Any], changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(raw_params, schema, "unet", **changes)
