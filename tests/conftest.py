"""Shared fixtures: the repository's params.yaml and schema, and tiny synthetic BraTS-like raw cases.

``make_phantom`` draws an ellipsoidal "brain" with white matter, grey matter and a small tumour (BraTS 2021
labels 1, 2, 4); ``write_case`` writes one as NIfTI files in the BraTS 2021 layout. Both are fixtures that
return functions, so the tests can vary shape, bias and file contents.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
import yaml

from bratseg.layouts import MODALITIES, CaseFiles, case_files

ROOT = Path(__file__).resolve().parents[1]
SHAPE = (23, 27, 19)
CONTRAST = {  # white matter, grey matter, tumour core, edema, enhancing rim
    "t1": (1000.0, 700.0, 450.0, 600.0, 800.0),
    "t1ce": (900.0, 650.0, 350.0, 550.0, 1600.0),
    "t2": (500.0, 800.0, 1500.0, 1300.0, 1100.0),
    "flair": (600.0, 750.0, 900.0, 1400.0, 1000.0),
}


@dataclass
class Phantom:
    """Arrays of one synthetic case, ``(X, Y, Z)`` each."""

    images: dict[str, np.ndarray]
    seg: np.ndarray  # BraTS 2021 values 0, 1, 2, 4
    brain: np.ndarray
    white_matter: np.ndarray
    log_bias: np.ndarray
    affine: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)


def _phantom(
    shape: tuple[int, int, int] = SHAPE,
    voxel_mm: float = 2.0,
    bias: float = 0.0,
    noise: float = 0.01,
    seed: int = 0,
) -> Phantom:
    rng = np.random.default_rng(seed)
    idx = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    x, y, z = idx
    r = np.sqrt((x / 0.85) ** 2 + (y / 0.85) ** 2 + (z / 0.8) ** 2)
    brain = r < 1.0
    white = r < 0.6
    d = np.sqrt((x - 0.3) ** 2 + (y + 0.1) ** 2 + z**2)
    seg = np.zeros(shape, np.uint8)
    seg[brain & (d < 0.45)] = 2
    seg[brain & (d < 0.3)] = 4
    seg[brain & (d < 0.15)] = 1
    log_bias = bias * (0.8 * x + 0.5 * y * y - 0.4 * z + 0.3 * x * z)
    log_bias = np.where(brain, log_bias - log_bias[brain].mean(), 0.0)
    white_matter = white & (seg == 0)
    images = {}
    for m in MODALITIES:
        wm, gm, core, edema, rim = CONTRAST[m]
        clean = np.where(white, wm, gm)
        clean = np.where(seg == 2, edema, clean)
        clean = np.where(seg == 4, rim, clean)
        clean = np.where(seg == 1, core, clean)
        img = clean * np.exp(log_bias) * (1 + noise * rng.standard_normal(shape))
        images[m] = np.where(brain, img, 0.0).astype(np.float32)
    affine = np.diag([voxel_mm, voxel_mm, voxel_mm, 1.0])
    affine[:3, 3] = [-20.0, -25.0, -18.0]
    return Phantom(images, seg, brain, white_matter, log_bias.astype(np.float32), affine)


@pytest.fixture
def make_phantom() -> Callable[..., Phantom]:
    return _phantom


def _save(path: Path, data: np.ndarray, affine: np.ndarray) -> None:
    img = nib.Nifti1Image(data, affine)
    img.header.set_data_dtype(data.dtype)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    nib.save(img, path)


def _write_case(
    root: Path,
    case_id: str = "BraTS2021_00001",
    phantom: Phantom | None = None,
    with_seg: bool = True,
    arrays: dict[str, np.ndarray] | None = None,
    affines: dict[str, np.ndarray] | None = None,
) -> CaseFiles:
    """Write a case in the BraTS 2021 layout; ``arrays`` / ``affines`` override single files by key."""
    phantom = phantom if phantom is not None else _phantom()
    folder = Path(root) / case_id
    folder.mkdir(parents=True, exist_ok=True)
    data: dict[str, np.ndarray] = {m: np.rint(phantom.images[m]).astype(np.int16) for m in MODALITIES}
    if with_seg:
        data["seg"] = phantom.seg.astype(np.uint8)
    data.update(arrays or {})
    for key, array in data.items():
        affine = (affines or {}).get(key, phantom.affine)
        _save(folder / f"{case_id}_{key}.nii.gz", array, affine)
    return case_files(folder, "brats2021")


@pytest.fixture
def write_case() -> Callable[..., CaseFiles]:
    return _write_case


@pytest.fixture(scope="session")
def raw_params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.fixture(scope="session")
def schema() -> dict:
    return yaml.safe_load((ROOT / "workflow" / "schemas" / "params.schema.yaml").read_text())
