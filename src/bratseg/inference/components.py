"""Connected components of a class volume: the post-processing steps that act on whole lesions.

All functions are pure: they never modify their inputs and do no I/O. Components are taken under full
connectivity (26 neighbours in 3D: voxels sharing a face, an edge or a corner are connected). Classes are the
canonical classes of :mod:`bratseg.labels`; :func:`bratseg.inference.postprocess.postprocess` chains these.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from bratseg.labels import BACKGROUND, BRATS_2021, ENHANCING, NECROSIS, LabelSet


def check_classes(classes: npt.NDArray[np.integer]) -> npt.NDArray[np.integer]:
    """``classes`` as an array; ``TypeError`` unless it holds integers."""
    classes = np.asarray(classes)
    if not np.issubdtype(classes.dtype, np.integer):
        raise TypeError(f"classes must hold integers, got dtype {classes.dtype}")
    return classes


def check_min_voxels(name: str, value: int) -> None:
    """``ValueError`` naming ``name`` when ``value`` is negative."""
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")


def _components(mask: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.int32], int]:
    structure = ndimage.generate_binary_structure(mask.ndim, mask.ndim)
    components, n_components = ndimage.label(mask, structure=structure)
    return components, int(n_components)


def _clear(
    out: npt.NDArray[np.integer], components: npt.NDArray[np.int32], drop: npt.NDArray[np.bool_]
) -> int:
    """Set the components flagged in ``drop`` (indexed by label; the background label 0 never) to background
    in ``out``, in place; the number of components cleared."""
    drop[0] = False
    n_drop = int(drop.sum())
    if n_drop:
        out[drop[components]] = BACKGROUND
    return n_drop


def remove_small_components(
    classes: npt.NDArray[np.integer], min_voxels: int
) -> tuple[npt.NDArray[np.integer], int]:
    """Set connected components of the whole tumour smaller than ``min_voxels`` to background.

    Components are those of ``classes > 0`` under full connectivity (26 neighbours in 3D: voxels sharing a
    face, an edge or a corner are connected), whatever their classes.

    Args:
        classes: ``(X, Y, Z)`` integer classes 0..3 (any number of axes).
        min_voxels: components with fewer voxels are removed; 0 disables.

    Returns:
        A new class volume (same shape and dtype) and the number of components removed.
    """
    classes = check_classes(classes)
    check_min_voxels("min_voxels", min_voxels)
    out = classes.copy()
    if min_voxels == 0 or not out.any():
        return out, 0
    components, n_components = _components(out > BACKGROUND)
    sizes = np.bincount(components.ravel(), minlength=n_components + 1)
    return out, _clear(out, components, sizes < min_voxels)


def remove_coreless_components(
    classes: npt.NDArray[np.integer], min_core_voxels: int, labels: LabelSet = BRATS_2021
) -> tuple[npt.NDArray[np.integer], int]:
    """Set whole-tumour components holding fewer than ``min_core_voxels`` tumour-core voxels to background.

    A glioma's edema surrounds its core; a FLAIR-bright blob with no core inside it is far more often a
    white-matter hyperintensity, a vessel or an artefact than a tumour. Components are those of the label
    set's ``WT`` region and the core is its ``TC`` region; other classes (a resection cavity) are left alone.

    Args:
        classes: ``(X, Y, Z)`` integer canonical classes of ``labels`` (any number of axes).
        min_core_voxels: components with fewer core voxels are removed; 0 disables.
        labels: the label set of ``classes``; it must have ``WT`` and ``TC`` regions when ``min_core_voxels``
            > 0.

    Returns:
        A new class volume (same shape and dtype) and the number of components removed.

    Raises:
        ValueError: ``min_core_voxels`` is negative, or > 0 for a label set without ``WT`` and ``TC``.
    """
    classes = check_classes(classes)
    check_min_voxels("min_core_voxels", min_core_voxels)
    out = classes.copy()
    if min_core_voxels == 0 or not out.any():
        return out, 0
    if not {"WT", "TC"} <= set(labels.region_names):
        raise ValueError(
            f"min_core_voxels: label set {labels.name} lacks a WT or TC region (it has "
            f"{list(labels.region_names)})"
        )
    whole = np.isin(out, np.asarray(labels.region("WT").classes))
    components, n_components = _components(whole)
    core = np.isin(out, np.asarray(labels.region("TC").classes))
    core_sizes = np.bincount(components[core], minlength=n_components + 1)
    return out, _clear(out, components, core_sizes < min_core_voxels)


def relabel_unconfident_enhancing(
    classes: npt.NDArray[np.integer], et_probability: npt.NDArray[np.floating], min_mean: float
) -> tuple[npt.NDArray[np.integer], int]:
    """Relabel as necrosis each enhancing-tumour component whose mean ET probability is below ``min_mean``.

    A true enhancing rim is confidently enhancing throughout (mean ET probability 0.76-0.90 on the embedded
    and the held-out synthetic cohorts); the spurious foci a network puts into a non-enhancing core are not
    (0.32-0.59), whatever their size, so they stay in the tumour core as necrosis instead of costing the case
    its whole ET Dice (benchmarks/bench_transfer.py --sweep).

    Args:
        classes: ``(X, Y, Z)`` integer classes 0..3 (any number of axes).
        et_probability: the network's ET probability, the shape of ``classes``.
        min_mean: components of a lower mean probability are relabelled; 0 disables.

    Returns:
        A new class volume (same shape and dtype) and the number of components relabelled.

    Raises:
        ValueError: ``min_mean`` outside ``[0, 1]`` or ``et_probability`` of another shape.
    """
    classes = check_classes(classes)
    if not 0.0 <= min_mean <= 1.0:
        raise ValueError(f"min_mean must lie in [0, 1], got {min_mean}")
    et_probability = np.asarray(et_probability)
    if et_probability.shape != classes.shape:
        raise ValueError(f"et_probability has shape {et_probability.shape}, classes {classes.shape}")
    out = classes.copy()
    enhancing = out == ENHANCING
    if min_mean == 0.0 or not enhancing.any():
        return out, 0
    components, n_components = _components(enhancing)
    sizes = np.bincount(components.ravel(), minlength=n_components + 1)
    sums = np.bincount(
        components.ravel(), weights=et_probability.ravel().astype(np.float64), minlength=n_components + 1
    )
    low = np.zeros(n_components + 1, dtype=bool)
    low[1:] = sums[1:] < min_mean * sizes[1:]
    out[low[components]] = NECROSIS
    return out, int(low.sum())


def largest_component_fill(labels: LabelSet, region: str) -> int:
    """The class that voxels of ``region`` outside its largest component get: that of the smallest training
    region (:attr:`~bratseg.labels.LabelSet.hierarchy`) which strictly contains ``region`` and whose class
    lies outside it, else background. The adult sets: ET -> NETC (still tumour core), TC -> SNFH (still whole
    tumour), WT -> background; a region nothing contains (RC) -> background.

    Raises:
        KeyError: ``region`` is no region of ``labels`` (the message lists them).
    """
    inner = set(labels.region(region).classes)
    best: tuple[int, int] | None = None  # (size of the containing region, its class)
    for name, cls in labels.hierarchy:
        outer = set(labels.region(name).classes)
        if inner < outer and cls not in inner and (best is None or len(outer) < best[0]):
            best = (len(outer), cls)
    return BACKGROUND if best is None else best[1]


def keep_largest_component(
    classes: npt.NDArray[np.integer], region_classes: Sequence[int], fill: int
) -> tuple[npt.NDArray[np.integer], int]:
    """Keep only the largest connected component of a region (the union of ``region_classes``).

    Components are those of the region mask under full connectivity (26 neighbours in 3D); of equal sizes the
    first in raster order is kept. The region's voxels outside it are set to ``fill``.

    Args:
        classes: ``(X, Y, Z)`` integer classes (any number of axes).
        region_classes: the classes whose union is the region (non-empty).
        fill: the class the removed voxels get (e.g. :func:`largest_component_fill`).

    Returns:
        A new class volume (same shape and dtype) and the number of components removed.
    """
    classes = check_classes(classes)
    if not len(region_classes):
        raise ValueError("region_classes must not be empty")
    out = classes.copy()
    mask = np.isin(out, np.asarray(region_classes))
    if not mask.any():
        return out, 0
    components, n_components = _components(mask)
    if n_components < 2:
        return out, 0
    sizes = np.bincount(components.ravel(), minlength=n_components + 1)
    sizes[0] = 0
    keep = int(np.argmax(sizes))
    out[mask & (components != keep)] = fill
    return out, n_components - 1


def keep_largest_components(
    classes: npt.NDArray[np.integer], regions: Sequence[str], labels: LabelSet = BRATS_2021
) -> tuple[npt.NDArray[np.integer], dict[str, int]]:
    """:func:`keep_largest_component` for each of ``regions``, in the order of ``labels``' regions (WT before
    TC before ET: a stray whole-tumour blob goes first, then a stray core inside the kept one becomes edema).

    Returns:
        The new class volume and the number of components removed per region.

    Raises:
        ValueError: a name of ``regions`` is no region of ``labels``.
    """
    unknown = [r for r in regions if r not in labels.region_names]
    if unknown:
        raise ValueError(
            f"regions {unknown} are not regions of label set {labels.name} ({', '.join(labels.region_names)})"
        )
    out = check_classes(classes).copy()
    removed: dict[str, int] = {}
    for name in labels.region_names:
        if name in regions:
            fill = largest_component_fill(labels, name)
            out, removed[name] = keep_largest_component(out, labels.region(name).classes, fill)
    return out, removed
