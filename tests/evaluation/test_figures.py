"""Slice and distribution figures: valid, reproducible PNGs; slice centre; orientation of the slices."""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from PIL import Image

from bratseg.evaluation.figures import (
    CASE_FIGSIZE,
    DISTRIBUTION_FIGSIZE,
    DPI,
    MODALITIES,
    _extent_mm,
    _slice,
    _window,
    case_figure,
    metric_distribution_figure,
    tumour_centre,
)
from bratseg.labels import BRATS_2021, EDEMA, ENHANCING, NECROSIS

REGIONS = BRATS_2021.region_names

SHAPE = (15, 13, 9)  # odd and all different, so a transposed axis would show
SPACING = (1.0, 1.25, 2.5)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _volumes(seed: int = 0) -> tuple[dict[str, npt.NDArray[np.float64]], npt.NDArray[np.uint8],
                                     npt.NDArray[np.uint8]]:
    """Four raw-scale modalities (zero outside an ellipsoidal brain), a reference and a shifted prediction."""
    rng = np.random.default_rng(seed)
    i, j, k = np.meshgrid(*[np.arange(n, dtype=float) for n in SHAPE], indexing="ij")
    centre = [(n - 1) / 2 for n in SHAPE]
    brain = sum(((a - c) / (0.45 * n)) ** 2 for a, c, n in zip((i, j, k), centre, SHAPE, strict=True)) < 1
    ref = np.zeros(SHAPE, dtype=np.uint8)
    ref[8:12, 6:10, 3:7] = EDEMA
    ref[9:11, 7:9, 4:6] = ENHANCING
    ref[9, 7, 4] = NECROSIS
    pred = np.roll(ref, 1, axis=0)
    scales = {"t1": 900.0, "t1ce": 1200.0, "t2": 300.0, "flair": 50.0}  # arbitrary, as in raw MRI
    images = {m: np.where(brain, s * (1 + 0.1 * rng.standard_normal(SHAPE)), 0.0) for m, s in scales.items()}
    images["flair"] += 40.0 * (ref > 0)
    return images, ref, pred


def _read_png(data: bytes) -> Image.Image:
    assert data.startswith(PNG_SIGNATURE)
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _cases(n: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"case_id": [f"case_{c:03d}" for c in range(n)]})
    for region in REGIONS:
        frame[f"dice_{region}"] = rng.uniform(0.2, 1.0, n)
        frame[f"hd95_{region}"] = rng.uniform(1.0, 40.0, n)
    return frame


# --- tumour_centre ------------------------------------------------------------------------------------------
def test_centre_is_the_reference_whole_tumour_centroid() -> None:
    ref = np.zeros(SHAPE, dtype=np.uint8)
    ref[2:5, 3:6, 1:4] = EDEMA  # centroid (3, 4, 2)
    ref[3, 4, 2] = ENHANCING
    pred = np.zeros(SHAPE, dtype=np.uint8)
    pred[10:13, 1:3, 6:9] = EDEMA
    centre = tumour_centre(ref, pred)
    assert centre == (3, 4, 2)
    assert all(type(c) is int for c in centre)


def test_centre_falls_back_to_prediction_then_volume_centre() -> None:
    pred = np.zeros(SHAPE, dtype=np.uint8)
    pred[10:13, 1:4, 6:9] = NECROSIS  # centroid (11, 2, 7)
    empty = np.zeros(SHAPE, dtype=np.uint8)
    assert tumour_centre(None, pred) == (11, 2, 7)
    assert tumour_centre(empty, pred) == (11, 2, 7)
    assert tumour_centre(empty, empty) == (7, 6, 4)
    assert tumour_centre(None, empty) == (7, 6, 4)


def test_centre_rounds_to_the_nearest_voxel() -> None:
    pred = np.zeros(SHAPE, dtype=np.uint8)
    pred[4, 4, 4] = pred[4, 4, 5] = pred[4, 4, 6] = pred[4, 5, 6] = EDEMA  # mean (4, 4.25, 5.25)
    assert tumour_centre(None, pred) == (4, 4, 5)


def test_centre_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="shape"):
        tumour_centre(np.zeros((3, 3, 3), np.uint8), np.zeros(SHAPE, np.uint8))


# --- orientation and windowing ------------------------------------------------------------------------------
def test_slices_put_the_named_axes_horizontal_and_vertical() -> None:
    """With ``origin="lower"`` row r is drawn r-th from the bottom: rows must run along A (axial) or S."""
    vol = np.arange(np.prod(SHAPE)).reshape(SHAPE)
    c = (4, 5, 6)
    axial, coronal, sagittal = (_slice(vol, v, c) for v in ("axial", "coronal", "sagittal"))
    assert axial.shape == (SHAPE[1], SHAPE[0]) and axial[7, 2] == vol[2, 7, 6]  # row j: A up; col i: R right
    assert coronal.shape == (SHAPE[2], SHAPE[0]) and coronal[3, 2] == vol[2, 5, 3]  # row = k (S up), col = i
    assert sagittal.shape == (SHAPE[2], SHAPE[1]) and sagittal[3, 8] == vol[4, 8, 3]  # row k; col j: A right


def test_extent_is_physical() -> None:
    assert _extent_mm("axial", SHAPE, SPACING) == (0.0, 15.0, 0.0, 16.25)
    assert _extent_mm("coronal", SHAPE, SPACING) == (0.0, 15.0, 0.0, 22.5)
    assert _extent_mm("sagittal", SHAPE, SPACING) == (0.0, 16.25, 0.0, 22.5)


def test_window_uses_brain_percentiles_and_survives_constant_images() -> None:
    image = np.zeros(SHAPE)
    brain = np.zeros(SHAPE, dtype=bool)
    brain[2:12, 2:10, 2:7] = True
    image[brain] = np.linspace(100.0, 200.0, int(brain.sum()))
    lo, hi = _window(image, brain)
    assert 100.0 < lo < 102.0 and 198.0 < hi < 200.0  # the zero background is ignored
    assert _window(np.zeros(SHAPE), np.zeros(SHAPE, dtype=bool)) == (0.0, 1.0)


# --- case_figure --------------------------------------------------------------------------------------------
def test_case_figure_is_a_valid_png_of_the_documented_size() -> None:
    images, ref, pred = _volumes()
    image = _read_png(case_figure(images, ref, pred, SPACING, "case_001 <Dice 0.8>"))
    assert image.size == (round(CASE_FIGSIZE[0] * DPI), round(CASE_FIGSIZE[1] * DPI))
    pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    assert pixels.std() > 10  # not blank
    # The overlay colours are present (WT yellow outline/fill): some strongly yellow pixels.
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    assert ((r > 200) & (g > 170) & (b < 120)).sum() > 20


def test_case_figure_is_deterministic() -> None:
    images, ref, pred = _volumes()
    assert case_figure(images, ref, pred, SPACING, "x") == case_figure(images, ref, pred, SPACING, "x")


def test_case_figure_without_reference_or_tumour() -> None:
    images, _, pred = _volumes()
    empty = np.zeros(SHAPE, dtype=np.uint8)
    for png in (case_figure(images, None, pred, SPACING, "no reference"),
                case_figure(images, empty, empty, (1.0, 1.0, 1.0), "no tumour"),
                case_figure({m: np.zeros(SHAPE) for m in MODALITIES}, None, empty, SPACING, "blank")):
        assert _read_png(png).size == (round(CASE_FIGSIZE[0] * DPI), round(CASE_FIGSIZE[1] * DPI))


def test_case_figure_rejects_bad_input() -> None:
    images, ref, pred = _volumes()
    with pytest.raises(ValueError, match="modalities"):
        case_figure({k: v for k, v in images.items() if k != "t1ce"}, ref, pred, SPACING, "x")
    with pytest.raises(ValueError, match="shape"):
        case_figure(images, ref[:-1], pred, SPACING, "x")
    with pytest.raises(ValueError, match="spacing"):
        case_figure(images, ref, pred, (1.0, 0.0, 1.0), "x")


# --- metric_distribution_figure -----------------------------------------------------------------------------
def test_distribution_figure_is_valid_and_deterministic() -> None:
    cases = _cases()
    png = metric_distribution_figure(cases)
    image = _read_png(png)
    assert image.size == (round(DISTRIBUTION_FIGSIZE[0] * DPI), round(DISTRIBUTION_FIGSIZE[1] * DPI))
    assert metric_distribution_figure(cases.copy()) == png


def test_distribution_figure_tolerates_missing_values_and_no_cases() -> None:
    cases = _cases()
    cases.loc[2, "dice_ET"] = np.nan
    cases["hd95_TC"] = np.nan  # a whole region undefined
    _read_png(metric_distribution_figure(cases))
    _read_png(metric_distribution_figure(cases.iloc[:0]))


def test_distribution_figure_needs_its_columns() -> None:
    with pytest.raises(ValueError, match="hd95_ET"):
        metric_distribution_figure(_cases().drop(columns=["hd95_ET"]))
