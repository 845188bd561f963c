"""From network probabilities to a cleaned class volume.

All functions are pure: they never modify their inputs and do no I/O. Classes are the
canonical classes of :mod:`bratseg.labels` (0 background, 1 NETC, 2 SNFH, 3 ET, 4 RC, 5 CC).

What is done after thresholding is a :class:`PostprocessPlan`: small components and components without a
tumour core removed, only the largest component kept of some regions, a small enhancing tumour relabelled as
necrosis (the component steps live in :mod:`bratseg.inference.components`). The crossval stage chooses it
on the out-of-fold predictions and writes it beside the models (``models/postprocessing.json``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from bratseg.config import PostprocessParams
from bratseg.inference.components import (
    check_classes,
    check_min_voxels,
    keep_largest_component,
    keep_largest_components,
    largest_component_fill,
    relabel_unconfident_enhancing,
    remove_coreless_components,
    remove_small_components,
)
from bratseg.labels import BACKGROUND, BRATS_2021, ENHANCING, NECROSIS, LabelSet

__all__ = [
    "PostprocessPlan",
    "as_plan",
    "classes_from_probabilities",
    "enhancing_probability",
    "keep_largest_component",
    "keep_largest_components",
    "largest_component_fill",
    "postprocess",
    "probabilities_to_classes",
    "relabel_small_enhancing",
    "relabel_unconfident_enhancing",
    "remove_coreless_components",
    "remove_small_components",
]


@dataclass(frozen=True)
class PostprocessPlan:
    """Everything done to a prediction after the network, in order.

    Attributes:
        threshold: probability threshold of the region outputs (:func:`probabilities_to_classes`).
        et_min_mean_probability: :func:`relabel_unconfident_enhancing` on the network output, with the
            threshold (:func:`classes_from_probabilities`; 0: off).
        min_component_voxels: :func:`remove_small_components` (0: off).
        largest_component: regions of which only the largest connected component is kept
            (:func:`keep_largest_components`), applied in the label set's region order.
        et_min_voxels: :func:`relabel_small_enhancing` (0: off).
        min_core_voxels: :func:`remove_coreless_components` (0: off), applied after the small components.
    """

    threshold: float
    min_component_voxels: int = 0
    largest_component: tuple[str, ...] = ()
    et_min_voxels: int = 0
    min_core_voxels: int = 0
    et_min_mean_probability: float = 0.0

    @classmethod
    def from_params(cls, params: PostprocessParams) -> PostprocessPlan:
        """The plan that ``params`` fixes (its ``largest_component`` and ``et_min_voxels`` as given)."""
        return cls(
            threshold=params.threshold,
            min_component_voxels=params.min_component_voxels,
            largest_component=tuple(params.largest_component),
            et_min_voxels=params.et_min_voxels,
            min_core_voxels=params.min_core_voxels,
            et_min_mean_probability=params.et_min_mean_probability,
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PostprocessPlan:
        """The inverse of :meth:`to_dict`. A plan written before ``min_core_voxels`` or
        ``et_min_mean_probability`` existed lacks it: 0.

        Raises:
            ValueError: on a missing or unknown key, naming it.
        """
        required = {"threshold", "min_component_voxels", "largest_component", "et_min_voxels"}
        keys = required | {"min_core_voxels", "et_min_mean_probability"}
        if not required <= set(data) <= keys:
            raise ValueError(f"plan: keys {sorted(data)} are not {sorted(keys)}")
        return cls(
            float(data["threshold"]),
            int(data["min_component_voxels"]),
            tuple(str(r) for r in data["largest_component"]),
            int(data["et_min_voxels"]),
            int(data.get("min_core_voxels", 0)),
            float(data.get("et_min_mean_probability", 0.0)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "min_component_voxels": self.min_component_voxels,
            "largest_component": list(self.largest_component),
            "et_min_voxels": self.et_min_voxels,
            "min_core_voxels": self.min_core_voxels,
            "et_min_mean_probability": self.et_min_mean_probability,
        }

    def describe(self) -> str:
        """One line for logs and the report."""
        parts = [f"threshold {self.threshold:g}"]
        if self.et_min_mean_probability:
            parts.append(
                f"ET components of mean probability below {self.et_min_mean_probability:g} relabelled NETC"
            )
        if self.min_component_voxels:
            parts.append(f"components below {self.min_component_voxels} voxels removed")
        if self.min_core_voxels:
            parts.append(f"components with under {self.min_core_voxels} core voxels removed")
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


def enhancing_probability(
    probs: npt.NDArray[np.floating], target: str, labels: LabelSet = BRATS_2021
) -> npt.NDArray[np.floating]:
    """The ET channel of a network output ``(C, X, Y, Z)`` (:func:`probabilities_to_classes`): the ``ET``
    training region's sigmoid for ``target="regions"``, the enhancing class's softmax for ``"classes"``.

    Raises:
        ValueError: the label set has no ET region or class, or ``probs`` has the wrong number of channels.
    """
    probs = np.asarray(probs)
    n_channels = labels.n_outputs(target)
    if probs.ndim < 2 or probs.shape[0] != n_channels:
        raise ValueError(
            f"probs must have shape ({n_channels}, *spatial) for target {target!r}, got {probs.shape}"
        )
    if target == "regions":
        if "ET" not in labels.training_regions:
            raise ValueError(f"label set {labels.name} has no ET training region")
        return probs[labels.training_regions.index("ET")]
    if ENHANCING not in labels.classes:
        raise ValueError(f"label set {labels.name} has no enhancing-tumour class")
    return probs[1 + labels.classes.index(ENHANCING)]


def classes_from_probabilities(
    probs: npt.NDArray[np.floating],
    target: str,
    plan: PostprocessPlan | PostprocessParams,
    labels: LabelSet = BRATS_2021,
) -> tuple[npt.NDArray[np.uint8], int]:
    """The plan's steps that need the network output: :func:`probabilities_to_classes` at its threshold, then
    :func:`relabel_unconfident_enhancing` at its ``et_min_mean_probability`` (0: off).

    Returns:
        ``(X, Y, Z)`` uint8 canonical classes and the number of ET components relabelled NETC.
    """
    plan = as_plan(plan)
    classes = probabilities_to_classes(probs, target, plan.threshold, labels)
    if not plan.et_min_mean_probability:
        return classes, 0
    et = enhancing_probability(probs, target, labels)
    out, relabelled = relabel_unconfident_enhancing(classes, et, plan.et_min_mean_probability)
    return out.astype(np.uint8, copy=False), relabelled


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
    classes = check_classes(classes)
    check_min_voxels("min_voxels", min_voxels)
    out = classes.copy()
    enhancing = out == ENHANCING
    n_enhancing = int(enhancing.sum())
    if 0 < n_enhancing < min_voxels:
        out[enhancing] = NECROSIS
        return out, True
    return out, False


def postprocess(
    classes: npt.NDArray[np.integer],
    plan: PostprocessPlan | PostprocessParams,
    labels: LabelSet = BRATS_2021,
) -> tuple[npt.NDArray[np.integer], dict[str, int | bool]]:
    """Remove small tumour components and those without a tumour core, keep the largest component of the
    plan's regions, then relabel a small enhancing tumour (each off when the plan says 0 or no region).

    Args:
        classes: ``(X, Y, Z)`` integer canonical classes of ``labels``.
        plan: ``min_component_voxels`` for :func:`remove_small_components`, ``min_core_voxels`` for
            :func:`remove_coreless_components`, ``largest_component`` for
            :func:`keep_largest_components`, ``et_min_voxels`` for :func:`relabel_small_enhancing`
            (``threshold`` belongs to :func:`probabilities_to_classes`); a params section is taken as the
            plan it fixes.
        labels: the label set of ``classes`` (its regions).

    Returns:
        The new class volume and its provenance ``{"components_removed": int, "coreless_removed": int,
        "largest_component_removed": int, "et_relabelled": bool}``.
    """
    plan = as_plan(plan)
    out, removed = remove_small_components(classes, plan.min_component_voxels)
    out, coreless = remove_coreless_components(out, plan.min_core_voxels, labels)
    out, largest = keep_largest_components(out, plan.largest_component, labels)
    out, relabelled = relabel_small_enhancing(out, plan.et_min_voxels)
    return out, {
        "components_removed": removed,
        "coreless_removed": coreless,
        "largest_component_removed": sum(largest.values()),
        "et_relabelled": relabelled,
    }
