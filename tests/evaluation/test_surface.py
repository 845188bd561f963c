"""Surface distances: the k-d tree path against the bounding-box path and medpy, and how ``auto`` chooses."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest
from medpy.metric import binary as medpy_binary
from scipy import ndimage

from bratseg.evaluation import surface as surface_module
from bratseg.evaluation.surface import KDTREE_BOX_RATIO, hd95_from_distances, surface_dice, surface_distances

BoolArray = npt.NDArray[np.bool_]
medpy_surface_distances: Callable[..., npt.NDArray[np.float64]] = getattr(medpy_binary, "__surface_distances")

# Spacings whose squared distances are exact in float64: the k-d tree and the transform agree bit for bit
EXACT_SPACINGS = [(1.0, 1.0, 1.0), (0.9375, 0.9375, 2.5), (0.5, 1.25, 3.0)]
OTHER_SPACINGS = [(0.7, 1.1, 3.3), (1.0, 0.8, 2.5)]


def blob_pair(shape: tuple[int, int, int], seed: int, far_blob: bool) -> tuple[BoolArray, BoolArray]:
    """An irregular reference blob, a shifted noisy prediction and optionally a false positive in a corner."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij")
    centre = np.array(shape) * 0.6 + rng.uniform(-1.5, 1.5, 3)
    radii = np.array(shape) * rng.uniform(0.15, 0.2, 3)

    def blob(c: npt.NDArray[np.float64], amp: float) -> BoolArray:
        noise = ndimage.gaussian_filter(rng.normal(size=shape), 2.0)
        d = np.sqrt(sum(((g - ci) / r) ** 2 for g, ci, r in zip(grids, c, radii, strict=True)))
        return np.asarray(d + amp * noise / noise.std() < 1.0)

    ref = blob(centre, 0.15)
    pred = blob(centre + rng.uniform(-1.5, 1.5, 3), 0.2)
    if far_blob:
        pred[1:3, 2:4, 1:3] = True
    return pred, ref


@pytest.mark.parametrize("far_blob", [False, True])
@pytest.mark.parametrize("spacing", EXACT_SPACINGS)
def test_kdtree_equals_box_and_medpy_bit_for_bit(spacing: tuple[float, ...], far_blob: bool) -> None:
    pred, ref = blob_pair((47, 43, 33), seed=3, far_blob=far_blob)
    kd = surface_distances(pred, ref, spacing, method="kdtree")
    box = surface_distances(pred, ref, spacing, method="box")
    for got, expected in zip(kd, box, strict=True):
        np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(kd[0], medpy_surface_distances(pred, ref, spacing))
    np.testing.assert_array_equal(kd[1], medpy_surface_distances(ref, pred, spacing))


@pytest.mark.parametrize("spacing", OTHER_SPACINGS)
def test_kdtree_equals_box_to_rounding_for_other_spacings(spacing: tuple[float, ...]) -> None:
    pred, ref = blob_pair((47, 43, 33), seed=5, far_blob=True)
    kd = surface_distances(pred, ref, spacing, method="kdtree")
    box = surface_distances(pred, ref, spacing, method="box")
    for got, expected in zip(kd, box, strict=True):
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-14, atol=0)


@pytest.mark.parametrize("seed", range(4))
def test_kdtree_on_random_masks_2d_and_3d(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for shape in ((9, 7), (8, 6, 5)):
        a, b = rng.random(shape) < 0.3, rng.random(shape) < 0.1
        a.flat[0] = b.flat[-1] = True
        spacing = (1.0, 2.0, 0.5)[: len(shape)]
        for got, expected in zip(
            surface_distances(a, b, spacing, method="kdtree"),
            surface_distances(a, b, spacing, method="box"),
            strict=True,
        ):
            np.testing.assert_array_equal(got, expected)


def test_auto_uses_the_kdtree_only_when_the_box_is_mostly_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    original = surface_module._nearest

    def counting(*args: npt.NDArray) -> npt.NDArray[np.float64]:
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(surface_module, "_nearest", counting)
    compact = blob_pair((47, 43, 33), seed=3, far_blob=False)
    surface_distances(*compact, (1.0, 1.0, 1.0))
    assert calls == []
    far = blob_pair((47, 43, 33), seed=3, far_blob=True)
    surface_distances(*far, (1.0, 1.0, 1.0))
    assert calls == [1, 1]  # one query per direction
    # the rule, checked on the two pairs: box voxels per surface voxel of both masks
    for (pred, ref), expected in ((compact, False), (far, True)):
        box = np.argwhere(pred | ref)
        n_box = int(np.prod(box.max(axis=0) - box.min(axis=0) + 1))
        n_surface = sum(int((m ^ ndimage.binary_erosion(m)).sum()) for m in (pred, ref))
        assert (n_box > KDTREE_BOX_RATIO * n_surface) == expected


def test_unknown_method_and_empty_masks_raise() -> None:
    pred, ref = blob_pair((21, 19, 17), seed=1, far_blob=False)
    with pytest.raises(ValueError, match="method must be one of auto, box, kdtree, got 'tree'"):
        surface_distances(pred, ref, (1.0, 1.0, 1.0), method="tree")
    with pytest.raises(ValueError, match="two non-empty masks"):
        surface_distances(np.zeros_like(pred), ref, (1.0, 1.0, 1.0), method="kdtree")


def test_reductions_of_the_distances() -> None:
    pred_to_ref = np.array([0.0, 1.0, 2.0, 3.0])
    ref_to_pred = np.array([0.0, 0.5, 4.0])
    pooled = np.percentile(np.concatenate((pred_to_ref, ref_to_pred)), 95)
    assert hd95_from_distances(pred_to_ref, ref_to_pred, "pooled") == pooled
    directed = max(np.percentile(pred_to_ref, 95), np.percentile(ref_to_pred, 95))
    assert hd95_from_distances(pred_to_ref, ref_to_pred, "max_directed") == directed
    with pytest.raises(ValueError, match="mode"):
        hd95_from_distances(pred_to_ref, ref_to_pred, "mean")
    # NSD: the mean of the fractions within the tolerance, 2/4 and 2/3
    assert surface_dice(pred_to_ref, ref_to_pred, 1.0) == pytest.approx((2 / 4 + 2 / 3) / 2)
    assert surface_dice(pred_to_ref, ref_to_pred, 4.0) == 1.0
    assert surface_dice(pred_to_ref, ref_to_pred, 0.0) == pytest.approx((1 / 4 + 1 / 3) / 2)
