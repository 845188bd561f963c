"""BraTS label conventions, the consecutive training classes, and the regions WT / TC / ET.

This is the only module that knows label values. Everything else speaks in *classes*:

=====  ==========  ===========================================  ==========  ==========
class  name        BraTS meaning                                2020/2021   2023+
=====  ==========  ===========================================  ==========  ==========
0      background                                               0           0
1      necrosis    necrotic / non-enhancing tumour core         1 (NCR)     1 (NETC)
2      edema       peritumoural edema / FLAIR hyperintensity    2 (ED)      2 (SNFH)
3      enhancing   enhancing tumour                             4 (ET)      3 (ET)
=====  ==========  ===========================================  ==========  ==========

The evaluated regions are nested (WT ⊇ TC ⊇ ET):

- WT, whole tumour  = necrosis ∪ edema ∪ enhancing
- TC, tumour core   = necrosis ∪ enhancing
- ET, enhancing     = enhancing
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

BACKGROUND, NECROSIS, EDEMA, ENHANCING = 0, 1, 2, 3
CLASS_NAMES: tuple[str, ...] = ("background", "necrosis", "edema", "enhancing")
N_CLASSES = len(CLASS_NAMES)

REGIONS: tuple[str, ...] = ("WT", "TC", "ET")
REGION_NAMES: dict[str, str] = {"WT": "whole tumour", "TC": "tumour core", "ET": "enhancing tumour"}
REGION_CLASSES: dict[str, tuple[int, ...]] = {
    "WT": (NECROSIS, EDEMA, ENHANCING),
    "TC": (NECROSIS, ENHANCING),
    "ET": (ENHANCING,),
}


#: What a network predicts: sigmoid masks of the nested regions (nnU-Net for BraTS), or softmax classes.
TARGETS: tuple[str, ...] = ("regions", "classes")


def n_outputs(target: str) -> int:
    """Output channels for a training target: 3 regions (WT, TC, ET) or 4 classes."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {list(TARGETS)}, got {target!r}")
    return len(REGIONS) if target == "regions" else N_CLASSES


class UnknownLabelError(ValueError):
    """A segmentation holds a value that its label convention does not define."""


@dataclass(frozen=True)
class LabelConvention:
    """How one BraTS release encodes the tumour sub-regions on disk."""

    name: str
    necrosis: int
    edema: int
    enhancing: int

    @property
    def values(self) -> tuple[int, ...]:
        """All values a segmentation may hold, background first."""
        return (0, self.necrosis, self.edema, self.enhancing)

    def class_to_value(self) -> npt.NDArray[np.uint8]:
        """Lookup table: index = class, value = on-disk label."""
        return np.array(self.values, dtype=np.uint8)


#: BraTS 2020 and 2021 (and the embedded synthetic cohort): enhancing tumour is 4.
BRATS_2021 = LabelConvention("brats2021", necrosis=1, edema=2, enhancing=4)
#: BraTS 2023 and later (GLI, MEN, MET, PED, SSA): enhancing tumour is 3.
BRATS_2023 = LabelConvention("brats2023", necrosis=1, edema=2, enhancing=3)
CONVENTIONS: dict[str, LabelConvention] = {c.name: c for c in (BRATS_2021, BRATS_2023)}


def to_classes(seg: npt.NDArray[np.integer], convention: LabelConvention) -> npt.NDArray[np.uint8]:
    """Map an on-disk segmentation to consecutive classes 0..3.

    Args:
        seg: integer label volume of any shape.
        convention: the release the volume comes from.

    Raises:
        UnknownLabelError: if ``seg`` holds a value outside ``convention.values`` (the message lists them).
    """
    seg = np.asarray(seg)
    if not np.issubdtype(seg.dtype, np.integer):
        raise TypeError(f"seg must hold integers, got dtype {seg.dtype}")
    present = np.unique(seg)
    unknown = sorted(set(present.tolist()) - set(convention.values))
    if unknown:
        raise UnknownLabelError(
            f"unknown label value(s) {unknown} for convention {convention.name} "
            f"(allowed {list(convention.values)})"
        )
    lut = np.zeros(max(convention.values) + 1, dtype=np.uint8)
    for cls, value in enumerate(convention.values):
        lut[value] = cls
    return lut[seg]


def from_classes(classes: npt.NDArray[np.integer], convention: LabelConvention) -> npt.NDArray[np.uint8]:
    """Inverse of :func:`to_classes`: consecutive classes back to the on-disk values of ``convention``."""
    classes = np.asarray(classes)
    if classes.size and (classes.min() < 0 or classes.max() >= N_CLASSES):
        raise ValueError(f"classes must lie in [0, {N_CLASSES - 1}], got [{classes.min()}, {classes.max()}]")
    return convention.class_to_value()[classes]


def classes_to_regions(classes: npt.NDArray[np.integer]) -> npt.NDArray[np.bool_]:
    """Region masks from a class volume.

    Args:
        classes: ``(*spatial)`` volume of classes 0..3.

    Returns:
        ``(3, *spatial)`` boolean masks in the order :data:`REGIONS` (WT, TC, ET).
    """
    classes = np.asarray(classes)
    return np.stack([np.isin(classes, REGION_CLASSES[r]) for r in REGIONS])


def regions_to_classes(regions: npt.NDArray[np.bool_]) -> npt.NDArray[np.uint8]:
    """Classes from (possibly inconsistent) region masks, resolving them hierarchically.

    A voxel in ET is enhancing; in TC but not ET, necrosis; in WT but in neither, edema. A region predicted
    outside its parent (e.g. ET outside WT) still wins, so the result always satisfies WT ⊇ TC ⊇ ET.

    Args:
        regions: ``(3, *spatial)`` boolean masks in the order WT, TC, ET.
    """
    regions = np.asarray(regions, dtype=bool)
    if regions.ndim < 2 or regions.shape[0] != len(REGIONS):
        raise ValueError(f"regions must have shape (3, *spatial), got {regions.shape}")
    out = np.zeros(regions.shape[1:], dtype=np.uint8)
    out[regions[0]] = EDEMA
    out[regions[1]] = NECROSIS
    out[regions[2]] = ENHANCING
    return out


def region_volumes_ml(classes: npt.NDArray[np.integer], spacing_mm: tuple[float, ...]) -> dict[str, float]:
    """Volume of each region in millilitres, given the voxel spacing in millimetres."""
    voxel_ml = float(np.prod(spacing_mm)) / 1000.0
    masks = classes_to_regions(classes)
    return {r: float(m.sum()) * voxel_ml for r, m in zip(REGIONS, masks, strict=True)}
