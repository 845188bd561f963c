import numpy as np

from bratseg.config import AugmentParams
from bratseg.labels import BRATS_2021
from bratseg.training.augment import augment, random_flip, random_intensity, random_rotation


def patch(seed=0):
    rng = np.random.default_rng(seed)
    image = rng.normal(size=(4, 9, 11, 13)).astype(np.float32)
    image[:, :2] = 0  # outside the brain
    label = rng.integers(0, 4, size=(9, 11, 13)).astype(np.uint8)
    return image, label


AXES = [(), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)]


def test_flip_moves_image_and_label_together():
    image, label = patch()
    seen = set()
    for seed in range(16):
        img2, lab2 = random_flip(image, label, np.random.default_rng(seed))
        matches = [ax for ax in AXES if np.array_equal(np.flip(label, ax) if ax else label, lab2)]
        assert len(matches) == 1  # a random label identifies the flip
        ax = matches[0]
        expected = np.flip(image, tuple(a + 1 for a in ax)) if ax else image
        np.testing.assert_array_equal(img2, expected)
        seen.add(ax)
    assert len(seen) > 3  # flips are random


def test_intensity_jitter_keeps_the_background_zero_and_stays_in_range():
    image, _ = patch()
    out = random_intensity(image, 0.1, 0.2, np.random.default_rng(1))
    assert (out[:, :2] == 0).all()
    inside = image[:, 2:] != 0
    ratio_bound = np.abs(out[:, 2:][inside]) <= np.abs(image[:, 2:][inside]) * 1.1 + 0.2 + 1e-6
    assert ratio_bound.all()
    assert random_intensity(image, 0, 0, np.random.default_rng(1)) is image


def test_rotation_is_identity_at_zero_and_keeps_labels_valid():
    image, label = patch()
    img, lab = random_rotation(image, label, 0.0, np.random.default_rng(0))
    assert img is image and lab is label
    img, lab = random_rotation(image, label, 10.0, np.random.default_rng(0))
    assert img.shape == image.shape and lab.shape == label.shape
    assert set(np.unique(lab)) <= set(np.unique(label))


def test_augment_is_deterministic_for_a_seed_and_does_not_modify_inputs():
    image, label = patch()
    before = image.copy(), label.copy()
    params = AugmentParams(flip=True, intensity_scale=0.1, intensity_shift=0.1, rotation_deg=5.0)
    a = augment(image, label, params, np.random.default_rng(5))
    b = augment(image, label, params, np.random.default_rng(5))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert np.array_equal(image, before[0]) and np.array_equal(label, before[1])
    assert BRATS_2021.region_masks(a[1]).shape == (3, *label.shape)
