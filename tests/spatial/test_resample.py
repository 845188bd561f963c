"""Resampling to a target spacing: grid and affine, images, labels (no invented class), anisotropic grids."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from bratseg.spatial import resample
from bratseg.spatial.resample import (
    plan,
    resample_classes,
    resample_image,
    resample_probabilities,
    resampled_affine,
    target_shape,
    thick_axis,
)


def oblique(spacing, origin=(-20.0, 13.0, 7.5), degrees=25.0) -> np.ndarray:
    t = np.deg2rad(degrees)
    rot = np.array([[np.cos(t), -np.sin(t), 0.0], [np.sin(t), np.cos(t), 0.0], [0.0, 0.0, 1.0]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag(spacing)
    affine[:3, 3] = origin
    return affine


def voxel_world(affine: np.ndarray, shape) -> np.ndarray:
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    return idx @ affine[:3, :3].T + affine[:3, 3]


def sphere(shape, centre, radius) -> np.ndarray:
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    return np.linalg.norm(idx - np.asarray(centre), axis=-1) < radius


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


def test_target_shape_keeps_the_extent_and_odd_sizes():
    assert target_shape((240, 240, 155), (1.0, 1.0, 1.0), (2.0, 2.0, 2.0)) == (120, 120, 78)
    assert target_shape((31, 29, 5), (0.5, 0.5, 5.0), (1.0, 1.0, 1.0)) == (16, 14, 25)
    assert target_shape((3, 1, 2), (1.0, 1.0, 1.0), (10.0, 10.0, 10.0)) == (1, 1, 1)  # never 0


def test_plan_records_native_and_reached_spacing():
    p = plan((31, 29, 5), (0.5, 0.5, 5.0), (1.0, 1.0, 1.0))
    assert p["native_shape"] == [31, 29, 5] and p["shape"] == [16, 14, 25]
    assert p["resampled"] and p["thick_axis"] == 2 and p["anisotropy"] == pytest.approx(10.0)
    np.testing.assert_allclose(p["spacing"], [31 * 0.5 / 16, 29 * 0.5 / 14, 1.0])
    same = plan((31, 29, 5), (1.0, 1.0, 1.0), (1.0004, 1.0, 1.0))  # same shape: nothing to do
    assert not same["resampled"] and same["spacing"] == [1.0, 1.0, 1.0] and same["thick_axis"] is None
    assert plan((4, 5, 6), (1.0, 2.0, 3.0), None)["target_spacing"] is None


def test_thick_axis_only_when_strongly_anisotropic():
    assert thick_axis((1.0, 1.0, 1.0)) is None
    assert thick_axis((1.0, 1.0, 3.0)) is None  # ratio 3 is not above the threshold
    assert thick_axis((0.5, 0.5, 5.0)) == 2
    assert thick_axis((6.0, 0.9, 0.9)) == 0


@pytest.mark.parametrize(
    ("shape", "spacing", "target"),
    [((23, 27, 19), (1.0, 1.0, 1.0), (2.0, 2.0, 2.0)), ((31, 29, 5), (0.5, 0.5, 5.0), (1.0, 1.2, 1.0))],
)
def test_resampled_affine_puts_voxel_centres_where_the_resampling_samples(shape, spacing, target):
    """A linear ramp in world coordinates, resampled linearly, equals the ramp at the new voxel centres."""
    affine = oblique(spacing)
    new_shape = target_shape(shape, spacing, target)
    new_affine = resampled_affine(affine, shape, new_shape)
    # the grid covers the same physical box: the outer corner of the first and last voxels agree
    for corner in ((-0.5, -0.5, -0.5), tuple(n - 0.5 for n in shape)):
        scale = np.asarray(new_shape) / np.asarray(shape)
        new_corner = (np.asarray(corner) + 0.5) * scale - 0.5
        np.testing.assert_allclose(
            affine[:3, :3] @ corner + affine[:3, 3],
            new_affine[:3, :3] @ new_corner + new_affine[:3, 3],
            atol=1e-9,
        )
    np.testing.assert_allclose(
        np.linalg.norm(new_affine[:3, :3], axis=0), np.asarray(spacing) * np.asarray(shape) / new_shape
    )
    gradient = np.array([0.7, -0.3, 0.2])
    image = (voxel_world(affine, shape) @ gradient + 100.0)[None].astype(np.float32)
    out, new_mask = resample_image(image, np.ones(shape, bool), new_shape, spacing, order=1)
    assert new_mask.all()
    new_idx = np.stack(np.meshgrid(*[np.arange(n) for n in new_shape], indexing="ij"), -1).astype(float)
    src = (new_idx + 0.5) * (np.asarray(shape) / np.asarray(new_shape)) - 0.5  # where each new voxel samples
    # the new affine maps each new voxel centre to the world position of the point it samples
    np.testing.assert_allclose(
        voxel_world(new_affine, new_shape), src @ affine[:3, :3].T + affine[:3, 3], atol=1e-9
    )
    thick = thick_axis(spacing)
    if thick is not None:  # the thick axis takes the nearest source slice
        src[..., thick] = np.clip(np.floor(src[..., thick] + 0.5), 0, shape[thick] - 1)
    expected = (src @ affine[:3, :3].T + affine[:3, 3]) @ gradient + 100.0
    inner = tuple(slice(1, -1) if a != thick else slice(None) for a in range(3))  # borders clamp
    np.testing.assert_allclose(out[0][inner], expected[inner], atol=2e-3)


def test_image_background_stays_zero_and_mask_follows():
    shape = (23, 27, 19)
    brain = sphere(shape, (11, 13, 9), 8.0)
    rng = np.random.default_rng(0)
    image = np.where(brain, 500 + 50 * rng.standard_normal((2, *shape)), 0).astype(np.float32)
    out, mask = resample_image(image, brain, (12, 14, 10), (1.0, 1.0, 1.0), order=3)
    assert out.shape == (2, 12, 14, 10) and out.dtype == np.float32 and mask.shape == (12, 14, 10)
    assert np.all(out[:, ~mask] == 0) and np.count_nonzero(mask) > 0
    assert dice(mask, resample_image(brain[None].astype(np.float32), brain, (12, 14, 10), (1, 1, 1))[1]) == 1
    assert abs(np.count_nonzero(mask) * 8 - np.count_nonzero(brain)) < 0.1 * np.count_nonzero(brain)


def test_image_arguments_are_checked():
    with pytest.raises(ValueError, match="order"):
        resample_image(np.zeros((1, 3, 3, 3)), np.ones((3, 3, 3), bool), (2, 2, 2), (1, 1, 1), order=6)
    with pytest.raises(ValueError, match=r"\(C, X, Y, Z\)"):
        resample_image(np.zeros((3, 3, 3)), np.ones((3, 3, 3), bool), (2, 2, 2), (1, 1, 1))


@pytest.mark.parametrize("new_shape", [(12, 14, 10), (46, 54, 38), (17, 40, 9)])
def test_labels_never_invent_classes(new_shape):
    rng = np.random.default_rng(1)
    classes = rng.choice(np.array([0, 2, 5], np.uint8), size=(23, 27, 19))
    classes[:, :, :4] = 1  # a slab of 1 next to 3: a linear blend of values would write 2
    classes[:, :, 4:8] = 3
    out = resample_classes(classes, new_shape, (1.0, 1.0, 1.0))
    assert out.dtype == np.uint8 and out.shape == new_shape
    assert set(np.unique(out).tolist()) <= {0, 1, 2, 3, 5}
    assert 4 not in out


def test_labels_unchanged_grid_and_empty():
    classes = np.random.default_rng(2).integers(0, 4, (5, 6, 7)).astype(np.uint8)
    out = resample_classes(classes, (5, 6, 7), (1, 1, 1))
    assert np.array_equal(out, classes) and out is not classes
    assert not resample_classes(np.zeros((5, 6, 7), np.uint8), (3, 3, 3), (1, 1, 1)).any()


def test_label_round_trip_one_to_two_to_one_millimetre():
    shape = (61, 57, 45)
    classes = np.zeros(shape, np.uint8)
    classes[sphere(shape, (30, 28, 22), 14)] = 2
    classes[sphere(shape, (31, 27, 23), 9)] = 3
    classes[sphere(shape, (31, 27, 23), 4)] = 1
    down = resample_classes(classes, target_shape(shape, (1, 1, 1), (2, 2, 2)), (1, 1, 1))
    back = resample_classes(down, shape, (2, 2, 2))
    # a hard 2 mm label map cannot hold a 1 mm boundary: measured 0.95 for this 14-voxel-radius sphere
    for cls in (1, 2, 3):
        assert dice(back == cls, classes == cls) > 0.85, cls
    assert dice(back > 0, classes > 0) > 0.93
    assert set(np.unique(back).tolist()) == {0, 1, 2, 3}


def test_label_upsampling_keeps_a_one_voxel_structure():
    classes = np.zeros((9, 9, 9), np.uint8)
    classes[4, 4, 4] = 3
    out = resample_classes(classes, (27, 27, 27), (3, 3, 3))
    assert np.count_nonzero(out == 3) > 0 and set(np.unique(out).tolist()) == {0, 3}


def test_anisotropic_thick_axis_is_resampled_with_nearest():
    """0.5 x 0.5 x 5 mm to 1 mm: in-plane spline, then each 5 mm slice repeated, never blended."""
    shape, spacing = (31, 29, 5), (0.5, 0.5, 5.0)
    new_shape = target_shape(shape, spacing, (1.0, 1.0, 1.0))
    rng = np.random.default_rng(3)
    image = (100 + rng.standard_normal((1, *shape)) * 10).astype(np.float32)
    mask = np.ones(shape, bool)
    out, _ = resample_image(image, mask, new_shape, spacing, order=3)
    in_plane, _ = resample_image(image, mask, (*new_shape[:2], shape[2]), spacing, order=3)
    np.testing.assert_array_equal(out[0], np.repeat(in_plane[0], 5, axis=2))
    classes = rng.integers(0, 3, shape).astype(np.uint8)
    out_classes = resample_classes(classes, new_shape, spacing)
    in_plane_classes = resample_classes(classes, (*new_shape[:2], shape[2]), spacing)
    np.testing.assert_array_equal(out_classes, np.repeat(in_plane_classes, 5, axis=2))
    # an isotropic source is interpolated along every axis (a spline across slices blends them)
    iso, _ = resample_image(image, mask, new_shape, (1.0, 1.0, 1.0), order=3)
    assert not np.array_equal(iso[0], np.repeat(in_plane[0], 5, axis=2))


@pytest.mark.parametrize("order", [2, 3, 5])
@pytest.mark.parametrize(
    ("shape", "new_shape"),
    [((23, 27, 19), (12, 14, 10)), ((11, 9, 7), (23, 17, 15)), ((31, 29, 5), (16, 14, 25))],
)
def test_separable_spline_equals_scipy_zoom(order, shape, new_shape):
    """The axis-by-axis path (orders >= 2) is ndimage.zoom's tensor-product spline, up to float32 rounding."""
    volume = (1000 * np.random.default_rng(5).random(shape)).astype(np.float32)
    factors = [m / n for n, m in zip(shape, new_shape, strict=True)]
    expected = ndimage.zoom(volume, factors, order=order, mode="nearest", grid_mode=True)
    got = resample._zoom(volume, new_shape, order, None)
    assert got.dtype == np.float32 and got.shape == new_shape and got.flags.c_contiguous
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * np.abs(expected).max())
    # with a thick axis: in-plane spline, then nearest along it (the two-step ndimage path)
    thick = 2
    in_plane = ndimage.zoom(volume, [*factors[:2], 1.0], order=order, mode="nearest", grid_mode=True)
    two_step = ndimage.zoom(in_plane, [1.0, 1.0, factors[2]], order=0, mode="nearest", grid_mode=True)
    np.testing.assert_allclose(
        resample._zoom(volume, new_shape, order, thick), two_step, rtol=0, atol=1e-5 * np.abs(two_step).max()
    )


def test_probabilities_linear_per_channel():
    probs = np.random.default_rng(4).random((3, 8, 9, 7)).astype(np.float32)
    assert resample_probabilities(probs, (8, 9, 7), (1, 1, 1)) is probs
    out = resample_probabilities(probs, (16, 18, 14), (1, 1, 1))
    assert out.shape == (3, 16, 18, 14) and out.min() >= 0 and out.max() <= 1
    assert resample.isclose_spacing((1.0, 2.0, 3.0), (1.0005, 2.0, 3.0))
    assert not resample.isclose_spacing((1.0, 2.0, 3.0), (1.01, 2.0, 3.0))
