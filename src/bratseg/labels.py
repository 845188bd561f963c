"""BraTS label conventions as data: one table of label sets, their classes and their evaluated regions.

This is the only module that knows label values. Everything else speaks in **canonical classes**, the values
of every cached ``label.npy`` and of every prediction before it is written:

=====  =====  ==================================================  =========================
class  name   meaning                                             on disk per label set
=====  =====  ==================================================  =========================
0      —      background                                          0 everywhere
1      NETC   necrotic / non-enhancing tumour core                2021: 1 NCR; 2023/2024: 1;
                                                                  PED 2024: 2; MSD: 2 NET
2      SNFH   edema / surrounding FLAIR hyperintensity            2021: 2 ED; 2023/2024: 2;
                                                                  PED 2024: 4 ED; MSD: 1
3      ET     enhancing tumour                                    2021: 4; 2023/2024: 3;
                                                                  PED 2024: 1; MSD: 3
4      RC     resection cavity                                    2024 GLI/MET: 4
5      CC     cystic component                                    PED 2024: 3
=====  =====  ==================================================  =========================

A :class:`LabelSet` says how one release writes these classes (``values``), what it calls them, which regions
the challenge evaluates (unions of classes: WT, TC, ET and, where they exist, single-class regions such as
RC), and how a network with one sigmoid output per *training region* is decoded back to classes
(``hierarchy``: nnU-Net's region-based training for BraTS, regions applied in order, later ones winning).
The sets follow the organisers' evaluation configs (``brats-evaluation``: ``config_gli.yaml``,
``config_mets.yaml``, ``config_ped.yaml``, ``config_MenPre.yaml``) and the Decathlon's ``dataset.json``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

BACKGROUND, NETC, SNFH, ET, RC, CC = 0, 1, 2, 3, 4, 5
#: Canonical names of the tumour classes (index = class).
CANONICAL: tuple[str, ...] = ("background", "NETC", "SNFH", "ET", "RC", "CC")
N_CANONICAL = len(CANONICAL)
#: The adult-glioma names of the first three classes, used by the synthetic cohort.
NECROSIS, EDEMA, ENHANCING = NETC, SNFH, ET

#: What a network predicts: sigmoid masks of the training regions (nnU-Net for BraTS), or softmax classes.
TARGETS: tuple[str, ...] = ("regions", "classes")


class UnknownLabelError(ValueError):
    """A segmentation holds a value that its label set does not define."""


@dataclass(frozen=True)
class Region:
    """An evaluated region: a union of canonical classes."""

    name: str
    classes: tuple[int, ...]
    description: str


@dataclass(frozen=True)
class LabelSet:
    """How one BraTS release (or the Decathlon) encodes the tumour sub-regions, and what it evaluates.

    Attributes:
        name: the ``data.labels`` value that selects it.
        description: the releases it covers.
        values: on-disk value -> canonical class (background 0 -> 0 included).
        names: canonical class -> the release's own short name (``NCR`` in 2021, ``NETC`` from 2023 on).
        regions: the evaluated regions (metrics, report, ``dvc exp show`` columns), in display order.
        hierarchy: ``(region, class)`` pairs: the sigmoid training targets, and the class a voxel gets when
            the region is predicted there (applied in order; later pairs override earlier ones).
    """

    name: str
    description: str
    values: Mapping[int, int]
    names: Mapping[int, str]
    regions: tuple[Region, ...]
    hierarchy: tuple[tuple[str, int], ...]

    @property
    def classes(self) -> tuple[int, ...]:
        """The canonical tumour classes of this set, ascending (background excluded)."""
        return tuple(sorted(c for c in self.values.values() if c != BACKGROUND))

    @property
    def region_names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.regions)

    @property
    def training_regions(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.hierarchy)

    def region(self, name: str) -> Region:
        for r in self.regions:
            if r.name == name:
                return r
        raise KeyError(f"label set {self.name} has no region {name!r} (it has {list(self.region_names)})")

    def n_outputs(self, target: str) -> int:
        """Network outputs for a training target: one per training region, or background + one per class."""
        if target not in TARGETS:
            raise ValueError(f"target must be one of {list(TARGETS)}, got {target!r}")
        return len(self.hierarchy) if target == "regions" else len(self.classes) + 1

    def to_classes(self, seg: npt.NDArray[np.integer]) -> npt.NDArray[np.uint8]:
        """On-disk values -> canonical classes.

        Raises:
            UnknownLabelError: if ``seg`` holds a value this set does not define (the message lists them).
        """
        seg = np.asarray(seg)
        if not np.issubdtype(seg.dtype, np.integer):
            raise TypeError(f"seg must hold integers, got dtype {seg.dtype}")
        present = np.unique(seg)
        unknown = sorted(set(present.tolist()) - set(self.values))
        if unknown:
            raise UnknownLabelError(
                f"unknown label value(s) {unknown} for label set {self.name} (allowed {sorted(self.values)}; "
                "set data.labels if the cohort is another release)"
            )
        lut = np.zeros(max(self.values) + 1, dtype=np.uint8)
        for value, cls in self.values.items():
            lut[value] = cls
        return lut[seg]

    def can_write(self, classes: Iterable[int]) -> bool:
        """Whether every class of ``classes`` has a value in this set."""
        return set(classes) <= {BACKGROUND, *self.classes}

    def from_classes(self, classes: npt.NDArray[np.integer]) -> npt.NDArray[np.uint8]:
        """Canonical classes -> on-disk values.

        Raises:
            ValueError: if ``classes`` holds a class this set cannot write (e.g. RC into a 2021 file).
        """
        classes = np.asarray(classes)
        present = set(np.unique(classes).tolist())
        if not self.can_write(present):
            raise ValueError(
                f"classes {sorted(present - {BACKGROUND, *self.classes})} have no value in label set "
                f"{self.name}"
            )
        lut = np.zeros(N_CANONICAL, dtype=np.uint8)
        for value, cls in self.values.items():
            lut[cls] = value
        return lut[classes]

    def region_masks(
        self, classes: npt.NDArray[np.integer], names: Sequence[str] | None = None
    ) -> npt.NDArray[np.bool_]:
        """``(R, *spatial)`` masks of the regions ``names`` (default: the evaluated regions, in order)."""
        classes = np.asarray(classes)
        wanted = self.region_names if names is None else tuple(names)
        return np.stack([np.isin(classes, self.region(n).classes) for n in wanted])

    def training_masks(self, classes: npt.NDArray[np.integer]) -> npt.NDArray[np.bool_]:
        """``(len(hierarchy), *spatial)`` sigmoid targets of the training regions."""
        return self.region_masks(classes, self.training_regions)

    def decode(self, masks: npt.NDArray[np.bool_]) -> npt.NDArray[np.uint8]:
        """Classes from (possibly inconsistent) training-region masks, resolved by :attr:`hierarchy`.

        For the adult sets: a voxel in ET is enhancing; in TC but not ET, NETC; in WT but in neither, SNFH; a
        region predicted outside its parent still wins, so the result is always a valid class volume.

        Args:
            masks: ``(len(hierarchy), *spatial)`` booleans in the order of :attr:`hierarchy`.
        """
        masks = np.asarray(masks, dtype=bool)
        if masks.ndim < 2 or masks.shape[0] != len(self.hierarchy):
            raise ValueError(f"masks must have shape ({len(self.hierarchy)}, *spatial), got {masks.shape}")
        out = np.zeros(masks.shape[1:], dtype=np.uint8)
        for mask, (_, cls) in zip(masks, self.hierarchy, strict=True):
            out[mask] = cls
        return out

    def volumes_ml(self, classes: npt.NDArray[np.integer], spacing_mm: Sequence[float]) -> dict[str, float]:
        """Volume of each evaluated region in millilitres."""
        voxel_ml = float(np.prod(spacing_mm)) / 1000.0
        masks = self.region_masks(classes)
        return {r: float(m.sum()) * voxel_ml for r, m in zip(self.region_names, masks, strict=True)}


def _adult_regions(core: str = "tumour core") -> tuple[Region, ...]:
    return (
        Region("WT", (NETC, SNFH, ET), "whole tumour"),
        Region("TC", (NETC, ET), core),
        Region("ET", (ET,), "enhancing tumour"),
    )


_ADULT_HIERARCHY = (("WT", SNFH), ("TC", NETC), ("ET", ET))


def _set(
    name: str,
    description: str,
    values: dict[int, int],
    names: dict[int, str],
    regions: tuple[Region, ...],
    hierarchy: tuple[tuple[str, int], ...],
) -> LabelSet:
    return LabelSet(
        name,
        description,
        {0: BACKGROUND, **values},  # plain dicts: a label set travels to data-loader workers by pickle
        dict(names),
        regions,
        hierarchy,
    )


BRATS_2021 = _set(
    "brats2021",
    "BraTS 2018-2021 gliomas, and the embedded synthetic cohort",
    {1: NETC, 2: SNFH, 4: ET},
    {NETC: "NCR", SNFH: "ED", ET: "ET"},
    _adult_regions(),
    _ADULT_HIERARCHY,
)
BRATS_2023 = _set(
    "brats2023",
    "BraTS 2023 GLI, MEN, MET, SSA, PED (2023 labels)",
    {1: NETC, 2: SNFH, 3: ET},
    {NETC: "NETC", SNFH: "SNFH", ET: "ET"},
    _adult_regions(),
    _ADULT_HIERARCHY,
)
BRATS_2024 = _set(
    "brats2024",
    "BraTS 2024+ adult glioma (post-treatment) and metastases: adds the resection cavity",
    {1: NETC, 2: SNFH, 3: ET, 4: RC},
    {NETC: "NETC", SNFH: "SNFH", ET: "ET", RC: "RC"},
    (
        *_adult_regions(),
        Region("NETC", (NETC,), "non-enhancing tumour core"),
        Region("SNFH", (SNFH,), "surrounding FLAIR hyperintensity"),
        Region("RC", (RC,), "resection cavity"),
    ),
    (*_ADULT_HIERARCHY, ("RC", RC)),
)
BRATS_2024_PED = _set(
    "brats2024_ped",
    "BraTS 2024 paediatric tumours",
    {1: ET, 2: NETC, 3: CC, 4: SNFH},
    {ET: "ET", NETC: "NETC", CC: "CC", SNFH: "ED"},
    (
        Region("WT", (ET, NETC, CC, SNFH), "whole tumour"),
        Region("TC", (ET, NETC, CC), "tumour core"),
        Region("ET", (ET,), "enhancing tumour"),
        Region("NETC", (NETC,), "non-enhancing tumour"),
        Region("CC", (CC,), "cystic component"),
        Region("ED", (SNFH,), "peritumoral edema"),
    ),
    (("WT", SNFH), ("TC", NETC), ("CC", CC), ("ET", ET)),
)
MSD_TASK01 = _set(
    "msd_task01",
    "Medical Segmentation Decathlon Task01_BrainTumour (MONAI's BraTS tutorial)",
    {1: SNFH, 2: NETC, 3: ET},
    {SNFH: "edema", NETC: "non-enhancing tumor", ET: "enhancing tumour"},
    _adult_regions(),
    _ADULT_HIERARCHY,
)

LABEL_SETS: Mapping[str, LabelSet] = MappingProxyType(
    {s.name: s for s in (BRATS_2021, BRATS_2023, BRATS_2024, BRATS_2024_PED, MSD_TASK01)}
)


def label_set(name: str) -> LabelSet:
    """The label set ``name``.

    Raises:
        ValueError: naming the valid sets.
    """
    if name not in LABEL_SETS:
        raise ValueError(f"unknown label set {name!r}; valid: {', '.join(LABEL_SETS)}")
    return LABEL_SETS[name]


def region_descriptions() -> dict[str, str]:
    """Region name -> description, over every label set (for tables and figure legends)."""
    out: dict[str, str] = {}
    for labels in LABEL_SETS.values():
        for region in labels.regions:
            out.setdefault(region.name, region.description)
    return out
