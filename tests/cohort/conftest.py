"""Small cohort parameters (4 mm voxels: 60 × 60 × 39) and cached cases, so the cohort tests stay fast."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pytest

from bratseg.cohort.generate import SyntheticCase, generate_case
from bratseg.config import CohortParams, TumourMix

BASE: dict[str, Any] = {
    "n_cases": 6,
    "seed": 7,
    "voxel_mm": 4.0,
    "field_of_view_mm": (240.0, 240.0, 155.0),
    "variant": "train",
    "tumour_mix": TumourMix(enhancing=1.0, cystic=0.0, non_enhancing=0.0),
    "multifocal_fraction": 0.0,
    "lobes": (1, 1),
    "core_radius_mm": (14.0, 20.0),
    "edema_ratio": (1.6, 2.0),
    "non_enhancing_edema_ratio": (1.1, 1.4),
    "necrosis_ratio": (0.55, 0.7),
    "deformation_mm": 3.0,
    "rotation_deg": 5.0,
    "scale_jitter": 0.05,
    "mass_effect_mm": 4.0,
    "ventricle_mm": 0.0,
    "atrophy": 0.0,
    "contrast_jitter": 0.0,
    "gamma": 0.0,
    "texture": 0.0,
    "slice_thickness_mm": (0.0, 0.0),
    "skull_strip": 0.0,
    "distractors": 0.0,
    "bias_field": 0.35,
    "noise": 0.03,
}
"""The plain cohort: one family, no domain randomisation (each randomisation is tested on its own)."""


def _make_params(**overrides: Any) -> CohortParams:
    return CohortParams(**{**BASE, **overrides})


@functools.lru_cache(maxsize=32)
def cached_case(index: int, params: CohortParams) -> SyntheticCase:
    """``generate_case`` memoised across tests (callers must not modify the arrays)."""
    return generate_case(index, params)


@pytest.fixture
def make_params() -> Callable[..., CohortParams]:
    """``make_params(**overrides)``: the small test cohort with some parameters replaced."""
    return _make_params


@pytest.fixture
def params() -> CohortParams:
    return _make_params()


@pytest.fixture
def case_of() -> Callable[..., SyntheticCase]:
    """``case_of(index, **overrides)``: a cached case of the small cohort."""

    def get(index: int, **overrides: Any) -> SyntheticCase:
        return cached_case(index, _make_params(**overrides))

    return get
