"""The params sections of the networks behind ``model:``: one dataclass per family, the section each model
name reads, and the patch-size rule each network imposes.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bratseg.errors import ConfigError
from bratseg.sections import Section


@dataclass(frozen=True)
class NetParams(Section):
    """The UNet family: ``unet``, ``resunet``, ``attention_unet`` and the 2D slice network ``unet2d``."""

    depth: int
    base_width: int
    max_width: int
    norm: str
    dropout: float
    deep_supervision: bool
    full_res_width: int | None = None  # channels of level 0 only; None: base_width


@dataclass(frozen=True)
class SegResNetParams(Section):
    """MONAI's SegResNet (``segresnet``); no deep supervision."""

    init_filters: int
    blocks_down: tuple[int, ...]
    blocks_up: tuple[int, ...]
    norm: str
    num_groups: int
    dropout: float


@dataclass(frozen=True)
class SwinUNETRParams(Section):
    """MONAI's SwinUNETR (``swinunetr``); no deep supervision."""

    feature_size: int
    depths: tuple[int, ...]
    num_heads: tuple[int, ...]
    window_size: int
    norm: str
    dropout: float
    attn_dropout: float
    drop_path: float
    use_v2: bool


@dataclass(frozen=True)
class DynUNetParams(Section):
    """MONAI's DynUNet, the nnU-Net network (``dynunet``)."""

    depth: int
    base_width: int
    max_width: int
    norm: str
    dropout: float
    res_block: bool
    deep_supervision: bool


#: The settings of any one architecture (``Params.net``).
ModelParams = NetParams | SegResNetParams | SwinUNETRParams | DynUNetParams

#: ``model`` name → the dataclass of its params section (the section has the model's name).
MODEL_SECTIONS: Mapping[str, type[ModelParams]] = types.MappingProxyType(
    {
        "unet": NetParams,
        "resunet": NetParams,
        "attention_unet": NetParams,
        "unet2d": NetParams,
        "segresnet": SegResNetParams,
        "swinunetr": SwinUNETRParams,
        "dynunet": DynUNetParams,
    }
)

#: SwinUNETR: every input size a multiple of its patch embedding (2) times 4 patch mergings (2 each).
SWINUNETR_DIVISOR = 32


def model_params(model: str, data: Mapping[str, Any]) -> ModelParams:
    """The typed params section of ``model`` from its mapping (e.g. a checkpoint's ``meta["net"]``).

    A key added to a section after a checkpoint was written (a field with a default, such as
    ``full_res_width``) takes its default, which is the network the checkpoint was trained as.

    Raises:
        ConfigError: if ``model`` is unknown or ``data`` has unknown or missing keys.
    """
    if model not in MODEL_SECTIONS:
        raise ConfigError(f"unknown model {model!r}; valid names: {sorted(MODEL_SECTIONS)}")
    section = MODEL_SECTIONS[model]
    defaults = {
        f.name: f.default
        for f in dataclasses.fields(section)
        if f.default is not dataclasses.MISSING and f.name not in data
    }
    return section.from_dict({**data, **defaults})


def patch_divisors(model: str, net: ModelParams) -> tuple[tuple[int, int, int], str]:
    """What ``train.patch_size`` must be divisible by, per axis, for ``model`` with settings ``net``, and the
    rule in words (for the error message). The networks check the same at run time (``size_divisor``)."""
    if isinstance(net, SegResNetParams):
        d = 2 ** (len(net.blocks_down) - 1)
        return (d, d, d), f"2**(len({model}.blocks_down) - 1) = {d}"
    if isinstance(net, SwinUNETRParams):
        d = SWINUNETR_DIVISOR
        return (d, d, d), f"{d} ({model}: patch embedding 2 x 4 patch mergings)"
    d = 2 ** (net.depth - 1)
    rule = f"2**({model}.depth - 1) = {d}"
    if model == "unet2d":
        return (d, d, 1), rule + " (X and Y; Z is the slice axis)"
    return (d, d, d), rule
