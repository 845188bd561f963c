"""Lesion-wise scores: hand-computed cases, and brute-force oracles of both definitions on generated pairs.

The oracles are written from the definitions on the whole volume (scipy dilation and labels, medpy Dice and
HD95, all-pairs surface distances, exhaustive matching), independent of the cropped machinery under test.
panoptica itself is compared in ``benchmarks/bench_lesionwise.py`` (it is not a test dependency).
"""

from __future__ import annotations

import itertools
import math
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pytest
from medpy.metric import binary as medpy_binary
from scipy import ndimage

from bratseg.evaluation.lesionwise import (
    BRATS2023_PENALTY,
    LESIONWISE_NAMES,
    PANOPTICA_PENALTY,
    LesionwiseResult,
    lesionwise_brats2023,
    lesionwise_panoptica,
)
from bratseg.evaluation.lesionwise_case import nsd

BoolArray = npt.NDArray[np.bool_]
TOL: dict[str, Any] = {"rel": 1e-9, "abs": 1e-9}
NAN = math.nan


# --- generated pairs ----------------------------------------------------------------------------------------
def _blob(
    shape: tuple[int, ...], centre: npt.NDArray[np.float64], radii: npt.NDArray[np.float64]
) -> BoolArray:
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    d = sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre, radii, strict=True))
    return np.asarray(d <= 1.0)


def lesion_pair(shape: tuple[int, int, int], n_lesions: int, seed: int) -> tuple[BoolArray, BoolArray]:
    """A prediction and a reference with many lesions: found (shifted, rescaled), missed, split, merged by a
    bridge, pairs closer than a dilation (one lesion for BraTS 2023), tiny ones, and false positives."""
    rng = np.random.default_rng(seed)
    ref, pred = np.zeros(shape, bool), np.zeros(shape, bool)
    lo, hi = np.full(3, 4.0), np.array(shape) - 5.0
    centres = []
    for _ in range(n_lesions):
        c, radii = rng.uniform(lo, hi), rng.uniform(1.2, 4.5, 3)
        ref |= _blob(shape, c, radii)
        fate = rng.random()
        if fate < 0.15:
            continue  # missed
        pred |= _blob(shape, c + rng.integers(-1, 2, 3), radii * rng.uniform(0.7, 1.3, 3))
        if fate > 0.85:  # split: an extra piece beside it
            pred |= _blob(shape, c + radii * 1.5, np.maximum(radii * 0.4, 1.0))
        centres.append(c)
    # two reference lesions two voxels apart along axis 0: one lesion once dilated
    c = rng.uniform(lo + 6, hi - 6)
    ref[int(c[0]) - 3 : int(c[0]), int(c[1]) : int(c[1]) + 3, int(c[2]) : int(c[2]) + 3] = True
    ref[int(c[0]) + 2 : int(c[0]) + 5, int(c[1]) : int(c[1]) + 3, int(c[2]) : int(c[2]) + 3] = True
    pred[int(c[0]) - 3 : int(c[0]), int(c[1]) : int(c[1]) + 3, int(c[2]) : int(c[2]) + 3] = True
    for _ in range(3):  # tiny lesions, some predicted
        v = tuple(int(x) for x in rng.uniform(lo, hi))
        ref[v] = True
        if rng.random() < 0.5:
            pred[v] = True
    for _ in range(max(1, n_lesions // 4)):  # false positives
        pred |= _blob(shape, rng.uniform(lo, hi), rng.uniform(0.8, 2.5, 3))
    for _ in range(2):  # lesions surely missed: nothing predicted within 4 voxels
        c = rng.integers(lo + 2, hi - 2).astype(int)
        ref[c[0] - 1 : c[0] + 2, c[1] - 1 : c[1] + 2, c[2] - 1 : c[2] + 2] = True
        pred[c[0] - 5 : c[0] + 6, c[1] - 5 : c[1] + 6, c[2] - 5 : c[2] + 6] = False
    if len(centres) >= 2:  # a predicted bridge merging two lesions
        a, b = centres[0], centres[1]
        for t in np.linspace(0.0, 1.0, 4 * int(np.abs(b - a).max()) + 2):
            pred[tuple(np.round(a + t * (b - a)).astype(int))] = True
    return pred, ref


# --- brute-force pieces -------------------------------------------------------------------------------------
def _surface(mask: BoolArray) -> npt.NDArray[np.float64]:
    return np.argwhere(mask ^ ndimage.binary_erosion(mask)).astype(np.float64)


def brute_nsd(pred: BoolArray, ref: BoolArray, spacing: tuple[float, ...], tol: float) -> float:
    """Mean of the two directed fractions of surface voxels within ``tol`` mm, from all pairwise distances."""
    sp = np.asarray(spacing)
    a, b = _surface(pred) * sp, _surface(ref) * sp
    d = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    return float(((d.min(axis=1) <= tol).mean() + (d.min(axis=0) <= tol).mean()) / 2)


def _labels(mask: BoolArray) -> tuple[npt.NDArray[np.int32], int]:
    labels, n = ndimage.label(mask, structure=np.ones((3,) * mask.ndim))
    return labels, int(n)


class Oracle(NamedTuple):
    lesion_dice: float
    lesion_hd95: float
    lesion_nsd: float
    tp: int
    fp: int
    fn: int
    f1: float
    per_lesion: list[tuple[float, float, float]]  # (dice, hd95, nsd) of each scored / matched lesion


def brats2023(
    pred: BoolArray, ref: BoolArray, spacing: tuple[float, ...], k: int, thr: float, tol: float, hd_sp=None
) -> Oracle:
    hd_sp = spacing if hd_sp is None else hd_sp
    grown = ndimage.binary_dilation(ref, ndimage.generate_binary_structure(3, 2), iterations=k) if k else ref
    blobs, n_blobs = _labels(grown)
    comps, n_comps = _labels(pred)
    used: set[int] = set()
    scored = []
    missed = 0
    for i in range(1, n_blobs + 1):
        lesion = ref & (blobs == i)
        hits = set(np.unique(comps[(blobs == i) & pred]).tolist()) - {0}
        used |= hits
        if lesion.sum() * math.prod(spacing) <= thr:
            continue
        if not hits:
            scored.append((0.0, 374.0, 0.0))
            missed += 1
            continue
        p = np.isin(comps, sorted(hits))
        hd = medpy_binary.hd95(p, lesion, hd_sp)
        scored.append((medpy_binary.dc(p, lesion), hd, brute_nsd(p, lesion, spacing, tol)))
    tp = len(scored) - missed
    fp = n_comps - len(used)
    fn = missed
    n = len(scored) + fp
    if n == 0:
        return Oracle(1.0, 0.0, 1.0, 0, 0, 0, 1.0, [])
    return Oracle(
        sum(s[0] for s in scored) / n,
        (sum(s[1] for s in scored) + 374.0 * fp) / n,
        sum(s[2] for s in scored) / n,
        tp,
        fp,
        fn,
        2 * tp / (2 * tp + fp + fn),
        scored,
    )


def _search(rs: list[int], edges: dict[tuple[int, int], float]) -> list[tuple[int, int]]:
    """The best matching of the references ``rs`` by trying every assignment."""
    best: tuple[float, list[tuple[int, int]]] = (-1.0, [])

    def search(i: int, taken: frozenset[int], total: float, chosen: list[tuple[int, int]]) -> None:
        nonlocal best
        if i == len(rs):
            if total > best[0]:
                best = (total, list(chosen))
            return
        search(i + 1, taken, total, chosen)
        for (r, p), s in edges.items():
            if r == rs[i] and p not in taken:
                search(i + 1, taken | {p}, total + s + 1e-6, [*chosen, (r, p)])

    search(0, frozenset(), 0.0, [])
    return best[1]


def _best_matching(edges: dict[tuple[int, int], float]) -> list[tuple[int, int]]:
    """Maximum of sum(score + 1e-6) over one-to-one matchings, by exhaustive search per connected group."""
    refs = sorted({r for r, _ in edges})
    groups: list[set[int]] = []
    for r in refs:  # group references that share a candidate prediction
        preds = {p for (rr, p) in edges if rr == r}
        joined = [g for g in groups if preds & {p for (rr, p) in edges if rr in g}]
        merged = {r}.union(*joined) if joined else {r}
        groups = [g for g in groups if g not in joined] + [merged]
    best_all: list[tuple[int, int]] = []
    for group in groups:
        best_all += _search(sorted(group), edges)
    return best_all


def panoptica(
    pred: BoolArray, ref: BoolArray, spacing: tuple[float, ...], thr: float, tol: float, hd_sp=None
) -> Oracle:
    hd_sp = spacing if hd_sp is None else hd_sp
    ref_l, n_ref = _labels(ref)
    pred_l, n_pred = _labels(pred)
    if n_ref == 0 and n_pred == 0:
        return Oracle(math.nan, math.nan, math.nan, 0, 0, 0, math.nan, [])
    edges = {}
    for i, j in itertools.product(range(1, n_ref + 1), range(1, n_pred + 1)):
        a, b = ref_l == i, pred_l == j
        if (a & b).any() and medpy_binary.dc(b, a) >= thr:
            edges[i, j] = medpy_binary.dc(b, a)
    matched = sorted(_best_matching(edges))
    tp = len(matched)
    fp, fn = n_pred - tp, n_ref - tp
    if tp == 0:
        return Oracle(0.0, 373.0, 0.0, 0, fp, fn, 0.0, [])
    scores = []
    for i, j in matched:
        a, b = ref_l == i, pred_l == j
        scores.append((edges[i, j], medpy_binary.hd95(b, a, hd_sp), brute_nsd(b, a, spacing, tol)))
    return Oracle(
        float(np.mean([s[0] for s in scores])),
        float(np.mean([s[1] for s in scores])),
        float(np.mean([s[2] for s in scores])),
        tp,
        fp,
        fn,
        tp / (tp + 0.5 * fp + 0.5 * fn),
        scores,
    )


# --- comparisons --------------------------------------------------------------------------------------------
def assert_matches(got: LesionwiseResult, want: Oracle) -> None:
    for name in ("lesion_dice", "lesion_hd95", "lesion_nsd", "f1"):
        g, w = getattr(got, name), getattr(want, name)
        assert (math.isnan(g) and math.isnan(w)) or g == pytest.approx(w, **TOL), name
    assert (got.tp, got.fp, got.fn) == (want.tp, want.fp, want.fn)


def assert_per_lesion(got: LesionwiseResult, want: Oracle, which: str) -> None:
    """The scored (``brats2023``) or matched (``panoptica``) lesions, in label order, equal the oracle's."""
    chosen = [(s.dice, s.hd95, s.nsd) for s in got.lesions if getattr(s, which)]
    assert len(chosen) == len(want.per_lesion)
    if chosen:
        np.testing.assert_allclose(np.array(chosen), np.array(want.per_lesion), rtol=1e-9, atol=1e-9)


def box(shape: tuple[int, ...], *corners: tuple[int, int]) -> BoolArray:
    """A mask holding one box, ``corners`` giving ``(start, stop)`` per axis."""
    out = np.zeros(shape, bool)
    out[tuple(slice(a, b) for a, b in corners)] = True
    return out


SHAPE = (24, 20, 18)
CUBE_A = ((3, 7), (3, 7), (3, 7))  # 64 voxels
CUBE_B = ((14, 18), (12, 16), (10, 14))


# --- hand-computed ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [lesionwise_brats2023, lesionwise_panoptica])
def test_identical_masks_score_perfectly(fn: Any) -> None:
    a = box(SHAPE, *CUBE_A) | box(SHAPE, *CUBE_B)
    got = fn(a, a, (1.0, 1.0, 1.0))
    assert (got.lesion_dice, got.lesion_hd95, got.lesion_nsd, got.f1) == (1.0, 0.0, 1.0, 1.0)
    assert (got.tp, got.fp, got.fn) == (2, 0, 0)
    assert [s.volume_mm3 for s in got.lesions] == [64.0, 64.0]


def test_one_found_one_missed_one_false_positive() -> None:
    ref = box(SHAPE, *CUBE_A) | box(SHAPE, *CUBE_B)
    pred = box(SHAPE, *CUBE_A) | box(SHAPE, (18, 20), (2, 4), (14, 16))
    got = lesionwise_brats2023(pred, ref, (1.0, 1.0, 1.0), dilation_iterations=1, volume_threshold_mm3=0)
    # (1 + 0) / (2 lesions + 1 FP); (0 + 374 + 374) / 3
    assert got.lesion_dice == pytest.approx(1 / 3) and got.lesion_hd95 == pytest.approx(748 / 3)
    assert got.lesion_nsd == pytest.approx(1 / 3)
    assert (got.tp, got.fp, got.fn, got.f1) == (1, 1, 1, 0.5)
    pan = lesionwise_panoptica(pred, ref, (1.0, 1.0, 1.0))
    # means over the one matched pair; F1 = 1 / (1 + (1 + 1) / 2)
    assert (pan.lesion_dice, pan.lesion_hd95, pan.lesion_nsd) == (1.0, 0.0, 1.0)
    assert (pan.tp, pan.fp, pan.fn, pan.f1) == (1, 1, 1, 0.5)


@pytest.mark.parametrize(("gap", "k", "merged"), [(2, 1, True), (3, 1, False), (4, 2, True), (5, 2, False)])
def test_lesions_closer_than_the_dilation_are_one(gap: int, k: int, merged: bool) -> None:
    first = box(SHAPE, (3, 6), (5, 8), (5, 8))  # 27 voxels
    ref = first | box(SHAPE, (6 + gap, 9 + gap), (5, 8), (5, 8))
    got = lesionwise_brats2023(first, ref, (1.0, 1.0, 1.0), dilation_iterations=k, volume_threshold_mm3=0)
    if merged:  # one lesion of 54 voxels, found by a prediction of 27: Dice 2 * 27 / 81
        assert len(got.lesions) == 1 and got.lesion_dice == pytest.approx(2 / 3)
        assert (got.tp, got.fn) == (1, 0)
    else:  # two lesions, one found exactly, one missed
        assert len(got.lesions) == 2 and got.lesion_dice == pytest.approx(0.5)
        assert got.lesion_hd95 == pytest.approx(BRATS2023_PENALTY / 2)
        assert (got.tp, got.fn) == (1, 1)


def test_a_prediction_touching_only_the_dilated_lesion_counts_for_it() -> None:
    ref = box(SHAPE, *CUBE_A)
    pred = box(SHAPE, (8, 10), (3, 7), (3, 7))  # one voxel of background between them
    got = lesionwise_brats2023(pred, ref, (1.0, 1.0, 1.0), dilation_iterations=2, volume_threshold_mm3=0)
    assert (got.tp, got.fp, got.fn) == (1, 0, 0) and got.lesion_dice == 0.0
    assert got.lesion_hd95 == pytest.approx(medpy_binary.hd95(pred, ref))
    short = lesionwise_brats2023(pred, ref, (1.0, 1.0, 1.0), dilation_iterations=1, volume_threshold_mm3=0)
    assert (short.tp, short.fp, short.fn) == (0, 1, 1)  # the dilated lesion reaches the gap, not beyond


def test_small_lesions_are_left_out_with_the_predictions_touching_them() -> None:
    ref = box(SHAPE, *CUBE_A) | box(SHAPE, (15, 16), (15, 17), (12, 13))  # 64 + 2 voxels
    pred = box(SHAPE, *CUBE_A) | box(SHAPE, (15, 16), (15, 16), (12, 13))
    spacing = (1.0, 1.0, 2.5)  # the small lesion is 5 mm³
    for p in (pred, box(SHAPE, *CUBE_A)):  # found or missed, it does not count
        got = lesionwise_brats2023(p, ref, spacing, dilation_iterations=1, volume_threshold_mm3=5.0)
        assert (got.lesion_dice, got.tp, got.fp, got.fn) == (1.0, 1, 0, 0)
        assert [s.scored for s in got.lesions] == [True, False]
    got = lesionwise_brats2023(pred, ref, spacing, dilation_iterations=1, volume_threshold_mm3=4.9)
    assert (got.tp, got.fp, got.fn) == (2, 0, 0) and got.lesion_dice < 1.0


def test_one_prediction_over_two_lesions() -> None:
    ref = box(SHAPE, (3, 6), (3, 6), (3, 6)) | box(SHAPE, (12, 15), (3, 6), (3, 6))
    pred = box(SHAPE, (3, 15), (3, 6), (3, 6))  # 108 voxels covering both (27 each)
    got = lesionwise_brats2023(pred, ref, (1.0, 1.0, 1.0), dilation_iterations=1, volume_threshold_mm3=0)
    assert (got.tp, got.fp, got.fn) == (2, 0, 0)  # it counts for both
    assert got.lesion_dice == pytest.approx(2 * 27 / (27 + 108))
    pan = lesionwise_panoptica(pred, ref, (1.0, 1.0, 1.0))
    assert (pan.tp, pan.fp, pan.fn) == (1, 0, 1)  # matched to one only
    assert pan.lesion_dice == pytest.approx(2 * 27 / (27 + 108)) and pan.f1 == pytest.approx(2 / 3)


def test_panoptica_matches_the_better_of_two_predictions() -> None:
    ref = box(SHAPE, (3, 9), (3, 9), (3, 9))  # 216 voxels
    small = box(SHAPE, (3, 5), (3, 9), (3, 9))  # 72 inside: Dice 144 / 288 = 0.5
    large = box(SHAPE, (6, 10), (3, 9), (3, 9))  # 144, 108 inside: Dice 216 / 360 = 0.6
    got = lesionwise_panoptica(small | large, ref, (1.0, 1.0, 1.0))
    assert (got.tp, got.fp, got.fn) == (1, 1, 0)  # the other overlapping one is a false positive
    assert got.lesion_dice == pytest.approx(0.6)
    assert got.lesion_hd95 == pytest.approx(medpy_binary.hd95(large, ref))
    high = lesionwise_panoptica(small | large, ref, (1.0, 1.0, 1.0), match_threshold=0.7)
    assert (high.tp, high.fp, high.fn, high.lesion_hd95) == (0, 2, 1, PANOPTICA_PENALTY)
    brats = lesionwise_brats2023(small | large, ref, (1.0, 1.0, 1.0), volume_threshold_mm3=0)
    assert (brats.tp, brats.fp, brats.fn) == (1, 0, 0)  # both count for the lesion
    assert brats.lesion_dice == pytest.approx(2 * 180 / (216 + 216))


# --- empty cases --------------------------------------------------------------------------------------------
EMPTY = np.zeros(SHAPE, bool)
LESION = box(SHAPE, *CUBE_A)


@pytest.mark.parametrize(
    ("pred", "ref", "brats", "pan"),
    [
        (EMPTY, EMPTY, (1.0, 0.0, 1.0, 0, 0, 0, 1.0), (NAN, NAN, NAN, 0, 0, 0, NAN)),
        (LESION, EMPTY, (0.0, 374.0, 0.0, 0, 1, 0, 0.0), (0.0, 373.0, 0.0, 0, 1, 0, 0.0)),
        (EMPTY, LESION, (0.0, 374.0, 0.0, 0, 0, 1, 0.0), (0.0, 373.0, 0.0, 0, 0, 1, 0.0)),
    ],
    ids=["both-empty", "ref-empty", "pred-empty"],
)
def test_empty_cases(pred: BoolArray, ref: BoolArray, brats: tuple, pan: tuple) -> None:
    got_b = lesionwise_brats2023(pred, ref, (1.0, 1.0, 1.0))
    got_p = lesionwise_panoptica(pred, ref, (1.0, 1.0, 1.0))
    for got, want in ((got_b, brats), (got_p, pan)):
        values = tuple(got.as_dict()[k] for k in LESIONWISE_NAMES)
        assert all((math.isnan(a) and math.isnan(b)) or a == b for a, b in zip(values, want, strict=True))


def test_only_small_lesions_and_nothing_predicted_is_perfect() -> None:
    ref = box(SHAPE, (3, 4), (3, 5), (3, 5))  # 4 voxels, under 50 mm³
    got = lesionwise_brats2023(EMPTY, ref, (1.0, 1.0, 1.0))
    assert (got.lesion_dice, got.lesion_hd95, got.tp, got.fn) == (1.0, 0.0, 0, 0)


def test_whole_mask_nsd() -> None:
    a = box(SHAPE, *CUBE_A)
    shifted = box(SHAPE, (4, 8), (3, 7), (3, 7))
    assert nsd(a, a, (1.0, 1.0, 1.0)) == 1.0
    want = brute_nsd(shifted, a, (1.0, 1.0, 1.0), 0.5)
    assert nsd(shifted, a, (1.0, 1.0, 1.0), tolerance_mm=0.5) == pytest.approx(want, **TOL)
    assert 0.0 < want < 1.0
    assert nsd(shifted, a, (1.0, 1.0, 1.0), tolerance_mm=1.0) == 1.0
    assert nsd(EMPTY, EMPTY, (1, 1, 1)) == 1.0 and math.isnan(nsd(EMPTY, EMPTY, (1, 1, 1), empty="nan"))
    assert nsd(a, EMPTY, (1, 1, 1)) == 0.0 and nsd(EMPTY, a, (1, 1, 1), empty="nan") == 0.0


# --- oracles on generated pairs -----------------------------------------------------------------------------
SPACINGS = [(1.0, 1.0, 1.0), (1.0, 0.9375, 2.5), (0.5, 1.2, 3.0)]
PAIR_SHAPE = (60, 52, 39)


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("seed", range(3))
def test_brats2023_matches_the_oracle(spacing: tuple[float, ...], seed: int) -> None:
    pred, ref = lesion_pair(PAIR_SHAPE, 14, seed)
    results = {}
    for k, thr in ((1, 2.0), (3, 50.0), (0, 10.0)):
        got = lesionwise_brats2023(pred, ref, spacing, dilation_iterations=k, volume_threshold_mm3=thr)
        want = brats2023(pred, ref, spacing, k, thr, 1.0)
        assert_matches(got, want)
        assert_per_lesion(got, want, "scored")
        results[k] = got
    # the pairs exercise every rule: detections, misses, false positives, merges, small lesions
    assert results[1].tp >= 3 and results[1].fp >= 1 and results[1].fn >= 1
    assert len(results[0].lesions) > len(results[1].lesions) > len(results[3].lesions)
    assert any(not s.scored for s in results[0].lesions)


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("seed", range(3))
def test_panoptica_matches_the_oracle(spacing: tuple[float, ...], seed: int) -> None:
    pred, ref = lesion_pair(PAIR_SHAPE, 14, seed)
    for thr in (1e-6, 0.3):
        got = lesionwise_panoptica(pred, ref, spacing, match_threshold=thr, nsd_tolerance_mm=1.5)
        want = panoptica(pred, ref, spacing, thr, 1.5)
        assert_matches(got, want)
        assert_per_lesion(got, want, "detected")
        assert got.tp >= 3 and got.fp >= 1 and got.fn >= 1


@pytest.mark.parametrize("fn", ["brats2023", "panoptica"])
def test_voxel_units_measure_hd95_in_voxel_steps(fn: str) -> None:
    pred, ref = lesion_pair(PAIR_SHAPE, 14, seed=7)
    spacing = (1.0, 0.9375, 2.5)
    ones = (1.0, 1.0, 1.0)
    if fn == "brats2023":
        got = lesionwise_brats2023(pred, ref, spacing, dilation_iterations=1, volume_threshold_mm3=2.0,
                                   hd95_units="voxel")
        want = brats2023(pred, ref, spacing, 1, 2.0, 1.0, hd_sp=ones)
    else:
        got = lesionwise_panoptica(pred, ref, spacing, hd95_units="voxel")
        want = panoptica(pred, ref, spacing, 1e-6, 1.0, hd_sp=ones)
    assert_matches(got, want)  # HD95 in voxel steps; volumes and NSD still in mm


def test_max_directed_hd95() -> None:
    pred, ref = lesion_pair(PAIR_SHAPE, 14, seed=3)
    pooled = lesionwise_panoptica(pred, ref, (1.0, 1.0, 2.0))
    directed = lesionwise_panoptica(pred, ref, (1.0, 1.0, 2.0), hd95_mode="max_directed")
    assert directed.lesion_hd95 >= pooled.lesion_hd95 and directed.lesion_dice == pooled.lesion_dice


# --- arguments ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dilation_iterations": -1}, "dilation_iterations"),
        ({"dilation_iterations": 1.5}, "dilation_iterations"),
        ({"volume_threshold_mm3": -1.0}, "volume_threshold_mm3"),
        ({"nsd_tolerance_mm": math.nan}, "nsd_tolerance_mm"),
        ({"hd95_mode": "mean"}, "hd95_mode"),
        ({"hd95_units": "cm"}, "hd95_units"),
    ],
)
def test_brats2023_rejects_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        lesionwise_brats2023(LESION, LESION, (1.0, 1.0, 1.0), **kwargs)


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="match_threshold"):
        lesionwise_panoptica(LESION, LESION, (1.0, 1.0, 1.0), match_threshold=0.0)
    with pytest.raises(ValueError, match="same shape"):
        lesionwise_panoptica(LESION, LESION[:-1], (1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="spacing"):
        lesionwise_brats2023(LESION, LESION, (1.0, 1.0))
    with pytest.raises(TypeError, match="pred"):
        lesionwise_brats2023(LESION.astype(float), LESION, (1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="tolerance_mm"):
        nsd(LESION, LESION, (1.0, 1.0, 1.0), tolerance_mm=-1.0)
