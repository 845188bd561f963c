"""MONAI's SwinUNETR (Hatamizadeh et al., "Swin UNETR: Swin Transformers for Semantic Segmentation of Brain
Tumors in MRI Images", BrainLes 2021) behind the project's forward contract.

The Swin encoder embeds 2×2×2 patches and merges patches 4 times, so every spatial size of the input must be a
multiple of ``2**5 = 32`` (:data:`SWIN_DIVISOR`): ``train.patch_size`` is checked at parameter load. The
decoder upsamples by transposed convolutions. SwinUNETR has a single output, so it has no deep supervision
(the ``swinunetr`` params section has no such key). MONAI's Swin blocks need the ``einops`` package.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Literal

from torch import Tensor

from bratseg.config import SWINUNETR_DIVISOR
from bratseg.errors import check_choice
from bratseg.models.base import SegmentationNet, check_bool, check_fraction, check_positive
from bratseg.models.blocks import NORMS

#: Every input size must be a multiple of this: patch embedding (2) times 4 patch mergings (2 each).
SWIN_DIVISOR = SWINUNETR_DIVISOR
#: Swin stages of MONAI's SwinUNETR (its decoder is built for exactly 4).
SWIN_STAGES = 4


def _check_stage_counts(name: str, values: Sequence[int]) -> tuple[int, ...]:
    counts = tuple(values)
    if len(counts) != SWIN_STAGES or any(
        isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in counts
    ):
        raise ValueError(f"{name} must be {SWIN_STAGES} positive integers, got {list(values)!r}")
    return counts


class SwinUNETR(SegmentationNet):
    """SwinUNETR over ``(B, C, X, Y, Z)`` volumes, wrapping ``monai.networks.nets.SwinUNETR``.

    Args:
        in_channels: input channels (4 MRI sequences for BraTS).
        out_channels: output channels (3 regions or 4 classes).
        feature_size: embedding width, a multiple of 12; stage ``i`` has ``feature_size * 2**i`` channels.
        depths: Swin transformer blocks in each of the 4 stages.
        num_heads: attention heads in each of the 4 stages; each must divide its stage's width.
        window_size: side of the cubic attention window (in tokens).
        norm: normalisation of the convolutional encoder/decoder blocks, ``"instance"`` (affine) or
            ``"batch"``.
        dropout: dropout after the patch embedding and in the MLPs, in [0, 1).
        attn_dropout: dropout of the attention weights, in [0, 1).
        drop_path: stochastic depth rate, in [0, 1).
        use_v2: SwinUNETR-V2 (a residual convolution block before each Swin stage).

    Raises:
        ValueError: naming the argument, if one is out of range or unknown.
        ModuleNotFoundError: if ``einops`` is not installed.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        feature_size: int = 12,
        depths: Sequence[int] = (2, 2, 2, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        window_size: int = 4,
        norm: Literal["instance", "batch"] = "instance",
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
        drop_path: float = 0.0,
        use_v2: bool = False,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            divisors=(SWIN_DIVISOR,) * 3,
            divisor_rule=f"{SWIN_DIVISOR} (patch embedding 2 x 4 patch mergings)",
        )
        check_positive("feature_size", feature_size)
        if feature_size % 12:
            raise ValueError(f"feature_size must be a multiple of 12, got {feature_size}")
        stage_depths = _check_stage_counts("depths", depths)
        heads = _check_stage_counts("num_heads", num_heads)
        for stage, h in enumerate(heads):
            if (feature_size * 2**stage) % h:
                raise ValueError(
                    f"num_heads[{stage}] ({h}) must divide the stage width feature_size * 2**{stage}"
                    f" = {feature_size * 2**stage}"
                )
        check_positive("window_size", window_size)
        check_choice("norm", norm, NORMS)
        check_fraction("dropout", dropout)
        check_fraction("attn_dropout", attn_dropout)
        check_fraction("drop_path", drop_path)
        check_bool("use_v2", use_v2)
        if importlib.util.find_spec("einops") is None:
            raise ModuleNotFoundError("swinunetr needs the einops package (a dependency in pyproject.toml)")

        from monai.networks.nets.swin_unetr import SwinUNETR as MonaiSwinUNETR

        self.feature_size = feature_size
        self.norm = norm
        self.net = MonaiSwinUNETR(
            in_channels=in_channels,
            out_channels=out_channels,
            patch_size=2,
            depths=stage_depths,
            num_heads=heads,
            window_size=window_size,
            feature_size=feature_size,
            norm_name=("instance", {"affine": True}) if norm == "instance" else "batch",
            drop_rate=float(dropout),
            attn_drop_rate=float(attn_dropout),
            dropout_path_rate=float(drop_path),
            spatial_dims=3,
            use_v2=use_v2,
        )

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(B, out_channels, X, Y, Z)`` for ``x`` ``(B, in_channels, X, Y, Z)`` (sizes multiples of
        32).

        Raises:
            ValueError: if the shape of ``x`` does not fit (the message names the size and the requirement).
        """
        self.check_input(x)
        out: Tensor = self.net(x)
        return out
