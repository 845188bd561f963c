"""Presets, overrides and the per-case entry point of the lesion-wise scores."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bratseg.config import LesionwiseParams, MetricsParams
from bratseg.evaluation.lesionwise import lesionwise_brats2023, lesionwise_panoptica
from bratseg.evaluation.lesionwise_case import (
    CASE_LESIONWISE_NAMES,
    PRESETS,
    case_lesionwise,
    lesionwise_settings,
    nsd,
)
from bratseg.labels import BRATS_2021, EDEMA, ENHANCING, NECROSIS

REGIONS = BRATS_2021.region_names


def params(
    preset: str = "gli",
    matching: str = "brats2023",
    overrides: tuple[int | None, float | None, float | None, float | None] = (None, None, None, None),
    empty: str = "brats",
    hd95_units: str = "mm",
) -> MetricsParams:
    return MetricsParams(
        hd95="pooled",
        hd95_units=hd95_units,
        empty=empty,
        empty_hd95_mm=373.13,
        lesionwise=LesionwiseParams(preset, matching, *overrides),
    )


def test_presets_are_the_official_values() -> None:
    got = {name: (p.dilation_iterations, p.volume_threshold_mm3) for name, p in PRESETS.items()}
    assert got == {"gli": (3, 50.0), "men": (1, 50.0), "met": (1, 2.0), "ped": (3, 50.0), "ssa": (3, 50.0)}
    assert "RC" in PRESETS["gli"].regions and "RC" in PRESETS["met"].regions
    assert "RC" not in PRESETS["men"].regions
    assert all({"WT", "TC", "ET"} <= set(p.regions) for p in PRESETS.values())
    assert all(p.match_threshold == 1e-6 and p.nsd_tolerance_mm == 1.0 for p in PRESETS.values())


def test_overrides_replace_the_preset_values() -> None:
    s = lesionwise_settings(params("met"))
    assert (s.dilation_iterations, s.volume_threshold_mm3, s.match_threshold, s.nsd_tolerance_mm) == (
        1, 2.0, 1e-6, 1.0,
    )
    s = lesionwise_settings(params("met", "panoptica", (0, 10, 0.5, 2)))
    assert (s.matching, s.dilation_iterations, s.volume_threshold_mm3, s.match_threshold) == (
        "panoptica", 0, 10.0, 0.5,
    )
    assert s.nsd_tolerance_mm == 2.0 and isinstance(s.volume_threshold_mm3, float)
    with pytest.raises(ValueError, match=r"metrics\.lesionwise\.preset"):
        lesionwise_settings(params("xyz"))
    with pytest.raises(ValueError, match=r"metrics\.lesionwise\.matching"):
        lesionwise_settings(params("gli", "hungarian"))


def metastases(shape: tuple[int, int, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class volumes with several small tumours (edema shell, enhancing rim, necrotic core)."""
    rng = np.random.default_rng(seed)
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    out = []
    for shift in (0, 1):
        vol = np.zeros(shape, np.uint8)
        for c in ((8, 8, 8), (20, 22, 9), (9, 22, 16), (22, 8, 17)):
            centre = (c[0] + shift, c[1], c[2])
            d = np.sqrt(sum((g - x) ** 2 for g, x in zip(grids, centre, strict=True)))
            vol[d < 5.0] = EDEMA
            vol[d < 3.2] = ENHANCING
            vol[d < 1.6] = NECROSIS
        out.append(vol)
    pred, ref = out
    pred[(slice(25, 27),) * 3] = ENHANCING  # a false positive
    pred[pred == 0] = np.where(rng.random(int((pred == 0).sum())) < 0.0005, EDEMA, 0)  # specks
    return pred, ref


@pytest.mark.parametrize("matching", ["brats2023", "panoptica"])
def test_case_scores_every_known_region_of_the_preset(matching: str) -> None:
    pred, ref = metastases((31, 30, 26), seed=1)
    spacing = (1.0, 1.0, 1.5)
    p = params("met", matching)
    out = case_lesionwise(pred, ref, spacing, p)
    assert list(out) == list(REGIONS)  # RC is in the preset but not in the label table yet
    pr, rr = BRATS_2021.region_masks(pred), BRATS_2021.region_masks(ref)
    for i, region in enumerate(REGIONS):
        assert tuple(out[region]) == CASE_LESIONWISE_NAMES
        if matching == "brats2023":
            want = lesionwise_brats2023(pr[i], rr[i], spacing, dilation_iterations=1, volume_threshold_mm3=2)
        else:
            want = lesionwise_panoptica(pr[i], rr[i], spacing)
        assert {k: out[region][k] for k in want.as_dict()} == want.as_dict()
        assert out[region]["nsd"] == nsd(pr[i], rr[i], spacing, tolerance_mm=1.0)
        assert out[region]["tp"] >= 3 and out[region]["fp"] >= 1
    men = case_lesionwise(pred, ref, spacing, params("men", matching))
    assert list(men) == list(REGIONS)


def test_case_without_enhancing_tumour_follows_the_tables() -> None:
    _, ref = metastases((31, 30, 26), seed=2)
    ref[ref == ENHANCING] = NECROSIS
    brats = case_lesionwise(ref, ref, (1, 1, 1), params())
    assert (brats["ET"]["lesion_dice"], brats["ET"]["lesion_hd95"], brats["ET"]["nsd"]) == (1.0, 0.0, 1.0)
    pan = case_lesionwise(ref, ref, (1, 1, 1), params(matching="panoptica", empty="nan"))
    assert all(math.isnan(pan["ET"][k]) for k in ("nsd", "lesion_dice", "lesion_hd95", "lesion_nsd", "f1"))
    assert pan["WT"]["lesion_dice"] == 1.0


def test_case_rejects_bad_volumes() -> None:
    a = np.zeros((4, 4, 4), np.uint8)
    with pytest.raises(ValueError, match="same shape"):
        case_lesionwise(a, np.zeros((4, 4, 5), np.uint8), (1, 1, 1), params())
    with pytest.raises(ValueError, match=r"classes 0, 1, 2, 3 of label set brats2021"):
        case_lesionwise(a, np.full((4, 4, 4), 4, np.uint8), (1, 1, 1), params())
    with pytest.raises(ValueError, match="hd95_units"):
        case_lesionwise(a, a, (1, 1, 1), params(hd95_units="cm"))
