"""Dataset layouts: which files make a case, and which label set reads its segmentation.

Supported (``.nii`` or ``.nii.gz``; ``data.layout: auto`` tells them apart by the case folder names):

==============  ==================================================================  ===================
layout          case folder and files                                               label set (auto)
==============  ==================================================================  ===================
``brats2018``   ``[HGG|LGG/]Brats18_2013_2_1/Brats18_2013_2_1_{t1,t1ce,t2,flair,seg}``  brats2021
``brats2019``   ``[HGG|LGG/]BraTS19_CBICA_AAB_1/BraTS19_CBICA_AAB_1_{...}``             brats2021
``brats2020``   ``BraTS20_Training_001/BraTS20_Training_001_{t1,t1ce,t2,flair,seg}``     brats2021
``brats2021``   ``BraTS2021_00000/BraTS2021_00000_{t1,t1ce,t2,flair,seg}``               brats2021
``brats2023``   ``BraTS-GLI-00000-000/BraTS-GLI-00000-000-{t1n,t1c,t2w,t2f,seg}``        see below
``msd_task01``  ``imagesTr/BRATS_001.nii.gz`` (4D) + ``labelsTr/BRATS_001.nii.gz``,    msd_task01
                channel order from ``dataset.json``
==============  ==================================================================  ===================

The 2018/2019 grade folders (``HGG``, ``LGG``) are read and the grade kept as case metadata. In the 2023+
naming the challenge decides: MEN and SSA use the 2023 labels; GLI, MET and GoAT are read with the 2024
values (the 2023 ones plus 4 = resection cavity), and the split stage settles 2023 vs 2024 from the label
values found (:func:`bratseg.preprocess.fingerprint.cohort_label_set`); PED cannot be told apart by names
(2023 and 2024 give its labels other meanings) and needs ``data.labels``. An explicit ``data.labels`` reads
every case with that set.

A case without a segmentation (validation/test releases) is unlabelled. Missing *images* are not an error
here: the ingest step reports them per case, so one broken case does not stop the others. Release quirks: a
file named otherwise (BraTS 2020 training case 355 ships ``W39_1998.09.19_Segm.nii``) is taken through
``data.overrides: {case_id: {seg: file name}}``; without it the ingest step names the folder and the files it
found.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bratseg.labels import LABEL_SETS, LabelSet, label_set

MODALITIES: tuple[str, ...] = ("t1", "t1ce", "t2", "flair")
KINDS: tuple[str, ...] = (*MODALITIES, "seg")
NIFTI = (".nii.gz", ".nii")


@dataclass(frozen=True)
class Layout:
    """File naming of one release (one folder per case)."""

    name: str
    folder_pattern: re.Pattern[str]
    separator: str
    suffixes: dict[str, str]  # modality (or "seg") -> file suffix
    labels: str  # label set read by default (brats2023: decided per challenge, see _default_labels)
    grade_folders: bool = False  # cases may sit in HGG/ and LGG/ sub-folders


_CLASSIC = {"t1": "t1", "t1ce": "t1ce", "t2": "t2", "flair": "flair", "seg": "seg"}
LAYOUTS: dict[str, Layout] = {
    "brats2018": Layout("brats2018", re.compile(r"^Brats18_\w+$"), "_", _CLASSIC, "brats2021", True),
    "brats2019": Layout("brats2019", re.compile(r"^BraTS19_\w+$"), "_", _CLASSIC, "brats2021", True),
    "brats2020": Layout(
        "brats2020", re.compile(r"^BraTS20_(Training|Validation|Testing)_\d+$"), "_", _CLASSIC, "brats2021"
    ),
    "brats2021": Layout("brats2021", re.compile(r"^BraTS2021_\d+$"), "_", _CLASSIC, "brats2021"),
    "brats2023": Layout(
        "brats2023",
        re.compile(r"^BraTS-[A-Za-z]+-\d+-\d+$"),
        "-",
        {"t1": "t1n", "t1ce": "t1c", "t2": "t2w", "flair": "t2f", "seg": "seg"},
        "brats2023",
    ),
}
#: The Medical Segmentation Decathlon's brain-tumour task: a dataset folder, not one folder per case.
MSD = "msd_task01"
GRADE_FOLDERS = ("HGG", "LGG")
#: MSD channel names (dataset.json "modality") -> modality.
MSD_CHANNELS = {
    "flair": "flair",
    "t1w": "t1",
    "t1": "t1",
    "t1gd": "t1ce",
    "t1ce": "t1ce",
    "t2w": "t2",
    "t2": "t2",
}


@dataclass(frozen=True)
class CaseFiles:
    """The files of one case. ``images`` holds the expected path of every modality, present or not.

    Attributes:
        labels: the label set that reads the segmentation and writes predictions (a ``LABEL_SETS`` name).
        candidates: the label sets the names allow (the split stage settles among them by values).
        channels: for a 4D image (MSD), the channel of each modality in its file.
        unexpected: NIfTI files in the case folder that no role matched (reported when no seg was found).
        meta: case metadata from the layout (``grade`` for BraTS 2018/2019).
    """

    case_id: str
    folder: Path
    layout: str
    images: dict[str, Path]
    seg: Path | None
    labels: str = "brats2021"
    candidates: tuple[str, ...] = ("brats2021",)
    channels: dict[str, int] = field(default_factory=dict)
    unexpected: tuple[Path, ...] = ()
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def convention(self) -> LabelSet:
        return label_set(self.labels)

    def sources(self) -> dict[str, str]:
        """The file of each modality (and ``seg`` when labelled), as strings: what a cached case records."""
        out = {m: str(p) for m, p in self.images.items()}
        if self.seg is not None:
            out["seg"] = str(self.seg)
        return out

    def relocated(self, paths: Sequence[Path]) -> CaseFiles:
        """The same case with every file replaced by the one of ``paths`` that has its name (a job's copies
        of the inputs, e.g. from Snakemake's storage without a shared filesystem); the others stay."""
        by_name = {p.name: p for p in paths}

        def moved(path: Path) -> Path:
            return by_name.get(path.name, path)

        return dataclasses.replace(
            self,
            images={m: moved(p) for m, p in self.images.items()},
            seg=None if self.seg is None else moved(self.seg),
            unexpected=tuple(moved(p) for p in self.unexpected),
        )

    def to_record(self) -> dict[str, Any]:
        """Plain data (paths as strings), e.g. to hand the case to a Snakemake job."""
        return {
            "case_id": self.case_id,
            "folder": str(self.folder),
            "layout": self.layout,
            "images": {m: str(p) for m, p in self.images.items()},
            "seg": None if self.seg is None else str(self.seg),
            "labels": self.labels,
            "candidates": list(self.candidates),
            "channels": dict(self.channels),
            "unexpected": [str(p) for p in self.unexpected],
            "meta": dict(self.meta),
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> CaseFiles:
        """The inverse of :meth:`to_record`."""
        return cls(
            case_id=record["case_id"],
            folder=Path(record["folder"]),
            layout=record["layout"],
            images={m: Path(p) for m, p in record["images"].items()},
            seg=None if record["seg"] is None else Path(record["seg"]),
            labels=record["labels"],
            candidates=tuple(record["candidates"]),
            channels=dict(record["channels"]),
            unexpected=tuple(Path(p) for p in record["unexpected"]),
            meta=dict(record["meta"]),
        )

    def existing_files(self) -> list[Path]:
        """The files of this case that exist on disk (images once each, then segmentation)."""
        files = list(dict.fromkeys(p for p in self.images.values() if p.exists()))
        return files + ([self.seg] if self.seg is not None and self.seg.exists() else [])


def detect_layout(case_id: str) -> str:
    """The layout whose folder naming matches ``case_id``.

    Raises:
        ValueError: if no known layout matches.
    """
    for name, layout in LAYOUTS.items():
        if layout.folder_pattern.match(case_id):
            return name
    raise ValueError(
        f"case folder {case_id!r} matches no BraTS layout ({', '.join([*LAYOUTS, MSD])}); "
        "set data.layout or rename the folder"
    )


def _default_labels(layout: str, case_id: str) -> tuple[str, tuple[str, ...]]:
    """(label set that reads the case, the sets its names allow) under ``data.labels: auto``.

    Raises:
        ValueError: for a BraTS-PED case, whose label meaning the names cannot tell.
    """
    if layout != "brats2023":
        name = LAYOUTS[layout].labels if layout in LAYOUTS else MSD
        return name, (name,)
    challenge = case_id.split("-")[1].upper()
    if challenge == "PED":
        raise ValueError(
            f"{case_id}: BraTS-PED labels mean different things in 2023 (1 NETC, 2 SNFH, 3 ET) and 2024 "
            "(1 ET, 2 NETC, 3 CC, 4 ED): set data.labels to brats2023 or brats2024_ped"
        )
    if challenge in ("GLI", "MET", "GOAT"):
        return "brats2024", ("brats2023", "brats2024")
    return "brats2023", ("brats2023",)


def _find(folder: Path, stem: str) -> Path:
    """``folder/stem.nii.gz`` if present, else ``folder/stem.nii`` if present, else the ``.nii.gz`` path."""
    gz, plain = folder / f"{stem}.nii.gz", folder / f"{stem}.nii"
    if gz.exists() or not plain.exists():
        return gz
    return plain


def _niftis(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.name.endswith(NIFTI) and not p.name.startswith("."))


def case_files(
    folder: Path,
    layout: str = "auto",
    labels: str = "auto",
    overrides: Mapping[str, str] | None = None,
) -> CaseFiles:
    """Describe the case stored in ``folder`` (its name is the case id).

    Args:
        folder: the case folder.
        layout: a :data:`LAYOUTS` name or ``auto``.
        labels: a label set name, or ``auto`` (from the layout, see the module docstring).
        overrides: file names (inside ``folder``) that replace the layout's, by kind (``seg``, ``t1``...).

    Raises:
        ValueError: on an unknown layout, label set or override kind, or a PED case under ``auto``.
    """
    case_id = folder.name
    name = detect_layout(case_id) if layout == "auto" else layout
    if name not in LAYOUTS:
        raise ValueError(f"layout must be 'auto' or one of {sorted(LAYOUTS)}, got {layout!r}")
    spec = LAYOUTS[name]
    overrides = dict(overrides or {})
    bad = sorted(set(overrides) - set(KINDS))
    if bad:
        raise ValueError(f"data.overrides.{case_id}: unknown file kind(s) {bad} (use {', '.join(KINDS)})")
    paths = {k: _find(folder, f"{case_id}{spec.separator}{spec.suffixes[k]}") for k in KINDS}
    paths.update({k: folder / v for k, v in overrides.items()})
    # an overridden segmentation is the case's even when missing: read_case then names the file (a typo in
    # data.overrides must not make a labelled case silently unlabelled)
    seg = paths["seg"] if paths["seg"].exists() or "seg" in overrides else None
    unexpected = tuple(p for p in _niftis(folder) if p not in paths.values())
    chosen, candidates = _labels_for(name, case_id, labels)
    grade = folder.parent.name if spec.grade_folders and folder.parent.name in GRADE_FOLDERS else ""
    meta = {"grade": grade} if grade else {}
    images = {m: paths[m] for m in MODALITIES}
    return CaseFiles(case_id, folder, name, images, seg, chosen, candidates, {}, unexpected, meta)


def _labels_for(layout: str, case_id: str, labels: str) -> tuple[str, tuple[str, ...]]:
    if labels == "auto":
        return _default_labels(layout, case_id)
    label_set(labels)  # raises on an unknown name
    return labels, (labels,)


def _case_folders(root: Path, layout: str) -> list[Path]:
    """Case folders under ``root``: its sub-folders, and those of HGG/ and LGG/ for BraTS 2018/2019."""
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if folder.name in GRADE_FOLDERS and layout in ("auto", "brats2018", "brats2019"):
            found.extend(sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")))
        else:
            found.append(folder)
    return found


def msd_cases(root: Path, labels: str = "auto") -> list[CaseFiles]:
    """The cases of a Decathlon ``Task01_BrainTumour`` folder (``dataset.json``, ``imagesTr``, ...).

    The channel order is read from ``dataset.json``'s ``modality`` and its ``labels`` are checked against the
    ``msd_task01`` label set; test images (``imagesTs``) are unlabelled cases.

    Raises:
        ValueError: naming ``dataset.json`` and what in it does not fit.
    """
    spec_file = root / "dataset.json"
    try:
        spec = json.loads(spec_file.read_text())
        names = {int(k): str(v) for k, v in spec["modality"].items()}
        found_labels = {int(k): str(v).lower() for k, v in spec["labels"].items()}
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        raise ValueError(
            f"{spec_file}: not a Decathlon dataset.json with 'modality' and 'labels' ({exc})"
        ) from exc
    channels = {}
    for index, channel in sorted(names.items()):
        modality = MSD_CHANNELS.get(channel.lower())
        if modality is None or modality in channels:
            raise ValueError(f"{spec_file}: modality {index} {channel!r} is not one of FLAIR, T1w, t1gd, T2w")
        channels[modality] = index
    if set(channels) != set(MODALITIES):
        raise ValueError(f"{spec_file}: expected the four BraTS modalities, got {list(names.values())}")
    chosen = "msd_task01" if labels == "auto" else labels
    expected = {0: "background", 1: "edema", 2: "non-enhancing tumor", 3: "enhancing tumour"}
    if chosen == "msd_task01" and found_labels != expected:
        raise ValueError(f"{spec_file}: labels {found_labels} are not the Task01 labels {expected}")
    cases = []
    for images_dir, labels_dir in (("imagesTr", "labelsTr"), ("imagesTs", None)):
        for image in _niftis(root / images_dir):
            case_id = image.name.split(".")[0]
            seg = root / labels_dir / image.name if labels_dir else None
            has_seg = seg is not None and seg.exists()
            cases.append(
                CaseFiles(
                    case_id,
                    root / images_dir,
                    MSD,
                    dict.fromkeys(MODALITIES, image),
                    seg if has_seg else None,
                    chosen,
                    (chosen,),
                    dict(channels),
                )
            )
    if not cases:
        raise ValueError(f"no image in {root / 'imagesTr'} or {root / 'imagesTs'}")
    return cases


def discover_cases(
    root: Path,
    layout: str = "auto",
    exclude: tuple[str, ...] = (),
    labels: str = "auto",
    overrides: Mapping[str, Mapping[str, str]] | None = None,
) -> list[CaseFiles]:
    """All cases under ``root``, sorted by case id.

    Folders whose name matches no layout are ignored when ``layout`` is ``auto`` (a dataset root often holds
    a CSV or a README beside the cases). A root with a ``dataset.json`` and ``imagesTr`` is read as the
    Decathlon's Task01 (``layout: auto`` or ``msd_task01``).

    Raises:
        FileNotFoundError: if ``root`` is not a directory.
        ValueError: if ``root`` holds no case, an excluded or overridden id is not among them, or a case's
            label set cannot be told (see :func:`case_files`).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist or is not a directory")
    if layout not in ("auto", MSD, *LAYOUTS):
        raise ValueError(f"layout must be 'auto', {MSD} or one of {sorted(LAYOUTS)}, got {layout!r}")
    if labels != "auto" and labels not in LABEL_SETS:
        raise ValueError(f"labels must be 'auto' or one of {sorted(LABEL_SETS)}, got {labels!r}")
    overrides = dict(overrides or {})
    if layout == MSD or (
        layout == "auto" and (root / "dataset.json").is_file() and (root / "imagesTr").is_dir()
    ):
        cases = msd_cases(root, labels)
    else:
        cases = []
        for folder in _case_folders(root, layout):
            if layout == "auto":
                try:
                    detect_layout(folder.name)
                except ValueError:
                    continue
            cases.append(case_files(folder, layout, labels, overrides.get(folder.name)))
    ids = [c.case_id for c in cases]
    dupes = sorted({c for c in ids if ids.count(c) > 1})
    if dupes:
        raise ValueError(f"case id(s) {dupes} appear more than once under {root}")
    for key, what in ((exclude, "data.exclude"), (tuple(overrides), "data.overrides")):
        unknown = sorted(set(key) - set(ids))
        if unknown:
            raise ValueError(f"{what} names case(s) not found in {root}: {unknown}")
    cases = sorted((c for c in cases if c.case_id not in exclude), key=lambda c: c.case_id)
    if not cases:
        raise ValueError(f"no BraTS case folder found in {root} (layout {layout})")
    return cases
