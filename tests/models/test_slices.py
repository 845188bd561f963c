"""The 2D slice network: volumes in and out, each axial (Z) slice segmented on its own by the 2D UNet core."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from bratseg.models.slices import SliceUNet
from bratseg.models.unet import UNet3D


@pytest.mark.parametrize(
    ("kwargs", "shape", "expected"),
    [
        ({"depth": 2}, (2, 4, 8, 6, 1), [(2, 3, 8, 6, 1)]),
        ({"depth": 3, "deep_supervision": True}, (2, 4, 16, 8, 5), [(2, 3, 16, 8, 5), (2, 3, 8, 4, 5)]),
        (
            {"depth": 4, "deep_supervision": True, "block": "residual", "norm": "batch"},
            (1, 4, 8, 16, 3),
            [(1, 3, 8, 16, 3), (1, 3, 4, 8, 3), (1, 3, 2, 4, 3)],
        ),
        ({"depth": 3, "gate": "additive"}, (3, 4, 12, 8, 2), [(3, 3, 12, 8, 2)]),
    ],
)
def test_output_shapes(
    kwargs: dict[str, Any], shape: tuple[int, ...], expected: list[tuple[int, ...]]
) -> None:
    torch.manual_seed(0)
    model = SliceUNet(4, 3, base_width=4, **kwargs)
    out = model.train()(torch.randn(shape))
    outputs = out if isinstance(out, list) else [out]
    assert [tuple(o.shape) for o in outputs] == expected
    assert model.n_outputs == len(expected)
    with torch.no_grad():
        out = model.eval()(torch.randn(shape))
    assert isinstance(out, torch.Tensor) and tuple(out.shape) == expected[0]


def test_each_slice_is_the_2d_network_on_that_slice() -> None:
    torch.manual_seed(0)
    model = SliceUNet(4, 3, depth=3, base_width=4, dropout=0.0).eval()
    x = torch.randn(2, 4, 8, 8, 5)
    with torch.no_grad():
        out = model(x)
        assert isinstance(out, torch.Tensor)
        for b in range(2):
            for z in range(5):
                slice_out = model.net(x[b : b + 1, :, :, :, z])
                assert isinstance(slice_out, torch.Tensor)
                torch.testing.assert_close(out[b : b + 1, :, :, :, z], slice_out, rtol=1e-4, atol=1e-4)


def test_no_information_crosses_slices() -> None:
    torch.manual_seed(0)
    model = SliceUNet(4, 3, depth=3, base_width=4).eval()
    x = torch.randn(1, 4, 8, 8, 4)
    y = x.clone()
    y[..., 2] = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        a, b = model(x), model(y)
    assert isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)
    changed = [not torch.equal(a[..., z], b[..., z]) for z in range(4)]
    assert changed == [False, False, True, False]


def test_core_is_a_2d_unet_of_the_family() -> None:
    model = SliceUNet(4, 3, depth=3, base_width=4, max_width=8)
    assert isinstance(model.net, UNet3D) and model.net.spatial_dims == 2
    assert model.net.widths == (4, 8, 8)
    assert model.size_divisor == 4 and model.spatial_divisors == (4, 4, 1)
    assert all(not isinstance(m, torch.nn.Conv3d) for m in model.modules())


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((1, 4, 12, 8, 3), r"\(12, 8, 3\) must be divisible by 2\*\*\(depth-1\) = 8 along X and Y"),
        ((1, 4, 8, 8), r"input must have shape \(B, C, X, Y, Z\)"),
        ((1, 2, 8, 8, 3), "input has 2 channels, the model expects 4"),
    ],
)
def test_bad_input_shapes(shape: tuple[int, ...], message: str) -> None:
    model = SliceUNet(4, 3, depth=4, base_width=2)
    with pytest.raises(ValueError, match=message):
        model(torch.zeros(shape))


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"depth": 1}, "depth"),
        ({"base_width": 0}, "base_width"),
        ({"norm": "group"}, "norm"),
        ({"block": "dense"}, "block"),
        ({"gate": "soft"}, "gate"),
        ({"dropout": 1.0}, "dropout"),
        ({"deep_supervision": 1}, "deep_supervision"),
    ],
)
def test_illegal_arguments(kwargs: dict[str, Any], argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        SliceUNet(4, 3, **kwargs)
