"""MONAI's SegResNet behind the project's forward contract: shapes, settings passed through, checks."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from monai.networks.nets.segresnet import SegResNet as MonaiSegResNet
from monai.utils import UpsampleMode
from torch import nn

from bratseg.models.segresnet import SegResNet

TINY: dict[str, Any] = {"init_filters": 4, "blocks_down": (1, 1, 1), "blocks_up": (1, 1), "num_groups": 2}


@pytest.mark.parametrize(
    ("kwargs", "shape", "expected"),
    [
        ({}, (2, 4, 8, 16, 8), (2, 3, 8, 16, 8)),
        ({"blocks_down": (1, 2), "blocks_up": (1,)}, (1, 4, 6, 4, 2), (1, 3, 6, 4, 2)),
        ({"norm": "instance", "dropout": 0.2}, (1, 4, 8, 8, 8), (1, 3, 8, 8, 8)),
        ({"norm": "batch", "init_filters": 3}, (2, 4, 4, 8, 12), (2, 3, 4, 8, 12)),
    ],
)
def test_output_shapes(kwargs: dict[str, Any], shape: tuple[int, ...], expected: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    model = SegResNet(4, 3, **{**TINY, **kwargs})
    assert model.n_outputs == 1
    out = model.train()(torch.randn(shape))
    assert isinstance(out, torch.Tensor) and out.shape == expected
    with torch.no_grad():
        assert model.eval()(torch.randn(shape)).shape == expected


def test_is_monai_segresnet_with_deconv_upsampling() -> None:
    torch.manual_seed(3)
    ours = SegResNet(4, 3, **TINY).eval()
    torch.manual_seed(3)
    reference = MonaiSegResNet(
        spatial_dims=3,
        init_filters=4,
        in_channels=4,
        out_channels=3,
        norm=("group", {"num_groups": 2}),
        blocks_down=(1, 1, 1),
        blocks_up=(1, 1),
        upsample_mode=UpsampleMode.DECONV,
    ).eval()
    assert isinstance(ours.net, MonaiSegResNet)
    x = torch.randn(1, 4, 8, 8, 8)
    with torch.no_grad():
        assert torch.equal(ours(x), reference(x))
    kinds = {type(m) for m in ours.modules()}
    assert nn.Upsample not in kinds
    ups = [m for m in ours.modules() if isinstance(m, nn.ConvTranspose3d)]
    assert len(ups) == 2 and all(m.kernel_size == (2, 2, 2) and m.stride == (2, 2, 2) for m in ups)
    groups = [m for m in ours.modules() if isinstance(m, nn.GroupNorm)]
    assert groups and all(m.num_groups == 2 for m in groups)


@pytest.mark.parametrize(
    ("norm", "kind"), [("instance", nn.InstanceNorm3d), ("batch", nn.BatchNorm3d), ("group", nn.GroupNorm)]
)
def test_norm_choice(norm: str, kind: type) -> None:
    model = SegResNet(4, 3, **{**TINY, "norm": norm})
    norms = [m for m in model.modules() if isinstance(m, nn.InstanceNorm3d | nn.BatchNorm3d | nn.GroupNorm)]
    assert norms and all(type(m) is kind for m in norms)
    if norm == "instance":
        assert all(m.affine for m in norms)


def test_dropout_only_when_asked() -> None:
    assert not any(isinstance(m, nn.Dropout3d) for m in SegResNet(4, 3, **TINY).modules())
    drops = [m for m in SegResNet(4, 3, **TINY, dropout=0.3).modules() if isinstance(m, nn.Dropout3d)]
    assert len(drops) == 1 and drops[0].p == 0.3


def test_size_divisor_and_input_checks() -> None:
    model = SegResNet(4, 3, **{**TINY, "blocks_down": (1, 1, 1, 1), "blocks_up": (1, 1, 1)})
    assert model.size_divisor == 8 and model.spatial_divisors == (8, 8, 8)
    with pytest.raises(
        ValueError, match=r"\(8, 12, 8\) must be divisible by 2\*\*\(len\(blocks_down\)-1\) = 8"
    ):
        model(torch.zeros(1, 4, 8, 12, 8))
    with pytest.raises(ValueError, match="input has 3 channels, the model expects 4"):
        model(torch.zeros(1, 3, 8, 8, 8))


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"blocks_down": (1,), "blocks_up": ()}, "blocks_down"),
        ({"blocks_down": (1, 0, 1)}, "blocks_down"),
        ({"blocks_up": (1,)}, "blocks_up"),
        ({"blocks_up": (1, 1, 1)}, "blocks_up"),
        ({"init_filters": 0}, "init_filters"),
        ({"norm": "layer"}, "norm"),
        ({"num_groups": 0}, "num_groups"),
        ({"num_groups": 3}, "num_groups"),
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": -0.5}, "dropout"),
    ],
)
def test_illegal_arguments(kwargs: dict[str, Any], argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        SegResNet(4, 3, **{**TINY, **kwargs})


def test_channel_counts_are_checked() -> None:
    with pytest.raises(ValueError, match="out_channels"):
        SegResNet(4, 0, **TINY)
