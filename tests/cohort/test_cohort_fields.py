"""Smooth-field helpers and the warp, against straightforward reference computations."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.polynomial import legendre
from scipy import ndimage

from bratseg.cohort.anatomy import load_templates
from bratseg.cohort.fields import polynomial_field, smooth_noise, upsample_linear
from bratseg.cohort.warp import Warp, grid_affine, random_warp, resample, template_to_grid


def test_upsample_linear_matches_map_coordinates():
    rng = np.random.default_rng(0)
    coarse = rng.standard_normal((4, 5, 3))
    shape = (13, 9, 7)
    # output sample i sits at coarse position i * (k - 1) / (n - 1)
    pos = np.meshgrid(
        *[np.linspace(0, k - 1, n) for k, n in zip(coarse.shape, shape, strict=True)], indexing="ij"
    )
    expected = ndimage.map_coordinates(coarse, np.stack(pos), order=1)
    np.testing.assert_allclose(upsample_linear(coarse, shape), expected, atol=1e-5)
    box = ((2, 10), (0, 4), (3, 7))
    np.testing.assert_allclose(upsample_linear(coarse, shape, box), expected[2:10, 0:4, 3:7], atol=1e-5)
    with pytest.raises(ValueError, match="coarse"):
        upsample_linear(np.zeros((1, 3, 3)), shape)


def test_polynomial_field_matches_legval3d():
    rng = np.random.default_rng(1)
    coefs = rng.standard_normal((4, 4, 4))
    shape = (7, 5, 6)
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    np.testing.assert_allclose(polynomial_field(coefs, shape), legendre.legval3d(x, y, z, coefs), atol=1e-4)


def test_smooth_noise_is_standardised_and_smooth():
    field = smooth_noise(np.random.default_rng(2), (40, 40, 30), (9, 9, 7), 1.0)
    assert field.dtype == np.float32 and field.shape == (40, 40, 30)
    assert abs(field.mean()) < 0.2 and 0.5 < field.std() < 1.2
    assert np.abs(np.diff(field, axis=0)).max() < 0.5  # neighbours differ far less than the spread


def test_identity_warp_reproduces_the_template():
    templates = load_templates()
    shape, voxel = (60, 70, 60), 3.0
    warp = Warp(np.eye(3), np.zeros(3), np.zeros((3, 2, 2, 2), dtype=np.float32))
    anatomy = resample(templates, warp, shape, voxel)
    affine = grid_affine(shape, voxel, templates.centre_mm)
    # reference: nearest-neighbour look-up of the template brain mask at each output voxel centre
    ijk = np.indices(shape).reshape(3, -1)
    mm = affine[:3, :3] @ ijk + affine[:3, 3:4]
    vox = np.linalg.inv(templates.vox_to_mm)[:3] @ np.vstack([mm, np.ones(mm.shape[1])])
    expected = ndimage.map_coordinates(templates.mask, vox, order=1).reshape(shape) >= 0.5
    np.testing.assert_array_equal(anatomy.brain, expected)
    np.testing.assert_allclose(anatomy.wm + anatomy.gm + anatomy.csf, 1.0, atol=1e-5)


def test_template_to_grid_inverts_the_warp():
    templates = load_templates()
    shape, voxel = (60, 60, 39), 4.0
    warp = random_warp(np.random.default_rng(4), shape, voxel, 5.0, 0.05, 3.0)
    point = templates.centre_mm + np.array([20.0, -10.0, 15.0])
    x = template_to_grid(point, warp, templates.centre_mm, shape, voxel)
    # forward map: y = C + M (x - C + d(x)) + t, with d interpolated on its coarse grid
    first = templates.centre_mm - voxel * (np.array(shape) - 1) / 2
    node = (x - first) / voxel * (np.array(warp.coarse.shape[1:]) - 1) / (np.array(shape) - 1)
    d = np.array([ndimage.map_coordinates(c, node[:, None], order=1)[0] for c in warp.coarse])
    y = templates.centre_mm + warp.matrix @ (x - templates.centre_mm + d) + warp.shift_mm
    np.testing.assert_allclose(y, point, atol=1e-3)
