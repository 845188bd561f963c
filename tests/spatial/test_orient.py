"""Reorientation to RAS+: every axis permutation and flip, oblique affines; exact round trips, world kept."""

from __future__ import annotations

import itertools

import nibabel as nib
import numpy as np
import pytest

from bratseg.spatial import orient

SHAPE = (5, 6, 7)
PERMUTATIONS = list(itertools.permutations(range(3)))
FLIPS = list(itertools.product((1.0, -1.0), repeat=3))


def axis_affine(perm: tuple[int, ...], flips: tuple[float, ...], zooms=(1.0, 2.0, 3.0)) -> np.ndarray:
    """Voxel axis ``i`` runs along world axis ``perm[i]`` with sign ``flips[i]`` and step ``zooms[i]``."""
    affine = np.zeros((4, 4))
    affine[3, 3] = 1.0
    for i, (p, f, z) in enumerate(zip(perm, flips, zooms, strict=True)):
        affine[p, i] = f * z
    affine[:3, 3] = [3.0, -4.0, 5.0]
    return affine


def rotation(axis: int, degrees: float) -> np.ndarray:
    t = np.deg2rad(degrees)
    c, s = np.cos(t), np.sin(t)
    a, b = [i for i in range(3) if i != axis]
    r = np.eye(4)
    r[a, a], r[a, b], r[b, a], r[b, b] = c, -s, s, c
    return r


def world_of_every_voxel(affine: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``(N, 3)`` world coordinates of the voxel centres, in C order of the voxel grid."""
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, 3)
    return idx @ affine[:3, :3].T + affine[:3, 3]


def check_same_world(data, affine, new_data, new_affine):
    """Each voxel value sits at the same world position before and after (a lookup through the affines)."""
    world = world_of_every_voxel(affine, data.shape)
    idx = (world - new_affine[:3, 3]) @ np.linalg.inv(new_affine[:3, :3]).T
    rounded = np.rint(idx)
    np.testing.assert_allclose(idx, rounded, atol=1e-9)
    r = rounded.astype(int)
    np.testing.assert_array_equal(new_data[r[:, 0], r[:, 1], r[:, 2]], data.reshape(-1))


@pytest.mark.parametrize("perm", PERMUTATIONS, ids=lambda p: "".join(map(str, p)))
@pytest.mark.parametrize("flips", FLIPS, ids=lambda f: "".join("+" if v > 0 else "-" for v in f))
def test_every_axis_order_goes_to_ras_and_back_exactly(perm, flips):
    affine = axis_affine(perm, flips)
    data = np.random.default_rng(0).integers(0, 1000, SHAPE).astype(np.int32)
    image = np.stack([data, data + 1]).astype(np.float32)
    classes = (data % 6).astype(np.uint8)
    out, out_classes, new_affine, record = orient.reorient(image, classes, affine)
    assert nib.aff2axcodes(new_affine) == ("R", "A", "S")
    assert record["native_axcodes"] == "".join(nib.aff2axcodes(affine))
    assert out.flags.c_contiguous and out_classes is not None and out_classes.flags.c_contiguous
    check_same_world(data, affine, out[0].astype(np.int32), new_affine)
    check_same_world(classes, affine, out_classes, new_affine)
    back = orient.undo(out_classes, record)
    assert back.shape == classes.shape and np.array_equal(back, classes)
    np.testing.assert_array_equal(orient.undo(out, record), image)
    # the same as nibabel's closest canonical image
    canonical = nib.as_closest_canonical(nib.Nifti1Image(data, affine))
    np.testing.assert_array_equal(np.asarray(canonical.dataobj), out[0].astype(np.int32))
    np.testing.assert_allclose(canonical.affine, new_affine, atol=1e-12)


def test_cyclic_permutation_is_undone_not_applied_twice():
    """IRA: a 3-cycle of the axes plus a flip, whose inverse is not itself (an LPS-only test cannot tell)."""
    affine = axis_affine((2, 0, 1), (-1.0, 1.0, 1.0))
    assert "".join(nib.aff2axcodes(affine)) == "IRA"
    data = np.arange(np.prod(SHAPE)).reshape(SHAPE)
    out, _, _, record = orient.reorient(data[None].astype(np.float32), None, affine)
    assert out.shape == (1, 6, 7, 5)
    back = orient.undo(out[0], record)
    assert back.shape == SHAPE and np.array_equal(back, data)
    ornt = np.asarray(record["ornt"])
    np.testing.assert_array_equal(orient.inverse(orient.inverse(ornt)), ornt)


@pytest.mark.parametrize("native", ["RAS", "LPS", "PSR"])
@pytest.mark.parametrize("degrees", [20.0, -35.0])
def test_oblique_affine_keeps_its_rotation_and_round_trips(native, degrees):
    perm, flips = {
        "RAS": ((0, 1, 2), (1.0, 1.0, 1.0)),
        "LPS": ((0, 1, 2), (-1.0, -1.0, 1.0)),
        "PSR": ((1, 2, 0), (-1.0, 1.0, 1.0)),
    }[native]
    affine = rotation(2, degrees) @ rotation(0, 10.0) @ axis_affine(perm, flips, (0.9, 1.1, 3.3))
    data = np.random.default_rng(1).normal(size=(9, 4, 11)).astype(np.float32)
    out, _, new_affine, record = orient.reorient(data[None], None, affine)
    assert nib.aff2axcodes(new_affine) == ("R", "A", "S")
    # still oblique: the rotation that no axis permutation removes stays in the affine
    cosines = new_affine[:3, :3] / np.linalg.norm(new_affine[:3, :3], axis=0)
    assert not np.allclose(np.abs(cosines), np.eye(3), atol=1e-3)
    np.testing.assert_allclose(np.linalg.norm(new_affine[:3, :3], axis=0).prod(), 0.9 * 1.1 * 3.3)
    check_same_world(data, affine, out[0], new_affine)
    np.testing.assert_array_equal(orient.undo(out[0], record), data)


def test_ras_input_is_left_as_is():
    affine = axis_affine((0, 1, 2), (1.0, 1.0, 1.0))
    ornt = orient.to_canonical(affine)
    assert orient.is_identity(ornt)
    data = np.random.default_rng(2).normal(size=SHAPE)
    assert orient.apply(data, ornt) is data
    out, _, new_affine, record = orient.reorient(data[None], None, affine)
    np.testing.assert_array_equal(out[0], data)
    np.testing.assert_array_equal(new_affine, affine)
    assert record["native_axcodes"] == "RAS"


def test_leading_axes_are_carried_along():
    affine = axis_affine((1, 0, 2), (-1.0, 1.0, -1.0))
    ornt = orient.to_canonical(affine)
    stack = np.random.default_rng(3).normal(size=(2, 3, *SHAPE))
    out = orient.apply(stack, ornt)
    assert out.shape == (2, 3, 6, 5, 7)
    for a in range(2):
        for b in range(3):
            np.testing.assert_array_equal(out[a, b], orient.apply(stack[a, b], ornt))
    np.testing.assert_array_equal(orient.apply(out, orient.inverse(ornt)), stack)
