"""File I/O: atomic writes, and NIfTI reading that fails with one line naming the case and the file."""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import os
import shutil
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import numpy.typing as npt

from bratseg.errors import CaseError


@contextlib.contextmanager
def atomic_path(dest: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it onto ``dest`` only if the block succeeds.

    The temporary name keeps the suffix of ``dest`` (``.nii.gz``, ``.npy`` …) so writers that infer the format
    from the name behave the same. On error the temporary file is removed and ``dest`` is untouched.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".tmp-{uuid.uuid4().hex[:12]}-{dest.name}")
    try:
        yield tmp
        os.replace(tmp, dest)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(dest: Path | str) -> Iterator[Path]:
    """Yield a fresh temporary directory beside ``dest``; on success it replaces ``dest`` as a whole.

    Readers never see a half-filled ``dest``: it is either the old complete directory or the new one.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".tmp-{uuid.uuid4().hex[:12]}-{dest.name}")
    tmp.mkdir()
    old = dest.with_name(f".old-{uuid.uuid4().hex[:12]}-{dest.name}")
    try:
        yield tmp
        if dest.exists():
            os.replace(dest, old)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def save_json(path: Path | str, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON, atomically (stable bytes for stable content)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


@dataclass(frozen=True)
class Geometry:
    """Where a volume lives in space: everything needed to write a result back onto the original grid."""

    shape: tuple[int, int, int]
    affine: tuple[tuple[float, ...], ...]
    spacing: tuple[float, float, float]
    header_b64: str  # the original NIfTI-1 header, verbatim

    @classmethod
    def from_image(cls, img: nib.Nifti1Image) -> Geometry:
        shape = tuple(int(s) for s in img.shape[:3])
        spacing = tuple(float(z) for z in img.header.get_zooms()[:3])
        header = nib.Nifti1Header.from_header(img.header)
        return cls(
            shape=(shape[0], shape[1], shape[2]),
            affine=tuple(tuple(float(v) for v in row) for row in img.affine),
            spacing=(spacing[0], spacing[1], spacing[2]),
            header_b64=base64.b64encode(header.binaryblock).decode("ascii"),
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Geometry:
        return cls(
            shape=tuple(d["shape"]),
            affine=tuple(tuple(r) for r in d["affine"]),
            spacing=tuple(d["spacing"]),
            header_b64=d["header_b64"],
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "shape": list(self.shape),
            "affine": [list(r) for r in self.affine],
            "spacing": list(self.spacing),
            "header_b64": self.header_b64,
        }

    @property
    def affine_array(self) -> npt.NDArray[np.float64]:
        return np.array(self.affine, dtype=np.float64)

    def header(self) -> nib.Nifti1Header:
        return nib.Nifti1Header(base64.b64decode(self.header_b64))


def save_nifti(path: Path | str, array: npt.NDArray[Any], geometry: Geometry) -> None:
    """Write ``array`` on the grid of ``geometry`` (same shape, affine, header fields), atomically.

    The data type follows ``array``; scaling is reset so the stored values are the values of ``array``.
    """
    if tuple(array.shape) != tuple(geometry.shape):
        raise ValueError(f"array shape {array.shape} does not match geometry shape {geometry.shape}")
    header = geometry.header()
    header.set_data_dtype(array.dtype)
    img = nib.Nifti1Image(array, geometry.affine_array, header=header)
    img.header.set_slope_inter(1.0, 0.0)
    img.set_qform(geometry.affine_array, code=int(header["qform_code"]) or 1)
    img.set_sform(geometry.affine_array, code=int(header["sform_code"]) or 1)
    with atomic_path(path) as tmp:
        nib.save(img, tmp)


def _gzip_problem(path: Path) -> str | None:
    """Why a ``.gz`` file is not a valid gzip stream, or ``None`` (only called on the error path)."""
    if not path.name.endswith(".gz"):
        return None
    try:
        with gzip.open(path, "rb") as f:
            while f.read(1 << 20):
                pass
    except (OSError, EOFError, zlib.error) as exc:
        return str(exc) or type(exc).__name__
    return None


def load_nifti(path: Path | str, case_id: str) -> nib.Nifti1Image:
    """Open a NIfTI file, turning every way it can be unreadable into a :class:`CaseError`.

    The voxel data are read here (a truncated or corrupt file fails now, not later) and held in memory by the
    returned image: ``np.asanyarray(img.dataobj)`` gives the scaled voxel values without decoding again.
    """
    path = Path(path)
    if not path.exists():
        raise CaseError(case_id, path, "file not found")
    try:
        img = nib.load(path)
        if not isinstance(img, nib.Nifti1Image):  # Nifti2Image is a subclass; Analyze/MGH are not
            raise CaseError(case_id, path, f"expected a NIfTI image, got {type(img).__name__}")
        data = np.asanyarray(img.dataobj)  # a full read now: truncated or corrupt payloads fail here
        # Keep the decoded voxels, so that readers of the returned image do not decompress the file again.
        # The header is kept too (only scl_slope/scl_inter are reset: the data are already scaled).
        img = img.__class__(data, img.affine, img.header)
    except (gzip.BadGzipFile, zlib.error, EOFError) as exc:
        raise CaseError(case_id, path, f"corrupt or truncated gzip data ({exc})") from exc
    except nib.filebasedimages.ImageFileError as exc:
        gz_problem = _gzip_problem(path)
        if gz_problem:
            raise CaseError(case_id, path, f"corrupt or truncated gzip data ({gz_problem})") from exc
        raise CaseError(case_id, path, f"not a readable NIfTI image ({exc})") from exc
    except (OSError, ValueError) as exc:
        raise CaseError(case_id, path, f"unreadable image data ({exc})") from exc
    return img
