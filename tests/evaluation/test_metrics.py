"""Metrics against medpy (pooled HD95, Dice, IoU, sensitivity, specificity) and a brute-force reference."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from medpy.metric import binary as medpy_binary
from scipy import ndimage
from scipy.spatial import cKDTree

from bratseg.config import LesionwiseParams, MetricsParams
from bratseg.evaluation.metrics import (
    EMPTY_HD95_MM,
    METRIC_NAMES,
    case_metrics,
    dice,
    hd95,
    iou,
    region_metrics,
    sensitivity,
    specificity,
)
from bratseg.evaluation.surface import bounding_box, surface, surface_distances
from bratseg.labels import BRATS_2021, EDEMA, ENHANCING, NECROSIS

REGIONS = BRATS_2021.region_names

BoolArray = npt.NDArray[np.bool_]
medpy_surface_distances: Callable[..., npt.NDArray[np.float64]] = getattr(medpy_binary, "__surface_distances")

SPACINGS = [(1.0, 1.0, 1.0), (1.0, 0.8, 2.5), (0.5, 1.2, 3.0)]
TOL: dict[str, Any] = {"rel": 1e-9, "abs": 1e-9}
LESIONWISE = LesionwiseParams("gli", "brats2023", None, None, None, None)


def metrics_params(
    hd95: str = "pooled", empty: str = "brats", empty_hd95_mm: float = EMPTY_HD95_MM, hd95_units: str = "mm"
) -> MetricsParams:
    return MetricsParams(
        hd95=hd95, hd95_units=hd95_units, empty=empty, empty_hd95_mm=empty_hd95_mm, lesionwise=LESIONWISE
    )


# --- test data ----------------------------------------------------------------------------------------------
def tumour_classes(
    shape: tuple[int, int, int],
    centre: npt.NDArray[np.float64],
    radii: npt.NDArray[np.float64],
    noise: npt.NDArray[np.float64],
) -> npt.NDArray[np.uint8]:
    """An irregular ellipsoidal tumour: edema shell ⊇ enhancing rim ⊇ necrotic centre (WT ⊇ TC ⊇ ET)."""
    grids = np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij")
    d = np.sqrt(sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre, radii, strict=True))) + noise
    out = np.zeros(shape, dtype=np.uint8)
    out[d < 1.0] = EDEMA
    out[d < 0.6] = ENHANCING
    out[d < 0.35] = NECROSIS
    return out


def tumour_pair(
    shape: tuple[int, int, int], seed: int
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """A prediction and a reference: the prediction has extra boundary noise and a centre moved ~1 voxel."""
    rng = np.random.default_rng(seed)

    def smooth_noise(amp: float) -> npt.NDArray[np.float64]:
        n = ndimage.gaussian_filter(rng.normal(size=shape), 2.5)
        return np.asarray(amp * n / n.std(), dtype=np.float64)

    centre = np.array(shape) / 2 + rng.uniform(-2, 2, 3)
    radii = np.array(shape) * rng.uniform(0.22, 0.32, 3)
    base = smooth_noise(0.25)
    ref = tumour_classes(shape, centre, radii, base)
    pred = tumour_classes(shape, centre + rng.uniform(-1.5, 1.5, 3), radii, base + smooth_noise(0.08))
    return pred, ref


def random_pair(shape: tuple[int, ...], p: float, seed: int) -> tuple[BoolArray, BoolArray]:
    """Two non-empty random masks."""
    rng = np.random.default_rng(seed)
    a, b = rng.random(shape) < p, rng.random(shape) < p
    a.flat[rng.integers(a.size)] = True
    b.flat[rng.integers(b.size)] = True
    return a, b


def brute_directed(a: BoolArray, b: BoolArray, spacing: tuple[float, ...]) -> npt.NDArray[np.float64]:
    """Distances from every surface voxel of ``a`` to the nearest surface voxel of ``b``, by a k-d tree."""
    surf_a = a ^ ndimage.binary_erosion(a)
    surf_b = b ^ ndimage.binary_erosion(b)
    pa, pb = np.argwhere(surf_a) * np.array(spacing), np.argwhere(surf_b) * np.array(spacing)
    dist: npt.NDArray[np.float64] = cKDTree(pb).query(pa)[0]
    return dist


def brute_hd95(a: BoolArray, b: BoolArray, spacing: tuple[float, ...], mode: str) -> float:
    d1, d2 = brute_directed(a, b, spacing), brute_directed(b, a, spacing)
    if mode == "pooled":
        return float(np.percentile(np.concatenate((d1, d2)), 95))
    return float(max(np.percentile(d1, 95), np.percentile(d2, 95)))


# --- agreement with medpy -----------------------------------------------------------------------------------
RANDOM_CASES = [
    ((1, 1, 1), 0.5),
    ((5, 7, 3), 0.3),
    ((9, 11, 13), 0.05),
    ((9, 11, 13), 0.6),
    ((13, 6, 9), 0.2),
    ((2, 3), 0.5),
    ((17, 23), 0.1),
    ((31,), 0.2),
    ((3, 4, 5, 6), 0.3),
]


@pytest.mark.parametrize(("shape", "p"), RANDOM_CASES)
def test_random_masks_match_medpy(shape: tuple[int, ...], p: float) -> None:
    for seed in range(4):
        a, b = random_pair(shape, p, seed)
        spacing = tuple(np.random.default_rng(seed).uniform(0.5, 3.0, len(shape)))
        assert hd95(a, b, spacing) == pytest.approx(medpy_binary.hd95(a, b, spacing), **TOL)
        assert dice(a, b) == pytest.approx(medpy_binary.dc(a, b), **TOL)
        assert iou(a, b) == pytest.approx(medpy_binary.jc(a, b), **TOL)
        assert sensitivity(a, b) == pytest.approx(medpy_binary.sensitivity(a, b), **TOL)
        if (~b).any():
            assert specificity(a, b) == pytest.approx(medpy_binary.specificity(a, b), **TOL)


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("shape", [(40, 48, 31), (33, 27, 19)])
def test_tumour_regions_match_medpy(spacing: tuple[float, ...], shape: tuple[int, int, int]) -> None:
    pred_classes, ref_classes = tumour_pair(shape, seed=sum(shape))
    params = metrics_params(hd95="pooled", empty="brats", empty_hd95_mm=EMPTY_HD95_MM)
    result = case_metrics(pred_classes, ref_classes, spacing, params)
    wt_ref = ref_classes > 0
    assert 0.05 * wt_ref.size < wt_ref.sum() < 0.5 * wt_ref.size
    for region, classes in (("WT", (1, 2, 3)), ("TC", (1, 3)), ("ET", (3,))):
        p, r = np.isin(pred_classes, classes), np.isin(ref_classes, classes)
        got = result[region]
        assert 0.3 < got["dice"] < 1.0  # overlapping but not equal
        assert got["hd95"] == pytest.approx(medpy_binary.hd95(p, r, spacing), **TOL)
        assert got["dice"] == pytest.approx(medpy_binary.dc(p, r), **TOL)
        assert got["iou"] == pytest.approx(medpy_binary.jc(p, r), **TOL)
        assert got["sensitivity"] == pytest.approx(medpy_binary.sensitivity(p, r), **TOL)
        assert got["specificity"] == pytest.approx(medpy_binary.specificity(p, r), **TOL)


def test_masks_touching_the_array_border_match_medpy() -> None:
    a = np.zeros((12, 10, 7), dtype=bool)
    b = np.zeros_like(a)
    a[:5, :, :3] = True  # fills three faces of the array
    b[3:, 2:, :] = True
    b[-1, -1, -1] = False
    full = np.ones_like(a)
    for spacing in SPACINGS:
        for x, y in ((a, b), (a, full), (full, b), (full, full)):
            assert hd95(x, y, spacing) == pytest.approx(medpy_binary.hd95(x, y, spacing), **TOL)


@pytest.mark.parametrize("spacing", SPACINGS)
def test_box_surface_distances_equal_medpys_on_the_whole_volume(spacing: tuple[float, ...]) -> None:
    pred, ref = (c > 0 for c in tumour_pair((36, 30, 25), seed=7))
    to_ref, to_pred = surface_distances(pred, ref, spacing)
    # Bit for bit the values, in the same (C) order, of medpy's transform over the whole volume.
    np.testing.assert_array_equal(to_ref, medpy_surface_distances(pred, ref, spacing))
    np.testing.assert_array_equal(to_pred, medpy_surface_distances(ref, pred, spacing))


def test_hd95_does_not_depend_on_where_the_masks_lie() -> None:
    a, b = random_pair((6, 5, 4), 0.4, seed=3)
    spacing = (1.0, 0.8, 2.5)
    expected = medpy_binary.hd95(a, b, spacing)
    for offset in ((0, 0, 0), (10, 3, 0), (24, 25, 16), (12, 0, 16)):
        big_a, big_b = np.zeros((30, 30, 20), dtype=bool), np.zeros((30, 30, 20), dtype=bool)
        box = tuple(slice(o, o + n) for o, n in zip(offset, a.shape, strict=True))
        big_a[box], big_b[box] = a, b
        for mode in ("pooled", "max_directed"):
            small = hd95(a, b, spacing, mode=mode)
            assert hd95(big_a, big_b, spacing, mode=mode) == pytest.approx(small, **TOL)
        assert hd95(big_a, big_b, spacing) == pytest.approx(expected, **TOL)


# --- agreement with a brute-force reference -----------------------------------------------------------------
@pytest.mark.parametrize("mode", ["pooled", "max_directed"])
@pytest.mark.parametrize(("shape", "p"), RANDOM_CASES[:5])
def test_hd95_matches_brute_force_on_random_masks(mode: str, shape: tuple[int, ...], p: float) -> None:
    for seed in range(4):
        a, b = random_pair(shape, p, seed + 100)
        spacing = tuple(np.random.default_rng(seed).uniform(0.5, 3.0, len(shape)))
        assert hd95(a, b, spacing, mode=mode) == pytest.approx(brute_hd95(a, b, spacing, mode), **TOL)


@pytest.mark.parametrize("spacing", SPACINGS)
def test_max_directed_matches_brute_force_on_tumours(spacing: tuple[float, ...]) -> None:
    pred_classes, ref_classes = tumour_pair((31, 29, 23), seed=11)
    for classes in ((1, 2, 3), (1, 3), (3,)):
        p, r = np.isin(pred_classes, classes), np.isin(ref_classes, classes)
        got = hd95(p, r, spacing, mode="max_directed")
        assert got == pytest.approx(brute_hd95(p, r, spacing, "max_directed"), **TOL)


def test_hd95_is_symmetric_and_zero_for_identical_masks() -> None:
    pred, ref = (c > 0 for c in tumour_pair((25, 22, 19), seed=5))
    for mode in ("pooled", "max_directed"):
        assert hd95(pred, ref, (1.0, 0.8, 2.5), mode=mode) == hd95(ref, pred, (1.0, 0.8, 2.5), mode=mode)
        assert hd95(ref, ref, (1.0, 0.8, 2.5), mode=mode) == 0.0


# --- surfaces and boxes -------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1,), (7,), (4, 9), (6, 5, 7), (3, 4, 3, 5)])
def test_surface_is_mask_xor_its_erosion(shape: tuple[int, ...]) -> None:
    for seed in range(3):
        mask = np.random.default_rng(seed).random(shape) < 0.7
        np.testing.assert_array_equal(surface(mask), mask ^ ndimage.binary_erosion(mask))


def test_bounding_box() -> None:
    mask = np.zeros((8, 9, 10), dtype=bool)
    assert bounding_box(mask) is None
    mask[2, 7, 3] = mask[5, 1, 3] = True
    assert bounding_box(mask) == (slice(2, 6), slice(1, 8), slice(3, 4))
    assert bounding_box(np.ones(5, dtype=bool)) == (slice(0, 5),)


def test_surface_distances_need_two_non_empty_masks() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        surface_distances(np.zeros((3, 3), bool), np.ones((3, 3), bool), (1.0, 1.0))


# --- empty masks --------------------------------------------------------------------------------------------
NAN = math.nan
E = 373.13
# (pred non-empty, ref non-empty) -> expected {metric: (brats, nan)}
EMPTY_CASES: dict[tuple[bool, bool], dict[str, tuple[float, float]]] = {
    (False, False): {"dice": (1, NAN), "iou": (1, NAN), "hd95": (0, NAN), "sensitivity": (1, NAN),
                     "specificity": (1, 1)},
    (False, True): {"dice": (0, 0), "iou": (0, 0), "hd95": (E, NAN), "sensitivity": (0, 0),
                    "specificity": (1, 1)},
    (True, False): {"dice": (0, 0), "iou": (0, 0), "hd95": (E, NAN), "sensitivity": (1, NAN),
                    "specificity": (0.75, 0.75)},
}  # fmt: skip


def _same(got: float, expected: float) -> bool:
    return (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("policy", ["brats", "nan"])
@pytest.mark.parametrize("case", list(EMPTY_CASES))
def test_empty_masks(case: tuple[bool, bool], policy: str) -> None:
    pred, ref = np.zeros((4, 5, 6), dtype=bool), np.zeros((4, 5, 6), dtype=bool)
    pred[:1, :, :] = case[0]  # 30 of 120 voxels (ref empty: 90 TN, 30 FP -> specificity 0.75)
    ref[1:2, 1:3, 1:4] = case[1]
    expected = {k: v[0 if policy == "brats" else 1] for k, v in EMPTY_CASES[case].items()}
    got = {
        "dice": dice(pred, ref, empty=policy),
        "iou": iou(pred, ref, empty=policy),
        "hd95": hd95(pred, ref, (1.0, 0.8, 2.5), empty=policy),
        "sensitivity": sensitivity(pred, ref, empty=policy),
        "specificity": specificity(pred, ref, empty=policy),
    }
    for name, value in got.items():
        assert _same(value, expected[name]), (name, value, expected[name])
    table = region_metrics(pred, ref, (1.0, 0.8, 2.5), empty=policy)
    for name, value in got.items():
        assert _same(table[name], value), name


@pytest.mark.parametrize(("policy", "expected"), [("brats", 1.0), ("nan", NAN)])
def test_specificity_without_negatives(policy: str, expected: float) -> None:
    ref = np.ones((3, 4), dtype=bool)
    pred = np.zeros((3, 4), dtype=bool)
    pred[1, 1] = True
    assert _same(specificity(pred, ref, empty=policy), expected)
    assert sensitivity(pred, ref, empty=policy) == pytest.approx(1 / 12)


def test_empty_hd95_value_is_configurable() -> None:
    pred, ref = np.zeros((5, 5), dtype=bool), np.ones((5, 5), dtype=bool)
    assert hd95(pred, ref, (1.0, 1.0)) == EMPTY_HD95_MM == 373.13
    assert hd95(pred, ref, (1.0, 1.0), empty_value_mm=100.0) == 100.0
    assert region_metrics(ref, pred, (1.0, 1.0), empty_hd95_mm=50)["hd95"] == 50.0


# --- inputs -------------------------------------------------------------------------------------------------
def test_integer_masks_count_nonzero_as_foreground() -> None:
    a, b = random_pair((7, 8, 9), 0.3, seed=1)
    ia = np.where(a, np.int16(-3), np.int16(0))
    ib = b.astype(np.uint8) * 4
    assert region_metrics(ia, ib, (1.0, 0.8, 2.5)) == region_metrics(a, b, (1.0, 0.8, 2.5))
    assert dice(ia, ib) == dice(a, b)


def test_shape_mismatch_names_both_shapes() -> None:
    a, b = np.zeros((4, 5, 6), bool), np.zeros((4, 5, 7), bool)
    for call in (
        lambda: dice(a, b),
        lambda: iou(a, b),
        lambda: sensitivity(a, b),
        lambda: specificity(a, b),
        lambda: hd95(a, b, (1, 1, 1)),
        lambda: region_metrics(a, b, (1, 1, 1)),
    ):
        with pytest.raises(ValueError, match=r"\(4, 5, 6\).*\(4, 5, 7\)"):
            call()


BAD_SPACINGS = [
    (1.0, 1.0),
    (1.0, 1.0, 1.0, 1.0),
    (1.0, 0.0, 1.0),
    (1.0, -1.0, 1.0),
    (1.0, math.nan, 1.0),
    (1.0, math.inf, 1.0),
    1.0,
    ("a", 1, 1),
]


@pytest.mark.parametrize("spacing", BAD_SPACINGS)
def test_bad_spacing(spacing: Any) -> None:
    a = np.ones((3, 3, 3), dtype=bool)
    with pytest.raises(ValueError, match="spacing"):
        hd95(a, a, spacing)
    with pytest.raises(ValueError, match="spacing"):
        region_metrics(a, a, spacing)


def test_unknown_options_name_the_argument() -> None:
    a = np.ones((3, 3), dtype=bool)
    with pytest.raises(ValueError, match="mode"):
        hd95(a, a, (1, 1), mode="mean")
    with pytest.raises(ValueError, match="hd95_mode"):
        region_metrics(a, a, (1, 1), hd95_mode="max")
    for fn in (dice, iou, sensitivity, specificity):
        with pytest.raises(ValueError, match="empty"):
            fn(a, a, empty="zero")
    with pytest.raises(ValueError, match="empty"):
        hd95(a, a, (1, 1), empty="zero")
    with pytest.raises(ValueError, match="empty_value_mm"):
        hd95(a, a, (1, 1), empty_value_mm=-1.0)
    with pytest.raises(ValueError, match="empty_hd95_mm"):
        region_metrics(a, a, (1, 1), empty_hd95_mm=math.nan)


def test_non_integer_masks_are_rejected() -> None:
    with pytest.raises(TypeError, match="pred"):
        dice(np.ones((2, 2)), np.ones((2, 2), dtype=bool))
    with pytest.raises(ValueError, match="axis"):
        dice(np.bool_(True), np.bool_(True))


# --- regions ------------------------------------------------------------------------------------------------
def test_region_metrics_keys_and_volumes() -> None:
    a, b = random_pair((10, 10, 10), 0.3, seed=2)
    out = region_metrics(a, b, (1.0, 0.8, 2.5))
    assert tuple(out) == METRIC_NAMES
    assert out["pred_ml"] == pytest.approx(a.sum() * 2.0 / 1000)
    assert out["ref_ml"] == pytest.approx(b.sum() * 2.0 / 1000)
    assert all(isinstance(v, float) for v in out.values())


def test_swapping_necrosis_and_enhancing_only_hurts_et() -> None:
    _, ref = tumour_pair((30, 32, 28), seed=4)
    assert {NECROSIS, ENHANCING} <= set(np.unique(ref).tolist())
    swapped = ref.copy()
    swapped[ref == NECROSIS], swapped[ref == ENHANCING] = ENHANCING, NECROSIS
    params = MetricsParams.from_dict(
        {"hd95": "max_directed", "hd95_units": "mm", "empty": "brats", "empty_hd95_mm": 373.13,
         "lesionwise": LESIONWISE.to_dict()}
    )
    out = case_metrics(swapped, ref, (1.0, 1.0, 1.0), params)
    assert list(out) == list(REGIONS)
    for region in ("WT", "TC"):
        assert out[region]["dice"] == 1.0 and out[region]["hd95"] == 0.0
    assert out["ET"]["dice"] < 0.5 and out["ET"]["hd95"] > 0
    same = case_metrics(ref, ref, (1.0, 1.0, 1.0), params)
    assert all(same[r]["dice"] == 1.0 and same[r]["hd95"] == 0.0 for r in REGIONS)


@pytest.mark.parametrize(("policy", "dice_et", "hd95_et"), [("brats", 1.0, 0.0), ("nan", NAN, NAN)])
def test_case_without_enhancing_tumour(policy: str, dice_et: float, hd95_et: float) -> None:
    _, ref = tumour_pair((20, 21, 22), seed=9)
    ref[ref == ENHANCING] = NECROSIS
    params = metrics_params(hd95="pooled", empty=policy, empty_hd95_mm=373.13)
    out = case_metrics(ref, ref, (1.0, 1.0, 1.0), params)
    assert out["WT"]["dice"] == 1.0
    assert _same(out["ET"]["dice"], dice_et) and _same(out["ET"]["hd95"], hd95_et)
    pred = ref.copy()
    pred[10, 10, 10] = ENHANCING  # a false-positive ET voxel
    out = case_metrics(pred, ref, (1.0, 1.0, 1.0), params)
    assert out["ET"]["dice"] == 0.0
    assert _same(out["ET"]["hd95"], 373.13 if policy == "brats" else NAN)


def test_case_metrics_rejects_bad_volumes() -> None:
    params = metrics_params(hd95="pooled", empty="brats", empty_hd95_mm=373.13)
    a = np.zeros((4, 4, 4), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"\(4, 4, 4\).*\(4, 4, 5\)"):
        case_metrics(a, np.zeros((4, 4, 5), dtype=np.uint8), (1, 1, 1), params)
    with pytest.raises(ValueError, match=r"classes 0, 1, 2, 3 of label set brats2021"):
        case_metrics(a, np.full((4, 4, 4), 4, dtype=np.uint8), (1, 1, 1), params)
    with pytest.raises(TypeError, match="integer"):
        case_metrics(a.astype(float), a, (1, 1, 1), params)
    with pytest.raises(ValueError, match="hd95_mode"):
        case_metrics(a, a, (1, 1, 1), metrics_params(hd95="mean", empty="brats", empty_hd95_mm=1.0))


def test_hd95_in_voxel_units_ignores_the_spacing() -> None:
    pred_classes, ref_classes = tumour_pair((23, 21, 19), seed=5)
    spacing = (1.0, 0.8, 2.5)
    mm = case_metrics(pred_classes, ref_classes, spacing, metrics_params())
    vox = case_metrics(pred_classes, ref_classes, spacing, metrics_params(hd95_units="voxel"))
    for region, classes in (("WT", (1, 2, 3)), ("ET", (3,))):
        p, r = np.isin(pred_classes, classes), np.isin(ref_classes, classes)
        assert vox[region]["hd95"] == pytest.approx(medpy_binary.hd95(p, r, (1, 1, 1)), **TOL)
        assert mm[region]["hd95"] == pytest.approx(medpy_binary.hd95(p, r, spacing), **TOL)
        assert vox[region]["hd95"] != mm[region]["hd95"]
        assert vox[region]["ref_ml"] == mm[region]["ref_ml"]  # volumes keep the spacing
    assert hd95(pred_classes > 0, ref_classes > 0, spacing, units="voxel") == vox["WT"]["hd95"]
    with pytest.raises(ValueError, match="hd95_units"):
        hd95(pred_classes > 0, ref_classes > 0, spacing, units="cm")
