"""BraTS folder layouts: which files make a case, and which label convention they use.

Supported (one sub-folder per case; ``.nii`` or ``.nii.gz``):

- ``brats2020``: ``BraTS20_Training_001/BraTS20_Training_001_{t1,t1ce,t2,flair,seg}.nii``
- ``brats2021``: ``BraTS2021_00000/BraTS2021_00000_{t1,t1ce,t2,flair,seg}.nii.gz``
- ``brats2023``: ``BraTS-GLI-00000-000/BraTS-GLI-00000-000-{t1n,t1c,t2w,t2f,seg}.nii.gz``
  (also MEN, MET, PED, SSA)

Modalities are always handled in the order of :data:`MODALITIES`. A case without a segmentation file
(validation/test releases) is accepted and marked unlabelled. Missing *images* are not an error here: the
ingest step reports them per case, so one broken case does not stop the others.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bratseg.labels import BRATS_2021, BRATS_2023, LabelConvention

MODALITIES: tuple[str, ...] = ("t1", "t1ce", "t2", "flair")


@dataclass(frozen=True)
class Layout:
    """File naming of one BraTS release."""

    name: str
    folder_pattern: re.Pattern[str]
    separator: str
    suffixes: dict[str, str]  # modality (or "seg") -> file suffix
    convention: LabelConvention


LAYOUTS: dict[str, Layout] = {
    "brats2020": Layout(
        "brats2020",
        re.compile(r"^BraTS20_(Training|Validation|Testing)_\d+$"),
        "_",
        {"t1": "t1", "t1ce": "t1ce", "t2": "t2", "flair": "flair", "seg": "seg"},
        BRATS_2021,
    ),
    "brats2021": Layout(
        "brats2021",
        re.compile(r"^BraTS2021_\d+$"),
        "_",
        {"t1": "t1", "t1ce": "t1ce", "t2": "t2", "flair": "flair", "seg": "seg"},
        BRATS_2021,
    ),
    "brats2023": Layout(
        "brats2023",
        re.compile(r"^BraTS-[A-Z]+-\d+-\d+$"),
        "-",
        {"t1": "t1n", "t1ce": "t1c", "t2": "t2w", "flair": "t2f", "seg": "seg"},
        BRATS_2023,
    ),
}


@dataclass(frozen=True)
class CaseFiles:
    """The files of one case. ``images`` holds the expected path of every modality, present or not."""

    case_id: str
    folder: Path
    layout: str
    images: dict[str, Path]
    seg: Path | None

    @property
    def convention(self) -> LabelConvention:
        return LAYOUTS[self.layout].convention

    def existing_files(self) -> list[Path]:
        """The files of this case that exist on disk (images, then segmentation)."""
        files = [p for p in self.images.values() if p.exists()]
        return files + ([self.seg] if self.seg is not None else [])


def detect_layout(case_id: str) -> str:
    """The layout whose folder naming matches ``case_id``.

    Raises:
        ValueError: if no known layout matches.
    """
    for name, layout in LAYOUTS.items():
        if layout.folder_pattern.match(case_id):
            return name
    raise ValueError(
        f"case folder {case_id!r} matches no BraTS layout ({', '.join(LAYOUTS)}); "
        "set data.layout or rename the folder"
    )


def _find(folder: Path, stem: str) -> Path:
    """``folder/stem.nii.gz`` if present, else ``folder/stem.nii`` if present, else the ``.nii.gz`` path."""
    gz, plain = folder / f"{stem}.nii.gz", folder / f"{stem}.nii"
    if gz.exists() or not plain.exists():
        return gz
    return plain


def case_files(folder: Path, layout: str = "auto") -> CaseFiles:
    """Describe the case stored in ``folder`` (its name is the case id)."""
    case_id = folder.name
    name = detect_layout(case_id) if layout == "auto" else layout
    if name not in LAYOUTS:
        raise ValueError(f"layout must be 'auto' or one of {sorted(LAYOUTS)}, got {layout!r}")
    spec = LAYOUTS[name]
    images = {m: _find(folder, f"{case_id}{spec.separator}{spec.suffixes[m]}") for m in MODALITIES}
    seg = _find(folder, f"{case_id}{spec.separator}{spec.suffixes['seg']}")
    return CaseFiles(case_id, folder, name, images, seg if seg.exists() else None)


def discover_cases(root: Path, layout: str = "auto", exclude: tuple[str, ...] = ()) -> list[CaseFiles]:
    """All case folders directly under ``root``, sorted by case id.

    Folders whose name matches no layout are ignored when ``layout`` is ``auto`` (a dataset root often holds
    a CSV or a README beside the cases).

    Raises:
        FileNotFoundError: if ``root`` is not a directory.
        ValueError: if ``root`` holds no case folder, or an excluded id is not among them.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist or is not a directory")
    cases = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if layout == "auto":
            try:
                detect_layout(folder.name)
            except ValueError:
                continue
        cases.append(case_files(folder, layout))
    unknown = sorted(set(exclude) - {c.case_id for c in cases})
    if unknown:
        raise ValueError(f"data.exclude names case(s) not found in {root}: {unknown}")
    cases = [c for c in cases if c.case_id not in exclude]
    if not cases:
        raise ValueError(f"no BraTS case folder found in {root} (layout {layout})")
    return cases
