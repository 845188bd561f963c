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
from bratseg.labels import LabelSet, UnknownLabelError, label_set
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
        layout: the layout name (``brats2020``, ``msd_task01`` …).
        convention: the name of the label set that read the segmentation (a ``LABEL_SETS`` name).
        image: ``(4, X, Y, Z)`` float32, modalities in :data:`MODALITIES` order.
        classes: ``(X, Y, Z)`` uint8 canonical classes (``bratseg.labels``), or ``None`` when unlabelled.
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
        raise CaseError(case_id, path, f"{why}: {EXPECTS} (or set data.resample_to)")
    mismatch = affine_mismatch(ref.affine_array, img.affine)
    if mismatch is not None:
        why = f"affine does not match the first modality's: {mismatch}"
        raise CaseError(case_id, path, f"{why}: {EXPECTS} (or set data.resample_to)")


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
    return img, _checked(case_id, modality, path, spatial_data(img, case_id, path))


def read_segmentation(
    case_id: str, path: Path, convention: LabelSet, ref: Geometry | None = None, onto: bool = False
) -> npt.NDArray[np.uint8]:
    """A segmentation as canonical classes ``(X, Y, Z)``: 3D, integral, values of the label set
    ``convention``, and on the grid of ``ref`` when given (``onto``: resampled onto it, nearest, when its
    grid differs: ``data.resample_to``).

    Raises:
        CaseError: naming the case and ``path``.
    """
    img = load_nifti(path, case_id)
    raw = spatial_data(img, case_id, path)
    if ref is not None and onto and _grid_differs(img, tuple(raw.shape), ref):
        raw = _onto(case_id, path, img, ref, order=0)
    elif ref is not None:
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
        return convention.to_classes(seg)
    except UnknownLabelError as exc:
        raise CaseError(case_id, path, str(exc)) from exc


def _four_d(
    case_id: str, path: Path, img: nib.Nifti1Image, channels: dict[str, int]
) -> dict[str, npt.NDArray[np.float32]]:
    """The modalities of one 4D file (the Decathlon's), channel by channel, each checked like a 3D image."""
    shape = tuple(int(s) for s in img.shape)
    need = max(channels.values()) + 1
    if len(shape) != 4 or shape[3] < need:
        raise CaseError(case_id, path, f"expected a 4D image with {need} channels, got shape {shape}")
    data = np.asanyarray(img.dataobj)
    out = {}
    for modality, index in channels.items():
        out[modality] = _checked(case_id, modality, path, np.asarray(data[..., index]))
    return out


def _checked(
    case_id: str, modality: str, path: Path, raw: npt.NDArray[np.generic]
) -> npt.NDArray[np.float32]:
    if not (np.issubdtype(raw.dtype, np.integer) or np.issubdtype(raw.dtype, np.floating)):
        raise CaseError(case_id, path, f"{modality}: unsupported voxel type {raw.dtype}")
    data = np.asarray(raw, dtype=np.float32)
    finite = np.isfinite(data)
    if not finite.all():
        bad = int(data.size - np.count_nonzero(finite))
        raise CaseError(case_id, path, f"{modality}: {bad} non-finite voxel(s) (NaN or inf)")
    if not np.any(data):
        raise CaseError(case_id, path, f"{modality}: image is all zero")
    return data


EXPECTS = "the pipeline expects skull-stripped, co-registered modalities on one grid, as BraTS ships them"
#: A skull-stripped case has background: below this share of exactly-zero voxels it is refused.
MIN_ZERO_FRACTION = 0.1


def _onto(
    case_id: str, path: Path, img: nib.Nifti1Image, ref: Geometry, order: int
) -> npt.NDArray[np.float32]:
    """``img`` resampled onto the grid ``ref`` through world coordinates (``data.resample_to``)."""
    from nibabel.processing import resample_from_to

    data = np.asarray(spatial_data(img, case_id, path), dtype=np.float32)
    grid = (ref.shape, ref.affine_array)
    moved = resample_from_to(nib.Nifti1Image(data, img.affine), grid, order=order, mode="constant", cval=0)
    return np.asarray(moved.dataobj, dtype=np.float32)


def read_case(files: CaseFiles, resample_to: str | None = None) -> RawCase:
    """Read every file of a case and validate it.

    Args:
        files: the case's expected files (``bratseg.layouts.case_files``).
        resample_to: a modality whose grid the others are resampled onto when their grids differ (linear for
            images, nearest for the segmentation); ``None``: a grid mismatch is an error.

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
    if files.seg is None and files.unexpected:
        names = ", ".join(p.name for p in files.unexpected)
        raise CaseError(
            case_id,
            files.folder,
            f"no segmentation under the release's name, but the folder holds {names}: set "
            f"data.overrides.{case_id}.seg to the segmentation's file name (or data.exclude the case)",
        )
    if files.channels:  # one 4D file holds every modality (the Decathlon's layout)
        path = Path(files.images[MODALITIES[0]])
        ref_nii = load_nifti(path, case_id)
        ref = Geometry.from_image(ref_nii)
        arrays = _four_d(case_id, path, ref_nii, files.channels)
    else:
        arrays, ref = _three_d(files, resample_to)
    channels = [arrays[m] for m in MODALITIES]
    image = np.stack(channels)
    del channels
    zero = 1.0 - np.count_nonzero(np.any(image != 0, axis=0)) / image[0].size
    if zero < MIN_ZERO_FRACTION:
        reason = f"only {100 * zero:.1f}% of the voxels are 0 (no background): {EXPECTS}"
        raise CaseError(case_id, files.images[resample_to or MODALITIES[0]], reason)
    classes = None
    if files.seg is not None:
        seg = Path(str(files.seg))
        classes = read_segmentation(case_id, seg, files.convention, ref, onto=resample_to is not None)
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


def _three_d(
    files: CaseFiles, resample_to: str | None
) -> tuple[dict[str, npt.NDArray[np.float32]], Geometry]:
    """One file per modality; the grid is the first modality's (``resample_to``'s when given)."""
    order = [m for m in MODALITIES if m != resample_to]
    if resample_to is not None:
        order.insert(0, resample_to)
    arrays: dict[str, npt.NDArray[np.float32]] = {}
    ref = None
    for modality in order:
        path = Path(files.images[modality])
        img, data = read_modality(files.case_id, modality, path)
        if ref is None:
            ref = Geometry.from_image(img)
        else:
            data = _on_grid(files.case_id, path, img, data, ref, resample_to is not None)
        arrays[modality] = data
    assert ref is not None
    return arrays, ref


def _on_grid(
    case_id: str, path: Path, img: nib.Nifti1Image, data: npt.NDArray[np.float32], ref: Geometry, onto: bool
) -> npt.NDArray[np.float32]:
    """``data`` checked to lie on ``ref``'s grid, or (``onto``) resampled onto it, linearly, where not."""
    if onto and _grid_differs(img, tuple(data.shape), ref):
        return _onto(case_id, path, img, ref, order=1)
    _check_grid(case_id, path, img, tuple(data.shape), ref)
    return data


def _grid_differs(img: nib.Nifti1Image, shape: tuple[int, ...], ref: Geometry) -> bool:
    return shape != ref.shape or affine_mismatch(ref.affine_array, img.affine) is not None


def read_images(properties: dict[str, Any]) -> dict[str, npt.NDArray[np.float32]]:
    """The raw modalities of a cached case (``properties``: its ``properties.json``), read again from their
    files with the ingest checks, on the case's grid (put onto it as at ingest when ``data.resample_to`` was
    set); a 4D file (``properties["channels"]``) is decoded once."""
    case_id, sources = properties["case_id"], properties["sources"]
    channels = properties.get("channels") or {}
    if channels:
        path = Path(sources[MODALITIES[0]])
        return _four_d(case_id, path, load_nifti(path, case_id), channels)
    ref = Geometry.from_dict(properties["geometry"])
    onto = _resampled_to(properties) is not None
    out = {}
    for m in MODALITIES:
        img, data = read_modality(case_id, m, Path(sources[m]))
        out[m] = _on_grid(case_id, Path(sources[m]), img, data, ref, onto)
    return out


def _resampled_to(properties: dict[str, Any]) -> str | None:
    resample_to: str | None = (properties.get("transforms") or {}).get("resample_to")
    return resample_to


def reference_classes(properties: dict[str, Any]) -> npt.NDArray[np.uint8]:
    """Ground truth of a cached case on its original grid, read again from the raw segmentation file.

    It goes through the same checks as at ingest (3D, integral, known labels, the case's grid, or put onto it
    when ``data.resample_to`` was set), so a file changed since preprocessing fails with one line naming it.
    """
    return read_segmentation(
        properties["case_id"],
        Path(properties["sources"]["seg"]),
        label_set(properties["convention"]),
        Geometry.from_dict(properties["geometry"]),
        onto=_resampled_to(properties) is not None,
    )
