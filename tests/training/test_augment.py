import numpy as np
import pytest
from scipy import ndimage

from bratseg.config import AugmentParams
from bratseg.labels import BRATS_2021
from bratseg.training.augment import (
    augment,
    random_blur,
    random_contrast,
    random_flip,
    random_gamma,
    random_intensity,
    random_low_resolution,
    random_noise,
    random_rotation,
    random_spatial,
)

ALL = AugmentParams(
    flip=True, intensity_scale=0.1, intensity_shift=0.1, rotation_deg=15.0, scale=0.15, spatial_p=1.0,
    contrast=0.25, contrast_p=1.0, gamma=0.4, gamma_p=1.0, low_res=1.0, low_res_p=1.0, blur_sigma=1.0,
    blur_p=1.0, noise_std=0.1, noise_p=1.0,
)


def patch(seed=0):
    rng = np.random.default_rng(seed)
    image = rng.normal(size=(4, 9, 11, 13)).astype(np.float32)
    image[:, :2] = 0  # outside the brain
    label = rng.integers(0, 4, size=(9, 11, 13)).astype(np.uint8)
    return image, label


def smooth_patch(seed=0):
    """A patch with structure at several scales (for blur and resolution measures)."""
    rng = np.random.default_rng(seed)
    image = np.stack([ndimage.gaussian_filter(rng.normal(size=(15, 17, 19)), 0.7) for _ in range(4)])
    image = (image / image.std()).astype(np.float32)
    image[:, :2] = 0
    return image


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


def test_spatial_transform_matches_scipy_affine_transform():
    image, label = patch(3)
    img, lab = random_spatial(image, label, 20.0, 0.2, np.random.default_rng(4))
    # the same draws, replayed: the matrix maps output to input coordinates about the patch centre
    rng = np.random.default_rng(4)
    angles = np.deg2rad(rng.uniform(-20.0, 20.0, size=3))
    zoom = rng.uniform(0.8, 1.2)
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rot = (
        np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
        @ np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
        @ np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    ) / zoom
    centre = (np.array(label.shape) - 1) / 2.0
    offset = centre - rot @ centre
    for c in range(4):
        expected = ndimage.affine_transform(image[c], rot, offset=offset, order=1, mode="reflect")
        np.testing.assert_allclose(img[c], expected, atol=1e-4)
    expected_label = ndimage.affine_transform(label, rot, offset=offset, order=0, mode="reflect")
    assert np.mean(lab == expected_label) > 0.99  # nearest: ties at half-voxel positions may round apart


def test_zoom_only_keeps_the_centre_and_scales_structures():
    label = np.zeros((21, 21, 21), np.uint8)
    label[7:14, 7:14, 7:14] = 1
    image = label[None].astype(np.float32).repeat(4, 0)
    sizes = []
    for seed in range(6):
        rng = np.random.default_rng(seed)
        _, lab = random_spatial(image, label, 0.0, 0.3, rng)
        assert lab[10, 10, 10] == 1
        sizes.append(int(lab.sum()))
    assert min(sizes) < 343 < max(sizes), "zooming both in and out"


def test_contrast_keeps_range_and_background():
    image, _ = patch()
    out = random_contrast(image, 0.5, 1.0, np.random.default_rng(2))
    assert (out[:, :2] == 0).all()
    for c in range(4):
        inside = image[c] != 0
        assert out[c][inside].min() >= image[c][inside].min() - 1e-6
        assert out[c][inside].max() <= image[c][inside].max() + 1e-6
        assert not np.allclose(out[c], image[c])
    assert random_contrast(image, 0.5, 0.0, np.random.default_rng(2)) is image


def test_gamma_is_monotone_and_keeps_mean_and_std():
    image, _ = patch()
    out = random_gamma(image, 0.5, 1.0, np.random.default_rng(3))
    assert (out[:, :2] == 0).all()
    for c in range(4):
        x, y = image[c][image[c] != 0], out[c][image[c] != 0]
        assert not np.allclose(x, y)
        order = np.argsort(x, kind="stable")
        assert np.all(np.diff(y[order]) >= -1e-5), "a gamma curve keeps the order of intensities"
        assert y.mean() == pytest.approx(x.mean(), abs=1e-4)
        assert y.std() == pytest.approx(x.std(), rel=1e-3)
    assert random_gamma(image, 0.0, 1.0, np.random.default_rng(3)) is image


def _roughness(x: np.ndarray) -> float:
    return float(np.mean([np.abs(np.diff(x, axis=a)).mean() for a in range(x.ndim)]))


def test_low_resolution_and_blur_remove_fine_detail():
    image = smooth_patch()
    for fn, arg in ((random_low_resolution, 1.5), (random_blur, 1.5)):
        out = fn(image, arg, 1.0, np.random.default_rng(5))
        assert out.shape == image.shape and out.dtype == np.float32
        assert (out[:, :2] == 0).all()
        for c in range(4):
            assert _roughness(out[c, 2:]) < 0.9 * _roughness(image[c, 2:]), fn.__name__
        assert fn(image, arg, 0.0, np.random.default_rng(5)) is image


def test_noise_level_is_within_its_range():
    image = smooth_patch()
    out = random_noise(image, 0.2, 1.0, np.random.default_rng(6))
    assert (out[:, :2] == 0).all()
    stds = [float((out[c] - image[c])[:, 2:].std()) for c in range(4)]
    assert all(0 < s < 0.22 for s in stds) and len(set(stds)) == 4


def test_augment_is_deterministic_for_a_seed_and_does_not_modify_inputs():
    image, label = patch()
    before = image.copy(), label.copy()
    a = augment(image, label, ALL, np.random.default_rng(5))
    b = augment(image, label, ALL, np.random.default_rng(5))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert np.array_equal(image, before[0]) and np.array_equal(label, before[1])
    assert BRATS_2021.region_masks(a[1]).shape == (3, *label.shape)
    assert a[0].dtype == np.float32 and a[1].dtype == np.uint8
    c = augment(image, label, ALL, np.random.default_rng(6))
    assert not np.array_equal(a[0], c[0])


def test_probabilities_zero_leave_only_flips_and_jitter():
    image, label = patch()
    off = AugmentParams(**{**ALL.to_dict(), **{k: 0.0 for k in ALL.to_dict() if k.endswith("_p")},
                           "flip": False, "intensity_scale": 0.0, "intensity_shift": 0.0})
    img, lab = augment(image, label, off, np.random.default_rng(7))
    assert img is image and lab is label
