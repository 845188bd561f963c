"""Model registry: ``params.yaml``'s ``model`` name → a configured :class:`UNet3D`."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, cast

from bratseg.models.blocks import BlockKind, NormKind
from bratseg.models.unet import UNet3D

if TYPE_CHECKING:
    from bratseg.config import NetParams

#: Architecture name → block type of the one UNet family (read-only).
MODELS: Mapping[str, BlockKind] = MappingProxyType({"unet": "plain", "resunet": "residual"})


def build_model(name: str, in_channels: int, out_channels: int, net: NetParams) -> UNet3D:
    """Build the architecture ``name`` (``"unet"`` or ``"resunet"``) with the settings ``net``.

    Args:
        name: a key of :data:`MODELS`.
        in_channels: input channels (4 MRI sequences for BraTS).
        out_channels: 3 for region (sigmoid) targets, 4 for class (softmax) targets.
        net: the ``unet`` / ``resunet`` section of the parameters.

    Raises:
        ValueError: if ``name`` is unknown (the message lists the valid names), or a setting is out of range.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid names: {sorted(MODELS)}")
    return UNet3D(
        in_channels,
        out_channels,
        depth=net.depth,
        base_width=net.base_width,
        max_width=net.max_width,
        block=MODELS[name],
        norm=cast(NormKind, net.norm),
        dropout=net.dropout,
        deep_supervision=net.deep_supervision,
    )
