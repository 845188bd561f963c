"""The cropped lesion machinery against scipy on the whole array and against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import ndimage

from bratseg.evaluation.lesions import (
    crop_box,
    dilate,
    dilated_lesions,
    label_components,
    match_one_to_one,
    overlap_pairs,
    union_box,
)


@pytest.mark.parametrize("shape", [(9,), (7, 8), (11, 9, 7), (5, 6, 4, 5)])
@pytest.mark.parametrize("iterations", [0, 1, 2, 4])
def test_dilate_equals_scipy(shape: tuple[int, ...], iterations: int) -> None:
    rng = np.random.default_rng(iterations + len(shape))
    for p in (0.02, 0.2):
        mask = rng.random(shape) < p
        mask.flat[0] = mask.flat[-1] = True  # foreground on the array border
        want = mask
        if iterations:
            structure = ndimage.generate_binary_structure(len(shape), 2)
            want = ndimage.binary_dilation(mask, structure=structure, iterations=iterations)
        np.testing.assert_array_equal(dilate(mask, iterations), want)


@pytest.mark.parametrize("shape", [(401,), (43, 39), (37, 29, 21), (11, 10, 9, 8)])
@pytest.mark.parametrize("fraction", [0.01, 0.04, 0.2])
def test_components_equal_scipy_labels(shape: tuple[int, ...], fraction: float) -> None:
    rng = np.random.default_rng(len(shape))
    mask = rng.random(shape) < fraction / (2 * len(shape) + 1)
    if len(shape) > 1:  # blobs of a few voxels, some touching diagonally across blocks
        mask = ndimage.binary_dilation(mask, ndimage.generate_binary_structure(len(shape), 1))
    mask[(0,) * len(shape)] = mask[(-1,) * len(shape)] = True  # the array corners
    got = label_components(mask)  # the cluster-wise path below 5 % foreground, scipy's above
    want, n = ndimage.label(mask, structure=ndimage.generate_binary_structure(len(shape), len(shape)))
    assert got.n == n and n >= 3
    np.testing.assert_array_equal(got.labels, want)
    assert got.sizes[1:].tolist() == np.bincount(want.ravel())[1:].tolist()
    assert got.boxes == ndimage.find_objects(want)


def test_components_are_26_connected_in_c_order() -> None:
    mask = np.zeros((6, 6, 6), bool)
    mask[4, 4, 4] = mask[3, 3, 3] = True  # corner neighbours: one component
    mask[0, 5, 0] = True
    mask[1, 0, 2] = mask[1, 0, 3] = True
    got = label_components(mask)
    assert got.n == 3
    assert (got.labels[0, 5, 0], got.labels[1, 0, 2], got.labels[3, 3, 3]) == (1, 2, 3)
    assert got.sizes[1:].tolist() == [1, 2, 2]
    assert got.boxes[1] == (slice(1, 2), slice(0, 1), slice(2, 4))


def test_dilated_lesions_merge_what_the_dilation_joins() -> None:
    ref = np.zeros((20, 7, 7), bool)
    ref[2:4, 2:5, 2:5] = True
    ref[6:8, 2:5, 2:5] = True  # gap of 2: joined by one dilation
    ref[11:13, 2:5, 2:5] = True  # gap of 3: not
    lesions, blobs = dilated_lesions(ref, 1)
    assert lesions.n == 2 and lesions.sizes[1:].tolist() == [36, 18]
    assert (lesions.labels[~ref] == 0).all() and (blobs[ref] == lesions.labels[ref]).all()
    plain, _ = dilated_lesions(ref, 0)
    assert plain.n == 3


def test_crop_and_union_boxes() -> None:
    mask = np.zeros((10, 8), bool)
    assert crop_box(mask, 2) is None
    mask[1, 3] = mask[4, 6] = True
    assert crop_box(mask, 0) == (slice(1, 5), slice(3, 7))
    assert crop_box(mask, 2) == (slice(0, 7), slice(1, 8))  # clipped to the array
    assert union_box([(slice(1, 3), slice(5, 6)), (slice(2, 7), slice(0, 2))]) == (slice(1, 7), slice(0, 6))


def test_overlap_pairs_count_shared_voxels() -> None:
    rng = np.random.default_rng(0)
    a = label_components(rng.random((12, 11, 10)) < 0.3)
    b = label_components(rng.random((12, 11, 10)) < 0.3)
    ia, ib, counts = overlap_pairs(a.labels, b.labels, b.n)
    want = {
        (i, j): int(np.count_nonzero((a.labels == i) & (b.labels == j)))
        for i, j in itertools.product(range(1, a.n + 1), range(1, b.n + 1))
    }
    assert dict(zip(zip(ia.tolist(), ib.tolist(), strict=True), counts.tolist(), strict=True)) == {
        k: v for k, v in want.items() if v
    }


def brute_best(scores: np.ndarray, threshold: float) -> float:
    """Largest sum of ``score + 1e-6`` over one-to-one matchings of eligible pairs, by trying all."""
    n, m = scores.shape
    best = 0.0
    for perm in itertools.permutations(range(max(n, m)), n):
        total = sum(scores[i, j] + 1e-6 for i, j in enumerate(perm) if j < m and scores[i, j] >= threshold)
        best = max(best, total)
    return best


@pytest.mark.parametrize("seed", range(8))
def test_matching_is_optimal(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, m = rng.integers(1, 6, 2)
    scores = np.where(rng.random((n, m)) < 0.5, rng.random((n, m)), 0.0)
    ref_ids, pred_ids = np.nonzero(scores)
    threshold = 0.2
    r, p = match_one_to_one(ref_ids + 1, pred_ids + 1, scores[ref_ids, pred_ids], threshold)
    assert len(set(r.tolist())) == len(r) and len(set(p.tolist())) == len(p)  # one-to-one
    assert all(scores[i - 1, j - 1] >= threshold for i, j in zip(r, p, strict=True))
    total = sum(scores[i - 1, j - 1] + 1e-6 for i, j in zip(r, p, strict=True))
    assert total == pytest.approx(brute_best(scores, threshold), abs=1e-12)
    assert list(r) == sorted(r)


def test_matching_without_candidates() -> None:
    empty = np.zeros(0, np.intp)
    r, p = match_one_to_one(empty, empty, np.zeros(0), 0.5)
    assert r.size == p.size == 0
    r, p = match_one_to_one(np.array([1]), np.array([1]), np.array([0.1]), 0.5)
    assert r.size == 0
