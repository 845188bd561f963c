"""zscore: statistics inside the mask, exact zeros outside, percentile clipping, constant-image guard."""

from __future__ import annotations

import numpy as np
import pytest

from bratseg.preprocess.normalise import zscore


@pytest.fixture
def volume():
    rng = np.random.default_rng(0)
    image = rng.normal(300.0, 40.0, size=(23, 27, 19)).astype(np.float32)
    mask = np.zeros(image.shape, bool)
    mask[3:20, 4:22, 2:17] = True
    image[~mask] = 7.0  # outside values must not matter
    return image, mask


def test_zscore_statistics(volume):
    image, mask = volume
    out, stats = zscore(image, mask, (0.5, 99.5))
    assert out.dtype == np.float32 and out.shape == image.shape
    assert np.all(out[~mask] == 0)
    assert abs(float(out[mask].mean())) < 1e-5
    assert abs(float(out[mask].std()) - 1) < 1e-5
    assert stats["n_voxels"] == int(mask.sum())
    assert stats["raw_mean"] == pytest.approx(float(image[mask].mean()), rel=1e-6)
    assert stats["clip_low"] == pytest.approx(np.percentile(image[mask], 0.5))
    assert stats["clip_high"] == pytest.approx(np.percentile(image[mask], 99.5))
    assert 0.009 < stats["clipped_fraction"] < 0.011


def test_clipping_limits_outliers(volume):
    image, mask = volume
    image = image.copy()
    image[10, 10, 10] = 1e6  # one hot voxel
    out, stats = zscore(image, mask, (1.0, 99.0))
    top = (stats["clip_high"] - stats["mean"]) / stats["std"]
    assert out[10, 10, 10] == pytest.approx(top, rel=1e-5)
    assert out[mask].max() == pytest.approx(top, rel=1e-5)
    bottom = (stats["clip_low"] - stats["mean"]) / stats["std"]
    assert out[mask].min() == pytest.approx(bottom, rel=1e-5)
    unclipped, _ = zscore(image, mask, (0.0, 100.0))
    assert unclipped[10, 10, 10] > 20 * out[10, 10, 10]


def test_constant_image_is_rejected(volume):
    _, mask = volume
    with pytest.raises(ValueError, match="constant"):
        zscore(np.full(mask.shape, 5.0, np.float32), mask, (0.5, 99.5))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"clip_percentiles": (50.0, 10.0)}, "clip_percentiles"),
        ({"clip_percentiles": (-1.0, 99.0)}, "clip_percentiles"),
        ({"mask": np.zeros((23, 27, 19), bool)}, "mask is empty"),
        ({"mask": np.ones((23, 27, 19), np.uint8)}, "mask must be boolean"),
        ({"mask": np.ones((2, 2, 2), bool)}, "mask shape"),
        ({"image": np.ones((5, 5))}, "image"),
    ],
)
def test_bad_arguments(volume, kwargs, match):
    image, mask = volume
    args = {"image": image, "mask": mask, "clip_percentiles": (0.5, 99.5), **kwargs}
    with pytest.raises(ValueError, match=match):
        zscore(**args)
