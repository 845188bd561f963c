"""Shapes, argument checks and structure of the UNet family: UNet, ResUNet, Attention UNet and the 2D core
(tiny widths so that everything runs on CPU)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from bratseg.config import NetParams
from bratseg.models import UNet3D, build_model
from bratseg.models.attention import AttentionGate
from bratseg.models.base import use_channels_last
from bratseg.models.blocks import ConvNormAct, PlainBlock, ResidualBlock, make_block, make_norm

#: The names of params.yaml's ``model`` built as a UNet3D.
FAMILY = ("unet", "resunet", "attention_unet")


def net_params(**overrides: Any) -> NetParams:
    values: dict[str, Any] = {
        "depth": 3,
        "base_width": 4,
        "max_width": 16,
        "norm": "instance",
        "dropout": 0.0,
        "deep_supervision": False,
    }
    values.update(overrides)
    return NetParams(**values)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# (name, net settings, in/out channels, input shape) -> output shapes checked below
SHAPE_CASES = [
    (name, depth, norm, ds)
    for name in FAMILY
    for depth in (2, 3, 4)
    for norm in ("instance", "batch")
    for ds in (False, True)
]


@pytest.mark.parametrize(("name", "depth", "norm", "deep_supervision"), SHAPE_CASES)
def test_output_shapes(name: str, depth: int, norm: str, deep_supervision: bool) -> None:
    torch.manual_seed(0)
    net = net_params(depth=depth, norm=norm, deep_supervision=deep_supervision)
    model = build_model(name, 3, 5, net)  # odd channel counts
    spatial = (16, 8, 24) if depth < 4 else (16, 16, 24)
    x = torch.randn(2, 3, *spatial)

    model.train()
    out = model(x)
    if deep_supervision:
        assert isinstance(out, list)
        assert len(out) == depth - 1 == model.n_outputs
        for i, o in enumerate(out):
            assert o.shape == (2, 5, *(s // 2**i for s in spatial))
    else:
        assert isinstance(out, torch.Tensor)
        assert out.shape == (2, 5, *spatial)
        assert model.n_outputs == 1

    model.eval()
    with torch.no_grad():
        out = model(x)
    assert isinstance(out, torch.Tensor)
    assert out.shape == (2, 5, *spatial)
    assert out.dtype == torch.float32


@pytest.mark.parametrize(
    ("kwargs", "widths"),
    [
        ({"depth": 4, "base_width": 16, "max_width": 256}, (16, 32, 64, 128)),
        ({"depth": 5, "base_width": 8, "max_width": 32}, (8, 16, 32, 32, 32)),
        ({"depth": 2, "base_width": 3, "max_width": 3}, (3, 3)),
        ({"depth": 4, "base_width": 16, "max_width": 256, "full_res_width": 8}, (8, 32, 64, 128)),
        ({"depth": 3, "base_width": 4, "max_width": 4, "full_res_width": 6}, (6, 4, 4)),
    ],
)
def test_widths_are_capped(kwargs: dict[str, Any], widths: tuple[int, ...]) -> None:
    assert UNet3D(1, 1, **kwargs).widths == widths


@pytest.mark.parametrize(
    ("args", "kwargs", "argument"),
    [
        ((0, 3), {}, "in_channels"),
        ((4, 0), {}, "out_channels"),
        ((4, 3), {"depth": 1}, "depth"),
        ((4, 3), {"depth": 2.5}, "depth"),
        ((4, 3), {"base_width": 0}, "base_width"),
        ((4, 3), {"max_width": 0}, "max_width"),
        ((4, 3), {"full_res_width": 0}, "full_res_width"),
        ((4, 3), {"full_res_width": 8.0}, "full_res_width"),
        ((4, 3), {"base_width": 32, "max_width": 16}, "max_width"),
        ((4, 3), {"block": "dense"}, "block"),
        ((4, 3), {"norm": "group"}, "norm"),
        ((4, 3), {"dropout": 1.0}, "dropout"),
        ((4, 3), {"dropout": -0.1}, "dropout"),
        ((4, 3), {"gate": "multiplicative"}, "gate"),
        ((4, 3), {"spatial_dims": 1}, "spatial_dims"),
        ((4, 3), {"deep_supervision": "yes"}, "deep_supervision"),
    ],
)
def test_illegal_arguments(args: tuple[int, int], kwargs: dict[str, Any], argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        UNet3D(*args, **kwargs)


@pytest.mark.parametrize("block", ["plain", "residual"])
def test_narrow_full_resolution_level(block: Any) -> None:
    """Only level 0 narrows (its two blocks, the last upsampling, the head); the output shapes stay."""
    model = UNet3D(4, 3, depth=3, base_width=4, max_width=16, full_res_width=2, block=block,
                   deep_supervision=True)
    assert model.widths == (2, 8, 16)
    assert model.downsamples[0][0].in_channels == 2 and model.downsamples[0][0].out_channels == 8
    assert model.upsamples[0].out_channels == 2 and model.upsamples[1].out_channels == 8
    assert model.decoder[0].conv1[0].in_channels == 4 and model.heads[0].in_channels == 2
    outputs = model.train()(torch.randn(1, 4, 16, 8, 8))
    assert [tuple(o.shape) for o in outputs] == [(1, 3, 16, 8, 8), (1, 3, 8, 4, 4)]


def test_full_res_width_from_params() -> None:
    model = build_model("unet", 4, 3, net_params(full_res_width=3))
    assert isinstance(model, UNet3D) and model.widths == (3, 8, 16)
    assert build_model("unet", 4, 3, net_params()).widths == (4, 8, 16)  # type: ignore[attr-defined]


def test_unknown_model_lists_valid_names() -> None:
    with pytest.raises(ValueError, match=r"unknown model 'vnet'.*resunet.*unet"):
        build_model("vnet", 4, 3, net_params())


def test_bad_norm_from_params() -> None:
    with pytest.raises(ValueError, match="norm"):
        build_model("unet", 4, 3, net_params(norm="layer"))


def test_helpers_reject_unknown_kinds() -> None:
    with pytest.raises(ValueError, match="norm"):
        make_norm("group", 4)
    with pytest.raises(ValueError, match="block"):
        make_block("dense", 4, 4, norm="instance", dropout=0.0)


@pytest.mark.parametrize(
    ("depth", "shape", "message"),
    [
        (
            4,
            (1, 4, 60, 64, 64),
            r"input spatial size \(60, 64, 64\) must be divisible by 2\*\*\(depth-1\) = 8",
        ),
        (2, (1, 4, 16, 15, 16), r"\(16, 15, 16\) must be divisible by 2\*\*\(depth-1\) = 2 along every axis"),
        (3, (1, 3, 16, 16, 16), "input has 3 channels, the model expects 4"),
        (3, (4, 16, 16, 16), r"shape \(B, C, X, Y, Z\)"),
    ],
)
def test_bad_input_shapes(depth: int, shape: tuple[int, ...], message: str) -> None:
    model = UNet3D(4, 3, depth=depth, base_width=2, max_width=8)
    with pytest.raises(ValueError, match=message):
        model(torch.zeros(shape))


def test_the_variants_share_one_class() -> None:
    unet = build_model("unet", 4, 3, net_params())
    resunet = build_model("resunet", 4, 3, net_params())
    attention = build_model("attention_unet", 4, 3, net_params())
    assert isinstance(unet, UNet3D) and isinstance(resunet, UNet3D) and isinstance(attention, UNet3D)
    assert type(unet) is type(resunet) is type(attention) is UNet3D
    assert (unet.block, resunet.block, attention.block) == ("plain", "residual", "plain")
    assert (unet.gate, resunet.gate, attention.gate) == ("none", "none", "additive")
    assert len(unet.gates) == len(resunet.gates) == 0
    assert [type(g) for g in attention.gates] == [AttentionGate] * 2
    # the gates are the only addition: the rest of the state is the UNet's, in the same order
    assert [k for k in attention.state_dict() if not k.startswith("gates.")] == list(unet.state_dict())
    # same skeleton: only the blocks differ
    assert [type(m) for m in unet.downsamples] == [type(m) for m in resunet.downsamples] == [ConvNormAct] * 2
    assert all(isinstance(b, PlainBlock) for b in [*unet.encoder, *unet.decoder])
    assert all(isinstance(b, ResidualBlock) for b in [*resunet.encoder, *resunet.decoder])
    assert n_params(resunet) > n_params(unet)


def test_residual_blocks_project_only_when_width_changes() -> None:
    model = build_model("resunet", 2, 3, net_params(depth=4))
    encoder = [b for b in model.encoder if isinstance(b, ResidualBlock)]
    decoder = [b for b in model.decoder if isinstance(b, ResidualBlock)]
    assert encoder[0].has_projection  # 2 input channels -> base width 4
    assert not any(b.has_projection for b in encoder[1:])  # the strided conv already changed the width
    assert all(b.has_projection for b in decoder)  # concatenation doubles the width


def test_residual_block_adds_its_input() -> None:
    torch.manual_seed(0)
    block = ResidualBlock(6, 6, norm="instance")
    with torch.no_grad():
        for p in block.norm2.parameters():
            p.zero_()  # the residual branch now outputs exactly 0
    x = torch.randn(1, 6, 4, 4, 4)
    torch.testing.assert_close(block(x), nn.functional.leaky_relu(x, 0.01))
    plain = PlainBlock(6, 6, norm="instance")
    assert not torch.allclose(plain(x), nn.functional.leaky_relu(x, 0.01))


@pytest.mark.parametrize("name", ["resunet", "attention_unet"])
def test_no_pooling_or_interpolation(name: str) -> None:
    model = build_model(name, 4, 3, net_params(depth=4, dropout=0.2))
    kinds = {type(m) for m in model.modules()}
    assert not kinds & {nn.MaxPool3d, nn.AvgPool3d, nn.Upsample}
    assert sum(isinstance(m, nn.ConvTranspose3d) for m in model.modules()) == 3
    strided = [m for m in model.modules() if isinstance(m, nn.Conv3d) and m.stride == (2, 2, 2)]
    assert len(strided) == 3 and all(m.kernel_size == (3, 3, 3) for m in strided)
    assert sum(isinstance(m, nn.Dropout3d) for m in model.modules()) == 4 + 3
    # attention gates only add 1x1x1 convolutions
    others = [
        m for m in model.modules() if isinstance(m, nn.Conv3d) and m.kernel_size not in ((3, 3, 3), (2, 2, 2))
    ]
    assert all(m.kernel_size == (1, 1, 1) for m in others)
    norms = [m for m in model.modules() if isinstance(m, nn.InstanceNorm3d | nn.BatchNorm3d)]
    assert norms and all(isinstance(m, nn.InstanceNorm3d) and m.affine for m in norms)


def test_batch_norm_variant() -> None:
    model = UNet3D(2, 2, depth=2, base_width=4, norm="batch")
    assert any(isinstance(m, nn.BatchNorm3d) for m in model.modules())
    assert not any(isinstance(m, nn.InstanceNorm3d) for m in model.modules())


def test_heads_exist_whatever_deep_supervision() -> None:
    on = UNet3D(4, 3, depth=4, base_width=4, deep_supervision=True)
    off = UNet3D(4, 3, depth=4, base_width=4, deep_supervision=False)
    assert on.state_dict().keys() == off.state_dict().keys()
    off.load_state_dict(on.state_dict())
    assert on.size_divisor == 8


def test_initialisation() -> None:
    torch.manual_seed(0)
    model = UNet3D(4, 3, depth=3, base_width=8)
    for m in model.modules():
        if isinstance(m, nn.Conv3d | nn.ConvTranspose3d) and m.bias is not None:
            assert torch.count_nonzero(m.bias) == 0
    # Kaiming normal, fan-in, gain sqrt(2 / (1 + 0.01**2)): check the std of the first decoder conv
    conv = next(m for m in model.decoder.modules() if isinstance(m, nn.Conv3d) and m.kernel_size == (3, 3, 3))
    assert conv.weight.shape[:2] == (8, 16)
    fan_in = conv.weight.shape[1] * 27
    expected = (2.0 / (1 + 0.01**2) / fan_in) ** 0.5
    assert abs(conv.weight.std().item() / expected - 1) < 0.1


@pytest.mark.parametrize("name", FAMILY)
def test_same_seed_same_weights_and_outputs(name: str) -> None:
    def make() -> UNet3D:
        torch.manual_seed(123)
        return build_model(name, 4, 3, net_params(dropout=0.1, deep_supervision=True))

    a, b = make(), make()
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
    x = torch.randn(1, 4, 8, 8, 8)
    torch.manual_seed(7)
    out_a = a(x)
    torch.manual_seed(7)
    out_b = b(x)
    assert all(torch.equal(u, v) for u, v in zip(out_a, out_b, strict=True))
    torch.manual_seed(124)
    c = build_model(name, 4, 3, net_params())
    assert not torch.equal(c.state_dict()["heads.0.weight"], a.state_dict()["heads.0.weight"])


@pytest.mark.parametrize("name", FAMILY)
def test_backward_reaches_every_used_parameter(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, 4, 3, net_params(depth=3, deep_supervision=True))
    outputs = model(torch.randn(2, 4, 8, 8, 8))
    assert isinstance(outputs, list)
    torch.stack([o.square().mean() for o in outputs]).sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname


def test_unet_initialisation_is_unchanged_by_the_gates_option() -> None:
    """Without gates the UNet consumes the random stream as it always did: same seed, same weights as a
    network built before the option existed would have (checked against the first encoder convolution)."""
    torch.manual_seed(0)
    plain = UNet3D(4, 3, depth=3, base_width=4)
    torch.manual_seed(0)
    gated = UNet3D(4, 3, depth=3, base_width=4, gate="additive")
    for key, value in plain.state_dict().items():
        assert torch.equal(value, gated.state_dict()[key]), key


@pytest.mark.parametrize(
    ("depth", "spatial", "deep_supervision", "expected"),
    [
        (2, (8, 6), False, [(2, 5, 8, 6)]),
        (3, (16, 12), True, [(2, 5, 16, 12), (2, 5, 8, 6)]),
        (4, (8, 16), True, [(2, 5, 8, 16), (2, 5, 4, 8), (2, 5, 2, 4)]),
    ],
)
@pytest.mark.parametrize("gate", ["none", "additive"])
def test_2d_core_shapes(
    depth: int, spatial: tuple[int, int], deep_supervision: bool, expected: list[tuple[int, ...]], gate: str
) -> None:
    model = UNet3D(
        3,
        5,
        depth=depth,
        base_width=4,
        deep_supervision=deep_supervision,
        gate=gate,
        spatial_dims=2,  # type: ignore[arg-type]
    )
    assert all(not isinstance(m, nn.Conv3d | nn.ConvTranspose3d | nn.InstanceNorm3d) for m in model.modules())
    out = model.train()(torch.randn(2, 3, *spatial))
    outputs = out if isinstance(out, list) else [out]
    assert [tuple(o.shape) for o in outputs] == expected
    assert model.spatial_divisors == (2 ** (depth - 1),) * 2
    with pytest.raises(ValueError, match=r"shape \(B, C, X, Y\)"):
        model(torch.randn(1, 3, *spatial, 4))


def test_2d_core_uses_2d_layers() -> None:
    model = UNet3D(2, 2, depth=2, base_width=4, norm="batch", dropout=0.1, block="residual", spatial_dims=2)
    kinds = {type(m) for m in model.modules()}
    assert {nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d, nn.Dropout2d} <= kinds
    assert not kinds & {nn.Conv3d, nn.ConvTranspose3d, nn.BatchNorm3d, nn.Dropout3d}


@pytest.mark.parametrize(("block", "gate"), [("plain", "none"), ("residual", "none"), ("plain", "additive")])
def test_channels_last_computes_the_same_network(block: str, gate: str) -> None:
    """Channels-last 3D: weights and activations in that layout, the same outputs up to rounding (other
    kernels), in training mode (deep supervision) and eval mode; switching back restores the contiguous
    layout."""
    torch.manual_seed(0)
    model = UNet3D(4, 3, depth=3, base_width=4, max_width=16, block=block, gate=gate, deep_supervision=True)
    x = torch.randn(2, 4, 24, 16, 32)
    for training in (True, False):
        model.train(training)
        assert model.set_channels_last(False) is False
        want = model(x)
        assert model.set_channels_last(True) is True and model.channels_last
        assert all(
            p.is_contiguous(memory_format=torch.channels_last_3d) for p in model.parameters() if p.ndim == 5
        )
        got = model(x)
        pairs = list(zip(got, want, strict=True)) if training else [(got, want)]
        for a, b in pairs:
            assert a.is_contiguous(memory_format=torch.channels_last_3d)
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-4)
    model.set_channels_last(False)
    assert all(p.is_contiguous() for p in model.parameters())


def test_channels_last_only_where_supported() -> None:
    """The 2D core has no channels-last 3D; the switch reports it off. CUDA keeps the contiguous layout."""
    flat = UNet3D(4, 3, depth=3, base_width=4, max_width=16, spatial_dims=2)
    assert not flat.supports_channels_last and flat.set_channels_last(True) is False
    model = UNet3D(4, 3, depth=3, base_width=4, max_width=16)
    assert not use_channels_last(model, True, torch.device("cuda")) and not model.channels_last
    assert use_channels_last(model, True, torch.device("cpu")) and model.channels_last
    assert not use_channels_last(nn.Conv3d(1, 1, 1), True, torch.device("cpu"))
    with pytest.raises(ValueError, match="enabled must be a bool"):
        model.set_channels_last(1)  # type: ignore[arg-type]
