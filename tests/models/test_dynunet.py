"""MONAI's DynUNet (nnU-Net) behind the project's forward contract: the plan, shapes, deep supervision at
native resolutions (checked against MONAI's interpolated output), checks."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from monai.networks.blocks.dynunet_block import UnetBasicBlock, UnetResBlock
from monai.networks.nets.dynunet import DynUNet as MonaiDynUNet
from torch import nn
from torch.nn import functional as F

from bratseg.models.dynunet import DynUNet, plan

TINY: dict[str, Any] = {"depth": 3, "base_width": 4, "max_width": 16}


@pytest.mark.parametrize(
    ("depth", "kernels", "strides"),
    [(3, [3, 3, 3], [1, 2, 2]), (4, [3, 3, 3, 3], [1, 2, 2, 2]), (6, [3] * 6, [1, 2, 2, 2, 2, 2])],
)
def test_plan(depth: int, kernels: list[int], strides: list[int]) -> None:
    assert plan(depth) == (kernels, strides)


@pytest.mark.parametrize("depth", [2, 0, 3.0, True])
def test_plan_needs_three_levels(depth: Any) -> None:
    with pytest.raises(ValueError, match="depth must be an integer of at least 3"):
        plan(depth)


@pytest.mark.parametrize(
    ("kwargs", "shape", "expected"),
    [
        ({}, (2, 4, 8, 12, 16), [(2, 3, 8, 12, 16)]),
        ({"deep_supervision": True}, (2, 4, 8, 12, 16), [(2, 3, 8, 12, 16), (2, 3, 4, 6, 8)]),
        (
            {"depth": 4, "deep_supervision": True, "res_block": True, "norm": "batch"},
            (1, 4, 16, 8, 8),
            [(1, 3, 16, 8, 8), (1, 3, 8, 4, 4), (1, 3, 4, 2, 2)],
        ),
        ({"dropout": 0.2, "max_width": 4}, (1, 4, 4, 4, 8), [(1, 3, 4, 4, 8)]),
    ],
)
def test_output_shapes(
    kwargs: dict[str, Any], shape: tuple[int, ...], expected: list[tuple[int, ...]]
) -> None:
    torch.manual_seed(0)
    model = DynUNet(4, 3, **{**TINY, **kwargs})
    assert model.n_outputs == len(expected)
    out = model.train()(torch.randn(shape))
    outputs = out if isinstance(out, list) else [out]
    assert isinstance(out, list) == (len(expected) > 1)
    assert [tuple(o.shape) for o in outputs] == expected
    with torch.no_grad():
        out = model.eval()(torch.randn(shape))
    assert isinstance(out, torch.Tensor) and tuple(out.shape) == expected[0]


def test_deep_supervision_equals_monai_before_its_interpolation() -> None:
    torch.manual_seed(0)
    model = DynUNet(4, 3, depth=4, base_width=4, max_width=16, deep_supervision=True).train()
    assert isinstance(model.net, MonaiDynUNet)
    x = torch.randn(2, 4, 16, 16, 8)
    ours = model(x)
    stacked = model.net(x)  # MONAI: (B, 1 + heads, K, X, Y, Z), heads interpolated to full resolution
    assert isinstance(ours, list) and stacked.shape == (2, 3, 3, 16, 16, 8)
    assert torch.equal(ours[0], stacked[:, 0])
    for i, head in enumerate(ours[1:], start=1):
        assert head.shape[2:] == tuple(s // 2**i for s in x.shape[2:])
        assert torch.equal(F.interpolate(head, size=x.shape[2:]), stacked[:, i])
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model.net(x))


def test_network_follows_the_plan() -> None:
    model = DynUNet(4, 3, depth=4, base_width=8, max_width=32)
    assert model.widths == (8, 16, 32, 32)
    assert list(model.net.filters) == [8, 16, 32, 32]
    assert list(model.net.strides) == [1, 2, 2, 2]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv3d) and m.kernel_size != (1, 1, 1)]
    assert convs and all(m.kernel_size == (3, 3, 3) for m in convs)
    ups = [m for m in model.modules() if isinstance(m, nn.ConvTranspose3d)]
    assert len(ups) == 3 and all(m.kernel_size == (2, 2, 2) and m.stride == (2, 2, 2) for m in ups)
    assert nn.Upsample not in {type(m) for m in model.modules()}
    norms = [m for m in model.modules() if isinstance(m, nn.InstanceNorm3d)]
    assert norms and all(m.affine for m in norms)
    assert model.size_divisor == 8


@pytest.mark.parametrize(("res_block", "kind"), [(False, UnetBasicBlock), (True, UnetResBlock)])
def test_block_choice(res_block: bool, kind: type) -> None:
    """``res_block`` sets MONAI's encoder blocks (its decoder blocks are always plain)."""
    net = DynUNet(4, 3, **TINY, res_block=res_block).net
    encoder = [net.input_block, *net.downsamples, net.bottleneck]
    assert [type(m) for m in encoder] == [kind] * 3


def test_heads_only_with_deep_supervision() -> None:
    off = DynUNet(4, 3, depth=4, base_width=4, max_width=8)
    on = DynUNet(4, 3, depth=4, base_width=4, max_width=8, deep_supervision=True)
    assert not any(k.startswith("net.deep_supervision_heads") for k in off.state_dict())
    assert (
        sum(k.startswith("net.deep_supervision_heads") and k.endswith("weight") for k in on.state_dict()) == 2
    )


def test_input_checks() -> None:
    model = DynUNet(4, 3, **TINY)
    with pytest.raises(
        ValueError, match=r"\(8, 6, 8\) must be divisible by 2\*\*\(depth-1\) = 4 along every axis"
    ):
        model(torch.zeros(1, 4, 8, 6, 8))
    with pytest.raises(ValueError, match=r"input must have shape \(B, C, X, Y, Z\)"):
        model(torch.zeros(4, 8, 8, 8))


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"depth": 2}, "depth"),
        ({"base_width": 0}, "base_width"),
        ({"max_width": 2}, "max_width"),
        ({"norm": "group"}, "norm"),
        ({"dropout": 1.0}, "dropout"),
        ({"res_block": 1}, "res_block"),
        ({"deep_supervision": "yes"}, "deep_supervision"),
    ],
)
def test_illegal_arguments(kwargs: dict[str, Any], argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        DynUNet(4, 3, **{**TINY, **kwargs})
