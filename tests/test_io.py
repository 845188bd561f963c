import gzip

import nibabel as nib
import numpy as np
import pytest

from bratseg.errors import CaseError
from bratseg.io import Geometry, atomic_dir, atomic_path, load_nifti, save_json, save_nifti


def nifti(tmp_path, name="img.nii.gz", shape=(5, 7, 3), affine=None):
    affine = np.diag([1.5, 1.0, 2.5, 1.0]) if affine is None else affine
    data = np.arange(np.prod(shape), dtype=np.int16).reshape(shape)
    path = tmp_path / name
    nib.save(nib.Nifti1Image(data, affine), path)
    return path, data


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    dest = tmp_path / "out.json"
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_replaces_on_success(tmp_path):
    dest = tmp_path / "a" / "out.nii.gz"
    with atomic_path(dest) as tmp:
        assert tmp.name.endswith(".nii.gz") and tmp.parent == dest.parent
        tmp.write_text("new")
    assert dest.read_text() == "new"
    assert [p.name for p in dest.parent.iterdir()] == ["out.nii.gz"]


def test_atomic_dir_swaps_whole_directory(tmp_path):
    dest = tmp_path / "case"
    with atomic_dir(dest) as tmp:
        (tmp / "a.npy").write_text("1")
    with pytest.raises(RuntimeError), atomic_dir(dest) as tmp:
        (tmp / "b.npy").write_text("2")
        raise RuntimeError("boom")
    assert [p.name for p in dest.iterdir()] == ["a.npy"]
    with atomic_dir(dest) as tmp:
        (tmp / "c.npy").write_text("3")
    assert [p.name for p in dest.iterdir()] == ["c.npy"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case"]


def test_json_is_deterministic(tmp_path):
    save_json(tmp_path / "a.json", {"b": 1, "a": [1, 2]})
    save_json(tmp_path / "b.json", {"a": [1, 2], "b": 1})
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


def test_geometry_round_trip_writes_back_exactly(tmp_path):
    affine = np.array([[-1.2, 0, 0, 90], [0, 0.9, 0.1, -120], [0, 0, 2.0, -70], [0, 0, 0, 1]])
    path, _ = nifti(tmp_path, affine=affine)
    geometry = Geometry.from_image(nib.load(path))
    assert Geometry.from_dict(geometry.to_dict()) == geometry
    labels = np.zeros(geometry.shape, np.uint8)
    labels[1, 2, 1] = 4
    save_nifti(tmp_path / "pred.nii.gz", labels, geometry)
    out = nib.load(tmp_path / "pred.nii.gz")
    np.testing.assert_allclose(out.affine, nib.load(path).affine, atol=1e-6)
    assert out.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asarray(out.dataobj), labels)
    assert out.header.get_zooms() == nib.load(path).header.get_zooms()


def test_save_nifti_rejects_wrong_shape(tmp_path):
    path, _ = nifti(tmp_path)
    geometry = Geometry.from_image(nib.load(path))
    with pytest.raises(ValueError, match="does not match"):
        save_nifti(tmp_path / "x.nii.gz", np.zeros((2, 2, 2), np.uint8), geometry)


def test_load_nifti_errors_name_case_and_file(tmp_path):
    with pytest.raises(CaseError, match=r"^C1: .*missing.nii.gz: file not found$"):
        load_nifti(tmp_path / "missing.nii.gz", "C1")
    path, _ = nifti(tmp_path)
    raw = path.read_bytes()
    truncated = tmp_path / "trunc.nii.gz"
    truncated.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CaseError, match=r"^C2: .*trunc.nii.gz: corrupt or truncated"):
        load_nifti(truncated, "C2")
    garbage = tmp_path / "garbage.nii.gz"
    garbage.write_bytes(gzip.compress(b"not a nifti header" * 30))
    with pytest.raises(CaseError, match=r"^C3: .*garbage.nii.gz: "):
        load_nifti(garbage, "C3")
    notgz = tmp_path / "plain.nii.gz"
    notgz.write_bytes(b"\x00" * 400)
    with pytest.raises(CaseError, match=r"^C4: .*plain.nii.gz: "):
        load_nifti(notgz, "C4")
