"""brain_bbox, crop and uncrop: exact round trips on 3D and channel-first arrays."""

from __future__ import annotations

import numpy as np
import pytest

from bratseg.spatial.crop import as_bbox, bbox_shape, brain_bbox, crop, uncrop

SHAPE = (23, 27, 19)


@pytest.fixture
def mask():
    m = np.zeros(SHAPE, bool)
    m[4:15, 2:20, 7:19] = True
    return m


def test_brain_bbox_margin_and_clipping(mask):
    assert brain_bbox(mask, 0) == ((4, 15), (2, 20), (7, 19))
    assert brain_bbox(mask, 3) == ((1, 18), (0, 23), (4, 19))  # clipped at 0 and at 19
    assert bbox_shape(brain_bbox(mask, 0)) == (11, 18, 12)


def test_brain_bbox_rejects_bad_input(mask):
    with pytest.raises(ValueError, match="empty"):
        brain_bbox(np.zeros(SHAPE, bool), 1)
    with pytest.raises(ValueError, match="margin"):
        brain_bbox(mask, -1)
    with pytest.raises(ValueError, match="mask"):
        brain_bbox(mask[0], 1)


@pytest.mark.parametrize("lead", [(), (4,), (2, 3)])
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.uint8])
def test_crop_uncrop_round_trip(mask, lead, dtype):
    rng = np.random.default_rng(0)
    full = (rng.random((*lead, *SHAPE)) * 100).astype(dtype)
    full[..., ~mask] = 0
    box = brain_bbox(mask, 1)
    cropped = crop(full, box)
    assert cropped.shape == (*lead, *bbox_shape(box))
    restored = uncrop(cropped, box, SHAPE)
    assert restored.dtype == full.dtype and restored.tobytes() == full.tobytes()
    assert uncrop(cropped, box, full.shape).tobytes() == full.tobytes()
    assert crop(restored, box).tobytes() == np.ascontiguousarray(cropped).tobytes()


def test_uncrop_fill_value(mask):
    box = brain_bbox(mask, 0)
    out = uncrop(np.ones((11, 18, 12), np.float32), box, SHAPE, fill=-1.0)
    assert out[0, 0, 0] == -1 and out[4, 2, 7] == 1 and out.sum() == 11 * 18 * 12 - (out.size - 11 * 18 * 12)


def test_bbox_from_json_lists():
    assert as_bbox([[1, 2], [3, 4], [5, 6]]) == ((1, 2), (3, 4), (5, 6))
    with pytest.raises(ValueError, match="bbox"):
        as_bbox([[1, 2], [3, 4]])
    with pytest.raises(ValueError, match="bbox"):
        as_bbox([[3, 2], [3, 4], [5, 6]])


def test_crop_uncrop_reject_mismatches(mask):
    box = brain_bbox(mask, 0)
    with pytest.raises(ValueError, match="bbox"):
        crop(np.zeros((5, 5, 5)), box)
    with pytest.raises(ValueError, match="bbox"):
        uncrop(np.zeros((3, 3, 3)), box, SHAPE)
    with pytest.raises(ValueError, match="full_shape"):
        uncrop(np.zeros((2, 11, 18, 12)), box, (3, *SHAPE))
    with pytest.raises(ValueError, match="full_shape"):
        uncrop(np.zeros((11, 18, 12)), box, (10, 10, 10))
