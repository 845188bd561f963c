"""The registry: one builder per ``model`` name and params section, the shared forward contract of every
network, no interpolation anywhere (CUDA-deterministic backward), and checkpoints that rebuild."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from bratseg.config import MODEL_SECTIONS, ModelParams, NetParams, Params, SegResNetParams, patch_divisors
from bratseg.config import model_params as section_from_dict
from bratseg.errors import ConfigError
from bratseg.models import MODELS, SegmentationNet, build_model

#: aten operations whose CUDA backward is not deterministic (interpolation, pooling, padding by reflection/
#: replication, scatter-add style reductions): none may run in any model's training step.
NONDETERMINISTIC_ON_CUDA = (
    "upsample",
    "interpolate",
    "grid_sampler",
    "adaptive_avg_pool",
    "adaptive_max_pool",
    "max_pool",
    "avg_pool",
    "reflection_pad",
    "replication_pad",
    "embedding_bag",
    "scatter_add",
    "scatter_reduce",
    "index_add",
    "histc",
    "bincount",
)


def forbidden(ops: set[str]) -> set[str]:
    return {op for op in ops if any(bad in op for bad in NONDETERMINISTIC_ON_CUDA)}


def test_names_sections_and_schema_agree(raw_params: dict[str, Any], schema: dict[str, Any]) -> None:
    assert set(MODELS) == set(MODEL_SECTIONS) == set(schema["properties"]["model"]["enum"])
    assert set(MODELS) <= set(raw_params) and set(MODELS) <= set(schema["required"])
    fields = {f for f in Params.__dataclass_fields__}
    assert set(MODELS) <= fields
    with pytest.raises(TypeError):
        MODELS["vnet"] = MODELS["unet"]  # type: ignore[index]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_builds_from_the_repository_defaults(name: str, raw_params: dict[str, Any]) -> None:
    """params.yaml's own section builds the network; its divisor is the one parse_params checks."""
    section = section_from_dict(name, raw_params[name])
    torch.manual_seed(0)
    model = build_model(name, 4, 3, section)
    assert isinstance(model, SegmentationNet)
    assert (model.in_channels, model.out_channels) == (4, 3)
    divisors, _ = patch_divisors(name, section)
    assert model.spatial_divisors == divisors and model.size_divisor == divisors[0]
    deep = getattr(section, "deep_supervision", False)
    assert model.n_outputs == (section.depth - 1 if deep else 1)  # type: ignore[union-attr]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_forward_contract(
    name: str, tiny_section: Callable[..., ModelParams], tiny_spatial: Callable[[str], tuple[int, int, int]]
) -> None:
    torch.manual_seed(0)
    model = build_model(name, 4, 3, tiny_section(name))
    spatial = tiny_spatial(name)
    x = torch.randn(2, 4, *spatial)
    out = model.train()(x)
    outputs = out if isinstance(out, list) else [out]
    assert len(outputs) == model.n_outputs
    assert outputs[0].shape == (2, 3, *spatial)
    for o in outputs[1:]:  # lower resolutions, each an integer factor of the input
        assert o.shape[:2] == (2, 3) and all(s % t == 0 for s, t in zip(spatial, o.shape[2:], strict=True))
    with torch.no_grad():
        logits = model.eval()(x)
    assert (
        isinstance(logits, torch.Tensor)
        and logits.shape == (2, 3, *spatial)
        and logits.dtype == torch.float32
    )
    bad = tuple(s + 1 if d > 1 else s for s, d in zip(spatial, model.spatial_divisors, strict=True))
    with pytest.raises(ValueError, match="must be divisible by"):
        model(torch.randn(1, 4, *bad))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_no_interpolation_or_pooling_in_a_training_step(
    name: str,
    tiny_section: Callable[..., ModelParams],
    tiny_spatial: Callable[[str], tuple[int, int, int]],
    record_ops: Callable[[Callable[[], None]], set[str]],
) -> None:
    torch.manual_seed(0)
    model = build_model(name, 4, 3, tiny_section(name, dropout=0.1)).train()
    assert not any(isinstance(m, nn.Upsample | nn.MaxPool3d | nn.AvgPool3d) for m in model.modules())
    x = torch.randn(2, 4, *tiny_spatial(name))

    def step() -> None:
        out = model(x)
        outputs = out if isinstance(out, list) else [out]
        torch.stack([o.float().square().mean() for o in outputs]).sum().backward()

    ops = record_ops(step)
    assert "convolution_backward" in ops  # the recorder saw the backward pass
    assert not forbidden(ops), sorted(forbidden(ops))


def test_the_op_check_catches_trilinear_upsampling(
    record_ops: Callable[[Callable[[], None]], set[str]],
) -> None:
    x = torch.randn(1, 1, 4, 4, 4, requires_grad=True)

    def step() -> None:
        F.interpolate(x, scale_factor=2, mode="trilinear").sum().backward()

    assert forbidden(record_ops(step))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_rebuilt_from_checkpoint_metadata(
    name: str, tiny_section: Callable[..., ModelParams], tiny_spatial: Callable[[str], tuple[int, int, int]]
) -> None:
    """What a checkpoint keeps (model name, the section as a dict, the state) rebuilds the same network."""
    torch.manual_seed(0)
    section = tiny_section(name)
    model = build_model(name, 4, 3, section).eval()
    torch.manual_seed(1)  # other initial weights: the state must overwrite all of them
    rebuilt = build_model(name, 4, 3, section_from_dict(name, section.to_dict()))
    rebuilt.load_state_dict(model.state_dict())
    x = torch.randn(2, 4, *tiny_spatial(name))
    with torch.no_grad():
        assert torch.equal(model(x), rebuilt.eval()(x))


def test_unknown_model_and_wrong_section() -> None:
    net = NetParams(depth=3, base_width=4, max_width=16, norm="instance", dropout=0.0, deep_supervision=False)
    with pytest.raises(ValueError, match=r"unknown model 'vnet'; valid names: \['attention_unet', 'dynunet'"):
        build_model("vnet", 4, 3, net)
    with pytest.raises(ValueError, match="model 'segresnet' takes SegResNetParams settings, got NetParams"):
        build_model("segresnet", 4, 3, net)
    seg = SegResNetParams(
        init_filters=4, blocks_down=(1, 1), blocks_up=(1,), norm="group", num_groups=2, dropout=0.0
    )
    with pytest.raises(ValueError, match="model 'unet' takes NetParams settings, got SegResNetParams"):
        build_model("unet", 4, 3, seg)
    with pytest.raises(ConfigError, match="unknown model 'vnet'"):
        section_from_dict("vnet", {})
    with pytest.raises(ConfigError, match=r"DynUNetParams: unknown keys \[\], missing keys \['res_block'\]"):
        section_from_dict("dynunet", {k: v for k, v in net.to_dict().items() if k != "full_res_width"})


def test_a_checkpoint_section_without_full_res_width_builds_the_network_it_was() -> None:
    """Checkpoints written before ``full_res_width`` existed carry no such key: it defaults to None."""
    old = {"depth": 3, "base_width": 4, "max_width": 16, "norm": "instance", "dropout": 0.0,
           "deep_supervision": True}
    net = section_from_dict("unet", old)
    assert isinstance(net, NetParams) and net.full_res_width is None
    with pytest.raises(ConfigError, match="unknown keys"):
        section_from_dict("unet", {**old, "stem": 3})
