"""Foreground locations: per class, without replacement, deterministic from the seed."""

from __future__ import annotations

import numpy as np
import pytest

from bratseg.preprocess.locations import sample_locations

SHAPE = (23, 27, 19)


@pytest.fixture
def classes():
    rng = np.random.default_rng(3)
    c = np.zeros(SHAPE, np.uint8)
    c[5:15, 5:15, 5:15] = 2
    c[8:12, 8:12, 8:12] = 3
    c[rng.random(SHAPE) < 0.01] = 2
    return c  # class 1 absent


def test_sample_locations_classes_and_counts(classes):
    locs = sample_locations(classes, per_class=40, seed=0)
    assert set(locs) == {1, 2, 3}
    assert locs[1].shape == (0, 3) and locs[1].dtype == np.int32
    assert locs[2].shape == (40, 3) and locs[3].shape == (40, 3)
    for cls in (2, 3):
        assert np.all(classes[tuple(locs[cls].T)] == cls)
        assert len({tuple(v) for v in locs[cls]}) == 40  # without replacement


def test_sample_locations_keeps_all_when_few(classes):
    locs = sample_locations(classes, per_class=10_000, seed=0)
    assert len(locs[3]) == 4**3 and len(locs[2]) == int((classes == 2).sum())
    assert np.all(classes[tuple(locs[2].T)] == 2)


def test_sample_locations_deterministic(classes):
    a = sample_locations(classes, 25, seed=7)
    b = sample_locations(classes, 25, seed=7)
    c = sample_locations(classes, 25, seed=8)
    for cls in (1, 2, 3):
        np.testing.assert_array_equal(a[cls], b[cls])
    assert not np.array_equal(a[2], c[2])


def test_sample_locations_bad_arguments(classes):
    with pytest.raises(ValueError, match="per_class"):
        sample_locations(classes, -1, 0)
    with pytest.raises(ValueError, match="classes"):
        sample_locations(classes[0], 5, 0)
    with pytest.raises(ValueError, match="seed"):
        sample_locations(classes, 5, -1)
