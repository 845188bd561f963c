"""The one reader of raw BraTS cases: images and segmentations read from NIfTI and validated.

Preprocessing (the ingest step), the report (raw images beside the predictions), evaluation (the reference
segmentation on the original grid) and ``bratseg predict`` all read raw files through this module, so every
file gets the same checks. Every way a case can be unusable ends in a :class:`~bratseg.errors.CaseError`
whose one-line message names the case and the offending file: a missing modality, an unreadable or
truncated file, an image that is not 3D, a shape or an affine that differs from the first modality,
non-finite or all-zero intensities, a non-integral segmentation or one holding a label its release does not
define.

Arrays are in nibabel voxel order ``(i, j, k)``; the 4-channel image is channel-first ``(4, X, Y, Z)`` in the
order of :data:`bratseg.layouts.MODALITIES`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import numpy.typing as npt

from bratseg.errors import CaseError
from bratseg.io import Geometry, load_nifti
from bratseg.labels import CONVENTIONS, LabelConvention, UnknownLabelError, to_classes
from bratseg.layouts import MODALITIES, CaseFiles

#: Largest allowed difference between two affines' translations and voxel sizes, in millimetres.
AFFINE_MM_TOLERANCE = 1e-3
#: Largest allowed difference between two affines' direction cosines (unitless).
AFFINE_ROTATION_TOLERANCE = 1e-4


@dataclass(frozen=True, eq=False)
class RawCase:
    """One validated raw case in memory.

    Attributes:
        case_id: the case folder's name.
        layout: the BraTS layout name (``brats2020`` …).
        convention: the label convention's name (``brats2021`` or ``brats2023``).
        image: ``(4, X, Y, Z)`` float32, modalities in :data:`MODALITIES` order.
        classes: ``(X, Y, Z)`` uint8 classes 0..3, or ``None`` for an unlabelled case.
        geometry: the grid of the first modality (shape, affine, spacing, header).
        sources: file path per modality (and ``"seg"`` when labelled), as strings.
    """

    case_id: str
    layout: str
    convention: str
    image: npt.NDArray[np.float32]
    classes: npt.NDArray[np.uint8] | None
    geometry: Geometry
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def has_label(self) -> bool:
        return self.classes is not None


def spatial_data(img: nib.Nifti1Image, case_id: str, path: Path) -> npt.NDArray[np.generic]:
    """The voxel data of ``img`` as a 3D array; trailing singleton dimensions (``X×Y×Z×1``) are dropped.

    Raises:
        CaseError: if the image is not 3D (e.g. a 4D series or a 2D slice).
    """
    shape = tuple(int(s) for s in img.shape)
    if len(shape) < 3:
        raise CaseError(case_id, path, f"expected a 3D image, got {len(shape)}D shape {shape}")
    if any(s != 1 for s in shape[3:]):
        raise CaseError(case_id, path, f"expected a 3D image, got {len(shape)}D shape {shape}")
    data = np.asanyarray(img.dataobj)
    return np.asarray(data.reshape(shape[:3]))


def affine_mismatch(a: npt.NDArray[np.floating], b: npt.NDArray[np.floating]) -> str | None:
    """Why two 4×4 voxel-to-world affines differ beyond tolerance, or ``None`` if they agree.

    Translations and voxel sizes are compared in millimetres (:data:`AFFINE_MM_TOLERANCE`), the direction
    cosines without unit (:data:`AFFINE_ROTATION_TOLERANCE`).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != (4, 4) or b.shape != (4, 4):
        raise ValueError(f"affines must be 4x4, got {a.shape} and {b.shape}")
    shift = float(np.abs(a[:3, 3] - b[:3, 3]).max())
    if shift > AFFINE_MM_TOLERANCE:
        return f"origin differs by {shift:.4g} mm"
    zooms_a, zooms_b = np.linalg.norm(a[:3, :3], axis=0), np.linalg.norm(b[:3, :3], axis=0)
    zoom = float(np.abs(zooms_a - zooms_b).max())
    if zoom > AFFINE_MM_TOLERANCE:
        return f"voxel size differs by {zoom:.4g} mm ({_fmt(zooms_b)} vs {_fmt(zooms_a)})"
    dir_a = a[:3, :3] / np.where(zooms_a > 0, zooms_a, 1)
    dir_b = b[:3, :3] / np.where(zooms_b > 0, zooms_b, 1)
    cosines = np.abs(dir_a - dir_b)
    if float(cosines.max()) > AFFINE_ROTATION_TOLERANCE:
        return f"orientation differs (direction cosines by {float(cosines.max()):.4g})"
    return None


def _fmt(values: npt.NDArray[np.floating]) -> str:
    return "x".join(f"{v:.4g}" for v in values)


def _check_grid(
    case_id: str, path: Path, img: nib.Nifti1Image, shape: tuple[int, ...], ref: Geometry
) -> None:
    if shape != ref.shape:
        why = f"shape {_dims(shape)} differs from the first modality's {_dims(ref.shape)}"
        raise CaseError(case_id, path, why)
    mismatch = affine_mismatch(ref.affine_array, img.affine)
    if mismatch is not None:
        raise CaseError(case_id, path, f"affine does not match the first modality's: {mismatch}")


def _dims(shape: tuple[int, ...]) -> str:
    return "x".join(str(s) for s in shape)


def read_modality(
    case_id: str, modality: str, path: Path
) -> tuple[nib.Nifti1Image, npt.NDArray[np.float32]]:
    """One modality as float32 ``(X, Y, Z)``, checked: readable, 3D, numeric, finite, not all zero.

    Raises:
        CaseError: naming the case and ``path``.
    """
    img = load_nifti(path, case_id)
    raw = spatial_data(img, case_id, path)
    if not (np.issubdtype(raw.dtype, np.integer) or np.issubdtype(raw.dtype, np.floating)):
        raise CaseError(case_id, path, f"{modality}: unsupported voxel type {raw.dtype}")
    data = np.asarray(raw, dtype=np.float32)
    finite = np.isfinite(data)
    if not finite.all():
        bad = int(data.size - np.count_nonzero(finite))
        raise CaseError(case_id, path, f"{modality}: {bad} non-finite voxel(s) (NaN or inf)")
    if not np.any(data):
        raise CaseError(case_id, path, f"{modality}: image is all zero")
    return img, data


def read_segmentation(
    case_id: str, path: Path, convention: LabelConvention, ref: Geometry | None = None
) -> npt.NDArray[np.uint8]:
    """A segmentation as classes 0..3 ``(X, Y, Z)``: 3D, integral, labels of ``convention``, and on the grid
    of ``ref`` when given.

    Raises:
        CaseError: naming the case and ``path``.
    """
    img = load_nifti(path, case_id)
    raw = spatial_data(img, case_id, path)
    if ref is not None:
        _check_grid(case_id, path, img, tuple(raw.shape), ref)
    if np.issubdtype(raw.dtype, np.floating):
        if not np.isfinite(raw).all():
            raise CaseError(case_id, path, "segmentation holds non-finite values")
        if not np.array_equal(raw, np.round(raw)):
            raise CaseError(case_id, path, "segmentation holds non-integral values")
        seg = raw.astype(np.int64)
    elif np.issubdtype(raw.dtype, np.integer) or raw.dtype == np.bool_:
        seg = raw.astype(np.int64)
    else:
        raise CaseError(case_id, path, f"unsupported segmentation voxel type {raw.dtype}")
    try:
        return to_classes(seg, convention)
    except UnknownLabelError as exc:
        raise CaseError(case_id, path, str(exc)) from exc


def read_case(files: CaseFiles) -> RawCase:
    """Read every file of a case and validate it.

    Args:
        files: the case's expected files (``bratseg.layouts.case_files``).

    Returns:
        The validated case; ``classes`` is ``None`` when the case has no segmentation.

    Raises:
        CaseError: naming the case and the offending file, for any bad input.
    """
    case_id = files.case_id
    for modality in MODALITIES:
        path = files.images.get(modality)
        if path is None or not Path(path).exists():
            where = path if path is not None else files.folder
            raise CaseError(case_id, where, f"missing modality {modality}")
    channels: list[npt.NDArray[np.float32]] = []
    ref: Geometry | None = None
    for modality in MODALITIES:
        path = Path(files.images[modality])
        img, data = read_modality(case_id, modality, path)
        if ref is None:
            ref = Geometry.from_image(img)
        else:
            _check_grid(case_id, path, img, tuple(data.shape), ref)
        channels.append(data)
    assert ref is not None
    image = np.stack(channels)
    del channels
    classes = None
    if files.seg is not None:
        classes = read_segmentation(case_id, Path(files.seg), files.convention, ref)
    sources = {m: str(files.images[m]) for m in MODALITIES}
    if files.seg is not None:
        sources["seg"] = str(files.seg)
    return RawCase(
        case_id=case_id,
        layout=files.layout,
        convention=files.convention.name,
        image=image,
        classes=classes,
        geometry=ref,
        sources=sources,
    )


def reference_classes(properties: dict[str, Any]) -> npt.NDArray[np.uint8]:
    """Ground truth of a cached case on its original grid, read again from the raw segmentation file.

    It goes through the same checks as at ingest (3D, integral, known labels, the case's grid), so a file
    changed since preprocessing fails with one line naming it.
    """
    return read_segmentation(
        properties["case_id"],
        Path(properties["sources"]["seg"]),
        CONVENTIONS[properties["convention"]],
        Geometry.from_dict(properties["geometry"]),
    )
