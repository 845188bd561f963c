"""From network probabilities to a cleaned class volume.

All functions are pure: they never modify their inputs and do no I/O. Classes are the
canonical classes of :mod:`bratseg.labels` (0 background, 1 NETC, 2 SNFH, 3 ET, 4 RC, 5 CC).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from bratseg.config import PostprocessParams
from bratseg.labels import BACKGROUND, BRATS_2021, ENHANCING, NECROSIS, LabelSet


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


def postprocess(
    classes: npt.NDArray[np.integer], params: PostprocessParams
) -> tuple[npt.NDArray[np.integer], dict[str, int | bool]]:
    """Remove small tumour components, then relabel a small enhancing tumour (each disabled by a 0 parameter).

    Args:
        classes: ``(X, Y, Z)`` integer classes 0..3.
        params: ``min_component_voxels`` for :func:`remove_small_components`, ``et_min_voxels`` for
            :func:`relabel_small_enhancing` (``threshold`` belongs to :func:`probabilities_to_classes`).

    Returns:
        The new class volume and its provenance ``{"components_removed": int, "et_relabelled": bool}``.
    """
    out, removed = remove_small_components(classes, params.min_component_voxels)
    out, relabelled = relabel_small_enhancing(out, params.et_min_voxels)
    return out, {"components_removed": removed, "et_relabelled": relabelled}
