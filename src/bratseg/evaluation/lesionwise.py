"""Lesion-wise scores of one binary region: the BraTS 2023 definition, and panoptica's one-to-one matching.

All functions are pure: masks in, a :class:`LesionwiseResult` out. ``pred`` and ``ref`` are boolean or
integer masks of one shape (nonzero = foreground), ``spacing`` the voxel size in mm. Components are
26-connected in 3-D (``ndim``-connected in general). Two definitions (``metrics.lesionwise.matching``):

``"brats2023"``, the ranking metric of the BraTS 2023 and 2024 challenges (the organisers' reference code,
github.com/rachitsaluja/BraTS-2023-Metrics, and the challenge papers, e.g. Moawad et al. 2023, BraTS-MET):

1. *Lesions.* The reference is dilated ``k`` times with the 18-neighbourhood (``dilation_iterations``); each
   26-connected blob of the dilated mask is one lesion, made of the reference voxels inside it, so components
   closer than the dilation reaches are one lesion.
2. *Detections.* Every predicted component touching a lesion's blob counts for that lesion (one component
   may count for several). The lesion's Dice, HD95 and NSD are between the lesion and the union of those
   components. A lesion with none is *missed*: Dice 0, HD95 374, NSD 0.
3. *False positives.* Predicted components touching no blob (of any lesion, scored or not).
4. *Small lesions.* Lesions of volume ``<= volume_threshold_mm3`` (voxel count × voxel volume) are left out of
   the scores; predictions touching only them are not false positives either.
5. *Per case*, with ``L`` scored lesions and ``F`` false positives: lesion Dice ``= Σ Dice / (L + F)``, lesion
   HD95 ``= (Σ HD95 + 374 F) / (L + F)``, lesion NSD ``= Σ NSD / (L + F)``. ``tp`` / ``fn``: scored lesions
   detected / missed; ``fp = F``; ``f1 = 2 tp / (2 tp + fp + fn)``.

``"panoptica"``, as the current official ``brats-evaluation`` package scores (its bundled configs: panoptica's
``ConnectedComponentsInstanceApproximator``, ``MaxBipartiteMatching`` on ``DSC`` with threshold 1e-6, not on
IoU, panoptica's default; instance metrics DSC, NSD, HD95):

1. Reference and predicted instances are the components (no dilation, no volume threshold).
2. A one-to-one matching maximising the summed Dice over pairs of Dice ``>= match_threshold``
   (:func:`bratseg.evaluation.lesions.match_one_to_one`).
3. ``tp`` = matched pairs, ``fp`` / ``fn`` = unmatched predicted / reference components,
   ``f1 = tp / (tp + (fp + fn) / 2)`` (panoptica's ``rq``).
4. Lesion Dice, HD95 and NSD are the means over the matched pairs (panoptica's ``sq_dsc``, ``sq_hd95``,
   ``sq_nsd``); unmatched components enter only through ``fp``, ``fn`` and ``f1``.

A lesion's HD95 is :func:`bratseg.evaluation.metrics.hd95` of the pair (``hd95_mode``: ``pooled`` = medpy and
panoptica, ``max_directed`` = MONAI; ``hd95_units``: ``mm`` or ``voxel``). The 2023 reference code measures
HD95 with DeepMind's ``surface-distance`` instead (surface elements on voxel corners, weighted by area, larger
directed percentile): Dice, detections, false positives and the aggregation are the same, the lesion HD95
differs (``benchmarks/bench_lesionwise.py``: median gap 0.15 mm, mean 0.6 mm, up to tens of mm on a few
lesions whose surfaces are far apart). NSD is :func:`bratseg.evaluation.surface.surface_dice` at
``nsd_tolerance_mm``, always in mm.

Empty cases. ``brats2023`` (the reference code's rules; ``L`` and ``F`` as above):

==============================================  ==========  ==========  ==========  ====
case                                            Dice        HD95        NSD         F1
==============================================  ==========  ==========  ==========  ====
``L + F = 0`` (both empty, or only small         1           0           1           1
lesions and nothing else predicted)
``L = 0, F > 0`` (e.g. ``ref`` empty)           0           374         0           0
``pred`` empty, ``L > 0``                       0           374         0           0
==============================================  ==========  ==========  ==========  ====

``panoptica`` (the ``brats-evaluation`` configs' edge-case table; panoptica reports an infinite HD95 without a
match, for which ``brats-evaluation``'s metrics parser writes 373, the diameter of the SRI-24 cube):

==============================================  ==========  ==========  ==========  ====
case                                            Dice        HD95        NSD         F1
==============================================  ==========  ==========  ==========  ====
both empty                                      NaN         NaN         NaN         NaN
no match (one empty, or no pair >= threshold)   0           373         0           0
==============================================  ==========  ==========  ==========  ====

Speed: everything runs on the crop of ``pred ∪ ref`` and on per-lesion boxes (see
:mod:`bratseg.evaluation.lesions`); ``benchmarks/bench_lesionwise.py`` compares against panoptica.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from bratseg.errors import check_choice
from bratseg.evaluation.lesions import (
    Components,
    crop_box,
    dilated_lesions,
    label_components,
    match_one_to_one,
    overlap_pairs,
    pair_distances,
)
from bratseg.evaluation.metrics import HD95_MODES, ArrayLike, as_mask_pair, as_spacing, distance_spacing
from bratseg.evaluation.surface import hd95_from_distances, surface_dice

MATCHING_MODES: tuple[str, ...] = ("brats2023", "panoptica")
#: HD95 of a missed lesion or a false positive in the BraTS 2023 definition.
BRATS2023_PENALTY = 374.0
#: HD95 without a match in panoptica mode (panoptica: infinite; brats-evaluation's parser: 373).
PANOPTICA_PENALTY = 373.0
LESIONWISE_NAMES: tuple[str, ...] = ("lesion_dice", "lesion_hd95", "lesion_nsd", "tp", "fp", "fn", "f1")


class LesionScore(NamedTuple):
    """Scores of one reference lesion.

    ``detected``: some predicted component counts for it (``brats2023``) or is matched to it (``panoptica``).
    ``scored``: it enters the case scores (``brats2023``: volume above the threshold; ``panoptica``: always).
    HD95 and NSD are NaN for a detected lesion that is not scored (they are not computed).
    """

    volume_mm3: float
    dice: float
    hd95: float
    nsd: float
    detected: bool
    scored: bool


@dataclass(frozen=True)
class LesionwiseResult:
    """Lesion-wise scores of one region of one case (see the module docstring), and the per-lesion scores."""

    lesion_dice: float
    lesion_hd95: float
    lesion_nsd: float
    tp: int
    fp: int
    fn: int
    f1: float
    lesions: tuple[LesionScore, ...]

    def as_dict(self) -> dict[str, float]:
        """``{name: value}`` in the order of :data:`LESIONWISE_NAMES` (counts as floats)."""
        return {name: float(getattr(self, name)) for name in LESIONWISE_NAMES}


def check_number(
    name: str, value: float, low: float, high: float = math.inf, open_low: bool = False
) -> None:
    """``ValueError`` naming ``name`` unless ``value`` is finite and in ``[low, high]`` (``(low, high]``)."""
    ok = math.isfinite(value) and (value > low if open_low else value >= low) and value <= high
    if not ok:
        side = "(" if open_low else "["
        raise ValueError(f"{name} must lie in {side}{low}, {high}], got {value!r}")


def _prepare(
    pred: ArrayLike, ref: ArrayLike, spacing: Sequence[float], hd95_mode: str, hd95_units: str, tol: float
) -> tuple[np.ndarray, np.ndarray, tuple[float, ...], tuple[float, ...]]:
    check_choice("hd95_mode", hd95_mode, HD95_MODES)
    check_number("nsd_tolerance_mm", tol, 0.0)
    p, r = as_mask_pair(pred, ref)
    sp = as_spacing(spacing, p.ndim)
    return p, r, sp, distance_spacing(sp, hd95_units)


def _surface_scores(
    ref: Components, ref_id: int, pred: Components, pred_ids: Sequence[int], dist_sp: tuple[float, ...],
    sp: tuple[float, ...], hd95_mode: str, tol: float,
) -> tuple[float, float]:
    """HD95 (in the distance units) and NSD (in mm) of a lesion and a set of predicted components."""
    to_ref, to_pred = pair_distances(ref, ref_id, pred, pred_ids, dist_sp)
    hd = hd95_from_distances(to_ref, to_pred, hd95_mode)
    if dist_sp != sp:  # voxel units for HD95; NSD stays in mm
        to_ref, to_pred = pair_distances(ref, ref_id, pred, pred_ids, sp)
    return hd, surface_dice(to_ref, to_pred, tol)


def lesionwise_brats2023(
    pred: ArrayLike,
    ref: ArrayLike,
    spacing: Sequence[float],
    *,
    dilation_iterations: int = 3,
    volume_threshold_mm3: float = 50.0,
    nsd_tolerance_mm: float = 1.0,
    hd95_mode: str = "pooled",
    hd95_units: str = "mm",
) -> LesionwiseResult:
    """Lesion-wise Dice, HD95 and NSD of one region, the BraTS 2023 way (see the module docstring).

    Args:
        pred: ``(*spatial)`` boolean or integer mask of the prediction.
        ref: ``(*spatial)`` mask of the reference, same shape.
        spacing: voxel size in mm, one positive entry per axis.
        dilation_iterations: reference dilation that merges nearby components into one lesion, ``>= 0``.
        volume_threshold_mm3: lesions of at most this volume are left out, ``>= 0``.
        nsd_tolerance_mm: tolerance of the normalised surface Dice, ``>= 0``.
        hd95_mode: ``"pooled"`` or ``"max_directed"``; hd95_units: ``"mm"`` or ``"voxel"``.

    Returns:
        The case scores; ``lesions`` holds one :class:`LesionScore` per lesion, small ones included.

    Raises:
        ValueError: shapes differ; bad ``spacing``; an argument outside its range or choices.
        TypeError: a mask is neither boolean nor integer.
    """
    if isinstance(dilation_iterations, bool) or not isinstance(dilation_iterations, int | np.integer):
        raise ValueError(f"dilation_iterations must be an integer >= 0, got {dilation_iterations!r}")
    check_number("dilation_iterations", dilation_iterations, 0)
    check_number("volume_threshold_mm3", volume_threshold_mm3, 0.0)
    p, r, sp, dist_sp = _prepare(pred, ref, spacing, hd95_mode, hd95_units, nsd_tolerance_mm)
    box = crop_box(p | r, int(dilation_iterations))
    if box is None:
        return LesionwiseResult(1.0, 0.0, 1.0, 0, 0, 0, 1.0, ())
    pc, rc = p[box], r[box]
    lesions, blobs = dilated_lesions(rc, int(dilation_iterations))
    comps = label_components(pc)
    blob_ids, comp_ids, _ = overlap_pairs(blobs, comps.labels, comps.n)
    touching = np.split(comp_ids, np.searchsorted(blob_ids, np.arange(2, lesions.n + 1)))
    overlap = np.bincount(lesions.labels[pc], minlength=lesions.n + 1)
    voxel_mm3 = math.prod(sp)
    scores = []
    for i in range(1, lesions.n + 1):
        volume = float(lesions.sizes[i]) * voxel_mm3
        scored = volume > volume_threshold_mm3
        hits = touching[i - 1].tolist()
        if not hits:
            scores.append(LesionScore(volume, 0.0, BRATS2023_PENALTY, 0.0, False, scored))
            continue
        dice = 2.0 * float(overlap[i]) / float(lesions.sizes[i] + comps.sizes[hits].sum())
        hd, nsd = math.nan, math.nan
        if scored:
            hd, nsd = _surface_scores(lesions, i, comps, hits, dist_sp, sp, hd95_mode, nsd_tolerance_mm)
        scores.append(LesionScore(volume, dice, hd, nsd, True, scored))
    fp = comps.n - int(np.unique(comp_ids).size)
    kept = [s for s in scores if s.scored]
    tp = sum(s.detected for s in kept)
    fn = len(kept) - tp
    n = len(kept) + fp
    if n == 0:
        return LesionwiseResult(1.0, 0.0, 1.0, 0, 0, 0, 1.0, tuple(scores))
    return LesionwiseResult(
        lesion_dice=sum(s.dice for s in kept) / n,
        lesion_hd95=(sum(s.hd95 for s in kept) + BRATS2023_PENALTY * fp) / n,
        lesion_nsd=sum(s.nsd for s in kept) / n,
        tp=tp,
        fp=fp,
        fn=fn,
        f1=2 * tp / (2 * tp + fp + fn),
        lesions=tuple(scores),
    )


def lesionwise_panoptica(
    pred: ArrayLike,
    ref: ArrayLike,
    spacing: Sequence[float],
    *,
    match_threshold: float = 1e-6,
    nsd_tolerance_mm: float = 1.0,
    hd95_mode: str = "pooled",
    hd95_units: str = "mm",
) -> LesionwiseResult:
    """Lesion-wise scores of one region with panoptica's one-to-one matching (see the module docstring).

    Args:
        pred, ref, spacing: as :func:`lesionwise_brats2023`.
        match_threshold: smallest Dice of a matched pair, in ``(0, 1]``.
        nsd_tolerance_mm, hd95_mode, hd95_units: as :func:`lesionwise_brats2023`.

    Returns:
        The case scores; ``lesions`` holds one :class:`LesionScore` per reference component (an unmatched one
        with Dice 0, HD95 373, NSD 0, not part of the means).

    Raises:
        ValueError: shapes differ; bad ``spacing``; an argument outside its range or choices.
        TypeError: a mask is neither boolean nor integer.
    """
    check_number("match_threshold", match_threshold, 0.0, 1.0, open_low=True)
    p, r, sp, dist_sp = _prepare(pred, ref, spacing, hd95_mode, hd95_units, nsd_tolerance_mm)
    box = crop_box(p | r, 0)
    if box is None:
        return LesionwiseResult(math.nan, math.nan, math.nan, 0, 0, 0, math.nan, ())
    refc, predc = label_components(r[box]), label_components(p[box])
    ref_ids, pred_ids, inter = overlap_pairs(refc.labels, predc.labels, predc.n)
    areas = (refc.sizes[ref_ids] + predc.sizes[pred_ids]).astype(np.float64)
    pair_dice = 2.0 * inter.astype(np.float64) / areas
    ref_matched, pred_matched = match_one_to_one(ref_ids, pred_ids, pair_dice, match_threshold)
    dice_of = {(int(a), int(b)): float(d) for a, b, d in zip(ref_ids, pred_ids, pair_dice, strict=True)}
    partner = dict(zip(ref_matched.tolist(), pred_matched.tolist(), strict=True))
    voxel_mm3 = math.prod(sp)
    scores = []
    for i in range(1, refc.n + 1):
        volume = float(refc.sizes[i]) * voxel_mm3
        if i not in partner:
            scores.append(LesionScore(volume, 0.0, PANOPTICA_PENALTY, 0.0, False, True))
            continue
        hd, nsd = _surface_scores(refc, i, predc, [partner[i]], dist_sp, sp, hd95_mode, nsd_tolerance_mm)
        scores.append(LesionScore(volume, dice_of[i, partner[i]], hd, nsd, True, True))
    tp = len(partner)
    fp, fn = predc.n - tp, refc.n - tp
    matched = [s for s in scores if s.detected]
    if tp == 0:
        return LesionwiseResult(0.0, PANOPTICA_PENALTY, 0.0, 0, fp, fn, 0.0, tuple(scores))
    return LesionwiseResult(
        lesion_dice=float(np.mean([s.dice for s in matched])),
        lesion_hd95=float(np.mean([s.hd95 for s in matched])),
        lesion_nsd=float(np.mean([s.nsd for s in matched])),
        tp=tp,
        fp=fp,
        fn=fn,
        f1=tp / (tp + 0.5 * fp + 0.5 * fn),
        lesions=tuple(scores),
    )
