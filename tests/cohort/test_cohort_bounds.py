"""One range per cohort parameter, in the schema: every admitted value generates a case, beyond fails at once.

The bounds are read from the schema itself, so the test follows any change of range there.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from bratseg.cohort.generate import generate_case
from bratseg.config import parse_params
from bratseg.errors import ConfigError

#: Keys whose bounds are generated at (grid geometry and bookkeeping keys are checked by validation only).
GEOMETRY = ("n_cases", "seed", "voxel_mm", "field_of_view_mm", "variant", "tumour_mix")


def _cohort_schema(schema: dict[str, Any]) -> dict[str, Any]:
    props: dict[str, Any] = schema["properties"]["cohort"]["properties"]
    return props


def _bounds(schema: dict[str, Any]) -> list[tuple[str, str, float]]:
    out = []
    for key, spec in _cohort_schema(schema).items():
        if key in GEOMETRY:
            continue
        item = spec.get("items", spec)
        if "$ref" in item:
            item = schema["$defs"][item["$ref"].split("/")[-1]]
        for side in ("minimum", "maximum"):
            if side in item:
                out.append((key, side, item[side]))
    return out


def _with(raw: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(raw)
    cohort = out["cohort"]
    cohort.update(voxel_mm=8.0, n_cases=1)
    current = cohort[key]
    cohort[key] = [value, value] if isinstance(current, list) else value
    return out


def test_every_numeric_cohort_key_has_both_bounds(schema):
    keys = {k for k, _, _ in _bounds(schema)}
    expected = set(_cohort_schema(schema)) - set(GEOMETRY)
    assert keys == expected
    assert len(_bounds(schema)) == 2 * len(expected), "each key needs a minimum and a maximum"


@pytest.mark.parametrize("side", ["minimum", "maximum"])
def test_a_value_at_each_bound_validates_and_generates_a_case(raw_params, schema, side):
    for key, where, bound in _bounds(schema):
        if where != side:
            continue
        params = parse_params(_with(raw_params, key, bound), schema)
        case = generate_case(0, params.cohort)
        assert case.seg.shape == params.cohort.shape, key
        for m, image in case.images.items():
            assert np.isfinite(image).all(), f"{key} = {bound}: {m} is not finite"
            assert np.all(image[case.brain_mask] >= 1) and np.all(image[~case.brain_mask] == 0), key


def test_a_value_beyond_a_bound_fails_validation_with_one_line(raw_params, schema):
    for key, where, bound in _bounds(schema):
        step = 1 if isinstance(bound, int) else 1e-3
        beyond = bound - step if where == "minimum" else bound + step
        with pytest.raises(ConfigError) as info:
            parse_params(_with(raw_params, key, beyond), schema)
        message = str(info.value)
        assert f"cohort.{key}" in message and "\n" not in message, message


def test_ranges_must_be_ordered(raw_params, schema):
    for key in ("lobes", "core_radius_mm", "edema_ratio", "necrosis_ratio", "slice_thickness_mm"):
        raw = copy.deepcopy(raw_params)
        lo, hi = raw["cohort"][key]
        if lo == hi:
            continue
        raw["cohort"][key] = [hi, lo]
        with pytest.raises(ConfigError, match=f"cohort.{key}: lower bound"):
            parse_params(raw, schema)
