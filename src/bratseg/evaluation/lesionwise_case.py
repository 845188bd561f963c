"""Lesion-wise challenge presets, the whole-region NSD, and the scores of every region of one case.

Presets (``params.yaml: metrics.lesionwise.preset``; a non-null key beside it overrides its value):

======  ==========  ==========  ==================================  =========  =========
preset  dilation    volume      regions                             match      NSD tol.
======  ==========  ==========  ==================================  =========  =========
gli     3           50 mm³      WT, TC, ET, NETC, SNFH, RC          1e-6       1 mm
men     1           50 mm³      WT, TC, ET                          1e-6       1 mm
met     1           2 mm³       WT, TC, ET, RC                      1e-6       1 mm
ped     3           50 mm³      WT, TC, ET, NETC, CC, ED            1e-6       1 mm
ssa     3           50 mm³      WT, TC, ET                          1e-6       1 mm
======  ==========  ==========  ==================================  =========  =========

Sources: dilation iterations and volume thresholds are ``get_challenge_parameters`` of the BraTS 2023
reference code (github.com/rachitsaluja/BraTS-2023-Metrics,
``brats_2023_metrics/surface_distance/brats_metrics.py``), kept by BraTS 2024
(rachitsaluja/BraTS-2024-Metrics). Regions, the match threshold (``MaxBipartiteMatching`` on DSC, 1e-6) and
the groups are the bundled configs of ``brats-evaluation`` (``config_gli.yaml``, ``config_MenPre.yaml``,
``config_mets.yaml``, ``config_ped.yaml``; SSA: the 2023 regions WT, TC, ET). The NSD tolerance is
panoptica's default, the smallest voxel spacing, i.e. 1 mm on the 1 mm BraTS grid.

:func:`case_lesionwise` scores the preset's regions that :mod:`bratseg.labels` defines (today WT, TC and ET;
RC and the single-class regions once the label table has them), from the same class volumes as
:func:`bratseg.evaluation.metrics.case_metrics`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy.typing as npt

from bratseg.config import MetricsParams
from bratseg.errors import check_choice
from bratseg.evaluation.lesions import crop_box
from bratseg.evaluation.lesionwise import (
    LESIONWISE_NAMES,
    MATCHING_MODES,
    check_number,
    lesionwise_brats2023,
    lesionwise_panoptica,
)
from bratseg.evaluation.metrics import (
    EMPTY_POLICIES,
    ArrayLike,
    as_mask_pair,
    as_spacing,
    check_class_volumes,
)
from bratseg.evaluation.surface import surface_dice, surface_distances
from bratseg.labels import BRATS_2021, LabelSet

#: Keys of each region's scores from :func:`case_lesionwise`.
CASE_LESIONWISE_NAMES: tuple[str, ...] = ("nsd", *LESIONWISE_NAMES)


@dataclass(frozen=True)
class LesionwisePreset:
    """The settings one BraTS challenge scores lesions with."""

    name: str
    challenge: str
    dilation_iterations: int
    volume_threshold_mm3: float
    regions: tuple[str, ...]
    match_threshold: float = 1e-6
    nsd_tolerance_mm: float = 1.0


PRESETS: dict[str, LesionwisePreset] = {
    p.name: p
    for p in (
        LesionwisePreset("gli", "BraTS-GLI", 3, 50.0, ("WT", "TC", "ET", "NETC", "SNFH", "RC")),
        LesionwisePreset("men", "BraTS-MEN", 1, 50.0, ("WT", "TC", "ET")),
        LesionwisePreset("met", "BraTS-MET", 1, 2.0, ("WT", "TC", "ET", "RC")),
        LesionwisePreset("ped", "BraTS-PED", 3, 50.0, ("WT", "TC", "ET", "NETC", "CC", "ED")),
        LesionwisePreset("ssa", "BraTS-SSA", 3, 50.0, ("WT", "TC", "ET")),
    )
}


@dataclass(frozen=True)
class LesionwiseSettings:
    """Everything :func:`region_lesionwise` needs, resolved from a preset and its overrides."""

    matching: str
    dilation_iterations: int
    volume_threshold_mm3: float
    match_threshold: float
    nsd_tolerance_mm: float
    hd95_mode: str
    hd95_units: str
    empty: str
    regions: tuple[str, ...]


def lesionwise_settings(params: MetricsParams) -> LesionwiseSettings:
    """The preset of ``params.lesionwise`` with its non-null overrides applied.

    Raises:
        ValueError: unknown ``metrics.lesionwise.preset`` or ``metrics.lesionwise.matching``.
    """
    lw = params.lesionwise
    check_choice("metrics.lesionwise.preset", lw.preset, tuple(PRESETS))
    check_choice("metrics.lesionwise.matching", lw.matching, MATCHING_MODES)
    preset = PRESETS[lw.preset]

    def pick(value: float | None, default: float) -> float:
        return default if value is None else value

    return LesionwiseSettings(
        matching=lw.matching,
        dilation_iterations=int(pick(lw.dilation_iterations, preset.dilation_iterations)),
        volume_threshold_mm3=float(pick(lw.volume_threshold_mm3, preset.volume_threshold_mm3)),
        match_threshold=float(pick(lw.match_threshold, preset.match_threshold)),
        nsd_tolerance_mm=float(pick(lw.nsd_tolerance_mm, preset.nsd_tolerance_mm)),
        hd95_mode=params.hd95,
        hd95_units=params.hd95_units,
        empty=params.empty,
        regions=preset.regions,
    )


def nsd(
    pred: ArrayLike,
    ref: ArrayLike,
    spacing: Sequence[float],
    *,
    tolerance_mm: float = 1.0,
    empty: str = "brats",
) -> float:
    """Normalised surface Dice of two whole masks at ``tolerance_mm`` (see :func:`surface.surface_dice`).

    Empty masks: both empty gives 1 (``empty="brats"``) or NaN (``"nan"``); exactly one empty gives 0.

    Raises:
        ValueError: shapes differ; bad ``spacing``; ``tolerance_mm`` < 0; unknown ``empty``.
    """
    check_choice("empty", empty, EMPTY_POLICIES)
    check_number("tolerance_mm", tolerance_mm, 0.0)
    p, r = as_mask_pair(pred, ref)
    sp = as_spacing(spacing, p.ndim)
    has_p, has_r = bool(p.any()), bool(r.any())
    if not (has_p and has_r):
        return 0.0 if has_p != has_r else (1.0 if empty == "brats" else math.nan)
    return surface_dice(*surface_distances(p, r, sp), tolerance_mm)


def region_lesionwise(
    pred: ArrayLike, ref: ArrayLike, spacing: Sequence[float], settings: LesionwiseSettings
) -> dict[str, float]:
    """Whole-region NSD and the lesion-wise scores of one region.

    Args:
        pred: ``(*spatial)`` boolean or integer mask of the prediction.
        ref: ``(*spatial)`` mask of the reference, same shape.
        spacing: voxel size in mm, one positive entry per axis.
        settings: see :func:`lesionwise_settings`.

    Returns:
        ``{"nsd", "lesion_dice", "lesion_hd95", "lesion_nsd", "tp", "fp", "fn", "f1"}``
        (:data:`CASE_LESIONWISE_NAMES`); ``nsd`` follows the ``metrics.empty`` policy.
    """
    if settings.matching == "brats2023":
        result = lesionwise_brats2023(
            pred,
            ref,
            spacing,
            dilation_iterations=settings.dilation_iterations,
            volume_threshold_mm3=settings.volume_threshold_mm3,
            nsd_tolerance_mm=settings.nsd_tolerance_mm,
            hd95_mode=settings.hd95_mode,
            hd95_units=settings.hd95_units,
        )
    else:
        check_choice("matching", settings.matching, MATCHING_MODES)
        result = lesionwise_panoptica(
            pred,
            ref,
            spacing,
            match_threshold=settings.match_threshold,
            nsd_tolerance_mm=settings.nsd_tolerance_mm,
            hd95_mode=settings.hd95_mode,
            hd95_units=settings.hd95_units,
        )
    whole = nsd(pred, ref, spacing, tolerance_mm=settings.nsd_tolerance_mm, empty=settings.empty)
    return {"nsd": whole, **result.as_dict()}


def case_lesionwise(
    pred_classes: npt.ArrayLike,
    ref_classes: npt.ArrayLike,
    spacing: Sequence[float],
    params: MetricsParams,
    labels: LabelSet = BRATS_2021,
) -> dict[str, dict[str, float]]:
    """Lesion-wise scores of every region of one case that both the preset and the label set ``labels`` have.

    Args:
        pred_classes: ``(*spatial)`` integer volume of canonical classes (see :mod:`bratseg.labels`).
        ref_classes: ``(*spatial)`` reference classes, same shape.
        spacing: voxel size in mm, one positive entry per axis.
        params: the ``metrics`` section (``lesionwise``, ``hd95``, ``hd95_units``, ``empty``).

    Returns:
        ``{region: {...}}`` in the order of ``labels.regions``, each as :func:`region_lesionwise`
        returns; merge it with :func:`bratseg.evaluation.metrics.case_metrics` for the full row.

    Raises:
        ValueError: shapes differ, a volume holds a value outside the classes 0..3, or a bad param.
    """
    settings = lesionwise_settings(params)
    pred, ref = check_class_volumes(pred_classes, ref_classes, labels)
    # Every region lies inside the tumour (WT) of either volume, and none of these scores counts background
    # voxels, so the whole case is cropped once (see bratseg.evaluation.lesions for why crops are exact).
    box = crop_box((pred > 0) | (ref > 0), settings.dilation_iterations) or (slice(0, 1),) * pred.ndim
    wanted = [r for r in labels.region_names if r in settings.regions]
    pred_regions, ref_regions = labels.region_masks(pred[box], wanted), labels.region_masks(ref[box], wanted)
    return {
        region: region_lesionwise(pred_regions[i], ref_regions[i], spacing, settings)
        for i, region in enumerate(wanted)
    }
