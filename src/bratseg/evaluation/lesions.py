"""Lesions of binary masks: connected components, their overlaps, one-to-one matching, per-lesion surfaces.

The machinery behind :mod:`bratseg.evaluation.lesionwise`; every function works on a *crop* and never runs a
full-volume transform per lesion:

- The case is cropped once to the bounding box of ``pred ∪ ref``, grown by the dilation radius and clipped to
  the array. Components, dilation and overlaps computed on that crop equal those of the whole volume: every
  foreground voxel is inside it, a dilation by ``k`` iterations reaches at most ``k`` voxels (Chebyshev) from
  the reference, and outside the array counts as background both in the crop and in the whole volume
  (``scipy.ndimage`` uses ``border_value=0`` / ``mode="constant"``).
- Per-label bounding boxes come from one ``scipy.ndimage.find_objects`` pass; the surface distances of a
  lesion and its predicted components are computed on the union of their boxes by
  :func:`bratseg.evaluation.surface.surface_distances`, which is exact on any box holding both masks.
- Overlap counts come from one ``np.unique`` over the voxels that are foreground in both label maps.

Connectivity: components are ``ndim``-connected (26 in 3-D, the BraTS reference and panoptica's cc3d);
the dilation structuring element is ``scipy.ndimage.generate_binary_structure(ndim, 2)`` (18 in 3-D, the
BraTS 2023 reference code's). Labels are numbered in C order of each component's first voxel, as
``scipy.ndimage.label`` and ``cc3d.connected_components`` both number them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from bratseg.evaluation.surface import FloatArray, bounding_box, surface_distances

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.intp]
LabelArray = npt.NDArray[np.int32]
Box = tuple[slice, ...]

#: Largest foreground fraction labelled cluster by cluster (see :func:`label_components`).
SPARSE_FRACTION = 0.05
#: Block size (voxels per axis) of the clusters of a sparse mask.
BLOCK = 4
#: Cost of a forbidden pair in the assignment problem, as panoptica's ``MaxBipartiteMatching`` sets it.
_NO_MATCH_COST = 1.0 + 1e-6


class Components(NamedTuple):
    """Labelled components of one mask (on a crop).

    Attributes:
        labels: ``(*crop)`` int32 map, 0 background, components 1..n.
        n: number of components.
        sizes: ``(n + 1,)`` voxel counts per label (entry 0: background).
        boxes: ``n`` bounding boxes, ``boxes[i - 1]`` for label ``i`` (every label 1..n is present).
    """

    labels: LabelArray
    n: int
    sizes: IntArray
    boxes: list[Box]


def _components(labels: LabelArray, n: int, mask: BoolArray) -> Components:
    """Sizes and boxes of the labels ``1..n`` of ``labels``, which are nonzero exactly on ``mask``."""
    sizes = np.bincount(labels[mask], minlength=n + 1).astype(np.intp)
    boxes: list[Box] = ndimage.find_objects(labels, max_label=n)
    return Components(labels, n, sizes, boxes)


def label_components(mask: BoolArray) -> Components:
    """``ndim``-connected components (26 in 3-D) of a boolean ``(*crop)`` mask.

    Equal, labels included, to ``scipy.ndimage.label`` with the full structuring element. A sparse mask (at
    most ``SPARSE_FRACTION`` foreground) is labelled cluster by cluster: its voxels are binned into blocks of
    ``BLOCK`` voxels per axis, the occupied blocks are labelled (voxels of one component lie in one connected
    group of blocks), each group is labelled on the tight box of its own voxels, and the components are
    numbered in C order of their first voxel, as scipy numbers them. The cost then follows the foreground,
    not the crop.
    """
    structure = ndimage.generate_binary_structure(mask.ndim, mask.ndim)
    flat = np.flatnonzero(mask)
    if flat.size > SPARSE_FRACTION * mask.size:
        labels, n = ndimage.label(mask, structure=structure, output=np.int32)
        return _components(labels, int(n), mask)
    coords = np.unravel_index(flat, mask.shape)
    coarse_shape = tuple(-(-n // BLOCK) for n in mask.shape)
    coarse_flat = np.ravel_multi_index(tuple(c // BLOCK for c in coords), coarse_shape)
    coarse = np.zeros(coarse_shape, bool)
    coarse.flat[coarse_flat] = True
    groups, n_groups = ndimage.label(coarse, structure=structure, output=np.int32)
    group = groups.ravel()[coarse_flat]
    order = np.argsort(group, kind="stable")
    starts = np.searchsorted(group[order], np.arange(1, n_groups + 2))
    voxel_label = np.empty(flat.size, np.int64)
    n = 0
    for g in range(n_groups):
        members = order[starts[g] : starts[g + 1]]
        points = [c[members] for c in coords]
        lows = [int(p.min()) for p in points]
        local = tuple(p - lo for p, lo in zip(points, lows, strict=True))
        sub = np.zeros([int(p.max()) + 1 for p in local], bool)
        sub[local] = True
        sub_labels, sub_n = ndimage.label(sub, structure=structure, output=np.int32)
        voxel_label[members] = sub_labels[local] + n
        n += int(sub_n)
    # ``flat`` is in C order, so the first occurrence of a label is the component's first voxel
    _, first = np.unique(voxel_label, return_index=True)
    rank = np.empty(n, np.int64)
    rank[np.argsort(first)] = np.arange(1, n + 1)
    final = rank[voxel_label - 1].astype(np.int32)
    labels = np.zeros(mask.shape, np.int32)
    labels.flat[flat] = final
    boxes: list[Box] = []
    if n:
        by_label = np.argsort(final, kind="stable")
        bounds = np.searchsorted(final[by_label], np.arange(1, n + 1))
        sorted_coords = [c[by_label] for c in coords]
        starts_of = [np.minimum.reduceat(c, bounds) for c in sorted_coords]
        stops_of = [np.maximum.reduceat(c, bounds) + 1 for c in sorted_coords]
        spans = list(zip(starts_of, stops_of, strict=True))
        boxes = [tuple(slice(int(lo[i]), int(hi[i])) for lo, hi in spans) for i in range(n)]
    return Components(labels, n, np.bincount(final, minlength=n + 1).astype(np.intp), boxes)


def _shift_or(mask: BoolArray, axis: int) -> BoolArray:
    """Dilation of ``mask`` by the 3-voxel line along ``axis`` (outside the array = background)."""
    out = mask.copy()
    lo, hi = [slice(None)] * mask.ndim, [slice(None)] * mask.ndim
    lo[axis], hi[axis] = slice(None, -1), slice(1, None)
    out[tuple(lo)] |= mask[tuple(hi)]
    out[tuple(hi)] |= mask[tuple(lo)]
    return out


def dilate(mask: BoolArray, iterations: int) -> BoolArray:
    """``iterations`` dilations with ``generate_binary_structure(ndim, 2)`` (18-neighbourhood in 3-D).

    Equal to ``scipy.ndimage.binary_dilation(mask, structure, iterations)`` for ``iterations >= 1`` (and the
    identity for 0), computed from line dilations: the structure is the union, over pairs of axes, of the 3×3
    square in their plane, and a square is two line dilations (``X ⊕ (A ∪ B) = (X ⊕ A) ∪ (X ⊕ B)``). About
    ten times faster than scipy's generic dilation with the 18-element structure.

    Args:
        mask: ``(*crop)`` boolean array, ``ndim >= 1``.
        iterations: ``>= 0``.
    """
    ndim = mask.ndim
    out = mask
    for _ in range(iterations):
        lines = [_shift_or(out, axis) for axis in range(ndim)]
        if ndim == 1:
            out = lines[0]
            continue
        grown = np.zeros_like(out)
        for i in range(ndim - 1):
            for j in range(i + 1, ndim):
                grown |= _shift_or(lines[i], j)
        out = grown
    return out


def dilated_lesions(ref: BoolArray, iterations: int) -> tuple[Components, LabelArray]:
    """Reference lesions merged by dilation, the BraTS 2023 way.

    The reference is dilated ``iterations`` times with the ``(ndim, 2)`` structuring element (18 in 3-D);
    each ``ndim``-connected blob of the dilated mask is one lesion, made of the reference voxels inside it.
    A blob equals the dilation of its own lesion (the dilation of a union is the union of the dilations,
    and a dilated voxel is connected to the voxel it grew from), so this is what the reference code gets by
    dilating each lesion on its own. ``iterations=0`` gives the plain components (no dilation).

    Args:
        ref: ``(*crop)`` boolean reference.
        iterations: dilation iterations, ``>= 0``.

    Returns:
        ``(lesions, blobs)``: the lesions (label ``i`` = reference voxels of blob ``i``) and the ``(*crop)``
        labelled dilated blobs, which decide what a predicted component touches.
    """
    if iterations == 0:
        lesions = label_components(ref)
        return lesions, lesions.labels
    blobs = label_components(dilate(ref, iterations))
    lesion_labels = np.where(ref, blobs.labels, 0).astype(np.int32)
    return _components(lesion_labels, blobs.n, ref), blobs.labels


def crop_box(mask: BoolArray, margin: int) -> Box | None:
    """Bounding box of ``mask`` grown by ``margin`` voxels per side, clipped to the array or ``None``."""
    box = bounding_box(mask)
    if box is None:
        return None
    return tuple(
        slice(max(s.start - margin, 0), min(s.stop + margin, n)) for s, n in zip(box, mask.shape, strict=True)
    )


def overlap_pairs(a: LabelArray, b: LabelArray, n_b: int) -> tuple[IntArray, IntArray, IntArray]:
    """Pairs of labels of two maps that share voxels, and how many.

    Args:
        a, b: ``(*crop)`` label maps (0 background); ``b`` holds labels ``0..n_b``.
        n_b: the largest label of ``b``.

    Returns:
        ``(a_ids, b_ids, counts)``: 1-D arrays, one entry per overlapping pair, sorted by ``(a_id, b_id)``.
    """
    both = (a > 0) & (b > 0)
    code = a[both].astype(np.int64) * (n_b + 1) + b[both]
    codes, counts = np.unique(code, return_counts=True)
    return (codes // (n_b + 1)).astype(np.intp), (codes % (n_b + 1)).astype(np.intp), counts.astype(np.intp)


def union_box(boxes: Iterable[Box]) -> Box:
    """Smallest box holding every box of a non-empty collection."""
    boxes = list(boxes)
    return tuple(
        slice(min(b[axis].start for b in boxes), max(b[axis].stop for b in boxes))
        for axis in range(len(boxes[0]))
    )


def match_one_to_one(
    ref_ids: IntArray, pred_ids: IntArray, scores: FloatArray, threshold: float
) -> tuple[IntArray, IntArray]:
    """Maximum-weight one-to-one matching of reference and predicted components on a score.

    The assignment panoptica's ``MaxBipartiteMatching`` solves: pairs scoring at least ``threshold`` cost
    ``1 - score``, all others ``1 + 1e-6``, ``scipy.optimize.linear_sum_assignment`` minimises the total and
    the assigned pairs of cost below 1 are the matches. Equivalently, the matching maximises the sum of
    ``score + 1e-6`` over matched pairs. Components without an eligible pair are left out of the cost matrix
    (they cannot change the optimum); if two matchings reach the same total, which one is returned is
    unspecified.

    Args:
        ref_ids, pred_ids: ``(n_pairs,)`` labels of the candidate pairs (e.g. from :func:`overlap_pairs`).
        scores: ``(n_pairs,)`` score of each pair (higher is better).
        threshold: smallest score of a match.

    Returns:
        ``(ref_matched, pred_matched)``: the matched labels, pairwise, sorted by reference label.
    """
    keep = scores >= threshold
    ref_ids, pred_ids, scores = ref_ids[keep], pred_ids[keep], scores[keep]
    if ref_ids.size == 0:
        return ref_ids, pred_ids
    rows, ref_index = np.unique(ref_ids, return_inverse=True)
    cols, pred_index = np.unique(pred_ids, return_inverse=True)
    cost = np.full((rows.size, cols.size), _NO_MATCH_COST)
    cost[ref_index, pred_index] = 1.0 - scores
    r, c = linear_sum_assignment(cost)
    ok = cost[r, c] < 1.0
    return rows[r[ok]], cols[c[ok]]


def pair_distances(
    ref: Components,
    ref_id: int,
    pred: Components,
    pred_ids: Sequence[int],
    spacing: Sequence[float],
) -> tuple[FloatArray, FloatArray]:
    """Surface distances between one reference lesion and the union of some predicted components.

    Computed on the union of their bounding boxes (see the module docstring), never on the whole crop.

    Args:
        ref: reference components; ``ref_id`` one of their labels.
        pred: predicted components on the same crop; ``pred_ids`` a non-empty list of their labels.
        spacing: the spacing distances are measured with (mm, or ones for voxel units).

    Returns:
        ``(pred_to_ref, ref_to_pred)`` as :func:`bratseg.evaluation.surface.surface_distances` returns.
    """
    box = union_box([ref.boxes[ref_id - 1], *(pred.boxes[j - 1] for j in pred_ids)])
    ref_mask = ref.labels[box] == ref_id
    pred_labels = pred.labels[box]
    pred_mask = pred_labels == pred_ids[0] if len(pred_ids) == 1 else np.isin(pred_labels, pred_ids)
    return surface_distances(pred_mask, ref_mask, spacing)
