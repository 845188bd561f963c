"""The cohort plan: RAS+ spacing from headers, and the resolved target spacing (auto = median)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from bratseg.layouts import MODALITIES
from bratseg.preprocess.plan import header_spacing, ras_spacing, target_spacing


def permuted_affine() -> np.ndarray:
    affine = np.zeros((4, 4))
    affine[2, 0], affine[0, 1], affine[1, 2], affine[3, 3] = -3.0, 0.9, 1.1, 1.0  # voxel axes: I, R, A
    return affine


def test_ras_spacing_follows_the_ras_axes():
    assert ras_spacing(np.diag([-1.0, -1.0, 1.0, 1.0]), (4, 5, 6)) == (1.0, 1.0, 1.0)
    assert ras_spacing(permuted_affine(), (4, 5, 6)) == pytest.approx((0.9, 1.1, 3.0))
    t = np.deg2rad(30.0)
    oblique = np.eye(4)
    oblique[:3, :3] = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]]) @ np.diag(
        [0.5, 0.5, 5.0]
    )
    assert ras_spacing(oblique, (4, 5, 6)) == pytest.approx((0.5, 0.5, 5.0))


def test_header_spacing_reads_the_header_of_the_first_modality(tmp_path, write_case, make_phantom):
    ph = make_phantom()
    affine = permuted_affine()
    files = write_case(tmp_path, "BraTS2021_00001", ph, affines={m: affine for m in (*MODALITIES, "seg")})
    assert header_spacing(files) == pytest.approx((0.9, 1.1, 3.0))


def test_an_unreadable_header_is_left_to_the_case_ingest(tmp_path, write_case):
    files = write_case(tmp_path, "BraTS2021_00001")
    files.images["t1"].unlink()
    assert header_spacing(files) is None  # the case's ingest names the missing file
    files.images["t1"].write_bytes(b"not a nifti at all")
    assert header_spacing(files) is None
    nib.save(nib.Nifti1Image(np.zeros((4, 5), np.int16), np.eye(4)), files.images["t1"])
    assert header_spacing(files) is None


def test_target_spacing():
    spacings = [(1.0, 1.0, 1.0), (0.5, 0.5, 5.0), (0.9, 0.9, 3.0), None]
    assert target_spacing("native", spacings) is None
    assert target_spacing("auto", spacings) == (0.9, 0.9, 3.0)  # the per-axis median, None left out
    assert target_spacing("auto", [(1.0, 2.0, 3.0), (3.0, 2.0, 1.0)]) == (2.0, 2.0, 2.0)
    assert target_spacing([2, 2, 2.5], []) == (2.0, 2.0, 2.5)
    with pytest.raises(ValueError, match="auto needs at least one case"):
        target_spacing("auto", [])
    with pytest.raises(ValueError, match="auto needs at least one case"):
        target_spacing("auto", [None])
