"""Sliding-window inference: window placement, Gaussian weights, stitching against whole-volume results."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
import torch

from bratseg.inference.sliding_window import (
    MIN_IMPORTANCE,
    gaussian_importance_map,
    sliding_window_predict,
    window_starts,
)


def _voxelwise(x: torch.Tensor) -> torch.Tensor:
    """A translation-equivariant predictor: per-voxel functions of the input, 3 outputs.

    Computed in float64 and rounded to float32, so a voxel's value does not depend on the size or layout of
    the batch it came in: float32 transcendental kernels may differ by ~1e-4 between code paths on some CPUs
    (seen in CI), which is no stitching error and would hide one below a looser tolerance.
    """
    d = x.double()
    return torch.cat(
        [
            torch.sigmoid(2.0 * d[:, :1] - 0.3),
            torch.sigmoid(d[:, :1] * d[:, 1:2]),
            torch.tanh(d[:, 1:2]) ** 2,
        ],
        dim=1,
    ).float()


def _image(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((2, *shape)).astype(np.float32)


# --- window_starts ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 7, 15, 16, 17, 31, 32, 33, 37, 64, 100, 155, 240])
@pytest.mark.parametrize("patch", [1, 5, 16, 128])
@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5, 0.7, 0.9])
def test_window_starts_cover_axis_exactly(size: int, patch: int, overlap: float) -> None:
    (starts,) = window_starts([size], [patch], overlap)
    padded = max(size, patch)
    assert starts[0] == 0
    assert starts[-1] == padded - patch
    assert starts == sorted(set(starts))
    covered = np.zeros(padded, dtype=bool)
    for s in starts:
        covered[s : s + patch] = True
    assert covered.all()
    step = int(np.ceil(patch * (1 - overlap) - 1e-9))
    assert all(b - a <= step for a, b in itertools.pairwise(starts))
    # the fewest windows that reach the end with the target step
    assert len(starts) == (int(np.ceil((padded - patch) / step)) + 1 if padded > patch else 1)


def test_window_starts_known_values() -> None:
    assert window_starts([240, 240, 155], [128, 128, 128], 0.5) == [[0, 56, 112], [0, 56, 112], [0, 27]]
    assert window_starts([16, 10, 17], [16, 16, 16], 0.5) == [[0], [0], [0, 1]]
    assert window_starts([37, 29, 41], [16, 16, 16], 0.5) == [
        [0, 7, 14, 21],
        [0, 6, 13],
        [0, 6, 12, 19, 25],
    ]
    assert window_starts([10], [3], 0.0) == [[0, 2, 5, 7]]


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"overlap": 1.0}, "overlap"),
        ({"overlap": -0.1}, "overlap"),
        ({"patch_size": [16, 0, 16]}, "patch_size"),
        ({"patch_size": [16, 16]}, "patch_size"),
        ({"shape": [0, 5, 5]}, "shape"),
    ],
)
def test_window_starts_invalid(kwargs: dict[str, Any], name: str) -> None:
    args: dict[str, Any] = {"shape": [20, 20, 20], "patch_size": [16, 16, 16], "overlap": 0.5, **kwargs}
    with pytest.raises(ValueError, match=name):
        window_starts(**args)


# --- gaussian_importance_map --------------------------------------------------------------------------------


@pytest.mark.parametrize("patch", [(16, 16, 16), (15, 8, 21), (1, 4, 5), (128, 128, 128)])
def test_gaussian_map_properties(patch: tuple[int, int, int]) -> None:
    g = gaussian_importance_map(patch)
    assert g.shape == patch
    assert g.dtype == np.float32
    assert g.max() == pytest.approx(1.0)
    assert g.min() >= MIN_IMPORTANCE > 0
    assert np.isfinite(g).all()
    for axis in range(3):  # symmetric under flips, so TTA and flipped windows weigh alike
        np.testing.assert_array_equal(g, np.flip(g, axis))
    centre = tuple(p // 2 for p in patch)
    assert g[centre] == g.max()
    line = g[:, centre[1], centre[2]]
    half = line[: (patch[0] + 1) // 2]
    assert np.all(np.diff(half) >= 0)  # rises towards the centre


def test_gaussian_map_clamped_and_sigma() -> None:
    narrow = gaussian_importance_map((32, 32, 32), sigma_scale=0.01)
    assert narrow.min() == pytest.approx(MIN_IMPORTANCE)
    wide = gaussian_importance_map((32, 32, 32), sigma_scale=1.0)
    assert wide.min() > gaussian_importance_map((32, 32, 32)).min()
    with pytest.raises(ValueError, match="sigma_scale"):
        gaussian_importance_map((8, 8, 8), sigma_scale=0.0)
    with pytest.raises(ValueError, match="patch_size"):
        gaussian_importance_map((8, 0, 8))


# --- sliding_window_predict ---------------------------------------------------------------------------------


@pytest.mark.parametrize("tta", [False, True])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_stitched_equals_whole_volume_odd_shape(tta: bool, batch_size: int) -> None:
    image = _image((37, 29, 41))
    expected = _voxelwise(torch.from_numpy(image)[None])[0].numpy()
    out = sliding_window_predict(
        image, _voxelwise, patch_size=(16, 16, 16), n_outputs=3, batch_size=batch_size, tta_flips=tta
    )
    assert out.shape == (3, 37, 29, 41)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("shape", [(10, 7, 13), (16, 5, 16), (3, 40, 9), (1, 1, 1)])
@pytest.mark.parametrize("tta", [False, True])
def test_volume_smaller_than_patch(shape: tuple[int, int, int], tta: bool) -> None:
    image = _image(shape, seed=1)
    expected = _voxelwise(torch.from_numpy(image)[None])[0].numpy()
    out = sliding_window_predict(image, _voxelwise, patch_size=(16, 16, 16), n_outputs=3, tta_flips=tta)
    assert out.shape == (3, *shape)
    np.testing.assert_allclose(out, expected, atol=1e-6, rtol=0)


def test_gaussian_weighting_matches_reference() -> None:
    """A position-dependent predictor makes windows disagree; the result is their Gaussian-weighted mean."""
    shape, patch, overlap = (20, 13, 18), (8, 8, 8), 0.5
    ramp = torch.linspace(0.0, 1.0, 8)
    position = (ramp[:, None, None] + 2 * ramp[None, :, None] + 3 * ramp[None, None, :]) / 6

    def predictor(x: torch.Tensor) -> torch.Tensor:
        return position.expand(x.shape[0], 1, *patch) * torch.sigmoid(x[:, :1])

    image = _image(shape, seed=2)
    out = sliding_window_predict(image, predictor, patch_size=patch, n_outputs=1, overlap=overlap)

    g = gaussian_importance_map(patch).astype(np.float64)
    num = np.zeros(shape)
    den = np.zeros(shape)
    sig = 1 / (1 + np.exp(-image[0].astype(np.float64)))
    for corner in itertools.product(*window_starts(shape, patch, overlap)):
        sl = tuple(slice(s, s + p) for s, p in zip(corner, patch, strict=True))
        num[sl] += g * position.numpy() * sig[sl]
        den[sl] += g
    np.testing.assert_allclose(out[0], num / den, atol=1e-6, rtol=0)


def test_conv_net_predictor_runs_and_is_deterministic() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv3d(2, 4, 3, padding=1),
        torch.nn.InstanceNorm3d(4),
        torch.nn.LeakyReLU(),
        torch.nn.Conv3d(4, 4, 3, padding=1),
    ).eval()

    def predictor(x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(net(x), dim=1)

    image = _image((21, 18, 19), seed=3)
    kwargs: dict[str, Any] = {"patch_size": (12, 12, 12), "n_outputs": 4, "batch_size": 3, "tta_flips": True}
    a = sliding_window_predict(image, predictor, **kwargs)
    b = sliding_window_predict(torch.from_numpy(image), predictor, **kwargs)
    assert a.shape == (4, 21, 18, 19)
    np.testing.assert_allclose(a.sum(axis=0), 1.0, atol=1e-5)
    assert a.tobytes() == b.tobytes()


def test_deterministic_and_input_untouched() -> None:
    image = _image((25, 20, 23), seed=4)
    before = image.copy()
    a = sliding_window_predict(image, _voxelwise, patch_size=(8, 8, 8), n_outputs=3, tta_flips=True)
    b = sliding_window_predict(image, _voxelwise, patch_size=(8, 8, 8), n_outputs=3, tta_flips=True)
    assert a.tobytes() == b.tobytes()
    np.testing.assert_array_equal(image, before)


def test_dtypes_and_amp_ignored_on_cpu() -> None:
    image = _image((17, 9, 20), seed=5)
    expected = _voxelwise(torch.from_numpy(image)[None])[0].numpy()
    half = image.astype(np.float16)
    out = sliding_window_predict(
        half, _voxelwise, patch_size=(8, 8, 8), n_outputs=3, amp_dtype=torch.bfloat16, progress=True
    )
    expected_half = _voxelwise(torch.from_numpy(half.astype(np.float32))[None])[0].numpy()
    np.testing.assert_allclose(out, expected_half, atol=1e-6, rtol=0)
    assert np.abs(out - expected).max() < 1e-2
    readonly = image.copy()
    readonly.flags.writeable = False
    out = sliding_window_predict(torch.from_numpy(image), _voxelwise, patch_size=(32, 8, 8), n_outputs=3)
    np.testing.assert_allclose(out, expected, atol=1e-6, rtol=0)
    out = sliding_window_predict(readonly, _voxelwise, patch_size=(32, 8, 8), n_outputs=3)
    np.testing.assert_allclose(out, expected, atol=1e-6, rtol=0)
    ints = sliding_window_predict(
        np.ones((2, 9, 9, 9), dtype=np.int16), _voxelwise, patch_size=(4, 4, 4), n_outputs=3
    )
    assert ints.dtype == np.float32


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"overlap": 1.0}, "overlap"),
        ({"overlap": -0.5}, "overlap"),
        ({"patch_size": (8, 0, 8)}, "patch_size"),
        ({"patch_size": (8, 8)}, "patch_size"),
        ({"n_outputs": 0}, "n_outputs"),
        ({"batch_size": 0}, "batch_size"),
        ({"image": np.zeros((9, 9, 9), dtype=np.float32)}, "image"),
        ({"image": np.zeros((1, 2, 9, 9, 9), dtype=np.float32)}, "image"),
        ({"n_outputs": 2}, "predictor"),
    ],
)
def test_invalid_arguments(kwargs: dict[str, Any], name: str) -> None:
    args: dict[str, Any] = {
        "image": _image((9, 9, 9)),
        "predictor": _voxelwise,
        "patch_size": (8, 8, 8),
        "n_outputs": 3,
        **kwargs,
    }
    image, predictor = args.pop("image"), args.pop("predictor")
    with pytest.raises(ValueError, match=name):
        sliding_window_predict(image, predictor, **args)
