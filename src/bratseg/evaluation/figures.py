"""Figures for the evaluation report: slice views of one case and the distribution of the test metrics.

Pure functions: arrays in, PNG bytes out (matplotlib, Agg backend). The same input gives the same bytes.

Orientation convention
----------------------
Volumes are in nibabel ``(i, j, k)`` voxel order with a RAS-like affine: ``i`` runs towards the patient's
Right, ``j`` towards Anterior, ``k`` towards Superior. Slices are shown in the *neurological* convention:

=========  =================  ======================  =====================
view       slice through      horizontal axis         vertical axis (up)
=========  =================  ======================  =====================
axial      ``k`` (I–S)        ``i``: right is right   ``j``: anterior up
coronal    ``j`` (P–A)        ``i``: right is right   ``k``: superior up
sagittal   ``i`` (L–R)        ``j``: anterior right   ``k``: superior up
=========  =================  ======================  =====================

Each 2-D slice is transposed so that its first array axis becomes the horizontal one and drawn with
``origin="lower"``; its extent is given in millimetres, so anisotropic voxels keep their physical aspect.
Letters at the panel edges of the first column name the direction (R, A, S) each axis points to.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from bratseg.evaluation.summary import regions_of
from bratseg.labels import BRATS_2021, LabelSet
from bratseg.layouts import MODALITIES

MODALITY_TITLES: dict[str, str] = {"t1": "T1", "t1ce": "T1ce", "t2": "T2", "flair": "FLAIR"}
#: One colour per region, chosen to stay visible on a grey-scale MRI.
REGION_COLOURS: dict[str, str] = {
    "WT": "#ffd92f", "TC": "#fc4e2a", "ET": "#41b6c4",
    "RC": "#b15ce6", "NETC": "#a65628", "SNFH": "#f781bf", "CC": "#4daf4a", "ED": "#f781bf",
}
#: Outline widths: TC is drawn wider than ET, so where their borders coincide both colours stay visible.
REGION_WIDTHS: dict[str, float] = {"WT": 1.5, "TC": 2.8, "ET": 1.3}
#: Regions outlined in the slice figures: the nested WT / TC / ET and a region outside them (RC, CC).
OUTLINED: tuple[str, ...] = ("WT", "TC", "ET", "RC", "CC")
VIEWS: tuple[str, ...] = ("axial", "coronal", "sagittal")
#: (horizontal, vertical) letter of each view: the direction the axis points to.
VIEW_LETTERS: dict[str, tuple[str, str]] = {
    "axial": ("R", "A"), "coronal": ("R", "S"), "sagittal": ("A", "S"),
}
DPI = 100
CASE_FIGSIZE = (13.0, 8.4)  # inches: 1300 x 840 pixels at DPI
DISTRIBUTION_FIGSIZE = (10.0, 4.0)  # inches: 1000 x 400 pixels at DPI
JITTER_SEED = 0

FloatArray = npt.NDArray[np.float64]


def _to_png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _centroid(mask: npt.NDArray[np.bool_]) -> tuple[int, int, int]:
    coords = np.argwhere(mask)
    centre = np.rint(coords.mean(axis=0)).astype(int)
    return int(centre[0]), int(centre[1]), int(centre[2])


def tumour_centre(reference: np.ndarray | None, prediction: np.ndarray) -> tuple[int, int, int]:
    """Voxel at which to cut the slices: the centroid of the reference whole tumour.

    Falls back to the centroid of the predicted whole tumour when there is no reference or its tumour is
    empty, and to the centre of the volume when both are empty. The centroid is rounded to whole voxels.
    """
    prediction = np.asarray(prediction)
    if prediction.ndim != 3:
        raise ValueError(f"prediction must be a 3-D volume, got shape {prediction.shape}")
    if reference is not None:
        reference = np.asarray(reference)
        if reference.shape != prediction.shape:
            raise ValueError(f"reference shape {reference.shape} != prediction shape {prediction.shape}")
        if (reference > 0).any():
            return _centroid(reference > 0)
    if (prediction > 0).any():
        return _centroid(prediction > 0)
    return prediction.shape[0] // 2, prediction.shape[1] // 2, prediction.shape[2] // 2


def _window(image: FloatArray, brain: npt.NDArray[np.bool_]) -> tuple[float, float]:
    """1st and 99th percentile of ``image`` inside ``brain`` (all finite voxels when the brain is empty)."""
    inside = image[brain & np.isfinite(image)]
    if inside.size == 0:
        inside = image[np.isfinite(image)]
    if inside.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(inside, [1.0, 99.0]))
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def _slice(volume: np.ndarray, view: str, centre: tuple[int, int, int]) -> np.ndarray:
    """2-D slice ready for ``imshow(origin="lower")``: rows run along the vertical axis of the view."""
    i, j, k = centre
    if view == "axial":
        return np.asarray(volume[:, :, k]).T
    if view == "coronal":
        return np.asarray(volume[:, j, :]).T
    return np.asarray(volume[i, :, :]).T


Extent = tuple[float, float, float, float]


def _extent_mm(view: str, shape: tuple[int, ...], spacing: Sequence[float]) -> Extent:
    """``(left, right, bottom, top)`` of a slice of the view in millimetres."""
    axes = {"axial": (0, 1), "coronal": (0, 2), "sagittal": (1, 2)}[view]
    h, v = axes
    return 0.0, shape[h] * float(spacing[h]), 0.0, shape[v] * float(spacing[v])


def _draw_mask(ax: Axes, mask: np.ndarray, extent: Extent, region: str,
               reference: bool) -> None:
    """Outline (and for the reference, lightly fill) a 2-D mask, drawn on the voxel grid of ``extent``."""
    if not mask.any():
        return
    padded = np.pad(mask.astype(np.float64), 1)  # closed contours at the slice border too
    rows, cols = mask.shape
    dx = (extent[1] - extent[0]) / cols
    dy = (extent[3] - extent[2]) / rows
    x = extent[0] + (np.arange(cols + 2) - 0.5) * dx
    y = extent[2] + (np.arange(rows + 2) - 0.5) * dy
    colour, width = REGION_COLOURS[region], REGION_WIDTHS.get(region, 1.5)
    if reference:
        ax.contourf(x, y, padded, levels=[0.5, 1.5], colors=[colour], alpha=0.22)
        ax.contour(x, y, padded, levels=[0.5], colors=[colour], linewidths=width, linestyles="solid")
    else:
        ax.contour(x, y, padded, levels=[0.5], colors=[colour], linewidths=width, linestyles=[(0, (3, 2))])


def _validate(images: dict[str, np.ndarray], reference: np.ndarray | None, prediction: np.ndarray,
              spacing: Sequence[float]) -> dict[str, FloatArray]:
    missing = [m for m in MODALITIES if m not in images]
    if missing:
        raise ValueError(f"images lacks modalities {missing} (expected {list(MODALITIES)})")
    shape = np.asarray(prediction).shape
    if len(shape) != 3:
        raise ValueError(f"prediction must be a 3-D volume, got shape {shape}")
    out = {m: np.asarray(images[m], dtype=np.float64) for m in MODALITIES}
    for name, arr in [*out.items(), ("reference", reference)]:
        if arr is not None and np.asarray(arr).shape != shape:
            raise ValueError(f"{name} shape {np.asarray(arr).shape} != prediction shape {shape}")
    if len(spacing) < 3 or any(float(s) <= 0 for s in spacing[:3]):
        raise ValueError(f"spacing must hold three positive values, got {list(spacing)}")
    return out


def case_figure(images: dict[str, np.ndarray], reference: np.ndarray | None, prediction: np.ndarray,
                spacing: Sequence[float], title: str, labels: LabelSet = BRATS_2021) -> bytes:
    """Axial, coronal and sagittal slices of one case through :func:`tumour_centre`, as PNG bytes.

    Columns: T1, T1ce, T2, FLAIR in grey (each windowed to its 1st–99th percentile inside the brain, the
    voxels where any modality is non-zero), then FLAIR with the regions WT, TC and ET outlined: reference
    filled with a solid outline, prediction dashed. Orientation: see the module docstring.

    Args:
        images: ``"t1"``, ``"t1ce"``, ``"t2"``, ``"flair"`` volumes ``(X, Y, Z)``, any intensity scale.
        reference: ``(X, Y, Z)`` ground-truth classes 0..3, or ``None`` when there is none.
        prediction: ``(X, Y, Z)`` predicted classes 0..3.
        spacing: voxel size in millimetres along ``i, j, k``.
        title: figure title (plain text).
        labels: the label set whose regions are outlined (WT, TC, ET, and RC or CC where it has them).
    """
    vols = _validate(images, reference, prediction, spacing)
    regions = [r for r in labels.region_names if r in OUTLINED]
    centre = tumour_centre(reference, prediction)
    brain = np.zeros(np.asarray(prediction).shape, dtype=bool)
    for vol in vols.values():
        brain |= np.isfinite(vol) & (vol != 0)
    windows = {m: _window(vols[m], brain) for m in MODALITIES}
    pred_regions = labels.region_masks(np.asarray(prediction), regions)
    ref_regions = None if reference is None else labels.region_masks(np.asarray(reference), regions)

    shape = np.asarray(prediction).shape
    height_y, height_z = shape[1] * float(spacing[1]), shape[2] * float(spacing[2])  # row heights (mm)
    fig, axes = plt.subplots(3, len(MODALITIES) + 1, figsize=CASE_FIGSIZE, layout="constrained",
                             height_ratios=[height_y, height_z, height_z], squeeze=False)
    fig.set_facecolor("white")
    for row, view in enumerate(VIEWS):
        extent = _extent_mm(view, np.asarray(prediction).shape, spacing)
        index = {"axial": f"k={centre[2]}", "coronal": f"j={centre[1]}", "sagittal": f"i={centre[0]}"}[view]
        for col, name in enumerate([*MODALITIES, "flair"]):
            ax = axes[row, col]
            lo, hi = windows[name]
            ax.imshow(_slice(vols[name], view, centre), cmap="gray", vmin=lo, vmax=hi, origin="lower",
                      extent=extent, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_facecolor("black")
            if row == 0:
                label = MODALITY_TITLES[name] if col < len(MODALITIES) else "FLAIR + segmentation"
                ax.set_title(label, fontsize=11)
            if col == 0:
                ax.set_ylabel(f"{view} ({index})", fontsize=10)
                h_letter, v_letter = VIEW_LETTERS[view]
                style = {"color": "white", "fontsize": 8, "fontweight": "bold"}
                ax.text(0.98, 0.5, h_letter, transform=ax.transAxes, ha="right", va="center", **style)
                ax.text(0.5, 0.98, v_letter, transform=ax.transAxes, ha="center", va="top", **style)
            if col == len(MODALITIES):
                for r, region in enumerate(regions):
                    if ref_regions is not None:
                        _draw_mask(ax, _slice(ref_regions[r], view, centre), extent, region, reference=True)
                    _draw_mask(ax, _slice(pred_regions[r], view, centre), extent, region, reference=False)
            ax.set_xlim(extent[0], extent[1])
            ax.set_ylim(extent[2], extent[3])
            ax.set_aspect("equal")
    handles: list[Line2D | Patch] = []
    for region in regions:
        colour, width = REGION_COLOURS[region], REGION_WIDTHS.get(region, 1.5)
        if ref_regions is not None:
            handles.append(Patch(facecolor=to_rgba(colour, 0.3), edgecolor=colour, lw=width,
                                 label=f"{region} reference"))
        handles.append(Line2D([], [], color=colour, lw=width, ls=(0, (3, 2)), label=f"{region} prediction"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=9, frameon=False)
    suffix = "" if reference is not None else " (no reference segmentation)"
    fig.suptitle(f"{title}{suffix}", fontsize=12)
    return _to_png(fig)


def _finite(values: pd.Series) -> FloatArray:
    arr = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    return arr[np.isfinite(arr)]


def _box_panel(ax: Axes, regions: Sequence[str], data: list[FloatArray], rng: np.random.Generator) -> None:
    """Box plots (one per region) with the individual cases as jittered points on top."""
    positions = np.arange(1, len(regions) + 1)
    present = [(p, d) for p, d in zip(positions, data, strict=True) if d.size]
    if present:
        box = ax.boxplot([d for _, d in present], positions=[p for p, _ in present], widths=0.5,
                         showfliers=False, patch_artist=True, medianprops={"color": "black"})
        for patch, (p, _) in zip(box["boxes"], present, strict=True):
            region = regions[int(p) - 1]
            patch.set_facecolor(REGION_COLOURS.get(region, "#999999"))
            patch.set_alpha(0.35)
    for p, d in zip(positions, data, strict=True):
        jitter = rng.uniform(-0.15, 0.15, size=d.size)
        ax.scatter(p + jitter, d, s=14, color="#333333", alpha=0.75, zorder=3, linewidths=0)
    ax.set_xticks(positions, [f"{r}\n(n={d.size})" for r, d in zip(regions, data, strict=True)])
    ax.set_xlim(0.4, len(regions) + 0.6)
    ax.grid(axis="y", alpha=0.3)


def metric_distribution_figure(cases: pd.DataFrame) -> bytes:
    """Dice (left) and HD95 (right) per region over the cases: box plots with each case as a point.

    Undefined values (NaN) are left out; the number of cases drawn is shown under each region. The jitter
    of the points comes from a fixed seed, so the image is reproducible.

    Args:
        cases: one row per case with columns ``dice_<region>`` and ``hd95_<region>`` for each region
            scored (WT, TC, ET, ...).
    """
    regions = regions_of(cases) or ("WT", "TC", "ET")
    missing = [f"{m}_{r}" for m in ("dice", "hd95") for r in regions if f"{m}_{r}" not in cases.columns]
    if missing:
        raise ValueError(f"cases lacks columns {missing}")
    rng = np.random.default_rng(JITTER_SEED)
    fig, (ax_dice, ax_hd) = plt.subplots(1, 2, figsize=DISTRIBUTION_FIGSIZE, layout="constrained")
    fig.set_facecolor("white")
    _box_panel(ax_dice, regions, [_finite(cases[f"dice_{r}"]) for r in regions], rng)
    ax_dice.set(title="Dice", ylabel="Dice", ylim=(-0.02, 1.02))
    _box_panel(ax_hd, regions, [_finite(cases[f"hd95_{r}"]) for r in regions], rng)
    ax_hd.set(title="HD95", ylabel="HD95 (mm)")
    ax_hd.set_ylim(bottom=0)
    fig.suptitle(f"Test metrics over {len(cases)} case(s)", fontsize=12)
    return _to_png(fig)
