"""Model registry: ``params.yaml``'s ``model`` name → a configured network.

Every network keeps the contract of :mod:`bratseg.models.base`; its settings are the params section of the
same name (:data:`bratseg.config.MODEL_SECTIONS` gives the section's dataclass).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Literal, cast

from bratseg.config import (
    MODEL_SECTIONS,
    DynUNetParams,
    ModelParams,
    NetParams,
    SegResNetParams,
    SwinUNETRParams,
)
from bratseg.models.base import SegmentationNet
from bratseg.models.dynunet import DynUNet
from bratseg.models.segresnet import SegResNet
from bratseg.models.slices import SliceUNet
from bratseg.models.swinunetr import SwinUNETR
from bratseg.models.unet import UNet3D

Builder = Callable[[int, int, Any], SegmentationNet]


def _unet_kwargs(net: NetParams) -> dict[str, Any]:
    return {
        "depth": net.depth,
        "base_width": net.base_width,
        "max_width": net.max_width,
        "norm": net.norm,
        "dropout": net.dropout,
        "deep_supervision": net.deep_supervision,
        "full_res_width": net.full_res_width,
    }


def _unet(block: Literal["plain", "residual"], gate: Literal["none", "additive"]) -> Builder:
    def build(in_channels: int, out_channels: int, net: NetParams) -> SegmentationNet:
        return UNet3D(in_channels, out_channels, block=block, gate=gate, **_unet_kwargs(net))

    return build


def _unet2d(in_channels: int, out_channels: int, net: NetParams) -> SegmentationNet:
    return SliceUNet(in_channels, out_channels, **_unet_kwargs(net))


def _segresnet(in_channels: int, out_channels: int, net: SegResNetParams) -> SegmentationNet:
    return SegResNet(
        in_channels,
        out_channels,
        init_filters=net.init_filters,
        blocks_down=net.blocks_down,
        blocks_up=net.blocks_up,
        norm=cast(Literal["group", "instance", "batch"], net.norm),
        num_groups=net.num_groups,
        dropout=net.dropout,
    )


def _swinunetr(in_channels: int, out_channels: int, net: SwinUNETRParams) -> SegmentationNet:
    return SwinUNETR(
        in_channels,
        out_channels,
        feature_size=net.feature_size,
        depths=net.depths,
        num_heads=net.num_heads,
        window_size=net.window_size,
        norm=cast(Literal["instance", "batch"], net.norm),
        dropout=net.dropout,
        attn_dropout=net.attn_dropout,
        drop_path=net.drop_path,
        use_v2=net.use_v2,
    )


def _dynunet(in_channels: int, out_channels: int, net: DynUNetParams) -> SegmentationNet:
    return DynUNet(
        in_channels,
        out_channels,
        depth=net.depth,
        base_width=net.base_width,
        max_width=net.max_width,
        norm=cast(Literal["instance", "batch"], net.norm),
        dropout=net.dropout,
        res_block=net.res_block,
        deep_supervision=net.deep_supervision,
    )


#: Architecture name → builder ``(in_channels, out_channels, section) -> network`` (read-only).
MODELS: Mapping[str, Builder] = MappingProxyType(
    {
        "unet": _unet("plain", "none"),
        "resunet": _unet("residual", "none"),
        "attention_unet": _unet("plain", "additive"),
        "unet2d": _unet2d,
        "segresnet": _segresnet,
        "swinunetr": _swinunetr,
        "dynunet": _dynunet,
    }
)


def build_model(name: str, in_channels: int, out_channels: int, net: ModelParams) -> SegmentationNet:
    """Build the architecture ``name`` with the settings ``net`` (its params section).

    Args:
        name: a key of :data:`MODELS` (``params.yaml``'s ``model``).
        in_channels: input channels (4 MRI sequences for BraTS).
        out_channels: 3 for region (sigmoid) targets, 4 for class (softmax) targets.
        net: the params section of ``name``, of type ``MODEL_SECTIONS[name]``.

    Raises:
        ValueError: if ``name`` is unknown (the message lists the valid names), ``net`` is another
            architecture's section, or a setting is out of range.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid names: {sorted(MODELS)}")
    section = MODEL_SECTIONS[name]
    if not isinstance(net, section):
        raise ValueError(f"model {name!r} takes {section.__name__} settings, got {type(net).__name__}")
    return MODELS[name](in_channels, out_channels, net)
