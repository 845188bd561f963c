"""Parameters small enough for the tiny test volumes (the phantom cases are in tests/conftest.py)."""

from __future__ import annotations

import pytest

from bratseg.config import N4Params, PreprocessParams, SplitParams


@pytest.fixture
def fast_n4() -> N4Params:
    """N4 settings small enough for the tiny test volumes."""
    return N4Params(
        enabled=True,
        shrink_factor=2,
        fit_spacing_mm=8.0,
        iterations=(20, 10),
        convergence=0.001,
        control_points=4,
        histogram_bins=100,
    )


@pytest.fixture
def preprocess_params(fast_n4: N4Params) -> PreprocessParams:
    return PreprocessParams.from_dict(
        {
            "target_spacing_mm": "native",
            "resample": {"image_order": 3},
            "n4": fast_n4.to_dict(),
            "normalise": {"clip_percentiles": [0.5, 99.5]},
            "crop": {"margin_vox": 1},
            "cache": {"dtype": "float32", "locations_per_class": 50},
        }
    )


@pytest.fixture
def split_params() -> SplitParams:
    return SplitParams(seed=0, val_fraction=0.15, test_fraction=0.25)
