"""From network probabilities to a cleaned class volume.

All functions are pure: they never modify their inputs and do no I/O. Classes are the
canonical classes of :mod:`bratseg.labels` (0 background, 1 NETC, 2 SNFH, 3 ET, 4 RC, 5 CC).

What is done after thresholding is a :class:`PostprocessPlan`: small components removed, only the largest
component kept of some regions, a small enhancing tumour relabelled as necrosis. The crossval stage chooses it
on the out-of-fold predictions and writes it beside the models (``models/postprocessing.json``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from bratseg.config import PostprocessParams
from bratseg.labels import BACKGROUND, BRATS_2021, ENHANCING, NECROSIS, LabelSet


@dataclass(frozen=True)
class PostprocessPlan:
    """Everything done to a prediction after the network, in order.

    Attributes:
        threshold: probability threshold of the region outputs (:func:`probabilities_to_classes`).
        min_component_voxels: :func:`remove_small_components` (0: off).
        largest_component: regions of which only the largest connected component is kept
            (:func:`keep_largest_components`), applied in the label set's region order.
        et_min_voxels: :func:`relabel_small_enhancing` (0: off).
    """

    threshold: float
    min_component_voxels: int = 0
    largest_component: tuple[str, ...] = ()
    et_min_voxels: int = 0

    @classmethod
    def from_params(cls, params: PostprocessParams) -> PostprocessPlan:
        """The plan that ``params`` fixes (its ``largest_component`` and ``et_min_voxels`` as given)."""
        largest = tuple(params.largest_component)
        return cls(params.threshold, params.min_component_voxels, largest, params.et_min_voxels)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PostprocessPlan:
        """The inverse of :meth:`to_dict`.

        Raises:
            ValueError: on a missing or unknown key, naming it.
        """
        keys = {"threshold", "min_component_voxels", "largest_component", "et_min_voxels"}
        if set(data) != keys:
            raise ValueError(f"plan: keys {sorted(data)} are not {sorted(keys)}")
        return cls(
            float(data["threshold"]),
            int(data["min_component_voxels"]),
            tuple(str(r) for r in data["largest_component"]),
            int(data["et_min_voxels"]),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "min_component_voxels": self.min_component_voxels,
            "largest_component": list(self.largest_component),
            "et_min_voxels": self.et_min_voxels,
        }

    def describe(self) -> str:
        """One line for logs and the report."""
        parts = [f"threshold {self.threshold:g}"]
        if self.min_component_voxels:
            parts.append(f"components below {self.min_component_voxels} voxels removed")
        if self.largest_component:
            parts.append(f"largest component only: {', '.join(self.largest_component)}")
        if self.et_min_voxels:
            parts.append(f"ET below {self.et_min_voxels} voxels relabelled NETC")
        return "; ".join(parts)


def as_plan(post: PostprocessPlan | PostprocessParams) -> PostprocessPlan:
    """``post`` as a plan (a params section fixes one, :meth:`PostprocessPlan.from_params`)."""
    return post if isinstance(post, PostprocessPlan) else PostprocessPlan.from_params(post)


def probabilities_to_classes(
    probs: npt.NDArray[np.floating], target: str, threshold: float = 0.5, labels: LabelSet = BRATS_2021
) -> npt.NDArray[np.uint8]:
    """Class volume from the averaged network output.

    Args:
        probs: for ``target="regions"``, ``(R, X, Y, Z)`` sigmoid probabilities of the training regions of
            ``labels`` (WT, TC, ET, ...); each region is ``probs > threshold`` and the (possibly inconsistent)
            masks are resolved hierarchically by :meth:`bratseg.labels.LabelSet.decode` (ET wins over TC, TC
            over WT). For ``target="classes"``, ``(K + 1, X, Y, Z)`` softmax probabilities of background and
            the label set's classes; the result is their argmax (ties go to the lower class). Any number of
            spatial axes is accepted.
        target: ``"regions"`` or ``"classes"``.
        threshold: region threshold in ``[0, 1]`` (unused for ``"classes"``).
        labels: the label set the network was trained on.

    Returns:
        ``(X, Y, Z)`` uint8 canonical classes.
    """
    probs = np.asarray(probs)
    n_channels = labels.n_outputs(target)
    if probs.ndim < 2 or probs.shape[0] != n_channels:
        raise ValueError(
            f"probs must have shape ({n_channels}, *spatial) for target {target!r}, got {probs.shape}"
        )
    if target == "classes":
        canonical = np.array([BACKGROUND, *labels.classes], dtype=np.uint8)
        return canonical[np.argmax(probs, axis=0)]
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
    return labels.decode(probs > threshold)


def _check_classes(classes: npt.NDArray[np.integer]) -> npt.NDArray[np.integer]:
    classes = np.asarray(classes)
    if not np.issubdtype(classes.dtype, np.integer):
        raise TypeError(f"classes must hold integers, got dtype {classes.dtype}")
    return classes


def _check_min_voxels(name: str, value: int) -> None:
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")


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
    classes = _check_classes(classes)
    _check_min_voxels("min_voxels", min_voxels)
    out = classes.copy()
    if min_voxels == 0 or not out.any():
        return out, 0
    structure = ndimage.generate_binary_structure(out.ndim, out.ndim)
    components, n_components = ndimage.label(out > BACKGROUND, structure=structure)
    sizes = np.bincount(components.ravel(), minlength=n_components + 1)
    small = sizes < min_voxels
    small[0] = False
    n_small = int(small.sum())
    if n_small:
        out[small[components]] = BACKGROUND
    return out, n_small


def relabel_small_enhancing(
    classes: npt.NDArray[np.integer], min_voxels: int
) -> tuple[npt.NDArray[np.integer], bool]:
    """Relabel all enhancing tumour as necrosis when its total volume is positive but below ``min_voxels``.

    The BraTS post-processing used by nnU-Net and many challenge entries: a case without enhancing tumour
    scores ET Dice 1 only when nothing is predicted, so a few stray enhancing voxels cost a full point; they
    are kept in the tumour core as necrosis instead.

    Args:
        classes: ``(X, Y, Z)`` integer classes 0..3 (any number of axes).
        min_voxels: threshold on the number of enhancing voxels; 0 disables.

    Returns:
        A new class volume (same shape and dtype) and whether the relabelling was applied.
    """
    classes = _check_classes(classes)
    _check_min_voxels("min_voxels", min_voxels)
    out = classes.copy()
    enhancing = out == ENHANCING
    n_enhancing = int(enhancing.sum())
    if 0 < n_enhancing < min_voxels:
        out[enhancing] = NECROSIS
        return out, True
    return out, False


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
    classes = _check_classes(classes)
    if not len(region_classes):
        raise ValueError("region_classes must not be empty")
    out = classes.copy()
    mask = np.isin(out, np.asarray(region_classes))
    if not mask.any():
        return out, 0
    structure = ndimage.generate_binary_structure(out.ndim, out.ndim)
    components, n_components = ndimage.label(mask, structure=structure)
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
    out = _check_classes(classes).copy()
    removed: dict[str, int] = {}
    for name in labels.region_names:
        if name in regions:
            fill = largest_component_fill(labels, name)
            out, removed[name] = keep_largest_component(out, labels.region(name).classes, fill)
    return out, removed


def postprocess(
    classes: npt.NDArray[np.integer],
    plan: PostprocessPlan | PostprocessParams,
    labels: LabelSet = BRATS_2021,
) -> tuple[npt.NDArray[np.integer], dict[str, int | bool]]:
    """Remove small tumour components, keep the largest component of the plan's regions, then relabel a small
    enhancing tumour (each off when the plan says 0 or no region).

    Args:
        classes: ``(X, Y, Z)`` integer canonical classes of ``labels``.
        plan: ``min_component_voxels`` for :func:`remove_small_components`, ``largest_component`` for
            :func:`keep_largest_components`, ``et_min_voxels`` for :func:`relabel_small_enhancing`
            (``threshold`` belongs to :func:`probabilities_to_classes`); a params section is taken as the
            plan it fixes.
        labels: the label set of ``classes`` (its regions).

    Returns:
        The new class volume and its provenance ``{"components_removed": int, "largest_component_removed":
        int, "et_relabelled": bool}``.
    """
    plan = as_plan(plan)
    out, removed = remove_small_components(classes, plan.min_component_voxels)
    out, largest = keep_largest_components(out, plan.largest_component, labels)
    out, relabelled = relabel_small_enhancing(out, plan.et_min_voxels)
    return out, {
        "components_removed": removed,
        "largest_component_removed": sum(largest.values()),
        "et_relabelled": relabelled,
    }
