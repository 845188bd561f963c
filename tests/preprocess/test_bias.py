"""n4_correct: removes a known smooth multiplicative bias, reproducibly."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import SimpleITK as sitk

from bratseg.preprocess.bias import n4_correct

SHAPE = (40, 44, 34)
SPACING = (2.0, 2.0, 2.0)


def _cov(values: np.ndarray) -> float:
    return float(values.std() / values.mean())


@pytest.fixture
def biased(make_phantom):
    return make_phantom(SHAPE, 2.0, bias=0.3, noise=0.02, seed=1)


def test_n4_removes_a_known_bias(biased, fast_n4):
    image, wm, brain = biased.images["t1"], biased.white_matter, biased.brain
    corrected, log_bias, provenance = n4_correct(image, brain, SPACING, fast_n4)
    assert corrected.shape == log_bias.shape == SHAPE
    assert corrected.dtype == log_bias.dtype == np.float32
    before, after = _cov(image[wm]), _cov(corrected[wm])
    assert after < 0.6 * before, (before, after)
    correlation = np.corrcoef(biased.log_bias[brain], log_bias[brain])[0, 1]
    assert correlation > 0.9
    np.testing.assert_allclose(corrected, image / np.exp(log_bias), rtol=1e-5)
    assert np.all(corrected[~brain] == 0)
    assert provenance["enabled"] and provenance["fitted_shape"][0] <= SHAPE[0] // 2 + 2
    assert provenance["threads"] == 1 and provenance["iterations"] == [20, 10]


def test_n4_is_reproducible(biased, fast_n4):
    image, brain = biased.images["t2"], biased.brain
    first = n4_correct(image, brain, SPACING, fast_n4, threads=1)
    second = n4_correct(image, brain, SPACING, fast_n4, threads=1)
    assert first[0].tobytes() == second[0].tobytes()
    assert first[1].tobytes() == second[1].tobytes()


def test_n4_restores_the_global_thread_count(biased, fast_n4):
    before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    n4_correct(biased.images["t1"], biased.brain, SPACING, fast_n4, threads=1)
    assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == before


def test_n4_disabled_is_identity(biased, fast_n4):
    params = dataclasses.replace(fast_n4, enabled=False)
    image = biased.images["flair"]
    corrected, log_bias, provenance = n4_correct(image, biased.brain, SPACING, params)
    np.testing.assert_array_equal(corrected, image)
    assert not log_bias.any() and provenance == {"enabled": False}


def test_n4_ignores_nonpositive_voxels_in_the_mask(biased, fast_n4):
    image = biased.images["t1"].copy()
    image[biased.brain & (np.arange(SHAPE[0])[:, None, None] < 8)] = 0  # a zero slab inside the mask
    corrected, log_bias, _ = n4_correct(image, biased.brain, SPACING, fast_n4)
    assert np.isfinite(corrected).all() and np.isfinite(log_bias).all()
    assert np.all(corrected[image == 0] == 0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"image": np.ones((4, 4))}, "image"),
        ({"mask": np.ones((3, 3, 3), bool)}, "mask"),
        ({"spacing": (1.0, 0.0, 1.0)}, "spacing"),
        ({"threads": 0}, "threads"),
        ({"mask": np.zeros(SHAPE, bool)}, "mask"),
    ],
)
def test_n4_bad_arguments(biased, fast_n4, kwargs, match):
    args = {"image": biased.images["t1"], "mask": biased.brain, "spacing": SPACING, "params": fast_n4}
    with pytest.raises(ValueError, match=match):
        n4_correct(**{**args, **kwargs})


@pytest.mark.parametrize(
    ("field", "value"),
    [("shrink_factor", 0), ("iterations", ()), ("control_points", 3), ("histogram_bins", 1)],
)
def test_n4_bad_params(biased, fast_n4, field, value):
    with pytest.raises(ValueError, match=f"params.{field}"):
        n4_correct(biased.images["t1"], biased.brain, SPACING, dataclasses.replace(fast_n4, **{field: value}))


def test_auto_shrink_follows_the_voxel_size(fast_n4):
    import dataclasses

    from bratseg.preprocess.bias import shrink_factors

    auto = dataclasses.replace(fast_n4, shrink_factor="auto", fit_spacing_mm=8.0)
    assert shrink_factors(auto, (2.0, 2.0, 2.0)) == [4, 4, 4]
    assert shrink_factors(auto, (1.0, 1.0, 1.0)) == [8, 8, 8]
    assert shrink_factors(auto, (0.9, 0.9, 5.0)) == [9, 9, 2]
    assert shrink_factors(auto, (10.0, 10.0, 10.0)) == [1, 1, 1]
    assert shrink_factors(fast_n4, (1.0, 1.0, 1.0)) == [2, 2, 2]
    with pytest.raises(ValueError, match="shrink_factor"):
        shrink_factors(dataclasses.replace(fast_n4, shrink_factor=0), (1.0, 1.0, 1.0))
