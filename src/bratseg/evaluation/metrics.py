"""Segmentation metrics for one binary region, and the BraTS regions WT / TC / ET of one case.

All functions are pure: masks in, floats out. A mask is any boolean or integer array (nonzero =
foreground); ``pred`` and ``ref`` must have the same shape. ``spacing`` is the voxel size in mm, one positive
entry per axis.

Definitions (medpy.metric.binary names in brackets; for non-empty masks the values equal medpy's):

- Dice ``2|P∩R| / (|P|+|R|)`` [``dc``]; IoU ``|P∩R| / |P∪R|`` [``jc``];
  sensitivity ``TP / (TP+FN)`` [``sensitivity``]; specificity ``TN / (TN+FP)`` [``specificity``].
- HD95: the 95th percentile (numpy's default linear interpolation) of surface distances in mm. Surfaces are
  the masks XOR their erosion with connectivity 1 (see :mod:`bratseg.evaluation.surface`). Two modes
  (``params.yaml: metrics.hd95``):

  - ``"pooled"``: the percentile of the distances of both directions pooled together, exactly
    ``medpy.metric.binary.hd95``, which the official BraTS evaluation uses.
  - ``"max_directed"``: the larger of the two directed 95th percentiles, the definition of MONAI's
    ``compute_hausdorff_distance(percentile=95)`` (same surfaces, ``np.percentile`` per direction), and the
    per-voxel form of DeepMind surface-distance's robust Hausdorff (which weights surface elements by area).

  Units (``params.yaml: metrics.hd95_units``): ``"mm"`` honours ``spacing``; ``"voxel"`` measures in voxel
  steps (every spacing 1), which is what the official BraTS tools report on anisotropic grids (they read no
  spacing). On a 1 mm grid the two are equal.

Empty masks (``params.yaml: metrics.empty``), where a ratio would be 0/0 or a distance has no surface to
reach. Each cell reads ``brats value | nan value``; a single value is the same under both policies:

=========================  ===========  ===========  ===========  ===========
masks                      Dice, IoU    HD95         sensitivity  specificity
=========================  ===========  ===========  ===========  ===========
both empty                 1 | NaN      0 | NaN      1 | NaN      1
pred empty, ref not        0            E | NaN      0            as defined
ref empty, pred not        0            E | NaN      1 | NaN      as defined
ref without negatives      as defined   as defined   as defined   1 | NaN
=========================  ===========  ===========  ===========  ===========

- ``empty="brats"`` (default, the BraTS legacy convention): ``E = empty_value_mm``, 373.13 mm, the diagonal
  of a 240×240×155 mm volume. Sensitivity with an empty reference is 1: there was nothing to miss, whatever
  ``pred`` holds (medpy returns 0 there). Specificity without negatives in ``ref`` is 1 (medpy: 0).
- ``empty="nan"``: undefined values are NaN, so that callers can leave them out of means (MONAI's
  ``ignore_empty`` style). Defined values stay: Dice and IoU are 0 when exactly one mask is empty.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from bratseg.config import MetricsParams
from bratseg.errors import check_choice
from bratseg.evaluation.surface import HD95_MODES, hd95_from_distances, surface_distances
from bratseg.labels import BRATS_2021, LabelSet

EMPTY_POLICIES: tuple[str, ...] = ("brats", "nan")
HD95_UNITS: tuple[str, ...] = ("mm", "voxel")
#: The diagonal of a 240×240×155 mm volume (1 mm BraTS grid): HD95 when exactly one mask is empty.
EMPTY_HD95_MM = 373.13
METRIC_NAMES: tuple[str, ...] = ("dice", "iou", "hd95", "sensitivity", "specificity", "pred_ml", "ref_ml")

ArrayLike = npt.ArrayLike
BoolArray = npt.NDArray[np.bool_]


class _Counts(NamedTuple):
    """Confusion counts of two masks."""

    tp: int
    fp: int
    fn: int
    tn: int


# --- validation ---------------------------------------------------------------------------------------------
def _as_mask(x: ArrayLike, name: str) -> BoolArray:
    arr = np.asarray(x)
    if arr.dtype == np.bool_:
        mask: BoolArray = arr
    elif np.issubdtype(arr.dtype, np.integer):
        mask = arr != 0
    else:
        raise TypeError(f"{name} must be a boolean or integer array, got dtype {arr.dtype}")
    if mask.ndim < 1:
        raise ValueError(f"{name} must have at least one axis, got a 0-d array")
    return mask


def as_mask_pair(pred: ArrayLike, ref: ArrayLike) -> tuple[BoolArray, BoolArray]:
    """``pred`` and ``ref`` as boolean masks of one shape; an error naming the bad one otherwise."""
    p, r = _as_mask(pred, "pred"), _as_mask(ref, "ref")
    if p.shape != r.shape:
        raise ValueError(f"pred and ref must have the same shape, got pred {p.shape} and ref {r.shape}")
    return p, r


def as_spacing(spacing: Sequence[float], ndim: int) -> tuple[float, ...]:
    """``spacing`` as ``ndim`` positive floats; ``ValueError`` naming ``spacing`` otherwise."""
    try:
        values = tuple(float(s) for s in spacing)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"spacing must be a sequence of {ndim} positive numbers, got {spacing!r}") from exc
    if len(values) != ndim or not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"spacing must have one positive entry per axis ({ndim} axes), got {spacing!r}")
    return values


def distance_spacing(spacing: tuple[float, ...], units: str) -> tuple[float, ...]:
    """The spacing surface distances are measured with: ``spacing`` for ``"mm"``, all ones for ``"voxel"``."""
    check_choice("hd95_units", units, HD95_UNITS)
    return spacing if units == "mm" else (1.0,) * len(spacing)


def _check_empty_value(name: str, value: float) -> float:
    if not value >= 0:  # also rejects NaN
        raise ValueError(f"{name} must be a non-negative number of mm, got {value!r}")
    return float(value)


# --- from counts --------------------------------------------------------------------------------------------
def _counts(pred: BoolArray, ref: BoolArray) -> _Counts:
    tp = int(np.count_nonzero(pred & ref))
    n_pred, n_ref = int(np.count_nonzero(pred)), int(np.count_nonzero(ref))
    return _Counts(tp=tp, fp=n_pred - tp, fn=n_ref - tp, tn=pred.size - n_pred - n_ref + tp)


def _ratio(num: int, den: int, undefined: float, empty: str) -> float:
    if den == 0:
        return undefined if empty == "brats" else math.nan
    return num / den


def _dice(c: _Counts, empty: str) -> float:
    return _ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn, 1.0, empty)


def _iou(c: _Counts, empty: str) -> float:
    return _ratio(c.tp, c.tp + c.fp + c.fn, 1.0, empty)


def _sensitivity(c: _Counts, empty: str) -> float:
    return _ratio(c.tp, c.tp + c.fn, 1.0, empty)


def _specificity(c: _Counts, empty: str) -> float:
    return _ratio(c.tn, c.tn + c.fp, 1.0, empty)


def _hd95(
    pred: BoolArray,
    ref: BoolArray,
    spacing: tuple[float, ...],
    n_pred: int,
    n_ref: int,
    mode: str,
    empty: str,
    empty_mm: float,
) -> float:
    if n_pred == 0 or n_ref == 0:
        if empty == "nan":
            return math.nan
        return 0.0 if n_pred == n_ref else empty_mm
    return hd95_from_distances(*surface_distances(pred, ref, spacing), mode)


def _from_counts(
    metric: Callable[[_Counts, str], float], pred: ArrayLike, ref: ArrayLike, empty: str
) -> float:
    """A count-based metric of two masks, arguments checked."""
    check_choice("empty", empty, EMPTY_POLICIES)
    return metric(_counts(*as_mask_pair(pred, ref)), empty)


# --- public -------------------------------------------------------------------------------------------------
def dice(pred: ArrayLike, ref: ArrayLike, *, empty: str = "brats") -> float:
    """Dice coefficient of two ``(*spatial)`` masks of the same shape; ``empty``: see the module docstring."""
    return _from_counts(_dice, pred, ref, empty)


def iou(pred: ArrayLike, ref: ArrayLike, *, empty: str = "brats") -> float:
    """Intersection over union (Jaccard) of two ``(*spatial)`` masks of the same shape."""
    return _from_counts(_iou, pred, ref, empty)


def sensitivity(pred: ArrayLike, ref: ArrayLike, *, empty: str = "brats") -> float:
    """Sensitivity (recall) ``TP / (TP+FN)`` of two ``(*spatial)`` masks; an empty ``ref`` gives 1 or NaN."""
    return _from_counts(_sensitivity, pred, ref, empty)


def specificity(pred: ArrayLike, ref: ArrayLike, *, empty: str = "brats") -> float:
    """Specificity ``TN / (TN+FP)`` of two ``(*spatial)`` masks; ``ref`` without negatives gives 1 or NaN."""
    return _from_counts(_specificity, pred, ref, empty)


def hd95(
    pred: ArrayLike,
    ref: ArrayLike,
    spacing: Sequence[float],
    *,
    mode: str = "pooled",
    empty: str = "brats",
    empty_value_mm: float = EMPTY_HD95_MM,
    units: str = "mm",
) -> float:
    """95th-percentile Hausdorff distance in mm (or voxel steps) between two masks.

    Args:
        pred: ``(*spatial)`` boolean or integer mask (nonzero = foreground).
        ref: ``(*spatial)`` mask of the same shape.
        spacing: voxel size in mm, one positive entry per axis.
        mode: ``"pooled"`` (medpy / BraTS) or ``"max_directed"`` (MONAI); see the module docstring.
        empty: ``"brats"`` or ``"nan"``; see the module docstring.
        empty_value_mm: the value when exactly one mask is empty under ``empty="brats"``.
        units: ``"mm"`` or ``"voxel"`` (voxel steps, ``spacing`` ignored); see the module docstring.

    Raises:
        ValueError: the shapes differ; bad ``spacing``; unknown ``mode``, ``empty`` or ``units``;
            ``empty_value_mm`` < 0.
        TypeError: a mask is neither boolean nor integer.
    """
    check_choice("mode", mode, HD95_MODES)
    check_choice("empty", empty, EMPTY_POLICIES)
    empty_mm = _check_empty_value("empty_value_mm", empty_value_mm)
    p, r = as_mask_pair(pred, ref)
    sp = distance_spacing(as_spacing(spacing, p.ndim), units)
    n_pred, n_ref = int(np.count_nonzero(p)), int(np.count_nonzero(r))
    return _hd95(p, r, sp, n_pred, n_ref, mode, empty, empty_mm)


def region_metrics(
    pred: ArrayLike,
    ref: ArrayLike,
    spacing: Sequence[float],
    *,
    hd95_mode: str = "pooled",
    empty: str = "brats",
    empty_hd95_mm: float = EMPTY_HD95_MM,
    hd95_units: str = "mm",
) -> dict[str, float]:
    """All metrics of one region, sharing one pass over the voxels for the counts.

    Args:
        pred: ``(*spatial)`` boolean or integer mask of the prediction.
        ref: ``(*spatial)`` mask of the reference, same shape.
        spacing: voxel size in mm, one positive entry per axis.
        hd95_mode, empty, empty_hd95_mm, hd95_units: as ``mode``, ``empty``, ``empty_value_mm``, ``units``
            of :func:`hd95`.

    Returns:
        ``{"dice", "iou", "hd95", "sensitivity", "specificity", "pred_ml", "ref_ml"}`` (order of
        :data:`METRIC_NAMES`); the volumes are in millilitres.
    """
    check_choice("hd95_mode", hd95_mode, HD95_MODES)
    check_choice("empty", empty, EMPTY_POLICIES)
    empty_mm = _check_empty_value("empty_hd95_mm", empty_hd95_mm)
    p, r = as_mask_pair(pred, ref)
    sp = as_spacing(spacing, p.ndim)
    hd_sp = distance_spacing(sp, hd95_units)
    c = _counts(p, r)
    voxel_ml = math.prod(sp) / 1000.0
    return {
        "dice": _dice(c, empty),
        "iou": _iou(c, empty),
        "hd95": _hd95(p, r, hd_sp, c.tp + c.fp, c.tp + c.fn, hd95_mode, empty, empty_mm),
        "sensitivity": _sensitivity(c, empty),
        "specificity": _specificity(c, empty),
        "pred_ml": (c.tp + c.fp) * voxel_ml,
        "ref_ml": (c.tp + c.fn) * voxel_ml,
    }


def case_metrics(
    pred_classes: ArrayLike,
    ref_classes: ArrayLike,
    spacing: Sequence[float],
    params: MetricsParams,
    labels: LabelSet = BRATS_2021,
) -> dict[str, dict[str, float]]:
    """Metrics of the evaluated regions of ``labels`` (WT, TC, ET, ...) of one case.

    Args:
        pred_classes: ``(*spatial)`` integer volume of canonical classes (see :mod:`bratseg.labels`).
        ref_classes: ``(*spatial)`` reference classes, same shape.
        spacing: voxel size in mm, one positive entry per axis.
        params: the ``metrics`` section (``hd95`` mode, ``hd95_units``, ``empty`` policy, ``empty_hd95_mm``).

    Returns:
        ``{"WT": {...}, "TC": {...}, "ET": {...}, ...}`` in the order of ``labels.regions``, each as
        :func:`region_metrics` returns.

    Raises:
        ValueError: shapes differ, or a volume holds a value outside the canonical classes (e.g. on-disk
            labels).
    """
    pred, ref = check_class_volumes(pred_classes, ref_classes, labels)
    pred_regions, ref_regions = labels.region_masks(pred), labels.region_masks(ref)
    return {
        region: region_metrics(
            pred_regions[i],
            ref_regions[i],
            spacing,
            hd95_mode=params.hd95,
            empty=params.empty,
            empty_hd95_mm=params.empty_hd95_mm,
            hd95_units=params.hd95_units,
        )
        for i, region in enumerate(labels.region_names)
    }


def check_class_volumes(
    pred_classes: ArrayLike, ref_classes: ArrayLike, labels: LabelSet = BRATS_2021
) -> tuple[npt.NDArray[np.integer], npt.NDArray[np.integer]]:
    """Two class volumes of the same shape holding canonical classes of ``labels``, as arrays.

    Raises:
        ValueError: shapes differ, or a volume holds a value that is no class of ``labels`` (e.g. on-disk
            labels: enhancing tumour 4 of a BraTS 2021 file).
        TypeError: a volume is not of an integer dtype.
    """
    allowed = (0, *labels.classes)
    volumes = []
    for name, x in (("pred_classes", pred_classes), ("ref_classes", ref_classes)):
        arr = np.asarray(x)
        if not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"{name} must hold integer classes, got dtype {arr.dtype}")
        bad = sorted(set(np.unique(arr).tolist()) - set(allowed)) if arr.size else []
        if bad:
            raise ValueError(
                f"{name} must hold the classes {', '.join(map(str, allowed))} of label set {labels.name} "
                f"(canonical classes, not on-disk labels), got {bad}"
            )
        volumes.append(arr)
    if volumes[0].shape != volumes[1].shape:
        raise ValueError(
            f"pred_classes and ref_classes must have the same shape, "
            f"got pred {volumes[0].shape} and ref {volumes[1].shape}"
        )
    return volumes[0], volumes[1]
