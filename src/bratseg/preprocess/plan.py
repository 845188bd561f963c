"""The cohort-level plan made before any case is processed: the target spacing (nnU-Net's "planning").

``preprocess.target_spacing_mm: auto`` is the median over the cohort of each case's native spacing, per RAS+
axis (after reorientation, see :mod:`bratseg.spatial.orient`), as nnU-Net's 3d_fullres plans take the
median spacing of the dataset fingerprint. It is read from the NIfTI headers, so planning a cohort of
thousands of cases decodes no image. A case whose header cannot be read does not stop the plan: it is left
out of the median, and its own ingest job fails with the one-line error naming the file (the other cases
finish under ``--keep-going``).
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


def header_spacing(files: CaseFiles) -> tuple[float, float, float] | None:
    """The RAS+ spacing of a case's first modality, from its NIfTI header (the image is not decoded), or
    ``None`` when the file is missing or its header unreadable (the case's ingest then names the file)."""
    path = Path(files.images["t1"])
    try:
        img = nib.load(path)
        if not isinstance(img, nib.Nifti1Image) or len(img.shape) < 3:
            return None
        return ras_spacing(np.asarray(img.affine), img.shape[:3])
    except (OSError, ValueError, EOFError, nib.filebasedimages.ImageFileError):
        return None


def target_spacing(
    setting: str | Sequence[float], spacings: Sequence[Sequence[float] | None]
) -> tuple[float, float, float] | None:
    """The resolved ``preprocess.target_spacing_mm``: ``None`` for ``native``, the per-axis median of
    ``spacings`` for ``auto`` (``None`` entries, unreadable headers, left out), else the given three values.

    Raises:
        ValueError: for ``auto`` without any readable case.
    """
    if setting == "native":
        return None
    if setting == "auto":
        known = [s for s in spacings if s is not None]
        if not known:
            raise ValueError(
                "target_spacing_mm: auto needs at least one case with a readable image header to take the "
                "median spacing of"
            )
        median = np.median(np.asarray(known, dtype=np.float64), axis=0)
        return (float(median[0]), float(median[1]), float(median[2]))
    values = [float(v) for v in setting]
    return (values[0], values[1], values[2])
