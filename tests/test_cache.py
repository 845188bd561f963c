"""The cached case format as the training sampler sees it: memory maps, patches, properties."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bratseg.cache import extract_patch, open_case, write_cached_case
from bratseg.preprocess.locations import sample_locations

SHAPE = (23, 27, 19)


@pytest.fixture
def classes():
    rng = np.random.default_rng(3)
    c = np.zeros(SHAPE, np.uint8)
    c[5:15, 5:15, 5:15] = 2
    c[8:12, 8:12, 8:12] = 3
    c[rng.random(SHAPE) < 0.01] = 2
    return c  # class 1 absent


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_write_and_open_case(tmp_path, classes, dtype):
    rng = np.random.default_rng(0)
    image = rng.standard_normal((4, *SHAPE)).astype(dtype)
    locs = sample_locations(classes, 30, seed=1)
    directory = tmp_path / "cases" / "BraTS2021_00001"
    write_cached_case(
        directory, image, classes, locs, {"case_id": "BraTS2021_00001", "extra": np.float32(1.5)}
    )
    case = open_case(directory)
    assert case.case_id == "BraTS2021_00001" and case.has_label
    mm = case.image()
    assert isinstance(mm, np.memmap) and mm.dtype == dtype and mm.shape == image.shape
    np.testing.assert_array_equal(mm, image)
    label = case.label()
    assert isinstance(label, np.memmap)
    np.testing.assert_array_equal(label, classes)
    got = case.locations()
    for cls in (1, 2, 3):
        np.testing.assert_array_equal(got[cls], locs[cls])
    props = json.loads((directory / "properties.json").read_text())
    assert (
        props["extra"] == 1.5
        and props["image_shape"] == [4, *SHAPE]
        and props["image_dtype"] == str(image.dtype)
    )
    assert sorted(p.name for p in tmp_path.joinpath("cases").iterdir()) == ["BraTS2021_00001"]


def test_unlabelled_case(tmp_path):
    image = np.zeros((4, *SHAPE), np.float16)
    empty = {c: np.empty((0, 3), np.int32) for c in (1, 2, 3)}
    write_cached_case(tmp_path / "c", image, None, empty, {"case_id": "c"})
    case = open_case(tmp_path / "c")
    assert case.label() is None and not case.has_label
    assert all(v.shape == (0, 3) for v in case.locations().values())


def test_write_rejects_bad_input_and_leaves_nothing(tmp_path, classes):
    image = np.zeros((4, *SHAPE), np.float32)
    locs = sample_locations(classes, 5, 0)
    with pytest.raises(ValueError, match="label shape"):
        write_cached_case(tmp_path / "c", image, classes[:-1], locs, {"case_id": "c"})
    with pytest.raises(ValueError, match="case_id"):
        write_cached_case(tmp_path / "c", image, classes, locs, {})
    with pytest.raises(ValueError, match="float16 or float32"):
        write_cached_case(tmp_path / "c", image.astype(np.float64), classes, locs, {"case_id": "c"})
    with pytest.raises(TypeError, match="properties"):
        write_cached_case(tmp_path / "c", image, classes, locs, {"case_id": "c", "bad": object()})
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError, match="not a cached case"):
        open_case(tmp_path / "c")


@pytest.fixture
def volume():
    return np.arange(3 * 10 * 11 * 12, dtype=np.float32).reshape(3, 10, 11, 12)


def test_patch_interior_equals_slicing(volume):
    patch = extract_patch(volume, (2, 3, 4), (5, 6, 7))
    np.testing.assert_array_equal(patch, volume[:, 2:7, 3:9, 4:11])
    assert patch.flags.c_contiguous and not np.shares_memory(patch, volume)
    single = extract_patch(volume[1], (2, 3, 4), (5, 6, 7))
    np.testing.assert_array_equal(single, volume[1, 2:7, 3:9, 4:11])


def test_patch_padding_at_edges(volume):
    patch = extract_patch(volume, (-2, 8, 10), (4, 5, 6), pad_value=-1)
    assert patch.shape == (3, 4, 5, 6)
    expected = np.full((3, 4, 5, 6), -1, np.float32)
    expected[:, 2:4, 0:3, 0:2] = volume[:, 0:2, 8:11, 10:12]
    np.testing.assert_array_equal(patch, expected)


def test_patch_larger_than_volume(volume):
    patch = extract_patch(volume, (-3, -2, -1), (16, 15, 14))
    assert patch.shape == (3, 16, 15, 14)
    np.testing.assert_array_equal(patch[:, 3:13, 2:13, 1:13], volume)
    assert patch.sum() == volume.sum()


def test_patch_entirely_outside(volume):
    patch = extract_patch(volume, (20, 0, 0), (4, 4, 4), pad_value=5)
    assert patch.shape == (3, 4, 4, 4) and np.all(patch == 5)


def test_patch_from_memmap(tmp_path, volume):
    np.save(tmp_path / "v.npy", volume.astype(np.float16))
    mm = np.load(tmp_path / "v.npy", mmap_mode="r")
    patch = extract_patch(mm, (7, -1, 3), (4, 4, 4))
    assert type(patch) is np.ndarray and patch.dtype == np.float16
    np.testing.assert_array_equal(patch[:, :3, 1:, :], volume[:, 7:10, 0:3, 3:7].astype(np.float16))
    interior = extract_patch(mm, (1, 1, 1), (3, 3, 3))
    assert type(interior) is np.ndarray and interior.flags.c_contiguous


def test_patch_bad_arguments(volume):
    with pytest.raises(ValueError, match="size"):
        extract_patch(volume, (0, 0, 0), (0, 4, 4))
    with pytest.raises(ValueError, match="start and size"):
        extract_patch(volume, (0, 0), (4, 4, 4))
    with pytest.raises(ValueError, match="volume"):
        extract_patch(volume[0, 0], (0, 0, 0), (4, 4, 4))
