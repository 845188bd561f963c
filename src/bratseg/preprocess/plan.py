"""The cohort-level plan made before any case is processed: the target spacing (nnU-Net's "planning").

``preprocess.target_spacing_mm: auto`` is the median over the cohort of each case's native spacing, per RAS+
axis (after reorientation, see :mod:`bratseg.spatial.orient`), as nnU-Net's 3d_fullres plans take the
median spacing of the dataset fingerprint. It is read from the NIfTI headers, so planning a cohort of
thousands of cases decodes no image.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from bratseg.layouts import CaseFiles
from bratseg.spatial.orient import reoriented_affine, to_canonical


def ras_spacing(affine: np.ndarray, shape: Sequence[int]) -> tuple[float, float, float]:
    """Voxel spacing in mm along the RAS+ voxel axes of a grid with ``affine``."""
    canonical = reoriented_affine(affine, to_canonical(affine), tuple(shape))
    zooms = np.linalg.norm(canonical[:3, :3], axis=0)
    return (float(zooms[0]), float(zooms[1]), float(zooms[2]))


def header_spacing(files: CaseFiles) -> tuple[float, float, float]:
    """The RAS+ spacing of a case's first modality, from its NIfTI header (the image is not decoded).

    Raises:
        ValueError: naming the file when its header cannot be read.
    """
    path = Path(files.images["t1"])
    try:
        img = nib.load(path)
        if not isinstance(img, nib.Nifti1Image):
            raise ValueError(f"expected a NIfTI image, got {type(img).__name__}")
        return ras_spacing(np.asarray(img.affine), img.shape[:3])
    except (OSError, ValueError, nib.filebasedimages.ImageFileError) as exc:
        raise ValueError(f"{files.case_id}: {path}: cannot read the NIfTI header ({exc})") from exc


def target_spacing(
    setting: str | Sequence[float], spacings: Sequence[Sequence[float]]
) -> tuple[float, float, float] | None:
    """The resolved ``preprocess.target_spacing_mm``: ``None`` for ``native``, the per-axis median of
    ``spacings`` for ``auto``, else the given three values.

    Raises:
        ValueError: for ``auto`` without any case.
    """
    if setting == "native":
        return None
    if setting == "auto":
        if not spacings:
            raise ValueError("target_spacing_mm: auto needs at least one case to take the median spacing of")
        median = np.median(np.asarray(spacings, dtype=np.float64), axis=0)
        return (float(median[0]), float(median[1]), float(median[2]))
    values = [float(v) for v in setting]
    return (values[0], values[1], values[2])
